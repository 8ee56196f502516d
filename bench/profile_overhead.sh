#!/usr/bin/env bash
# The cost of `larder run --profile`: each workload run with plain liblarder.so and with the
# profiler (liblarder_check.so, LARDER_PROFILE=RATE, records written to a report file at exit,
# as `larder run --profile` runs it), interleaved (the order alternates every repetition), the
# median wall time of each and their ratio. Workloads: c_pair (malloc+free pairs of 64 bytes,
# the worst case: all fast path), cxx (tests/c/cxx_workload) and sqlite
# (tests/programs/sqlite_workload.sql, 200,000 rows).
# Usage: bench/profile_overhead.sh [LIB_DIR] (default target/release); env REPS (default 5),
#   RATE (default 512K), WORKLOADS (default "c_pair cxx sqlite").
set -euo pipefail
cd "$(dirname "$0")/.."
lib_dir=$(realpath "${1:-target/release}")
reps=${REPS:-5}
rate=${RATE:-512K}
workloads=${WORKLOADS:-c_pair cxx sqlite}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/c_pair" bench/c_pair.c
g++ -std=c++17 -O2 -pthread -o "$tmp/cxx_workload" tests/c/cxx_workload.cpp
run() { # workload
  case $1 in
    c_pair) "$tmp/c_pair" 64 50000000 ;;
    cxx) "$tmp/cxx_workload" >/dev/null ;;
    sqlite) rm -f "$tmp/s.db" && sqlite3 -bail "$tmp/s.db" <tests/programs/sqlite_workload.sql >/dev/null ;;
  esac
}
timed() { # workload mode -> seconds
  local start end
  : >"$tmp/report.$2"
  start=$(date +%s.%N)
  if [ "$2" = plain ]; then
    LD_PRELOAD=$lib_dir/liblarder.so run "$1"
  else
    LD_PRELOAD=$lib_dir/liblarder_check.so LARDER_PROFILE=$rate LARDER_REPORT_FILE=$tmp/report.profile run "$1"
  fi
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
echo "| workload | plain larder s | --profile s | ratio | samples |"
echo "|---|---:|---:|---:|---:|"
for w in $workloads; do
  : >"$tmp/plain" && : >"$tmp/profile"
  for rep in $(seq 1 "$reps"); do
    if [ $((rep % 2)) -eq 0 ]; then order="plain profile"; else order="profile plain"; fi
    for mode in $order; do timed "$w" "$mode" >>"$tmp/$mode"; done
  done
  samples=$(awk '/^larder-profile v1/ { for (i = 1; i <= NF; i++) if ($i ~ /^samples=/) { sub("samples=", "", $i); n += $i } } END { print n + 0 }' "$tmp/report.profile")
  python3 - "$w" "$tmp/plain" "$tmp/profile" "$samples" <<'PY'
import statistics, sys
w, plain, prof, samples = sys.argv[1:]
p = statistics.median(float(x) for x in open(plain))
q = statistics.median(float(x) for x in open(prof))
print(f"| {w} | {p:.3f} | {q:.3f} | {q / p:.3f} | {samples} |")
PY
done
