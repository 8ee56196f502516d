#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use. Idempotent.
set -euo pipefail
pkgs=(valgrind)
# liblarder.so's tests and benchmarks (issue 3): the real programs run with and
# without larder preloaded, the C/C++ compilers, the allocators compared in
# docs/BENCHMARKS.md, GNU time for peak RSS, and CPython's regression suite.
pkgs+=(gcc g++ sqlite3 git time python3.11 libpython3.11-testsuite libmimalloc2.0 libjemalloc2)
# The benchmark suite (issue 4): tcmalloc as a preloaded contender, a font for the charts.
pkgs+=(libtcmalloc-minimal4 fonts-dejavu-core)
# Real programs (tests/programs/workloads.sh): a PostgreSQL server under pgbench. Optional: the
# workload says it skipped where the package cannot be had.
optional=(postgresql)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
for p in "${optional[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" ||
    echo "install-deps: $p could not be installed; the tests that use it skip" >&2
done
