#!/usr/bin/env bash
# Formatting and lints, as every commit must pass them: cargo fmt --check and clippy on all
# targets with warnings as errors.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings
