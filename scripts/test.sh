#!/usr/bin/env bash
# The project's test command (README.md names it): every test, in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release
