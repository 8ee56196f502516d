#!/usr/bin/env bash
# Instructions per malloc+free pair on the small-object fast path, counted by callgrind.
#
# Runs `larder-bench-worker fastpath --size S --iters N` for each allocator's worker at two
# iteration counts and divides the difference in instructions by the difference in pairs, which
# cancels everything that happens once (process start, the allocator's set-up). Instruction
# counts do not depend on the machine's load, so they compare fast paths on a noisy machine.
#
# Usage: bench/callgrind.sh [WORKERS_DIR]     (default target/release/bench-bins)
# Environment: ALLOCATORS (default "larder mimalloc jemalloc system": those with a worker),
#   PRELOADS (default: ld-larder, ld-mimalloc when their libraries exist; NAME=PATH entries),
#   SIZES (default "16 64 256 1024"), N1 and N2 (default 100000 and 200000), HOLD (default 0:
#   blocks of the same size kept live during the loop; HOLD=1 keeps the block's page from
#   emptying on every free, which isolates the fast path from an allocator's empty-page work).
# Prints a markdown table on stdout. Build the workers first: target/release/larder-bench --build --list
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-target/release/bench-bins}
allocators=${ALLOCATORS:-larder mimalloc jemalloc system}
sizes=${SIZES:-16 64 256 1024}
n1=${N1:-100000}
n2=${N2:-200000}
hold=${HOLD:-0}
if [ -z "${PRELOADS+set}" ]; then
  PRELOADS=""
  for candidate in "ld-larder=$(dirname "$workers")/liblarder.so" \
                   "ld-mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"; do
    [ -e "${candidate#*=}" ] && PRELOADS="$PRELOADS $candidate"
  done
fi
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# instructions WORKER SIZE ITERS [PRELOAD]: total instructions (Ir) of one run.
instructions() {
  local worker=$1 size=$2 iters=$3 preload=${4:-}
  env ${preload:+LD_PRELOAD=$preload} valgrind --tool=callgrind --callgrind-out-file="$tmp/out" \
    "$worker" fastpath --size "$size" --iters "$iters" --hold "$hold" >/dev/null 2>"$tmp/err" \
    || { cat "$tmp/err" >&2; echo "callgrind.sh: $worker fastpath --size $size failed" >&2; return 1; }
  awk '/^(summary|totals):/ { print $2; exit }' "$tmp/out"
}

# row NAME WORKER [PRELOAD]: one table row.
row() {
  local name=$1 worker=$2 preload=${3:-} line="| $1 |"
  for size in $sizes; do
    local a b
    a=$(instructions "$worker" "$size" "$n1" "$preload")
    b=$(instructions "$worker" "$size" "$n2" "$preload")
    line="$line $(awk -v a="$a" -v b="$b" -v n="$((n2 - n1))" 'BEGIN { printf "%.1f", (b - a) / n }') |"
  done
  echo "$line"
}

header="| allocator |"
rule="|---|"
for size in $sizes; do header="$header $size B |"; rule="$rule---:|"; done
echo "Instructions per malloc+free pair (callgrind, ($n2 - $n1) pairs, $hold other blocks held; lower is better):"
echo
echo "$header"
echo "$rule"
rows=0
for allocator in $allocators; do
  worker="$workers/larder-bench-worker-$allocator"
  [ -x "$worker" ] || { echo "callgrind.sh: no worker for $allocator, skipped" >&2; continue; }
  row "$allocator" "$worker"
  rows=$((rows + 1))
done
for entry in $PRELOADS; do
  row "${entry%%=*}" "$workers/larder-bench-worker-system" "${entry#*=}"
  rows=$((rows + 1))
done
[ "$rows" -gt 0 ] || { echo "callgrind.sh: no workers in $workers" >&2; exit 1; }
