#!/usr/bin/env bash
# The project's test command (README.md names it): formatting, lints, then every test in release
# mode, then liblarder.so under C programs and real programs, then the benchmark smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
# Every artifact first: `cargo test` does not build liblarder.so (a cdylib),
# which larder-cli's integration tests run programs on.
cargo build --release --workspace
cargo test --workspace --release
# liblarder.so as the malloc of C and C++ programs (issue 3): the C API tests,
# then real programs compared with and without it preloaded.
bash tests/c/run.sh target/release
bash tests/programs/compare.sh target/release/liblarder.so
# The same real programs under check mode (issue 10), scaled to about two minutes: no error
# report in any of their processes, and each still exits 0.
bash tests/programs/check.sh target/release
# Everyday tools (node, perl, CPython, coreutils, xz, git, g++, cargo ...) plain, preloaded and
# under check mode: the same output and status all three ways, no error report (about 2 minutes).
bash tests/programs/tools.sh target/release
# larder-bench smoke run (issue 4): builds the workload process once per allocator, runs every
# workload once at a tiny scale for every contender (Rust global allocators and the preloadable
# Debian mallocs), and fails only if a run crashes or fails its self-check: no claim on speed.
# The tikv-jemallocator worker is left out here (it builds jemalloc from source: minutes on 2
# cores); Debian's jemalloc, preloaded, stands in for it.
target/release/larder-bench --build --quick --out target/bench-smoke \
  --allocators larder,system,mimalloc,ld-mimalloc,ld-jemalloc,ld-tcmalloc,ld-larder
# The callgrind fast-path script, cut down to one size and few pairs (it checks the script works).
SIZES=64 N1=2000 N2=4000 bash bench/callgrind.sh

# The loom model of the cross-thread free list (larder/tests/loom_remote.rs). `--cfg loom` changes
# every crate's flags, so it builds in its own target directory and leaves the one above intact.
# Preemptions are bounded at 3 (the test's default): about 2 s of checking on 2 cores.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 \
    cargo test --release -p larder --test loom_remote
