#!/usr/bin/env bash
# The main job on the embedded default: build cdrchain (release) and run the single-validator dev
# chain in a temporary directory, JSON-RPC and ingest on 127.0.0.1:9944, metrics on :9615.
# Extra arguments go to `cdrchain node` (e.g. --base-path DIR to keep the database).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --build-only
cargo build --locked --release -p cdrchain-cli
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/release/cdrchain" node --dev "$@"
