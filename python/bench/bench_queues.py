"""shmq.Queue vs multiprocessing.Queue vs faster_fifo.Queue, in one run.

    python python/bench/bench_queues.py            # the full run (a few minutes)
    python python/bench/bench_queues.py --quick    # a smoke run (seconds), as CI does

Scenarios (processes started with fork; the clock runs in the parent, from the moment the
producers are released until the last item arrives):

* 1p1c-int:     one producer puts small ints one by one, the parent gets them one by one.
* 1p1c-batch:   the same with put_many / get_many in batches of 100 (shmq, faster_fifo; the
                stdlib queue has no batch calls).
* round-trip:   the parent puts an int, a child gets it and puts it back; time per round trip.
* bytes-4MiB:   one producer puts 4 MiB bytes objects, the parent gets them.
* numpy-4MiB:   the same with 4 MiB float64 numpy arrays.
* 4p4c-int:     four producer processes, four consumer processes, small ints.

Queues: ``shmq-default`` is ``shmq.Queue()`` as a user gets it (unbounded, messages of any
size: those longer than 240 bytes go through the segment's heap); ``shmq-sized`` is
``shmq.Queue(1024, max_message_size=256)`` for ints and ``shmq.Queue(8, max_message_size=4 MiB +
4 KiB)`` for 4 MiB messages (bounded; the ints stay in their slots); ``multiprocessing`` is
``multiprocessing.Queue()``; ``faster_fifo`` is ``faster_fifo.Queue`` with an 8 MiB buffer (64 MiB
for 4 MiB messages, which its 200 KB default cannot take).

Prints one table; figures are medians of --repeat runs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time

import numpy as np

import shmq

try:
    import faster_fifo
except ImportError:  # pragma: no cover
    faster_fifo = None

MIB = 1 << 20
BIG = 4 * MIB


def make_queue(kind: str, big: bool = False):
    if kind == "shmq-default":
        return shmq.Queue()
    if kind == "shmq-sized":
        if big:
            return shmq.Queue(8, max_message_size=BIG + 4096)
        return shmq.Queue(1024, max_message_size=256)
    if kind == "multiprocessing":
        return mp.Queue()
    if kind == "faster_fifo":
        return faster_fifo.Queue(max_size_bytes=(64 if big else 8) * MIB)
    raise ValueError(kind)


def _get_many(q, kind, n):
    if kind == "faster_fifo":
        return q.get_many(block=True, timeout=60, max_messages_to_get=n)
    return q.get_many(n)


def _put_many(q, kind, items):
    if kind == "faster_fifo":
        q.put_many(items, block=True, timeout=60)
    else:
        q.put_many(items)


def _producer(q, kind, go, n, what, batch):
    go.wait()
    if what == "int":
        if batch:
            for start in range(0, n, batch):
                _put_many(q, kind, list(range(start, min(n, start + batch))))
        else:
            put = q.put
            for i in range(n):
                put(i)
    elif what == "bytes":
        payload = b"\x5a" * BIG
        for _ in range(n):
            q.put(payload)
    elif what == "numpy":
        a = np.ones(BIG // 8)
        for _ in range(n):
            q.put(a)


def one_way(kind, n, what="int", batch=0):
    q = make_queue(kind, big=what != "int")
    go = mp.Event()
    p = mp.Process(target=_producer, args=(q, kind, go, n, what, batch))
    p.start()
    t0 = time.perf_counter()
    go.set()
    got = 0
    if batch:
        while got < n:
            got += len(_get_many(q, kind, batch))
    else:
        get = q.get
        for _ in range(n):
            get()
        got = n
    dt = time.perf_counter() - t0
    p.join()
    return dt


def _echo(q_in, q_out, n):
    for _ in range(n):
        q_out.put(q_in.get())


def round_trip(kind, n):
    a, b = make_queue(kind), make_queue(kind)
    p = mp.Process(target=_echo, args=(a, b, n))
    p.start()
    a.put(0)
    b.get()  # warm
    t0 = time.perf_counter()
    for i in range(n - 1):
        a.put(i)
        b.get()
    dt = time.perf_counter() - t0
    p.join()
    return dt / (n - 1)


def _consumer(q, done_q):
    count = 0
    while q.get() is not None:
        count += 1
    done_q.put(count)


def many_to_many(kind, n, parties=4):
    q = make_queue(kind)
    done_q = mp.Queue()
    go = mp.Event()
    per = n // parties
    prods = [
        mp.Process(target=_producer, args=(q, kind, go, per, "int", 0)) for _ in range(parties)
    ]
    cons = [mp.Process(target=_consumer, args=(q, done_q)) for _ in range(parties)]
    for p in prods + cons:
        p.start()
    t0 = time.perf_counter()
    go.set()
    for p in prods:
        p.join()
    for _ in cons:
        q.put(None)
    total = sum(done_q.get() for _ in cons)
    dt = time.perf_counter() - t0
    for p in cons:
        p.join()
    assert total == per * parties, (total, per * parties)
    return dt


def median(f, repeat):
    return statistics.median(f() for _ in range(repeat))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run with tiny counts")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--svg",
        metavar="PATH",
        help="also draw the figures, as ratios to multiprocessing.Queue, into an SVG file",
    )
    args = ap.parse_args()
    mp.set_start_method("fork")
    if args.quick:
        n_int, n_rt, n_big, n_mm, repeat = 2_000, 500, 4, 2_000, 1
    else:
        n_int, n_rt, n_big, n_mm, repeat = 200_000, 20_000, 100, 200_000, args.repeat
    kinds = ["shmq-default", "shmq-sized", "multiprocessing"] + (
        ["faster_fifo"] if faster_fifo else []
    )
    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs, {platform.machine()}, "
        f"Linux {platform.release()}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, faster_fifo "
        f"{getattr(faster_fifo, '__version__', 'installed') if faster_fifo else 'absent'}"
    )
    print(f"# {' '.join(sys.argv)}; medians of {repeat} runs")
    rows = []
    for kind in kinds:
        r = {"queue": kind}
        r["1p1c-int"] = n_int / median(lambda k=kind: one_way(k, n_int), repeat)
        r["1p1c-batch"] = (
            n_int / median(lambda k=kind: one_way(k, n_int, batch=100), repeat)
            if kind != "multiprocessing"
            else None
        )
        r["round-trip"] = median(lambda k=kind: round_trip(k, n_rt), repeat)
        r["bytes-4MiB"] = n_big * BIG / median(lambda k=kind: one_way(k, n_big, "bytes"), repeat)
        r["numpy-4MiB"] = n_big * BIG / median(lambda k=kind: one_way(k, n_big, "numpy"), repeat)
        r["4p4c-int"] = n_mm / median(lambda k=kind: many_to_many(k, n_mm), repeat)
        rows.append(r)
    head = [
        "queue",
        "1p1c-int (items/s)",
        "1p1c-batch (items/s)",
        "round-trip (µs)",
        "bytes-4MiB (GB/s)",
        "numpy-4MiB (GB/s)",
        "4p4c-int (items/s)",
    ]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:

        def rate(v):
            return "n/a" if v is None else f"{v / 1e6:.2f} M"

        cells = [
            r["queue"],
            rate(r["1p1c-int"]),
            rate(r["1p1c-batch"]),
            f"{r['round-trip'] * 1e6:.1f}",
            f"{r['bytes-4MiB'] / 1e9:.2f}",
            f"{r['numpy-4MiB'] / 1e9:.2f}",
            rate(r["4p4c-int"]),
        ]
        print("| " + " | ".join(cells) + " |")
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(svg(rows, " ".join(sys.argv)))
    left = [n for n in os.listdir("/dev/shm") if n.startswith(f"shmq-py-{os.getpid()}-")]
    if left:
        print(f"# note: {len(left)} segments still mapped at the end (released at exit)")


def svg(rows: list[dict], command: str) -> str:
    """A bar chart of each queue's figures as multiples of multiprocessing.Queue's (log scale;
    for the round trip, how many times faster)."""
    import math
    from xml.sax.saxutils import escape

    base = next(r for r in rows if r["queue"] == "multiprocessing")
    metrics = ["1p1c-int", "round-trip", "bytes-4MiB", "numpy-4MiB", "4p4c-int"]
    colours = ["#1f77b4", "#aec7e8", "#7f7f7f", "#ff7f0e"]
    w, h, left, top, bottom = 760, 360, 60, 40, 70
    group = (w - left - 20) / len(metrics)
    bar = group / (len(rows) + 1)
    top_ratio = 200.0

    def y(ratio: float) -> float:
        r = min(max(ratio, 0.1), top_ratio)
        return top + (h - top - bottom) * (1 - (math.log10(r) + 1) / (math.log10(top_ratio) + 1))

    title = "Python queues, as multiples of multiprocessing.Queue (log scale)"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="18" font-size="13">{title}</text>',
    ]
    for tick in (0.1, 1, 10, 100):
        ty = y(tick)
        out.append(f'<line x1="{left}" x2="{w - 20}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end">{tick:g}×</text>')
    for i, m in enumerate(metrics):
        gx = left + i * group
        cx, cy = gx + group / 2, h - bottom + 16
        out.append(f'<text x="{cx:.1f}" y="{cy}" text-anchor="middle">{m}</text>')
        for j, r in enumerate(rows):
            if r.get(m) is None or base.get(m) in (None, 0):
                continue
            ratio = base[m] / r[m] if m == "round-trip" else r[m] / base[m]
            x = gx + (j + 0.5) * bar
            out.append(
                f'<rect x="{x:.1f}" y="{y(ratio):.1f}" width="{bar * 0.9:.1f}" '
                f'height="{y(0.1) - y(ratio):.1f}" fill="{colours[j % len(colours)]}">'
                f"<title>{escape(r['queue'])}: {ratio:.1f}×</title></rect>"
            )
    for j, r in enumerate(rows):
        lx = left + j * 170
        fill = colours[j % len(colours)]
        out.append(f'<rect x="{lx}" y="{h - 30}" width="10" height="10" fill="{fill}"/>')
        out.append(f'<text x="{lx + 14}" y="{h - 21}">{escape(r["queue"])}</text>')
    foot = escape(command)
    out.append(f'<text x="{left}" y="{h - 6}" font-size="9" fill="#555">{foot}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
