#!/usr/bin/env python3
"""Turns criterion's results (target/criterion) into the tables of docs/benchmarks.md and the plot
docs/benchmarks.svg. Run after `cargo bench -p shmq-benches`:

    python3 scripts/bench-report.py > /tmp/tables.md

Every figure is criterion's median estimate of the time per iteration (one message, one round
trip, or one 64 KiB message), read from `new/estimates.json`.
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
res = {}
for bj in root.glob("**/new/benchmark.json"):
    meta = json.loads(bj.read_text())
    est = json.loads((bj.parent / "estimates.json").read_text())
    res[meta["full_id"]] = est["median"]["point_estimate"]  # ns per iteration

if not res:
    sys.exit("no criterion results under target/criterion: run the benches first")


def ns(key):
    return res.get(key)


def fmt_ns(v):
    if v is None:
        return "n/a"
    return f"{v / 1000:.2f} µs" if v >= 1000 else f"{v:.0f} ns"


def rate(v):
    return "n/a" if v is None else f"{1e9 / v / 1e6:.2f} M/s"


def ratio(a, b):
    return "n/a" if a is None or b is None else f"{a / b:.2f}×"


out = []
rt = {k: ns(f"ipc/round_trip/{k}") for k in ["atomic_floor", "shmq_adaptive", "shmq_blocking", "pipe", "unix"]}
out.append("### Cross-process round trip (8-byte message there and back)\n")
out.append("| peer | median round trip | vs atomic floor | vs pipe |")
out.append("|---|---:|---:|---:|")
for k, v in rt.items():
    out.append(f"| {k} | {fmt_ns(v)} | {ratio(v, rt['atomic_floor'])} | {ratio(v, rt['pipe'])} |")

tp = {k: ns(f"ipc/throughput_8B/{k}") for k in ["shmq_adaptive", "shmq_blocking", "shmq_batch64", "pipe", "unix"]}
cb = ns("inproc/1p1c/8B/crossbeam_channel")
out.append("\n### Cross-process one-way throughput, 8-byte messages\n")
out.append("| peer | messages/s | vs crossbeam-channel in-process (1P1C, 8 B) | vs pipe |")
out.append("|---|---:|---:|---:|")
for k, v in tp.items():
    out.append(f"| {k} | {rate(v)} | {ratio(cb, v)} | {ratio(tp['pipe'], v)} |")

out.append("\n### In-process throughput (messages/s; ratio = shmq ÷ crossbeam-channel)\n")
impls = ["shmq", "crossbeam_channel", "crossbeam_arrayqueue", "std_sync_channel"]
out.append("| config | size | " + " | ".join(impls) + " | shmq ÷ crossbeam-channel |")
out.append("|---|---|" + "---:|" * (len(impls) + 1))
for cfg in ["1p1c", "2p2c"]:
    for size in ["8B", "64B", "1KiB", "64KiB"]:
        vals = [ns(f"inproc/{cfg}/{size}/{i}") for i in impls]
        out.append(f"| {cfg} | {size} | " + " | ".join(rate(v) for v in vals)
                   + f" | {ratio(vals[1], vals[0])} |")

bw = {k: ns(f"bandwidth/64KiB/{k}") for k in ["memcpy", "shmq_put_get", "shmq_put_get_work", "shmq_loan"]}
out.append("\n### 64 KiB messages (bytes/s; % of memcpy)\n")
out.append("| path | GiB/s | % of memcpy |")
out.append("|---|---:|---:|")
for k, v in bw.items():
    gib = None if v is None else 65536 / v * 1e9 / 2**30
    pct = "n/a" if v is None or bw["memcpy"] is None else f"{bw['memcpy'] / v * 100:.0f} %"
    out.append(f"| {k} | {'n/a' if gib is None else f'{gib:.2f}'} | {pct} |")
print("\n".join(out))

# Plot: horizontal bars, log scale, of the round trips and the 8-byte throughputs.
bars = [(f"round trip: {k}", v, "ns") for k, v in rt.items() if v]
bars += [(f"throughput: {k}", v, "ns/msg") for k, v in tp.items() if v]
if cb:
    bars.append(("throughput: crossbeam in-process", cb, "ns/msg"))
import math
if not bars:
    sys.exit(0)
w, row, left = 900, 26, 300
h = row * len(bars) + 60
lo = math.log10(min(v for _, v, _ in bars) / 2)
hi = math.log10(max(v for _, v, _ in bars) * 2)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
       f'<text x="10" y="20" font-size="14">shmq benchmarks: time per round trip / per message (log scale, shorter is better)</text>']
for i, (label, v, unit) in enumerate(bars):
    y = 40 + i * row
    bw_ = (math.log10(v) - lo) / (hi - lo) * (w - left - 120)
    color = "#2b7bb9" if "shmq" in label else "#999999"
    svg.append(f'<text x="10" y="{y + 15}">{label}</text>')
    svg.append(f'<rect x="{left}" y="{y + 3}" width="{bw_:.1f}" height="{row - 8}" fill="{color}"/>')
    svg.append(f'<text x="{left + bw_ + 5:.1f}" y="{y + 15}">{fmt_ns(v)}</text>')
svg.append("</svg>")
(pathlib.Path(__file__).resolve().parent.parent / "docs" / "benchmarks.svg").write_text("\n".join(svg) + "\n")
