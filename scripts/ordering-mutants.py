#!/usr/bin/env python3
"""Ordering mutation score: weakens each atomic ordering stronger than Relaxed in src/ (and
removes each fence), one at a time, and runs the loom models, then the process tests, against
each mutant. Prints, and appends to a results file, which test catches which mutant.

    python3 scripts/ordering-mutants.py --list               # the sites and their mutants
    python3 scripts/ordering-mutants.py                      # every mutant (many hours)
    python3 scripts/ordering-mutants.py --only 'src/ring/'   # the mutants of some files
    python3 scripts/ordering-mutants.py --summary            # the table of a results file

Per mutant:
  1. The loom test binary is rebuilt (`--cfg shmq_loom`, release). If it comes out identical to
     the unmutated build's, the site is not compiled under loom (the segment layer, the OS
     calls): "not modelled".
  2. Otherwise the models run one at a time (those whose names share a word with the mutated
     file first), `LOOM_MAX_PREEMPTIONS` (default 2), each under a time limit; the first that
     fails catches the mutant.
  3. A mutant no model catches runs the process tests (the linearizability checker and the
     lib's unit tests, release; `--no-process-tests` skips them) if it changes the x86-64
     instructions: a removed or weakened fence, a SeqCst store made Release. Weakening a load
     or an RMW, or a Release store to Relaxed, emits the same instructions there (TSO; every
     RMW is a locked full barrier), so a native test cannot tell the mutant apart.

Results go to `target/ordering-mutants.tsv` (one line per mutant, appended as they finish; a
rerun skips mutants already there). The source tree is restored after each mutant, also on
Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER_RE = re.compile(r"\bOrdering::(SeqCst|AcqRel|Acquire|Release)\b")
LOADS = {"load"}
STORES = {"store"}
RMWS = {
    "fetch_add",
    "fetch_sub",
    "fetch_or",
    "fetch_and",
    "fetch_xor",
    "fetch_nand",
    "fetch_max",
    "fetch_min",
    "fetch_update",
    "swap",
    "compare_exchange",
    "compare_exchange_weak",
}
# Weaker orderings to try, by call kind and ordering.
WEAKER = {
    "load": {"SeqCst": ["Acquire"], "Acquire": ["Relaxed"]},
    "store": {"SeqCst": ["Release"], "Release": ["Relaxed"]},
    "rmw": {
        "SeqCst": ["AcqRel"],
        "AcqRel": ["Acquire", "Release"],
        "Acquire": ["Relaxed"],
        "Release": ["Relaxed"],
    },
    # The failure ordering of a compare-exchange (its second ordering) cannot be Release.
    "cas_failure": {"SeqCst": ["Acquire"], "Acquire": ["Relaxed"]},
    "fence": {
        "SeqCst": ["AcqRel", "(removed)"],
        "AcqRel": ["(removed)"],
        "Acquire": ["(removed)"],
        "Release": ["(removed)"],
    },
    "other": {
        "SeqCst": ["Relaxed"],
        "AcqRel": ["Relaxed"],
        "Acquire": ["Relaxed"],
        "Release": ["Relaxed"],
    },
}


@dataclass
class Mutant:
    path: str
    line: int
    col: int  # of the ordering token in the line
    call: str
    kind: str
    old: str
    new: str

    @property
    def ident(self) -> str:
        return f"{self.path}:{self.line}:{self.col}:{self.old}->{self.new}"


def strip_comment(line: str) -> str:
    i = line.find("//")
    return line if i < 0 else line[:i]


def enclosing_call(text: str, pos: int) -> tuple[str, int, int]:
    """The identifier before the unmatched '(' enclosing `pos`, that paren's offset, and how
    many `Ordering::` arguments of the call come before `pos`."""
    depth = 0
    i = pos - 1
    while i >= 0:
        c = text[i]
        if c == ")":
            depth += 1
        elif c == "(":
            if depth == 0:
                break
            depth -= 1
        i -= 1
    if i < 0:
        return "", -1, 0
    j = i
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] == "_"):
        j -= 1
    before = len(ORDER_RE.findall(text[i:pos]))
    return text[j:i], i, before


def sites() -> list[Mutant]:
    out: list[Mutant] = []
    for path in sorted((ROOT / "src").rglob("*.rs")):
        rel = str(path.relative_to(ROOT))
        if rel.startswith("src/bin/") or rel == "src/fuzzing.rs":
            continue
        text = path.read_text()
        lines = text.split("\n")
        offset = 0
        for n, line in enumerate(lines, 1):
            code = strip_comment(line)
            for m in ORDER_RE.finditer(code):
                call, _, before = enclosing_call(text, offset + m.start())
                if call == "fence":
                    kind = "fence"
                elif call in LOADS:
                    kind = "load"
                elif call in STORES:
                    kind = "store"
                elif call in RMWS:
                    failure = call.startswith("compare_exchange") and before > 0
                    kind = "cas_failure" if failure else "rmw"
                else:
                    kind = "other"
                for new in WEAKER[kind].get(m.group(1), []):
                    out.append(Mutant(rel, n, m.start(), call, kind, m.group(1), new))
            offset += len(line) + 1
    return out


def apply(m: Mutant) -> str:
    """Writes the mutant into the tree; returns the original text."""
    path = ROOT / m.path
    text = path.read_text()
    lines = text.split("\n")
    line = lines[m.line - 1]
    token = f"Ordering::{m.old}"
    assert line[m.col : m.col + len(token)] == token, (m, line)
    if m.new == "(removed)":
        # `fence(Ordering::X)` becomes `()`: the statement stays a statement.
        start = line.rfind("fence", 0, m.col)
        end = line.index(")", m.col) + 1
        lines[m.line - 1] = line[:start] + "()" + line[end:]
    else:
        lines[m.line - 1] = line[: m.col] + f"Ordering::{m.new}" + line[m.col + len(token) :]
    path.write_text("\n".join(lines))
    return text


def run(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        return 124, out.decode(errors="replace") if isinstance(out, bytes) else out


LOOM_DIR = ["target/mutants-loom"]


def loom_env(preemptions: str) -> dict[str, str]:
    env = dict(os.environ)
    env["RUSTFLAGS"] = "--cfg shmq_loom"
    env["LOOM_MAX_PREEMPTIONS"] = preemptions
    return env


def build_loom(env: dict[str, str]) -> tuple[Path | None, str]:
    rc, out = run(
        [
            "cargo",
            "test",
            "--release",
            "--test",
            "loom",
            "--target-dir",
            LOOM_DIR[0],
            "--no-run",
            "--message-format=short",
        ],
        env,
        1800,
    )
    if rc != 0:
        return None, out
    m = re.findall(r"Executable .*\((\S+loom-[0-9a-f]+)\)", out)
    if not m:
        return None, out
    return ROOT / m[-1], out


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def models(binary: Path) -> list[str]:
    out = subprocess.run([str(binary), "--list"], capture_output=True, text=True).stdout
    names = [t.split(":")[0] for t in out.splitlines() if t.endswith(": test")]
    # The deliberately broken model tests the checker, not the code.
    return [n for n in names if not n.startswith("broken_")]


def ordered(names: list[str], path: str) -> list[str]:
    words = set(re.findall(r"[a-z]+", Path(path).stem + " " + Path(path).parent.name))
    words |= {"get", "put"} if "ring" in words or "claim" in words or "wait" in words else set()
    words |= {"dead", "recovers", "tombstoned", "released"} if "recovery" in words else set()

    def score(n: str) -> int:
        return -len(words & set(n.split("_")))

    return sorted(names, key=score)


def process_tests() -> tuple[str, str]:
    env = dict(os.environ)
    for cmd in (
        ["cargo", "test", "--release", "--lib", "-q"],
        ["cargo", "test", "--release", "--test", "linearizability", "-q"],
    ):
        rc, out = run(cmd, env, 1800)
        if rc != 0:
            failed = re.findall(r"^    (\S+)$", out, re.M)
            what = failed[0] if failed else " ".join(cmd[3:5])
            return "caught by a process test", what
    return "survived", ""


def x86_visible(m: Mutant) -> bool:
    """Whether the mutant changes the instructions emitted for x86-64 (TSO: plain loads and
    stores already acquire and release, and every RMW is a locked, full barrier)."""
    return m.kind == "fence" or (m.kind in ("store", "other") and m.old == "SeqCst")


def test_mutant(
    m: Mutant, base_digest: str, preemptions: str, per_model: float, with_process: bool
) -> tuple[str, str]:
    env = loom_env(preemptions)
    binary, out = build_loom(env)
    if binary is None:
        if "error" in out:
            return "does not build", out.strip().splitlines()[-1][:120] if out.strip() else ""
        return "does not build", ""
    if digest(binary) == base_digest:
        status, by = "not modelled", ""
    else:
        for name in ordered(models(binary), m.path):
            rc, _ = run([str(binary), "--exact", name, "--test-threads=1"], env, per_model)
            if rc == 124:
                return "caught by loom (hang)", name
            if rc != 0:
                return "caught by loom", name
        status, by = "survived loom", ""
    # On x86-64 only a weakened SeqCst store (xchg becomes mov) or fence (mfence goes) changes
    # the instructions; a load or RMW mutant compiles to what the process tests already ran.
    if with_process and not x86_visible(m):
        if status == "survived loom":
            return "survived (loom; same x86-64 instructions)", by
        return status, by
    if with_process:
        s, t = process_tests()
        if s != "survived":
            return s, t
        if status == "survived loom":
            return "survived", by
        return status + ", survived the process tests", by
    return status, by


def summary(results: Path) -> None:
    lines = results.read_text().splitlines()
    rows = [t.split("\t") for t in lines if t.strip()]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[1]] = counts.get(r[1], 0) + 1
    print(f"{len(rows)} mutants:")
    for k, v in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {v:4}  {k}")
    print()
    print("| mutant | result | by |")
    print("|---|---|---|")
    for r in rows:
        print(f"| `{r[0]}` | {r[1]} | {r[2] if len(r) > 2 else ''} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="print the mutants and stop")
    ap.add_argument("--only", default="", help="a regex: only mutants of matching paths")
    ap.add_argument("--results", default="target/ordering-mutants.tsv")
    ap.add_argument("--summary", action="store_true", help="print the results file's table")
    ap.add_argument("--preemptions", default="2", help="LOOM_MAX_PREEMPTIONS (default 2)")
    ap.add_argument("--per-model", type=float, default=600, help="seconds per loom model")
    ap.add_argument("--no-process-tests", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="stop after this many mutants")
    ap.add_argument("--target-dir", default=LOOM_DIR[0], help="cargo target dir of the loom builds")
    ap.add_argument(
        "--expect-caught",
        action="store_true",
        help="exit 1 unless every mutant run is caught (the CI smoke check)",
    )
    a = ap.parse_args()
    LOOM_DIR[0] = a.target_dir
    results = ROOT / a.results
    if a.summary:
        summary(results)
        return 0
    todo = [m for m in sites() if re.search(a.only, m.path)]
    if a.list:
        for m in todo:
            print(f"{m.ident}\t{m.kind} ({m.call})")
        print(f"{len(todo)} mutants", file=sys.stderr)
        return 0
    done = set()
    if results.exists():
        done = {t.split("\t")[0] for t in results.read_text().splitlines() if t.strip()}
    todo = [m for m in todo if m.ident not in done]
    if a.limit:
        todo = todo[: a.limit]
    print(f"{len(todo)} mutants to run ({len(done)} already in {a.results})", flush=True)
    binary, out = build_loom(loom_env(a.preemptions))
    if binary is None:
        print(out, file=sys.stderr)
        print("the unmutated tree does not build under loom", file=sys.stderr)
        return 1
    base = digest(binary)
    results.parent.mkdir(parents=True, exist_ok=True)
    for i, m in enumerate(todo, 1):
        t0 = time.monotonic()
        original = apply(m)
        try:
            status, by = test_mutant(m, base, a.preemptions, a.per_model, not a.no_process_tests)
        finally:
            (ROOT / m.path).write_text(original)
        secs = time.monotonic() - t0
        print(f"[{i}/{len(todo)}] {m.ident} ({m.kind}): {status} {by} ({secs:.0f} s)", flush=True)
        with results.open("a") as f:
            f.write(f"{m.ident}\t{status}\t{by}\n")
        if a.expect_caught and not status.startswith("caught"):
            print(f"{m.ident} was expected to be caught", file=sys.stderr)
            return 1
    # Leave the loom target as the unmutated tree built it.
    shutil.rmtree(ROOT / LOOM_DIR[0] / "release" / "incremental", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
