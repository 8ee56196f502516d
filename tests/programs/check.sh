#!/usr/bin/env bash
# Real programs under check mode: each workload of workloads.sh runs with liblarder_check.so
# preloaded (every process it starts too: git's children, CPython's subprocess tests), with
# guard pages on (LARDER_GUARD=auto, the default), and must exit 0 with no error report in any
# process. Leaks are not errors (valgrind's and LeakSanitizer's reports of them do not stop a
# program either): each workload's "definitely lost" total is printed, for comparing with
# valgrind --leak-check=full by hand (docs/BENCHMARKS.md).
#
# Scaled so that the whole pass takes about two minutes on a 2-core machine: git on 300 files,
# CPython on five of its test modules (CHECK_PYTHON_TEST_MODULES), sqlite and the C programs as
# they are.
# Usage: tests/programs/check.sh LIB_DIR [WORKLOAD...]   (default: every workload)
# Needs: cargo build --release --workspace (liblarder_check.so) and tests/c/build.sh.
set -uo pipefail
if [ $# -lt 1 ] || [ ! -f "$1/liblarder_check.so" ]; then
  echo "usage: $0 LIB_DIR [workload...]   (LIB_DIR holds liblarder_check.so)" >&2
  exit 2
fi
check_lib=$(realpath "$1/liblarder_check.so")
shift
: "${GIT_FILES:=300}"
# shellcheck source=workloads.sh
source "$(dirname "$0")/workloads.sh"
# workloads.sh sets the full list (16 modules, 8 minutes under check mode on 2 busy cores);
# these six take about 50 s, test_json's subprocess tests starting checked processes too, and
# test_threading's forked children asserting that their stderr is empty (leak reports go to
# the report file only).
PYTHON_TEST_MODULES=${CHECK_PYTHON_TEST_MODULES:-test_dict test_list test_json test_heapq test_sort test_threading}
selected=${*:-$WORKLOADS}

scratch=$(mktemp -d -t larder-check-programs.XXXXXX)
# Reachable by the user the postgres workload runs its server as (see workloads.sh).
chmod 755 "$scratch"
trap 'rm -rf "$scratch"' EXIT
# shellcheck source=../tally.sh
source "$(dirname "$0")/../tally.sh"
for name in $selected; do
  mkdir -p "$scratch/$name"
  report=$scratch/$name.report
  : >"$report"
  chmod 666 "$report"
  start_us=${EPOCHREALTIME/./}
  # The report file collects every process's error and leak records (larder-error v1,
  # larder-leak v1); stderr alone would miss those of processes whose stderr a workload
  # discards or keeps in a log.
  LARDER_REPORT_FILE=$report PRELOAD_LIB=$check_lib "workload_$name" "$scratch/$name" >"$scratch/$name.out"
  tenths=$(((${EPOCHREALTIME/./} - start_us) / 100000))
  errors=$(grep -c '^larder-error v1' "$report")
  processes=$(grep -c '^larder-heap v1' "$report")
  lost=$(awk '/^larder-leak v1/ && / kind=definite / {
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^bytes=/) { sub(/^bytes=/, "", $i); bytes += $i }
        if ($i ~ /^blocks=/) { sub(/^blocks=/, "", $i); blocks += $i }
      }
    } END { printf "%d bytes in %d blocks", bytes, blocks }' "$report")
  what="$name under check mode: $processes processes, $errors error reports, definitely lost $lost ($((tenths / 10)).$((tenths % 10)) s)"
  if [ "$errors" -eq 0 ] && grep -qx 'exit 0' "$scratch/$name.out" &&
    ! grep -q 'larder check: ERROR' "$scratch/$name.out"; then
    pass "$what"
  else
    fail "$what"
    grep -E '^exit ' "$scratch/$name.out" | grep -vx 'exit 0' | head -5
    grep -A 30 'larder check: ERROR' "$scratch/$name.out" | head -60
    grep '^larder-error v1' "$report" | head -5
    if [ -f "$scratch/$name/python.log" ]; then
      echo "--- end of the python log:"
      tail -40 "$scratch/$name/python.log"
    fi
  fi
done
tally "programs under check mode"
