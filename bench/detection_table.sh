#!/usr/bin/env bash
# Which heap bugs of the check-mode corpus (tests/c/check) each tool finds, side by side: larder
# --check (liblarder_check.so preloaded), larder's default library (liblarder.so: double and
# invalid frees stop the program), glibc with MALLOC_CHECK_=3, valgrind memcheck, and
# AddressSanitizer (the corpus rebuilt with clang -fsanitize=address, when clang is installed:
# apt-get install clang). One row per bug class, one case per size (1 B, 1000 B, 64 KiB,
# 5 MB) and, for invalid frees, per kind of pointer; the clean program counts false alarms.
#
# A case is found when the tool stops the program or reports it: a non-zero exit or a signal
# where the program would exit 0 (the leak program exits 0 by design, so there only a report
# counts: larder's "definitely lost", valgrind's "definitely lost" with a non-zero count,
# LeakSanitizer's report; glibc finds no leaks).
# Usage: bench/detection_table.sh [LIB_DIR]   (default target/release; build the workspace first)
set -uo pipefail
cd "$(dirname "$0")/.."
lib_dir=$(realpath "${1:-target/release}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/gcc" "$tmp/asan"
have_asan=0
command -v clang >/dev/null && have_asan=1
for c in tests/c/check/*.c tests/c/check/*.cpp; do
  name=$(basename "${c%.*}")
  if [ "${c##*.}" = cpp ]; then
    g++ -std=c++17 -O2 -g -w -pthread -rdynamic -o "$tmp/gcc/$name" "$c"
    [ $have_asan = 0 ] || clang++ -std=c++17 -O1 -g -w -pthread -fsanitize=address \
      -fno-omit-frame-pointer -o "$tmp/asan/$name" "$c"
    continue
  fi
  cc -O2 -g -w -pthread -rdynamic -o "$tmp/gcc/$name" "$c"
  if [ $have_asan = 1 ]; then
    clang -O1 -g -w -pthread -fsanitize=address -fno-omit-frame-pointer -o "$tmp/asan/$name" "$c"
  fi
done

# found TOOL PROGRAM ARGS... : prints 1 when TOOL finds the bug of PROGRAM run with ARGS.
found() {
  local tool=$1 prog=$2
  shift 2
  local log=$tmp/log rc
  case $tool in
    # A program whose first line names a guard-page setting is run with it (by check only).
    check) timeout 120 env $setting LD_PRELOAD="$lib_dir/liblarder_check.so" "$tmp/gcc/$prog" "$@" >"$log" 2>&1 ;;
    larder) timeout 120 env LD_PRELOAD="$lib_dir/liblarder.so" "$tmp/gcc/$prog" "$@" >"$log" 2>&1 ;;
    glibc) timeout 120 env MALLOC_CHECK_=3 GLIBC_TUNABLES=glibc.malloc.check=3 "$tmp/gcc/$prog" "$@" >"$log" 2>&1 ;;
    valgrind) timeout 600 valgrind -q --error-exitcode=23 --leak-check=full \
      --errors-for-leak-kinds=definite "$tmp/gcc/$prog" "$@" >"$log" 2>&1 ;;
    asan) timeout 120 env ASAN_OPTIONS=detect_leaks=1 "$tmp/asan/$prog" "$@" >"$log" 2>&1 ;;
  esac
  rc=$?
  if [ "$prog" = leak ]; then
    case $tool in
      check) grep -q "definitely lost [1-9]" "$log" ;;
      valgrind) [ $rc -eq 23 ] ;;
      asan) grep -q "LeakSanitizer" "$log" ;;
      *) false ;;
    esac && echo 1 || echo 0
  else
    [ $rc -ne 0 ] && echo 1 || echo 0
  fi
}

tools="check larder glibc valgrind"
[ $have_asan = 1 ] && tools="$tools asan"
declare -A total
printf '| bug (cases) |'
for t in $tools; do printf ' %s |' "$t"; done
printf '\n|---|'
for t in $tools; do printf -- '---:|'; done
printf '\n'
for c in tests/c/check/*.c tests/c/check/*.cpp; do
  prog=$(basename "${c%.*}")
  read -r _ _ class _ setting _ < <(head -1 "$c")
  [[ "$setting" == LARDER_*=* ]] || setting=
  cases=()
  if [ "$class" = clean ]; then
    cases=("")
  else
    for size in 1 1000 65536 5000000; do
      if [ "$prog" = invalid_free ]; then
        for kind in interior misaligned stack global mmap memalign; do cases+=("$size $kind"); done
      elif [ "$prog" = mismatch ]; then
        for pair in new-free malloc-delete 'new[]-delete' 'new-delete[]' aligned-new-free; do
          cases+=("$size $pair")
        done
      else
        cases+=("$size")
      fi
    done
  fi
  printf '| %s (%s) |' "$prog" "${#cases[@]}"
  for t in $tools; do
    n=0
    for args in "${cases[@]}"; do
      # shellcheck disable=SC2086
      n=$((n + $(found "$t" "$prog" $args)))
    done
    [ "$class" = clean ] || total[$t]=$((${total[$t]:-0} + n))
    if [ "$class" = clean ]; then printf ' %s false alarm |' "$n"; else printf ' %s |' "$n"; fi
  done
  printf '\n'
done
printf '| **found, of all bug cases** |'
for t in $tools; do printf ' **%s** |' "${total[$t]}"; done
printf '\n'
[ $have_asan = 1 ] || echo "(clang not installed: no ASan column)"
