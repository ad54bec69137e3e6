#!/usr/bin/env bash
# Relays cdrchain checkpoints to the CdrCheckpoint contract on RSK: one pass per run, for cron.
#
# Crontab (every 10 minutes; the relay's own lock stops overlapping runs from double-submitting):
#   */10 * * * * CDRCHAIN_RPC=http://127.0.0.1:9944 CDRCHAIN_RSK_RPC=https://public-node.rsk.co \
#     CDRCHAIN_CONTRACT=0x... CDRCHAIN_RELAYER_KEY=/etc/cdrchain/relayer-key.json \
#     /opt/cdrchain/scripts/relayer-cron.sh >> /var/log/cdrchain-relay.log 2>&1
#
# The relayer key (`cdrchain key generate --scheme secp256k1 --out relayer-key.json`) only pays
# gas: fund its address with a little RBTC. It cannot forge checkpoints; the contract checks the
# validators' signatures.
#
# Exit codes of `cdrchain relay`: 0 submitted, 10 nothing to do, 11 another run holds the lock,
# 1 error. This script maps 10 and 11 to 0 so that cron mails only real failures.
set -uo pipefail

: "${CDRCHAIN_RSK_RPC:?set CDRCHAIN_RSK_RPC to the RSK node's JSON-RPC URL}"
: "${CDRCHAIN_CONTRACT:?set CDRCHAIN_CONTRACT to the CdrCheckpoint address}"
: "${CDRCHAIN_RELAYER_KEY:?set CDRCHAIN_RELAYER_KEY to the relayer's secp256k1 key file}"
CDRCHAIN_BIN="${CDRCHAIN_BIN:-cdrchain}"
CONFIRMATIONS="${CDRCHAIN_CONFIRMATIONS:-3}"

echo "[$(date -u +%FT%TZ)] relay pass"
"$CDRCHAIN_BIN" relay --once \
  --rpc "${CDRCHAIN_RPC:-http://127.0.0.1:9944}" \
  --rsk-rpc "$CDRCHAIN_RSK_RPC" \
  --contract "$CDRCHAIN_CONTRACT" \
  --key "$CDRCHAIN_RELAYER_KEY" \
  --confirmations "$CONFIRMATIONS"
code=$?
case "$code" in
  0) echo "submitted" ;;
  10) echo "nothing to do"; code=0 ;;
  11) echo "another relay run is still going"; code=0 ;;
  *) echo "relay failed (exit $code)" >&2 ;;
esac
exit "$code"
