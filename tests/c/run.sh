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
# shellcheck source=../tally.sh
source "$here/../tally.sh"
# Runs one test command; it passes when it exits 0 (and, with EXPECT set,
# prints exactly the contents of that file).
run_test() {
  local name=$1
  shift
  local log
  log=$(mktemp)
  if timeout -k 10 120 "$@" >"$log" 2>&1 && { [ -z "${EXPECT:-}" ] || cmp -s "$EXPECT" "$log"; }; then
    pass "$name: $(tail -1 "$log")"
  else
    fail "$name"
    sed 's/^/    /' "$log" | tail -30
    [ -n "${EXPECT:-}" ] && diff "$EXPECT" "$log" | head -20
  fi
  rm -f "$log"
}

run_test "api semantics on glibc" "$out/api_semantics"
run_test "api semantics, preloaded" env LD_PRELOAD="$lib_dir/liblarder.so" "$out/api_semantics"
# C++'s operator new and delete are liblarder.so's own (no hop through libstdc++), and a failed
# new still calls the new-handler and throws std::bad_alloc.
run_test "C++ operator new and delete, on glibc" "$out/cxx_new"
run_test "C++ operator new and delete are larder's, preloaded" env LD_PRELOAD="$lib_dir/liblarder.so" "$out/cxx_new" liblarder.so
run_test "large blocks from four threads at once, preloaded" env LD_PRELOAD="$lib_dir/liblarder.so" "$out/contended_large"
run_test "a process whose main thread calls pthread_exit ends with its last thread, preloaded" \
  env LD_PRELOAD="$lib_dir/liblarder.so" timeout 20 "$out/main_pthread_exit"
# Freed memory goes back to the OS while the program sits idle, with no allocation after the
# last free: blocks of exited threads freed by the main thread or by a short-lived thread, and
# one thread's small or large blocks (also with a fork halfway through the frees, and freed by
# a thread that then blocks, and by a main thread, the only one that allocated, that then calls
# pthread_exit). Under 20 MiB 2 s after the last free (the purge delay is
# 200 ms; the margin is for a loaded CI machine).
for mode in workers workers-thread small small-fork small-blocked small-main-exit large; do
  run_test "RSS falls after the last free, idle ($mode), preloaded" \
    env LD_PRELOAD="$lib_dir/liblarder.so" "$out/idle_rss" $mode 2 20
done
# The large-block program's peak against glibc's: 2-4 MiB blocks must not become resident to
# the end of their last huge page (397 MiB against 302 before). 3% of margin for larder's own
# pages (code, headers, the segment map).
peak_of() { "$@" 2>/dev/null | sed -n 's/.*peak \([0-9]*\) MiB.*/\1/p'; }
glibc_peak=$(peak_of "$out/idle_rss" large 0 20)
larder_peak=$(peak_of env LD_PRELOAD="$lib_dir/liblarder.so" "$out/idle_rss" large 0 20)
description="large blocks: peak RSS ${larder_peak:-?} MiB, glibc's ${glibc_peak:-?} MiB (at most 3% above)"
if [ -n "$glibc_peak" ] && [ -n "$larder_peak" ] && [ "$((larder_peak * 100))" -le "$((glibc_peak * 103))" ]; then
  pass "$description"
else
  fail "$description"
fi
# Application atfork handlers that allocate, registered before the first malloc, after it, and
# (statically linked) before larder registers its own: 200 forks while threads allocate.
for mode in before after ctor; do
  run_test "fork with allocating atfork handlers registered $mode, preloaded" \
    env FORK_HANDLERS_MODE=$mode LD_PRELOAD="$lib_dir/liblarder.so" "$out/fork_handlers" $mode
done
run_test "fork with allocating atfork handlers registered by an earlier constructor, static" \
  env FORK_HANDLERS_MODE=ctor "$out/fork_handlers_static" ctor
