#!/usr/bin/env bash
# Times check mode against plain larder and valgrind memcheck on the three
# workloads of docs/BENCHMARKS.md (check-mode section): the C++ workload,
# CPython (json round trips) and tests/c/churn. One run each; wall and CPU
# time and peak RSS from /usr/bin/time. Extra check-mode libraries to compare
# (e.g. an older build) may be named as LABEL=PATH arguments.
# Usage: bench/check_mode.sh [LABEL=path/to/liblarder_check.so ...]
# Needs: cargo build --release -p larder-c -p larder-check-c; tests/c/build.sh.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
c=$root/target/ctests
python=${PYTHON:-/usr/bin/python3.11}
script='import json;[json.loads(json.dumps(list(range(1000)))) for _ in range(3000)]'
out=$(mktemp)
trap 'rm -f "$out"' EXIT
measure() {
  local label=$1
  shift
  /usr/bin/time -o "$out" -f "%e s wall, %U+%S s cpu, %M KiB" "$@" >/dev/null 2>&1
  echo "$label: $(tail -1 "$out")"
}
for variant in "plain=$root/target/release/liblarder.so" "check=$root/target/release/liblarder_check.so" "$@"; do
  label=${variant%%=*}
  lib=${variant#*=}
  measure "cxx $label" env LD_PRELOAD="$lib" "$c/cxx_workload"
  measure "python $label" env LD_PRELOAD="$lib" "$python" -c "$script"
  measure "churn $label" env LD_PRELOAD="$lib" "$c/churn" 1000000
done
measure "churn check, LARDER_GUARD=off" env LARDER_GUARD=off LD_PRELOAD="$root/target/release/liblarder_check.so" "$c/churn" 1000000
measure "cxx valgrind" valgrind -q --leak-check=full "$c/cxx_workload"
measure "python valgrind" valgrind -q --leak-check=full "$python" -c "$script"
measure "churn valgrind" valgrind -q --leak-check=full "$c/churn" 1000000
