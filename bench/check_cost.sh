#!/usr/bin/env bash
# What checking costs, per tool, on the same programs: time and peak RSS of plain larder
# (liblarder.so), larder's check mode (liblarder_check.so, guard pages and leak search on, the
# defaults), valgrind memcheck (--leak-check=full) and AddressSanitizer (the same sources rebuilt
# with clang -O2 -fsanitize=address -fno-omit-frame-pointer, LeakSanitizer on, its default),
# with glibc and the uninstrumented clang build for reference. One run each (CPU time is the
# steadier figure on a shared machine).
#
# Programs:
# - churn: tests/c/churn 1000000 (nothing but malloc/free, 4,096 live blocks);
# - cxx: tests/c/cxx_workload (C++ strings, maps, threads);
# - sqlite: tests/programs/sqlite_workload.sql run by bench/sqlite_driver.c linked with the
#   sqlite amalgamation (3.46.0, the copy the libsqlite3-sys crate bundles, found in cargo's
#   registry: `cargo fetch` a crate depending on libsqlite3-sys with feature "bundled"), built
#   with gcc -O2 for larder, valgrind and glibc, with clang for ASan. Debian's sqlite3 cannot
#   be rebuilt here: apt-get source finds no deb-src entries, and there is no network for a
#   tarball. Set SQLITE_SRC to another directory holding sqlite3.c and sqlite3.h;
# - python: /usr/bin/python3.11 running bench/check_mode.sh's json script. No ASan column:
#   an ASan CPython means building CPython from its sources (./configure
#   --with-address-sanitizer), which are not on this machine, and ASan cannot instrument the
#   Debian binary after the fact.
#
# Usage: bench/check_cost.sh [PROGRAM...]   (default: churn cxx sqlite python)
# Needs: cargo build --release --workspace; bash tests/c/build.sh; gcc, g++, valgrind, clang (for
# the clang and ASan columns, left out without it),
# GNU time (apt-get install clang valgrind time).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rel=$root/target/release
c=$root/target/ctests
work=$root/target/check-cost
mkdir -p "$work"
python=${PYTHON:-/usr/bin/python3.11}
script='import json;[json.loads(json.dumps(list(range(1000)))) for _ in range(3000)]'
programs=${*:-churn cxx sqlite python}
out=$(mktemp)
scratch=$(mktemp -d)
trap 'rm -rf "$out" "$scratch"' EXIT

asan_flags=(-O2 -g -fsanitize=address -fno-omit-frame-pointer -pthread)
# Without clang the clang and ASan columns are left out (apt-get install clang to have them).
have_clang=$(command -v clang >/dev/null && echo 1)
clang() { [ -n "$have_clang" ] && command clang "$@"; }
clang++() { [ -n "$have_clang" ] && command clang++ "$@"; }

# Builds (once) what a program needs beyond tests/c/build.sh's binaries.
build() {
  case $1 in
    churn)
      [ -x "$work/churn_clang" ] || clang -O2 -g -pthread -o "$work/churn_clang" "$root/tests/c/churn.c"
      [ -x "$work/churn_asan" ] || clang "${asan_flags[@]}" -o "$work/churn_asan" "$root/tests/c/churn.c"
      return 0
      ;;
    cxx)
      [ -x "$work/cxx_clang" ] || clang++ -std=c++17 -O2 -g -pthread -o "$work/cxx_clang" "$root/tests/c/cxx_workload.cpp"
      [ -x "$work/cxx_asan" ] || clang++ -std=c++17 "${asan_flags[@]}" -o "$work/cxx_asan" "$root/tests/c/cxx_workload.cpp"
      return 0
      ;;
    sqlite)
      local src=${SQLITE_SRC:-}
      if [ -z "$src" ]; then
        src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 3 -path '*libsqlite3-sys-*/sqlite3' 2>/dev/null | sort | tail -1)
      fi
      if [ -z "$src" ] || [ ! -f "$src/sqlite3.c" ]; then
        echo "sqlite: no amalgamation (sqlite3.c); set SQLITE_SRC or fetch libsqlite3-sys" >&2
        return 1
      fi
      local defs=(-DSQLITE_THREADSAFE=1 -DSQLITE_OMIT_LOAD_EXTENSION)
      [ -x "$work/sqlite_gcc" ] || gcc -O2 -g "${defs[@]}" -I"$src" -pthread -o "$work/sqlite_gcc" \
        "$root/bench/sqlite_driver.c" "$src/sqlite3.c" -lm
      [ -x "$work/sqlite_clang" ] || [ -z "$have_clang" ] || clang -O2 -g "${defs[@]}" -I"$src" -pthread -o "$work/sqlite_clang" \
        "$root/bench/sqlite_driver.c" "$src/sqlite3.c" -lm
      [ -x "$work/sqlite_asan" ] || [ -z "$have_clang" ] || clang "${asan_flags[@]}" "${defs[@]}" -I"$src" -o "$work/sqlite_asan" \
        "$root/bench/sqlite_driver.c" "$src/sqlite3.c" -lm
      ;;
  esac
}