run_test "api semantics, linked with -llarder" "$out/api_semantics_linked"
run_test "larder's own C API, linked with -llarder" "$out/larder_api"
expected=$(mktemp)
timeout -k 10 300 "$out/stress_threads" >"$expected" 2>&1
EXPECT=$expected run_test "threaded stress, statically linked with liblarder.a" "$out/stress_threads_static"
rm -f "$expected"
# Double and invalid frees in the default build (issue 11): each stops the
# program with SIGABRT and one line naming the class, at every size from a
# small block to a huge one; LARDER_ON_ERROR=warn reports and goes on.
# expect_bad_free CLASS MODE SIZE
expect_bad_free() {
  local class=$1 mode=$2 size=$3 log status
  log=$(mktemp)
  env LD_PRELOAD="$lib_dir/liblarder.so" timeout 20 "$out/bad_free" "$mode" "$size" >"$log" 2>&1
  status=$?
  if [ "$status" -eq 134 ] && grep -q "larder: error: $class: " "$log" && ! grep -q survived "$log"; then
    pass "bad_free $mode $size: SIGABRT and a $class report"
  else
    fail "bad_free $mode $size: expected SIGABRT and a $class report, got status $status"
    sed 's/^/    /' "$log" | tail -5
  fi
  rm -f "$log"
}
for size in 1 24 1000 5000 65536 300000 5000000 100000000; do
  for mode in double double-remote remote-double realloc-freed; do
    expect_bad_free double-free "$mode" "$size"
  done
  expect_bad_free invalid-free interior "$((size > 16 ? size : 17))"
done
expect_bad_free invalid-free stack 100
expect_bad_free invalid-free global 100
run_test "a clean free is not reported, preloaded" env LD_PRELOAD="$lib_dir/liblarder.so" "$out/bad_free" clean 100
aliased=$(LD_PRELOAD="$lib_dir/liblarder.so" "$out/bad_free" aliased 100 2>&1)
run_test "a pointer past the address space that aliases a block's chunk is ignored, the block intact" \
  bash -c '[[ "$1" == *"did not allocate"*survived* ]]' _ "$aliased"
warned=$(LARDER_ON_ERROR=warn LD_PRELOAD="$lib_dir/liblarder.so" "$out/bad_free" double 100 2>&1)
run_test "LARDER_ON_ERROR=warn reports a double free and goes on" \
  bash -c '[[ "$1" == *"double-free"*"ignored"*survived* ]]' _ "$warned"
