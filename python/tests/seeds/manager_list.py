import multiprocessing


def worker(shared, k):
    for i in range(5 * k + 1, 5 * k + 6):
        shared.append(i)


if __name__ == "__main__":
    with multiprocessing.Manager() as manager:
        shared = manager.list()
        procs = [multiprocessing.Process(target=worker, args=(shared, k)) for k in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        shared.sort()
        print(shared)
        print(len(shared))
