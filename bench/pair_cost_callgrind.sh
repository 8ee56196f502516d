#!/usr/bin/env bash
# Instructions per small malloc+free pair under callgrind, for larder, glibc and mimalloc:
# two runs of different lengths per allocator, subtracted, so start-up costs cancel out.
# Usage: bash bench/pair_cost_callgrind.sh [SIZE...]   (default 32)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p larder --example pair_cost
bin=target/release/examples/pair_cost
sizes=("${@:-32}")
count() {
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" "$2" "$3" >/dev/null 2>&1
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1; exit}'
  rm -f "$out"
}
echo "| allocator | size | instructions per malloc+free pair |"
echo "|---|---:|---:|"
for size in "${sizes[@]}"; do
  for a in larder glibc mimalloc; do
    lo=$(count "$a" "$size" 100000)
    hi=$(count "$a" "$size" 1100000)
    echo "| $a | $size | $(( (hi - lo) / 1000000 )) |"
  done
done