# The linking checks: that the programs above really ran on larder.
# (grep reads all its input: with -q, nm would die of SIGPIPE under pipefail.)
check_linking() {
  if "$@" >/dev/null; then
    pass "$description"
  else
    fail "$description"
  fi
}
description="the static program defines malloc itself (liblarder.a is linked in)"
check_linking grep ' T malloc$' <(nm "$out/stress_threads_static")
description="the -llarder programs load liblarder.so"
check_linking grep "$lib_dir/liblarder.so" <(ldd "$out/api_semantics_linked" "$out/larder_api")
# Check mode (liblarder_check.so): each corpus program's first line names the
# class it must be reported with, the culprit function its backtrace must
# name and, for a bug only a guard-page setting finds, that setting
# (LARDER_GUARD_SIDE=before, LARDER_GUARD_ALIGN=exact); it must exit with
# status 23 (WANT_STATUS, for a crash that is reported and then kills the process). Sizes from
# tiny to multi-MiB.
check_lib=$lib_dir/liblarder_check.so
check_case() {
  local prog=$1 class=$2 culprit=$3 setting=$4
  shift 4
  local log rc guard
  # Each bug on a guarded block (the default within the guard budget: found at
  # the bad access) and without guard pages (found by the redzones and the
  # quarantine); reads are found by guard pages only.
  for guard in auto off; do
    case "$prog:$guard" in overflow_read*:off | underflow_read:off | read_after_free:off) continue ;; esac
    log=$(mktemp)
    timeout -k 10 60 env LARDER_GUARD=$guard $setting LD_PRELOAD="$check_lib" "$out/check/$prog" "$@" >"$log" 2>&1
    rc=$?
    if [ "$rc" -eq "${WANT_STATUS:-23}" ] && grep -q "ERROR: $class " "$log" && grep -q " $culprit+" "$log"; then
      pass "check mode: $prog $* (guard $guard $setting) -> $class in $culprit"
    else
      fail "check mode: $prog $* (guard $guard $setting; exit $rc, want ${WANT_STATUS:-23}, $class, $culprit)"
      sed 's/^/    /' "$log" | head -30
    fi
    rm -f "$log"
  done
}
# A bug found only with a guard-page setting goes unreported without it (the
# setting is what finds it): the default placement lets the program exit 0.
# missed_without_setting PROG SIZE
missed_without_setting() {
  local prog=$1 size=$2 rc
  timeout -k 10 60 env LD_PRELOAD="$check_lib" "$out/check/$prog" "$size" >/dev/null 2>&1
  rc=$?
  if [ "$rc" -eq 0 ]; then
    pass "check mode: $prog $size is missed without its setting (exit 0)"
  else
    fail "check mode: $prog $size without its setting exited $rc (want 0: the setting is what finds it)"
  fi
}
if [ -f "$check_lib" ]; then
  for c in "$here"/check/*.c; do
    prog=$(basename "$c" .c)
    read -r _ _ class culprit setting _ < <(head -1 "$c")
    [[ "$setting" == LARDER_*=* ]] || setting=
    if [ "$class" = clean ]; then
      run_test "check mode: $prog reports nothing" env LD_PRELOAD="$check_lib" "$out/check/$prog"
      continue
    fi
    if [ "$class" = signal ]; then
      # A SIGSEGV or SIGBUS sent, not a fault: the process dies of it, with nothing reported.
      for how in segv:139 kill-segv:139 bus:135; do
        for guard in auto off; do
          log=$(mktemp)
          timeout -k 10 60 env LARDER_GUARD=$guard LD_PRELOAD="$check_lib" "$out/check/$prog" "${how%:*}" >"$log" 2>&1
          rc=$?
          if [ "$rc" -eq "${how#*:}" ] && ! grep -q "ERROR" "$log"; then
            pass "check mode: $prog ${how%:*} (guard $guard) dies of the signal, nothing reported"
          else
            fail "check mode: $prog ${how%:*} (guard $guard; exit $rc, want ${how#*:})"
            sed 's/^/    /' "$log" | head -10
          fi
          rm -f "$log"
        done
      done
      continue
    fi
    if [ "$class" = segv ]; then
      # A crash outside the heap: reported with its stack, and the process still dies of
      # SIGSEGV (status 139), with guard pages or without (no block is ever guarded).
      WANT_STATUS=139 check_case "$prog" "$class" "$culprit" "$setting" 100
      continue
    fi
    for size in 1 1000 65536 5000000; do
      if [ "$prog" = leak ]; then
        # Leaks are reported at exit and keep the program's status: one head
        # definitely lost, two nodes indirectly lost, one block reachable (two
        # when the program calls exit() from a frame holding one more).
        for ending in return exit; do
          log=$(mktemp)
          env LD_PRELOAD="$check_lib" "$out/check/leak" "$size" $([ $ending = exit ] && echo exit) >"$log" 2>&1
          rc=$?
          def=$((64 + size))
          held=$([ $ending = exit ] && echo 2 || echo 1)
          if [ "$rc" -eq 0 ] && grep -q "definitely lost $def bytes in 1 blocks; indirectly lost $((2 * def)) bytes in 2 blocks; still reachable $((held * size)) bytes in $held blocks" "$log" &&
            grep -q " $culprit+" "$log"; then
            pass "check mode: leak $size ($ending) -> definitely and indirectly lost, in $culprit"
          else
            fail "check mode: leak $size ($ending, exit $rc)"
            sed 's/^/    /' "$log" | head -30
          fi
          rm -f "$log"
        done
      elif [ "$prog" = invalid_free ]; then
        for kind in interior misaligned stack global mmap memalign; do
          check_case "$prog" "$class" "$culprit" "$setting" "$size" "$kind"
        done
      else
        check_case "$prog" "$class" "$culprit" "$setting" "$size"
        # The same bug in a block never freed: found by the checks at exit.
        case $prog in overflow | underflow) check_case "$prog" "$class" "$culprit" "$setting" "$size" live ;; esac
      fi
    done
  done
  # The reads the two guard-page settings are for, missed by the default placement:
  # a read of the byte before a 1000-byte block (in its own page when the guard page
  # follows it), one past a 1000-byte block (in the 8 bytes of slack C's alignment leaves).
  missed_without_setting underflow_read 1000
  missed_without_setting overflow_read_exact 1000
  # Guard pages the way kernels before 6.13 make them (a mapping per guarded block, no guard
  # markers), which this machine's kernel would not otherwise take: each guard-page finding.
  for c in overflow_read read_after_free underflow_read use_after_free double_free overflow; do
    read -r _ _ class culprit setting _ < <(head -1 "$here/check/$c.c")
    [[ "$setting" == LARDER_*=* ]] || setting=
    for size in 1 1000 5000000; do
      check_case "$c" "$class" "$culprit" "LARDER_GUARD_MARKERS=off $setting" "$size"
    done
  done
  # C++: a block freed by another family's function than its allocator's (new / free, malloc /
  # delete, new[] / delete, new / delete[]), guarded or not, at every size; and not reported
  # with LARDER_MISMATCH=off.
  for size in 1 1000 65536 5000000; do
    for pair in new-free malloc-delete 'new[]-delete' 'new-delete[]' aligned-new-free; do
      check_case mismatch alloc-dealloc-mismatch release_wrongly "" "$size" "$pair"
    done
  done
  run_test "check mode: LARDER_MISMATCH=off lets a mismatched delete pass" \
    env LARDER_MISMATCH=off LD_PRELOAD="$check_lib" "$out/check/mismatch" 100 malloc-delete
  # A program's own copy of some of the operators (as a library that links the C++ runtime
  # statically has), each calling malloc or free, paired with check mode's others: no report.
  # And a copy of operator delete that jumps to free (no frame of its own).
  for guard in auto off; do
    run_test "check mode: private operator new[] and delete beside check mode's (guard $guard)" \
      env LARDER_GUARD=$guard LD_PRELOAD="$check_lib" "$out/check/clean_private_operators"
    run_test "check mode: a private operator delete that jumps to free (guard $guard)" \
      env LARDER_GUARD=$guard LD_PRELOAD="$check_lib" "$out/check/clean_private_delete_jumps"
  done
  # Clean programs under check mode: no report, their own exit status.
  # With guard pages a block under 8 bytes is aligned to the largest power of
  # two not above its size (what any object that fits needs), not to glibc's
  # 8 that api_semantics checks by default: it is told so.
  run_test "C++ operator new and delete under check mode" env LD_PRELOAD="$check_lib" "$out/cxx_new" liblarder_check.so
  run_test "api semantics under check mode (guard pages off)" env LARDER_GUARD=off LD_PRELOAD="$check_lib" "$out/api_semantics"
  for guard in all 1/3; do
    run_test "api semantics under check mode, guard pages $guard" \
      env LARDER_GUARD=$guard API_SEMANTICS_NATURAL_ALIGN=1 LD_PRELOAD="$check_lib" "$out/api_semantics"
  done
  # A tenth of the rounds, to keep the suite short: each goes through check mode's whole path.
  run_test "large blocks from four threads under check mode" env LD_PRELOAD="$check_lib" "$out/contended_large" 10000
  # The same library as a heap profiler (LARDER_PROFILE): programs keep their results with one
  # allocation in 4 KiB sampled (sampled frees, reallocs and forks on every path), and every
  # process writes its profile. larder-cli/tests/profile.rs checks the estimates.
  profile_case() {
    local name=$1 want=$2
    shift 2
    local report
    report=$(mktemp)
    run_test "profiler: $name" env LD_PRELOAD="$check_lib" LARDER_PROFILE=4K LARDER_REPORT_FILE="$report" "$@"
    local profiles sites
    profiles=$(grep -c '^larder-profile v1' "$report")
    sites=$(grep -c '^larder-site v1' "$report")
    if [ "$profiles" -ge 1 ] && [ "$sites" -ge "$want" ]; then
      pass "profiler: $name wrote $profiles profile(s), $sites site(s)"
    else
      fail "profiler: $name wrote $profiles profile(s), $sites site(s) (want $want sites)"
    fi
    rm -f "$report"
  }
  profile_case "api semantics" 1 "$out/api_semantics"
  profile_case "threads" 1 "$out/stress_threads"
  profile_case "fork handlers" 1 "$out/fork_handlers"
  profile_case "three sites" 3 "$out/profile/three_sites"
else
  echo "# $check_lib not built: check-mode tests skipped"
fi
tally c-tests
