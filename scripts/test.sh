#!/usr/bin/env bash
# The README's test command: the Rust crate's tests, then the Python package's (built from this
# checkout with `pip install .`, then its pytest suite in python/tests).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test

python3 -m pip install --quiet --disable-pip-version-check .
# From python/tests, so that `import shmq` finds the installed package, not the source tree.
(cd python/tests && python3 -m pytest -q -p no:cacheprovider)
