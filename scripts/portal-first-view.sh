#!/usr/bin/env bash
# Measures the partner portal's first view on a dev node holding many CDRs (issue #29: under 1 s
# with 10 million): starts the release binary's dev node in a temporary directory, loads CDRS
# (default 10,000,000) through HTTP ingest, waits until all are committed, then loads the page
# RUNS times (default 7) in Debian's Chromium (tests/portal/first-view.mjs) and prints the times.
#   scripts/portal-first-view.sh [CDRS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
cdrs="${1:-10000000}"
runs="${2:-7}"
port=9977
cargo build --release --locked -p cdrchain-cli
dir="$(mktemp -d)"
target/release/cdrchain node --dev --base-path "$dir/db" --rpc-addr "127.0.0.1:$port" --no-metrics >"$dir/node.log" 2>&1 &
node_pid=$!
trap 'kill $node_pid 2>/dev/null; wait $node_pid 2>/dev/null; rm -rf "$dir"' EXIT
sleep 3
python3 scripts/load-cdrs.py "http://127.0.0.1:$port" "$cdrs"
until curl -s -X POST -H 'content-type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"chain_getHeader","params":[]}' "http://127.0.0.1:$port/" |
    grep -q "\"cdr_log_size\":$cdrs,"; do
  sleep 1
done
echo "database: $(du -sh "$dir/db" | cut -f1)"
(cd tests/portal && node first-view.mjs "http://127.0.0.1:$port/" "$runs")
