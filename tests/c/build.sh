#!/usr/bin/env bash
# Builds the C and C++ test programs with the system compilers into OUT_DIR
# (default target/ctests). The programs that use larder's own API (larder.h)
# are built only when LIB_DIR holds liblarder.so and liblarder.a.
# Usage: tests/c/build.sh [OUT_DIR] [LIB_DIR]
set -euo pipefail
src=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$src/../.." && pwd)
out=${1:-$root/target/ctests}
lib_dir=${2:-}
mkdir -p "$out"
cflags=(-O2 -g -Wall -Wextra -Werror)
cc "${cflags[@]}" -o "$out/api_semantics" "$src/api_semantics.c"
cc "${cflags[@]}" -pthread -o "$out/stress_threads" "$src/stress_threads.c"
g++ -std=c++17 "${cflags[@]}" -pthread -o "$out/cxx_workload" "$src/cxx_workload.cpp"
g++ -std=c++17 "${cflags[@]}" -o "$out/cxx_new" "$src/cxx_new.cpp" -ldl
cc "${cflags[@]}" -o "$out/run_summary" "$src/run_summary.c"
cc "${cflags[@]}" -pthread -o "$out/contended_large" "$src/contended_large.c"
cc "${cflags[@]}" -pthread -o "$out/main_pthread_exit" "$src/main_pthread_exit.c"
cc "${cflags[@]}" -pthread -o "$out/bad_free" "$src/bad_free.c"
cc "${cflags[@]}" -pthread -o "$out/fork_handlers" "$src/fork_handlers.c"
cc "${cflags[@]}" -pthread -o "$out/idle_rss" "$src/idle_rss.c"
cc "${cflags[@]}" -pthread -o "$out/churn" "$src/churn.c"
if [ -n "$lib_dir" ]; then
  lib_dir=$(realpath "$lib_dir")
  # Linked against the shared library instead of preloading it.
  cc "${cflags[@]}" -I"$root/include" -o "$out/api_semantics_linked" "$src/api_semantics.c" \
    -L"$lib_dir" -Wl,-rpath,"$lib_dir" -llarder
  cc "${cflags[@]}" -I"$root/include" -pthread -o "$out/larder_api" "$src/larder_api.c" \
    -L"$lib_dir" -Wl,-rpath,"$lib_dir" -llarder
  # Linked against the static library: Rust's std needs these system libraries.
  cc "${cflags[@]}" -I"$root/include" -pthread -o "$out/stress_threads_static" "$src/stress_threads.c" \
    "$lib_dir/liblarder.a" -lpthread -ldl -lm -lgcc_s -lc
  # Statically linked, the program's priority-101 constructor runs before larder's.
  cc "${cflags[@]}" -pthread -o "$out/fork_handlers_static" "$src/fork_handlers.c" \
    "$lib_dir/liblarder.a" -lpthread -ldl -lm -lgcc_s -lc
fi
# The check-mode corpus: each program commits one heap bug in a named
# function; -rdynamic puts that name where dladdr (the in-process report)
# finds it.
mkdir -p "$out/check"
for c in "$src"/check/*.c; do
  cc -O2 -g -Wall -Wextra -Werror -Wno-use-after-free -Wno-free-nonheap-object -pthread -rdynamic \
    -o "$out/check/$(basename "$c" .c)" "$c"
done
for c in "$src"/check/*.cpp; do
  g++ -std=c++17 -O2 -g -Wall -Wextra -Werror -pthread -rdynamic -o "$out/check/$(basename "$c" .cpp)" "$c"
done
# The profiler's program of known allocation sites (larder-cli/tests/profile.rs checks the
# figures; run.sh checks that the records are written).
mkdir -p "$out/profile"
cc "${cflags[@]}" -o "$out/profile/three_sites" "$src/profile/three_sites.c"
echo "built the C test programs in $out"
