#!/usr/bin/env bash
# The project's test command (README.md names it): formatting, lints, then every test in release
# mode, then liblarder.so under C programs and real programs.
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
