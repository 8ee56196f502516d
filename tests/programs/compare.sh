#!/usr/bin/env bash
# Runs each real-program workload twice, on plain glibc and with the allocator
# LIB preloaded, and requires the same output and exit status from both.
# Usage: tests/programs/compare.sh LIB [WORKLOAD...]   (default: all of them)
# The C and C++ programs must have been built by tests/c/build.sh first.
set -uo pipefail
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: $0 path/to/liballoc.so [workload...]" >&2
  exit 2
fi
lib=$(realpath "$1")
shift
# shellcheck source=workloads.sh
source "$(dirname "$0")/workloads.sh"
selected=${*:-$WORKLOADS}

scratch=$(mktemp -d -t larder-programs.XXXXXX)
# Reachable by the user the postgres workload runs its server as (see workloads.sh).
chmod 755 "$scratch"
trap 'rm -rf "$scratch"' EXIT
# shellcheck source=../tally.sh
source "$(dirname "$0")/../tally.sh"
run_pair() {
  local name=$1 side start_us tenths
  for side in plain preload; do
    rm -rf "$scratch/$name.$side" && mkdir -p "$scratch/$name.$side"
    start_us=${EPOCHREALTIME/./}
    if [ $side = preload ]; then
      PRELOAD_LIB=$lib "workload_$name" "$scratch/$name.$side" >"$scratch/$name.$side.out"
    else
      PRELOAD_LIB='' "workload_$name" "$scratch/$name.$side" >"$scratch/$name.$side.out"
    fi
    tenths=$(((${EPOCHREALTIME/./} - start_us) / 100000))
    printf -v "time_$side" '%d.%d' $((tenths / 10)) $((tenths % 10))
  done
}
for name in $selected; do
  run_pair "$name"
  # A workload that fails without larder says nothing about larder (a timing
  # test of CPython's suite on a loaded machine): the pair runs once more.
  if ! grep -qx 'exit 0' "$scratch/$name.plain.out"; then
    echo "# $name failed on plain glibc; running the pair again"
    run_pair "$name"
  fi
  if cmp -s "$scratch/$name.plain.out" "$scratch/$name.preload.out" &&
    grep -qx 'exit 0' "$scratch/$name.plain.out"; then
    pass "$name: same output and exit status (glibc ${time_plain}s, preloaded ${time_preload}s)"
  else
    fail "$name: output differs from the glibc run, or the glibc run failed"
    diff "$scratch/$name.plain.out" "$scratch/$name.preload.out" | head -40
    for side in plain preload; do
      echo "--- what did not pass or exit 0 in the $side run:"
      grep -Ev ' passed$|^exit 0$|skipped$' "$scratch/$name.$side.out" | grep -E 'failure|error|^exit' | head -20
    done
    if [ -f "$scratch/$name.preload/python.log" ]; then
      echo "--- end of the preloaded python log:"
      tail -40 "$scratch/$name.preload/python.log"
    fi
  fi
done
tally programs
