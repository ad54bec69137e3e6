#!/usr/bin/env bash
# A local network of validators on this machine, two ways.
#
#   scripts/testnet.sh                 # 1. `cdrchain testnet`: four validators of the built-in
#                                      #    `local` chain (INSECURE dev keys) as child processes;
#                                      #    RPC on 127.0.0.1:9944-9947; Ctrl-C stops them all.
#   scripts/testnet.sh --by-hand       # 2. the same four, started one by one as an operator
#                                      #    would (prints the commands, then runs them).
#   scripts/testnet.sh --production    # 3. prints the production path: keys, spec, --key.
#
# BASE (default /tmp/cdrchain-testnet) holds the databases, keys and logs.
set -euo pipefail
cd "$(dirname "$0")/.."
base="${BASE:-/tmp/cdrchain-testnet}"
mode="${1:-}"

scripts/install-deps.sh --build-only
cargo build --locked --release -p cdrchain-cli
bin="${CARGO_TARGET_DIR:-target}/release/cdrchain"

case "$mode" in
  "")
    exec "$bin" testnet --validators 4 --base-path "$base"
    ;;
  --by-hand)
    names=(alice bob charlie dave)
    peer_ids=()
    for name in "${names[@]}"; do
      # The dev accounts' peer ids are in the local spec.
      peer_ids+=("$("$bin" build-spec --chain local 2>/dev/null \
        | python3 -c "import json,sys; print(next(o['peer_id'] for o in json.load(sys.stdin)['operators'] if o['id']=='$name'))")")
    done
    pids=()
    trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
    for i in 0 1 2 3; do
      boot=()
      for j in 0 1 2 3; do
        [ "$i" = "$j" ] || boot+=("/ip4/127.0.0.1/tcp/$((30333 + j))/p2p/${peer_ids[$j]}")
      done
      cmd=("$bin" node --chain local --dev-key "${names[$i]}" --base-path "$base/${names[$i]}"
           --listen "/ip4/127.0.0.1/tcp/$((30333 + i))" --rpc-addr "127.0.0.1:$((9944 + i))"
           --metrics-addr "127.0.0.1:$((9615 + i))" --bootnodes "$(IFS=,; echo "${boot[*]}")")
      echo "${cmd[*]}"
      mkdir -p "$base/${names[$i]}"
      "${cmd[@]}" >"$base/${names[$i]}/node.log" 2>&1 &
      pids+=($!)
    done
    echo "logs in $base/<name>/node.log; Ctrl-C stops them"
    wait
    ;;
  --production)
    cat <<'TEXT'
Production: each operator, on its own machine,
  cdrchain key generate --scheme ed25519   --out /etc/cdrchain/key.json        # signs CDR batches and votes
  cdrchain key generate --scheme ed25519   --out /var/lib/cdrchain/node-key.json  # libp2p identity (peer id)
  cdrchain key generate --scheme secp256k1 --out /etc/cdrchain/evm-key.json    # RSK checkpoints
and sends the printed public key, peer id and EVM address to the consortium. One of them writes the
chain spec (`cdrchain build-spec --chain local > spec.json`, then replaces operators/authorities with
the real ones), checks it with `cdrchain build-spec --chain spec.json`, and every operator runs
  cdrchain node --chain spec.json --key /etc/cdrchain/key.json --base-path /var/lib/cdrchain \
    --consortium-secret-file /etc/cdrchain/consortium-secret \
    --listen /ip4/0.0.0.0/tcp/30333 --bootnodes /dns4/<peer host>/tcp/30333/p2p/<peer id>,... \
    --rpc-addr 127.0.0.1:9944 --metrics-addr 127.0.0.1:9615
(the node key is read from <base-path>/node-key.json unless --node-key says otherwise).
TEXT
    ;;
  *)
    echo "usage: $0 [--by-hand|--production]" >&2
    exit 2
    ;;
esac
