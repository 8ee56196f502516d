#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use. Idempotent.
set -euo pipefail
pkgs=(valgrind libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
