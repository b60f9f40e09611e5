"""One process sends 200 000 small messages to another through shmq.Queue, then through
multiprocessing.Queue, and prints both rates (measured in this run).

    python3 python/examples/quickstart.py [COUNT]
"""

import multiprocessing
import sys
import time

import shmq


def producer(q, n):
    for i in range(n):
        q.put(i)
    q.put(None)


def rate(make_queue, n):
    q = make_queue()
    p = multiprocessing.Process(target=producer, args=(q, n))
    t0 = time.perf_counter()
    p.start()
    count = 0
    while q.get() is not None:
        count += 1
    dt = time.perf_counter() - t0
    p.join()
    assert count == n
    return n / dt


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    fast = rate(shmq.Queue, n)
    slow = rate(multiprocessing.Queue, n)
    print(f"shmq.Queue:            {fast:12,.0f} messages/s")
    print(f"multiprocessing.Queue: {slow:12,.0f} messages/s  (shmq {fast / slow:.1f}x)")
