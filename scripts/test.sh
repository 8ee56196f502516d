#!/usr/bin/env bash
# The project's test command (README.md names it): formatting, lints, then every test in release
# mode.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release

# larder-bench smoke run (issue 4): builds the workload process once per allocator, runs every
# workload once at a tiny scale for every contender (Rust global allocators and the preloadable
# Debian mallocs), and fails only if a run crashes or fails its self-check: no claim on speed.
cargo build --release -p larder-bench
target/release/larder-bench --build --quick --out target/bench-smoke
# The callgrind fast-path script, cut down to one size and few pairs (it checks the script works).
SIZES=64 N1=2000 N2=4000 bench/callgrind.sh
