"""The multiprocessing program that shares a ``Value('i', 0)`` and an ``Array('i', 15)`` between
three processes, with only the import changed: each worker fills its third of the array and
bumps the counter under their locks. Prints what the original prints (15, then [1, ..., 15]),
then times a locked ``value += 1`` against ``multiprocessing.Value``'s and shmq's one-call
atomic ``fetch_add`` (measured in this run).

    python3 python/examples/value_array.py [COUNT]
"""

import multiprocessing as stdlib_multiprocessing
import sys
import time

import shmq as multiprocessing


def work(counter, cells, first):
    for i in range(first, 15, 3):
        with cells.get_lock():
            cells[i] = i + 1
        with counter.get_lock():
            counter.value += 1


def bump_locked(counter, n):
    for _ in range(n):
        with counter.get_lock():
            counter.value += 1


def bump_atomic(counter, n):
    for _ in range(n):
        counter.fetch_add(1)


def rate(counter, bump, n, procs=3):
    workers = [stdlib_multiprocessing.Process(target=bump, args=(counter, n)) for _ in range(procs)]
    t0 = time.perf_counter()
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    dt = time.perf_counter() - t0
    assert counter.value == procs * n, counter.value
    return procs * n / dt


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

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    ours = rate(multiprocessing.Value("i", 0), bump_locked, n)
    theirs = rate(stdlib_multiprocessing.Value("i", 0), bump_locked, n)
    atomic = rate(multiprocessing.Value("i", 0), bump_atomic, n)
    print(f"3 processes, {n:,} increments each:")
    print(f"  multiprocessing.Value, with get_lock(): {theirs:12,.0f} increments/s")
    print(f"  shmq.Value, with get_lock():            {ours:12,.0f} increments/s")
    print(f"  shmq.Value.fetch_add(1):                {atomic:12,.0f} increments/s")
