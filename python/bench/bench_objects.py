"""shmq.Manager() vs multiprocessing.Manager(): dict and list operations per second, in one run.

    python python/bench/bench_objects.py            # the full run (about two minutes)
    python python/bench/bench_objects.py --quick    # a smoke run (seconds), as CI does

Operations (each a loop of one call per operation, in worker processes started with fork):

* dict-get:     ``d[k]``, k cycling over 100 str keys holding small ints.
* dict-set:     ``d[k] = i``, the same keys.
* list-get:     ``l[i]``, i cycling over a 100-item list of small ints.
* list-set:     ``l[i] = i``.
* list-append:  ``l.append(i)`` (the list is emptied before each run).

Then shared values, against ``multiprocessing.Value('q', 0)``:

* value-locked:     ``with v.get_lock(): v.value += 1`` on both sides.
* value-fetch-add:  shmq's one-call atomic ``v.fetch_add(1)`` (the same increment, race-free
                    without the lock) against the stdlib's locked increment.

With 1 and with 4 worker processes at once on one shared object. Workers wait for a start
signal, then run for --seconds each; the rate is all workers' operations over the time from the
first worker's start to the last one's end (CLOCK_MONOTONIC, one clock for every process).
Figures are medians of --repeat runs; the last column is shmq's rate over the Manager's (the
issue's target: at least 100).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from typing import Any

import shmq

KEYS = [f"key-{i}" for i in range(100)]
OPS = ["dict-get", "dict-set", "list-get", "list-set", "list-append"]
VALUE_OPS = ["value-locked", "value-fetch-add"]


def _loop(op: str, obj: Any, seconds: float) -> int:
    """Runs ``op`` on ``obj`` for ``seconds``; returns how many operations ran."""
    n = 0
    end = time.monotonic() + seconds
    keys = KEYS
    while True:
        # Checked every 64 operations: the clock costs as much as a shmq operation.
        if op == "dict-get":
            for i in range(64):
                obj[keys[i]]
        elif op == "dict-set":
            for i in range(64):
                obj[keys[i]] = i
        elif op == "list-get":
            for i in range(64):
                obj[i]
        elif op == "list-set":
            for i in range(64):
                obj[i] = i
        elif op == "list-append":
            for i in range(64):
                obj.append(i)
        elif op == "value-locked":
            for _ in range(64):
                with obj.get_lock():
                    obj.value += 1
        else:
            for _ in range(64):
                obj.fetch_add(1)
        n += 64
        if time.monotonic() >= end:
            return n


def _worker(op: str, obj: Any, seconds: float, go: Any, out: Any) -> None:
    go.wait()
    t0 = time.monotonic()
    n = _loop(op, obj, seconds)
    out.put((n, t0, time.monotonic()))


def measure(manager: Any, op: str, procs: int, seconds: float) -> float:
    """Operations per second of ``procs`` workers running ``op`` on one object of ``manager``."""
    if op.startswith("dict"):
        obj = manager.dict({k: 0 for k in KEYS})
    else:
        obj = manager.list(range(100))
        if op == "list-append":
            del obj[:]
    return run(obj, op, procs, seconds)


def run(obj: Any, op: str, procs: int, seconds: float) -> float:
    """Operations per second of ``procs`` workers running ``op`` on ``obj``."""
    ctx = mp.get_context("fork")
    go = ctx.Event()
    out = ctx.SimpleQueue()
    ps = [ctx.Process(target=_worker, args=(op, obj, seconds, go, out)) for _ in range(procs)]
    for p in ps:
        p.start()
    go.set()
    results = [out.get() for _ in ps]
    for p in ps:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a {op} worker failed ({p.exitcode})")
    total = sum(r[0] for r in results)
    span = max(r[2] for r in results) - min(r[1] for r in results)
    return total / span


def measure_shmq(op: str, procs: int, seconds: float) -> float:
    """:func:`measure` with a shmq manager of its own, whose shutdown frees the object (the
    multiprocessing manager frees each object once its proxies are gone)."""
    with shmq.Manager() as m:
        return measure(m, op, procs, seconds)


def machine() -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (0.1 s per measurement)")
    ap.add_argument("--seconds", type=float, default=1.0, help="run time of each measurement")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    seconds, repeat = (0.1, 1) if args.quick else (args.seconds, args.repeat)
    print(f"# {machine()}; {seconds} s per measurement, median of {repeat}", flush=True)
    print(f"{'operation':<12} {'procs':>5} {'Manager ops/s':>15} {'shmq ops/s':>14} {'ratio':>8}")
    mp_manager = mp.get_context("fork").Manager()
    try:
        for op in OPS:
            for procs in (1, 4):
                theirs = statistics.median(
                    measure(mp_manager, op, procs, seconds) for _ in range(repeat)
                )
                mine = statistics.median(measure_shmq(op, procs, seconds) for _ in range(repeat))
                print(
                    f"{op:<12} {procs:>5} {theirs:>15,.0f} {mine:>14,.0f} {mine / theirs:>7.0f}x",
                    flush=True,
                )
    finally:
        mp_manager.shutdown()
    print(f"{'operation':<16} {'procs':>5} {'mp.Value ops/s':>15} {'shmq ops/s':>14} {'ratio':>8}")
    for op in VALUE_OPS:
        for procs in (1, 4):
            # The stdlib's Value has no atomic add: its locked increment is the same operation.
            theirs = statistics.median(
                run(mp.Value("q", 0), "value-locked", procs, seconds) for _ in range(repeat)
            )
            mine = statistics.median(
                run(shmq.Value("q", 0), op, procs, seconds) for _ in range(repeat)
            )
            print(
                f"{op:<16} {procs:>5} {theirs:>15,.0f} {mine:>14,.0f} {mine / theirs:>7.1f}x",
                flush=True,
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
