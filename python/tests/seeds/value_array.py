import multiprocessing


def work(counter, cells, first):
    for i in range(first, 15, 3):
        with cells.get_lock():
            cells[i] = i + 1
        with counter.get_lock():
            counter.value += 1


if __name__ == "__main__":
    counter = multiprocessing.Value("i", 0)
    cells = multiprocessing.Array("i", 15)
    workers = [multiprocessing.Process(target=work, args=(counter, cells, k)) for k in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    print(counter.value)
    print(cells[:])
