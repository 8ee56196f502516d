#!/usr/bin/env bash
# Runs the larder-bench suite at 1, 2, 4, 8 and 16 threads, for a machine with 16 or more cores,
# from prebuilt binaries: it runs no cargo and needs no network.
#
# Usage: bench/scaling.sh [BIN_DIR [OUT_DIR [more larder-bench options...]]]
#   BIN_DIR  holds larder-bench, bench-bins/larder-bench-worker-<allocator> and, for the
#            ld-larder column, liblarder.so (default target/release). Make it on a build machine:
#              cargo build --release -p larder-bench -p larder-c
#              target/release/larder-bench --build --list
#            then copy target/release/{larder-bench,liblarder.so,bench-bins/} over.
#   OUT_DIR  results, report and charts (default bench-results-scaling)
# Environment: THREADS (default 1,2,4,8,16), REPS (default 3), SCALE (default 0.5: the full
#   per-thread work at 16 threads on 16 cores takes about as long per run as at 2 threads).
# Debian's libmimalloc2.0, libjemalloc2 and libtcmalloc-minimal4 add the ld-* columns if present.
set -euo pipefail
bin=${1:-target/release}
out=${2:-bench-results-scaling}
shift $(( $# < 2 ? $# : 2 ))
[ -x "$bin/larder-bench" ] || { echo "scaling.sh: no $bin/larder-bench (see the header of this script)" >&2; exit 1; }
[ -d "$bin/bench-bins" ] || { echo "scaling.sh: no $bin/bench-bins with the workers" >&2; exit 1; }
echo "scaling.sh: $(nproc) CPUs; threads ${THREADS:-1,2,4,8,16}, ${REPS:-3} runs, scale ${SCALE:-0.5}" >&2
"$bin/larder-bench" --workers "$bin/bench-bins" --threads "${THREADS:-1,2,4,8,16}" \
  --reps "${REPS:-3}" --scale "${SCALE:-0.5}" --out "$out" "$@"
