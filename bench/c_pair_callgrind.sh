#!/usr/bin/env bash
# Instructions per malloc+free pair of a plain C loop (bench/c_pair.c), then per new[]+delete[]
# pair of a C++ loop (bench/cxx_pair.cpp), with each allocator preloaded, counted by callgrind:
# two runs of N1 and N2 pairs subtracted, so that start-up cancels out. Usage: bench/c_pair_callgrind.sh [LIBLARDER] (default target/release/liblarder.so)
# Environment: SIZES (default "16 64 256 1024"), N1, N2 (default 100000, 200000).
set -euo pipefail
cd "$(dirname "$0")/.."
larder=$(realpath "${1:-target/release/liblarder.so}")
sizes=${SIZES:-16 64 256 1024}
n1=${N1:-100000}
n2=${N2:-200000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/c_pair" bench/c_pair.c
g++ -O2 -o "$tmp/cxx_pair" bench/cxx_pair.cpp
lib=/usr/lib/x86_64-linux-gnu
count() {
  env ${1:+LD_PRELOAD=$1} valgrind --tool=callgrind --callgrind-out-file="$tmp/out" \
    "$tmp/$program" "$2" "$3" >/dev/null 2>&1
  awk '/^(summary|totals):/ { print $2; exit }' "$tmp/out"
}
for program in c_pair cxx_pair; do
  echo
  echo "$program:"
  echo "| allocator |$(for s in $sizes; do printf ' %s B |' "$s"; done)"
  echo "|---|$(for s in $sizes; do printf -- '---:|'; done)"
  for entry in "larder=$larder" "mimalloc=$lib/libmimalloc.so.2" "jemalloc=$lib/libjemalloc.so.2" \
               "tcmalloc=$lib/libtcmalloc_minimal.so.4" "glibc="; do
    name=${entry%%=*} path=${entry#*=}
    [ -z "$path" ] || [ -e "$path" ] || continue
    line="| $name |"
    for s in $sizes; do
      a=$(count "$path" "$s" "$n1")
      b=$(count "$path" "$s" "$n2")
      line="$line $(awk -v a="$a" -v b="$b" -v n=$((n2 - n1)) 'BEGIN { printf "%.1f", (b - a) / n }') |"
    done
    echo "$line"
  done
done
