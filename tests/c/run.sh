#!/usr/bin/env bash
# Builds and runs the C tests against liblarder in LIB_DIR (default
# target/release): the API semantics on glibc itself (a check glibc fails is a
# wrong check), preloaded, and linked with -llarder; larder's own C API; and
# the threaded stress program linked statically with liblarder.a.
# Usage: tests/c/run.sh [LIB_DIR]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lib_dir=$(realpath "${1:-$root/target/release}")
out=$root/target/ctests
bash "$here/build.sh" "$out" "$lib_dir" || exit 1

passed=0
failed=0
# Runs one test command; it passes when it exits 0 (and, with EXPECT set,
# prints exactly the contents of that file).
run_test() {
  local name=$1
  shift
  local log
  log=$(mktemp)
  if timeout -k 10 120 "$@" >"$log" 2>&1 && { [ -z "${EXPECT:-}" ] || cmp -s "$EXPECT" "$log"; }; then
    passed=$((passed + 1))
    echo "ok - $name: $(tail -1 "$log")"
  else
    failed=$((failed + 1))
    echo "not ok - $name"
    sed 's/^/    /' "$log" | tail -30
    [ -n "${EXPECT:-}" ] && diff "$EXPECT" "$log" | head -20
  fi
  rm -f "$log"
}

run_test "api semantics on glibc" "$out/api_semantics"
run_test "api semantics, preloaded" env LD_PRELOAD="$lib_dir/liblarder.so" "$out/api_semantics"
run_test "large blocks from four threads at once, preloaded" env LD_PRELOAD="$lib_dir/liblarder.so" "$out/contended_large"
run_test "a process whose main thread calls pthread_exit ends with its last thread, preloaded" \
  env LD_PRELOAD="$lib_dir/liblarder.so" timeout 20 "$out/main_pthread_exit"
run_test "api semantics, linked with -llarder" "$out/api_semantics_linked"
run_test "larder's own C API, linked with -llarder" "$out/larder_api"
expected=$(mktemp)
timeout -k 10 300 "$out/stress_threads" >"$expected" 2>&1
EXPECT=$expected run_test "threaded stress, statically linked with liblarder.a" "$out/stress_threads_static"
rm -f "$expected"
# The linking checks: that the programs above really ran on larder.
# (grep reads all its input: with -q, nm would die of SIGPIPE under pipefail.)
check_linking() {
  if "$@" >/dev/null; then
    passed=$((passed + 1))
    echo "ok - $description"
  else
    failed=$((failed + 1))
    echo "not ok - $description"
  fi
}
description="the static program defines malloc itself (liblarder.a is linked in)"
check_linking grep ' T malloc$' <(nm "$out/stress_threads_static")
description="the -llarder programs load liblarder.so"
check_linking grep "$lib_dir/liblarder.so" <(ldd "$out/api_semantics_linked" "$out/larder_api")
# Check mode (liblarder_check.so): each corpus program's first line names the
# class it must be reported with and the culprit function its backtrace must
# name; it must exit with status 23. Sizes from tiny to multi-MiB.
check_lib=$lib_dir/liblarder_check.so
check_case() {
  local prog=$1 class=$2 culprit=$3
  shift 3
  local log rc
  log=$(mktemp)
  timeout -k 10 60 env LD_PRELOAD="$check_lib" "$out/check/$prog" "$@" >"$log" 2>&1
  rc=$?
  if [ "$rc" -eq 23 ] && grep -q "ERROR: $class " "$log" && grep -q " $culprit+" "$log"; then
    passed=$((passed + 1))
    echo "ok - check mode: $prog $* -> $class in $culprit"
  else
    failed=$((failed + 1))
    echo "not ok - check mode: $prog $* (exit $rc, want 23, $class, $culprit)"
    sed 's/^/    /' "$log" | head -30
  fi
  rm -f "$log"
}
if [ -f "$check_lib" ]; then
  for c in "$here"/check/*.c; do
    prog=$(basename "$c" .c)
    read -r _ _ class culprit _ < <(head -1 "$c")
    if [ "$class" = clean ]; then
      run_test "check mode: $prog reports nothing" env LD_PRELOAD="$check_lib" "$out/check/$prog"
      continue
    fi
    for size in 1 1000 65536 5000000; do
      if [ "$prog" = leak ]; then
        # Leaks are reported at exit and keep the program's status: one head
        # definitely lost, two nodes indirectly lost, one block reachable.
        log=$(mktemp)
        env LD_PRELOAD="$check_lib" "$out/check/leak" "$size" >"$log" 2>&1
        rc=$?
        def=$((64 + size))
        if [ "$rc" -eq 0 ] && grep -q "definitely lost $def bytes in 1 blocks; indirectly lost $((2 * def)) bytes in 2 blocks" "$log" &&
          grep -q " $culprit+" "$log"; then
          passed=$((passed + 1))
          echo "ok - check mode: leak $size -> definitely and indirectly lost, in $culprit"
        else
          failed=$((failed + 1))
          echo "not ok - check mode: leak $size (exit $rc)"
          sed 's/^/    /' "$log" | head -30
        fi
        rm -f "$log"
      elif [ "$prog" = invalid_free ]; then
        for kind in interior misaligned stack global mmap memalign; do
          check_case "$prog" "$class" "$culprit" "$size" "$kind"
        done
      else
        check_case "$prog" "$class" "$culprit" "$size"
      fi
    done
  done
  # Clean programs under check mode: no report, their own exit status.
  run_test "api semantics under check mode" env LD_PRELOAD="$check_lib" "$out/api_semantics"
  run_test "large blocks from four threads under check mode" env LD_PRELOAD="$check_lib" "$out/contended_large"
else
  echo "# $check_lib not built: check-mode tests skipped"
fi
echo "c-tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