# The command line of PROGRAM run by TOOL, on stdout one word a line (empty: not measured).
command_of() {
  local program=$1 tool=$2 bin args=() pre=()
  case $tool in
    glibc) ;;
    larder) pre=(env LD_PRELOAD="$rel/liblarder.so") ;;
    check) pre=(env LD_PRELOAD="$rel/liblarder_check.so") ;;
    valgrind) pre=(valgrind -q --leak-check=full) ;;
    asan) pre=(env ASAN_OPTIONS=detect_leaks=1) ;;
  esac
  case $program in
    churn) bin=$c/churn args=(1000000) ;;
    cxx) bin=$c/cxx_workload ;;
    sqlite) bin=$work/sqlite_gcc args=("$scratch/orders.db") ;;
    python) bin=$python args=(-c "$script") ;;
  esac
  case $tool in
    clang | asan)
      [ "$program" = python ] || [ -z "$have_clang" ] && return
      bin=$work/${program}_$tool
      ;;
  esac
  printf '%s\n' "${pre[@]}" "$bin" "${args[@]}"
}

measure() {
  local program=$1 tool=$2 cmd rc
  mapfile -t cmd < <(command_of "$program" "$tool")
  if [ ${#cmd[@]} -eq 0 ]; then
    echo "$program $tool: not measured"
    return
  fi
  rm -f "$scratch"/orders.db*
  if [ "$program" = sqlite ]; then
    /usr/bin/time -o "$out" -f "%e s wall, %U+%S s cpu, %M KiB" "${cmd[@]}" \
      <"$root/tests/programs/sqlite_workload.sql" >"$scratch/stdout" 2>"$scratch/stderr"
  else
    /usr/bin/time -o "$out" -f "%e s wall, %U+%S s cpu, %M KiB" "${cmd[@]}" >"$scratch/stdout" 2>"$scratch/stderr"
  fi
  rc=$?
  echo "$program $tool: $(tail -1 "$out") (exit $rc, stdout md5 $(md5sum <"$scratch/stdout" | cut -c1-8))$(leaks "$tool")"
}

# What the checker said of leaks on this run (its stderr), for comparing the tools' reports.
leaks() {
  local said
  case $1 in
    check) said=$(grep -o 'definitely lost [0-9]* bytes in [0-9]* blocks; indirectly lost [0-9]* bytes in [0-9]* blocks' "$scratch/stderr" | head -1) ;;
    # -q leaves out valgrind's leak summary but not its loss records: add those up.
    valgrind) said=$(grep -E 'bytes in [0-9,]+ blocks are definitely lost' "$scratch/stderr" | tr -d , |
      awk '{ for (i = 1; i <= NF; i++) if ($i == "==" || $i ~ /^==[0-9]+==$/) { b += $(i + 1); break }
             for (i = 1; i <= NF; i++) if ($i == "blocks") n += $(i - 1) }
           END { if (NR) printf "definitely lost %d bytes in %d blocks (direct and indirect)", b, n }') ;;
    asan) said=$(grep -oE 'AddressSanitizer: [0-9]+ byte\(s\) leaked in [0-9]+ allocation\(s\)' "$scratch/stderr" | head -1) ;;
    *) return ;;
  esac
  echo "; leaks: ${said:-none reported}"
}

for program in $programs; do
  build "$program" || continue
  for tool in glibc larder check valgrind clang asan; do
    measure "$program" "$tool"
  done
done
