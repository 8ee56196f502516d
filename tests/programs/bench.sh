#!/usr/bin/env bash
# Times the real-program workloads (workloads.sh) under several allocators in
# one run: glibc's own malloc and each preloaded library, interleaved (every
# repetition runs every allocator once, in a rotating order) so that a change
# in the machine's load falls on all of them alike. Reports the median wall
# time, the median CPU time (user + system) and the median peak RSS (the
# largest process of the workload, from wait4) of each, as a Markdown table.
#
# Usage: tests/programs/bench.sh OUT.md NAME=LIB.so [NAME=LIB.so...]
#   env REPS (default 3), BENCH_WORKLOADS (default "python sqlite git cxx stress")
# Example:
#   tests/programs/bench.sh target/bench-programs.md larder=target/release/liblarder.so \
#     mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2 jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
set -uo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,16p' "$0" >&2
  exit 2
fi
out=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=workloads.sh
source "$here/workloads.sh"
reps=${REPS:-3}
workloads=${BENCH_WORKLOADS:-python sqlite git cxx stress}
names=(glibc)
libs=("")
for spec in "$@"; do
  names+=("${spec%%=*}")
  libs+=("$(realpath "${spec#*=}")")
done
[ -x /usr/bin/time ] || { echo "bench.sh needs GNU time (Debian package time)" >&2; exit 2; }

scratch=$(mktemp -d -t larder-bench.XXXXXX)
# Reachable by the user the postgres workload runs its server as (see workloads.sh).
chmod 755 "$scratch"
trap 'rm -rf "$scratch"' EXIT
results=$scratch/results.tsv # workload allocator rep wall cpu rss_kib ok
for rep in $(seq 1 "$reps"); do
  for workload in $workloads; do
    for k in $(seq 0 $((${#names[@]} - 1))); do
      i=$(((k + rep) % ${#names[@]}))
      name=${names[$i]}
      dir=$scratch/run
      rm -rf "$dir" && mkdir -p "$dir"
      PRELOAD_LIB=${libs[$i]} /usr/bin/time -f '%e %U %S %M' -o "$scratch/time" \
        bash -c "source '$here/workloads.sh'; workload_$workload '$dir'" >"$scratch/output" 2>&1
      ok=no
      grep -qx 'exit 0' "$scratch/output" && ok=yes
      read -r wall user sys rss <"$scratch/time"
      cpu=$(awk "BEGIN { print $user + $sys }")
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workload" "$name" "$rep" "$wall" "$cpu" "$rss" "$ok" >>"$results"
      echo "rep $rep $workload $name: wall ${wall}s cpu ${cpu}s rss ${rss}KiB ok=$ok" >&2
    done
  done
done

"${PYTHON:-python3}" - "$results" "$reps" "${names[@]}" >"$out" <<'PY'
import statistics, sys
from collections import defaultdict
path, reps, names = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = defaultdict(list)
failed = set()
order = []
for line in open(path):
    workload, name, rep, wall, cpu, rss, ok = line.split()
    if workload not in order:
        order.append(workload)
    runs[workload, name].append((float(wall), float(cpu), int(rss)))
    if ok != "yes":
        failed.add((workload, name))
def med(workload, name, field):
    return statistics.median(r[field] for r in runs[workload, name])
print(f"Median of {reps} interleaved runs each: wall and CPU (user + system) seconds, and the peak RSS")
print("of the workload's largest process. × glibc is the wall time over glibc's (below 1 is faster).\n")
print("| workload | allocator | wall s | × glibc | CPU s | peak RSS MiB |")
print("|---|---|---:|---:|---:|---:|")
for w in order:
    base = med(w, names[0], 0)
    for n in names:
        mark = " (FAILED)" if (w, n) in failed else ""
        print(f"| {w} | {n}{mark} | {med(w, n, 0):.2f} | {med(w, n, 0) / base:.3f} | {med(w, n, 1):.2f} "
              f"| {med(w, n, 2) / 1024:.0f} |")
if len(names) >= 3:
    print(f"\n{names[1]}'s wall time over each other allocator's (below 1 is faster):\n")
    print("| workload | " + " | ".join(f"vs {n}" for n in names if n != names[1]) + " |")
    print("|---|" + "---:|" * (len(names) - 1))
    for w in order:
        print(f"| {w} | " + " | ".join(f"{med(w, names[1], 0) / med(w, n, 0):.3f}" for n in names if n != names[1]) + " |")
PY
cat "$out"
