#!/usr/bin/env bash
# Instructions per queue operation, counted by callgrind (repeatable on a busy machine, where
# times are not): for each operation of examples/op_cost, the totals of N = 1 000 and 101 000
# iterations, differenced over 100 000 so that the setup cancels out. One thread, uncontended,
# a Queue<u64> of capacity 64; crossbeam-channel and crossbeam's ArrayQueue beside it.
#
#   scripts/op-instructions.sh [OP ...]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo build --quiet --release --example op_cost
bin=target/release/examples/op_cost
ops=("$@")
[ ${#ops[@]} -gt 0 ] || ops=(putget try_putget try_get_empty try_put_full get_timeout_zero bytes_try_putget ubytes_try_putget crossbeam_sendrecv crossbeam_pushpop)
refs() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        awk '/refs:/ { gsub(",", "", $NF); print $NF }'
}
printf '%-20s %s\n' operation instructions
for op in "${ops[@]}"; do
    a=$(refs "$op" 1000)
    b=$(refs "$op" 101000)
    printf '%-20s %d\n' "$op" $(( (b - a) / 100000 ))
done
