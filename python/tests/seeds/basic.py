import multiprocessing


def worker(q):
    q.put("hello from the child")
    q.put([42, None, "x"])


if __name__ == "__main__":
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=worker, args=(q,))
    p.start()
    print(q.get())
    print(q.get())
    p.join()
