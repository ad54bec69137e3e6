#!/usr/bin/env bash
# The long kill -9 run of docs/reliability.md: KILLS random SIGKILLs and restarts of random
# validators (never two down at once) of a four-validator localnet under four switches' load;
# then every acknowledged CDR must be committed exactly once and all validators agree
# (tests/crashes.rs). CI runs the same test with 8 kills. Release build.
#
#   scripts/kill-loop.sh [KILLS] [SEED]      (default 100 kills, a seed from the clock)
set -euo pipefail
cd "$(dirname "$0")/.."
export CDRCHAIN_KILLS="${1:-100}"
if [ -n "${2:-}" ]; then
  export CDRCHAIN_KILL_SEED="$2"
fi
cargo test --release --locked -p cdrchain-cli --test e2e_crashes -- --nocapture
