import multiprocessing


def producer(q, n):
    for i in range(n):
        q.put(i * i)
    q.put(None)


def consumer(q, results):
    total = 0
    while True:
        item = q.get()
        if item is None:
            break
        total += item
    results.put(total)


if __name__ == "__main__":
    q, results = multiprocessing.Queue(), multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=producer, args=(q, 1000)),
        multiprocessing.Process(target=consumer, args=(q, results)),
    ]
    for p in procs:
        p.start()
    print(results.get())
    for p in procs:
        p.join()
