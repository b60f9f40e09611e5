import multiprocessing


def producer(q, tag):
    for i in range(10):
        q.put((tag, i))


def consumer(q, results):
    got = []
    while True:
        item = q.get()
        if item is None:
            break
        got.append(item)
    results.put(got)


if __name__ == "__main__":
    q, results = multiprocessing.Queue(), multiprocessing.Queue()
    producers = [multiprocessing.Process(target=producer, args=(q, t)) for t in "ab"]
    consumers = [multiprocessing.Process(target=consumer, args=(q, results)) for _ in range(2)]
    for p in producers + consumers:
        p.start()
    for p in producers:
        p.join()
    for _ in consumers:
        q.put(None)
    items = results.get() + results.get()
    for p in consumers:
        p.join()
    print(sorted(items) == [(t, i) for t in "ab" for i in range(10)], len(items))
