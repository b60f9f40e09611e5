"""Instructions per ``put`` + ``get`` pair of a shmq queue from Python, counted by callgrind:
repeatable where times on a shared machine are not.

    python3 python/bench/op_instructions.py [PAIRS]     # needs valgrind

Runs this file under ``valgrind --tool=callgrind`` twice per queue kind, with 0 and with PAIRS
pairs (after the same warm-up), and prints the difference over PAIRS: the instructions one
``q.put(i); q.get()`` costs in one process, interpreter loop included. Kinds: ``shmq.Queue()``
(the default: unbounded, any size), ``shmq.Queue(1024, max_message_size=256)`` (bounded), and
``multiprocessing.Queue()`` for scale (its pair includes the pickling, the feeder thread's
pipe write and the reader's pipe read; the feeder runs in another thread of the same process,
which callgrind counts too).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

KINDS = ["shmq-default", "shmq-bounded", "multiprocessing"]


def run_pairs(kind: str, n: int) -> None:
    import multiprocessing

    import shmq

    if kind == "shmq-default":
        q = shmq.Queue()
    elif kind == "shmq-bounded":
        q = shmq.Queue(1024, max_message_size=256)
    else:
        q = multiprocessing.Queue()
    put, get = q.put, q.get
    for i in range(1000):
        put(i)
        get()
    for i in range(n):
        put(i)
        get()


def count(kind: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cg.out")
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--child",
                kind,
                str(n),
            ],
            check=True,
            capture_output=True,
        )
        with open(out) as f:
            for line in f:
                m = re.match(r"(?:summary|totals): (\d+)", line)
                if m:
                    return int(m.group(1))
    raise RuntimeError("callgrind wrote no totals")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        run_pairs(sys.argv[2], int(sys.argv[3]))
        return
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(f"# instructions per put+get pair, {pairs} pairs, Python {sys.version.split()[0]}")
    for kind in KINDS:
        per = (count(kind, pairs) - count(kind, 0)) / pairs
        print(f"{kind:<16} {per:10,.0f}", flush=True)


if __name__ == "__main__":
    main()
