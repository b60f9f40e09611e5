"""``python -m shmq ARGS``: runs the ``shmq`` command-line tool with ARGS.

The tool is the Rust binary of the same repository (``shmq ls``, ``stat``, ``watch``, ``rm``,
``gc``; see docs/operations.md), run as it is, so its output, its ``--json`` documents and its
exit codes are exactly the binary's. It is looked for, in order:

1. the path in the ``SHMQ_BIN`` environment variable;
2. ``shmq`` on ``PATH`` (``cargo install --path .`` at the repository root puts it there);
3. ``target/release/shmq``, then ``target/debug/shmq`` of the checkout this package was
   installed from in editable mode (``cargo build --release --bin shmq``).

If none is found it prints where it looked and how to build it, and exits with status 1.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def _candidates() -> list[Path]:
    found: list[Path] = []
    env = os.environ.get("SHMQ_BIN")
    if env:
        found.append(Path(env))
    on_path = shutil.which("shmq")
    if on_path:
        found.append(Path(on_path))
    root = Path(__file__).resolve().parent.parent.parent
    found += [root / "target" / "release" / "shmq", root / "target" / "debug" / "shmq"]
    return found


def main(argv: list[str]) -> int:
    tried = _candidates()
    for exe in tried:
        if exe.is_file() and os.access(exe, os.X_OK):
            sys.stdout.flush()
            os.execv(exe, [str(exe), *argv])
    where = "\n  ".join(str(p) for p in tried)
    print(
        "python -m shmq: the shmq tool was not found; looked at:\n  "
        f"{where}\nbuild it with `cargo install --path .` at the shmq repository root "
        "(or set SHMQ_BIN to its path)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
