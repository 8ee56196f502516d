#!/usr/bin/env bash
# The project's test command (README.md names it): every test, in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release

# The loom model of the cross-thread free list (larder/tests/loom_remote.rs). `--cfg loom` changes
# every crate's flags, so it builds in its own target directory and leaves the one above intact.
# Preemptions are bounded at 3 (the test's default): about 2 s of checking on 2 cores.
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=3 \
    cargo test --release -p larder --test loom_remote
