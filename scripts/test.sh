#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this). Installs what is missing,
# checks formatting and lints, then runs every test with cargo-nextest (which builds the cdrchain
# binary that the end-to-end tests in tests/ run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "== cargo nextest"
cargo nextest run --locked --workspace --profile ci "$@"
