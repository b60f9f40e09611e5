#!/usr/bin/env bash
# Proves the uncontended fast path makes no system call: runs examples/fastpath under strace with
# 1 000 and 1 000 000 put/get pairs and requires the same number of system calls for both.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v strace >/dev/null || { echo "strace is not installed (apt-get install strace)" >&2; exit 1; }
cargo build --release --example fastpath -q
bin=target/release/examples/fastpath
count() {
    strace -f -c -o /tmp/shmq-strace.$$ "$bin" "$1" >/dev/null
    awk '/^[ ]*[0-9]/ && $NF != "total" { calls += ($4 ~ /^[0-9]+$/ ? $4 : $3) } END { print calls }' /tmp/shmq-strace.$$
    rm -f /tmp/shmq-strace.$$
}
small=$(count 1000)
large=$(count 1000000)
echo "system calls: $small for 1 000 pairs, $large for 1 000 000 pairs"
if [ "$small" != "$large" ]; then
    echo "the fast path makes system calls: counts differ by $((large - small))" >&2
    exit 1
fi
echo "no system call on the fast path"
