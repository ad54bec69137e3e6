#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this). Installs what is missing,
# checks formatting (and lints with CDRCHAIN_LINT=1), then runs every test with cargo-nextest (which builds the cdrchain
# binary that the end-to-end tests in tests/ run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== code shape: production files <= 800 lines, functions <= 100 lines"
python3 scripts/code-shape.py

echo "== ARCHITECTURE.md's limits table matches the code"
python3 scripts/limits.py --check

if [ "${CDRCHAIN_LINT:-0}" = "1" ]; then
  # Off in CI by default: clippy's check build wants its own compile of RocksDB's C++ (another
  # ~10 minutes on two cores). Developers run scripts/lint.sh before each commit.
  scripts/lint.sh
fi

echo "== contracts: forge fmt --check, forge test, committed artifact, anvil smoke test"
scripts/contracts.sh test

echo "== portal: the vendored front-end files are what the locked npm packages ship"
scripts/portal-vendor.sh --check

echo "== monitoring: promtool checks and tests the alerting rules; the dashboard parses"
scripts/monitoring.sh

echo "== fuzz: every target of fuzz/ for a few seconds on its committed corpus (long runs: docs/reliability.md)"
if cargo +nightly --version >/dev/null 2>&1; then
  scripts/fuzz.sh --jobs 2 "${CDRCHAIN_FUZZ_SECONDS:-4}"
else
  # cargo-fuzz needs nightly; the machines this project is built on have it (rustup toolchain list).
  echo "fuzz: NOT RUN: no nightly toolchain on this machine (rustup toolchain install nightly)" >&2
fi

echo "== cargo nextest"
cargo nextest run --locked --workspace --profile ci "$@"
