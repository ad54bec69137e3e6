#!/usr/bin/env bash
# The main job on the embedded default. At this stage: build cdrchain and print the built-in dev
# chain spec with its genesis hash (the node itself arrives with issue #3).
# Extra arguments go to `cdrchain build-spec`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --locked --release -p cdrchain-cli
exec target/release/cdrchain build-spec --chain dev "$@"
