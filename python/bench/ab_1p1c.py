"""The 1p1c scenarios of bench_queues.py, short, for comparing builds side by side.

    pip install . --target /tmp/build-a      # one build per directory (checkout A)
    pip install . --target /tmp/build-b      # (checkout B)
    for i in 1 2 3; do for b in a b; do
        PYTHONPATH=/tmp/build-$b python3 python/bench/ab_1p1c.py $b
    done; done

Prints, for the build on ``PYTHONPATH``: one-by-one ints from a forked producer through
``shmq.Queue()`` (d-int) and ``shmq.Queue(1024, max_message_size=256)`` (s-int), and 4 MiB
``bytes`` through ``shmq.Queue()`` (d-4MiB); medians of 3 runs each. Alternating builds in one
sitting is what makes their figures comparable on a shared machine.
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import sys
import time

import shmq

BIG = 4 << 20


def _producer(q, go, n: int, what: str) -> None:
    go.wait()
    if what == "int":
        put = q.put
        for i in range(n):
            put(i)
    else:
        payload = b"\x5a" * BIG
        for _ in range(n):
            q.put(payload)


def one_way(q, n: int, what: str) -> float:
    """Items per second from a forked producer to this process."""
    go = mp.Event()
    p = mp.Process(target=_producer, args=(q, go, n, what))
    p.start()
    t0 = time.perf_counter()
    go.set()
    get = q.get
    for _ in range(n):
        get()
    dt = time.perf_counter() - t0
    p.join()
    return n / dt


def main() -> None:
    mp.set_start_method("fork")
    label = sys.argv[1] if len(sys.argv) > 1 else "build"
    d_int = statistics.median(one_way(shmq.Queue(), 200_000, "int") for _ in range(3))
    s_int = statistics.median(
        one_way(shmq.Queue(1024, max_message_size=256), 200_000, "int") for _ in range(3)
    )
    big = statistics.median(one_way(shmq.Queue(), 100, "bytes") for _ in range(3)) * BIG
    print(f"{label} d-int {d_int / 1e6:.2f}M s-int {s_int / 1e6:.2f}M d-4MiB {big / 1e9:.2f}GB/s")


if __name__ == "__main__":
    main()
