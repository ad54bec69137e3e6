#!/usr/bin/env bash
# The CdrCheckpoint Solidity contract (contracts/): offline toolchain, tests, committed artifact.
#
#   scripts/contracts.sh install         npm ci in contracts/ when node_modules is missing or stale
#   scripts/contracts.sh test            install, forge fmt --check, forge test, check-artifact,
#                                        anvil-smoke
#   scripts/contracts.sh build           forge build, then (re)write contracts/artifacts/CdrCheckpoint.json
#   scripts/contracts.sh check-artifact  fail if the committed artifact's abi/bytecode/deployedBytecode
#                                        differ from a fresh compile of contracts/src
#   scripts/contracts.sh gas             gas per submitCheckpoint (4 validators/3 signatures and
#                                        7/5) and deployment: forge (isolated txs) and a real anvil
#   scripts/contracts.sh anvil-smoke     deploy the committed artifact on a local anvil (chain 33,
#                                        London rules), sign with cast, submit, check the README vector
#
# Everything comes from the npm registry (see contracts/package.json): forge/anvil/cast as the
# @foundry-rs/*-linux-amd64 packages, the compiler as solc-js behind contracts/bin/solc.
# Extra arguments after `test` go to forge test (e.g. --match-test Submit -vv).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONTRACTS="$ROOT/contracts"
BIN="$CONTRACTS/node_modules/.bin"
ARTIFACT="$CONTRACTS/artifacts/CdrCheckpoint.json"
# Every contract whose artifact is committed (CdrBaseline: the benchmark's proof-of-concept baseline).
ARTIFACT_NAMES=(CdrCheckpoint CdrBaseline)
STAMP="$CONTRACTS/node_modules/.cdrchain-install-stamp"

log() { printf '[contracts] %s\n' "$*" >&2; }

TMP_DIRS=()
ANVIL_PID=""
cleanup() {
  stop_anvil
  [ ${#TMP_DIRS[@]} -eq 0 ] || rm -rf "${TMP_DIRS[@]}"
}
trap cleanup EXIT
new_tmp() { # sets NEW_TMP to a fresh directory, removed on exit
  NEW_TMP="$(mktemp -d)"
  TMP_DIRS+=("$NEW_TMP")
}
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ------------------------------------------------------------------------------------ install

install_stamp() {
  # What node_modules was installed from: the lockfile, the manifest and the Node major version.
  { sha256sum "$CONTRACTS/package.json" "$CONTRACTS/package-lock.json" | awk '{print $1}'; node -p 'process.versions.node.split(".")[0]'; } | sha256sum | awk '{print $1}'
}

cmd_install() {
  command -v node >/dev/null 2>&1 || die "node is not installed (Node.js >= 20 and npm are needed: apt-get install nodejs npm)"
  command -v npm >/dev/null 2>&1 || die "npm is not installed (apt-get install npm)"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || die "Node.js $(node --version) is too old: the @foundry-rs packages need >= 20"
  [ "$(uname -m)" = "x86_64" ] || die "the pinned @foundry-rs/*-linux-amd64 packages need x86_64 Linux (this is $(uname -m))"

  local want have=""
  want="$(install_stamp)"
  [ -f "$STAMP" ] && have="$(cat "$STAMP")"
  if [ "$want" = "$have" ] && [ -x "$BIN/forge" ] && [ -x "$BIN/anvil" ] && [ -x "$BIN/cast" ] \
    && [ -f "$CONTRACTS/node_modules/solc/soljson.js" ]; then
    log "node_modules is up to date with package-lock.json (forge, anvil, cast, solc-js present)"
    return 0
  fi
  if [ -d "$CONTRACTS/node_modules" ]; then
    log "node_modules is stale or incomplete: reinstalling with npm ci"
  else
    log "node_modules is missing: installing with npm ci"
  fi
  (cd "$CONTRACTS" && npm ci --no-audit --no-fund --no-update-notifier --ignore-scripts --loglevel=error >&2)
  "$BIN/forge" --version >/dev/null || die "forge from npm does not run"
  "$CONTRACTS/bin/solc" --version >/dev/null || die "contracts/bin/solc does not run"
  printf '%s\n' "$want" >"$STAMP"
  log "installed: $("$BIN/forge" --version | head -n1); solc $(node -p "require('$CONTRACTS/node_modules/solc/package.json').version") (solc-js)"
}

forge() { (cd "$CONTRACTS" && "$BIN/forge" "$@"); }

# ------------------------------------------------------------------------------------ artifact

# Compiles contracts/src alone into $1 (a fresh out dir, with its own cache).
compile_src() {
  local out="$1"
  forge build --force --skip test --out "$out/out" --cache-path "$out/cache" >&2
  local name
  for name in "${ARTIFACT_NAMES[@]}"; do
    [ -f "$out/out/$name.sol/$name.json" ] || die "forge wrote no $name artifact"
  done
}

# Reduces a foundry artifact to its deterministic, path-independent part (foundry's shape: what
# alloy's sol! reads). Writes JSON to stdout.
reduce_artifact() {
  node -e '
    const a = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const bc = (b) => ({ object: b.object, linkReferences: b.linkReferences || {} });
    const out = {
      abi: a.abi,
      bytecode: bc(a.bytecode),
      deployedBytecode: bc(a.deployedBytecode),
      methodIdentifiers: a.methodIdentifiers,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + "\n");
  ' "$1"
}

cmd_build() {
  cmd_install
  log "forge build (src and tests)"
  forge build
  local tmp
  new_tmp
  tmp="$NEW_TMP"
  log "compiling src alone for the committed artifact"
  compile_src "$tmp"
  mkdir -p "$(dirname "$ARTIFACT")"
  local name target
  for name in "${ARTIFACT_NAMES[@]}"; do
    target="$CONTRACTS/artifacts/$name.json"
    reduce_artifact "$tmp/out/$name.sol/$name.json" >"$tmp/$name.artifact.json"
    if [ -f "$target" ] && cmp -s "$tmp/$name.artifact.json" "$target"; then
      log "contracts/artifacts/$name.json is unchanged"
    else
      cp "$tmp/$name.artifact.json" "$target"
      log "wrote contracts/artifacts/$name.json (commit it)"
    fi
  done
}

cmd_check_artifact() {
  cmd_install
  local tmp name
  new_tmp
  tmp="$NEW_TMP"
  log "check-artifact: compiling contracts/src into a temporary out dir"
  compile_src "$tmp"
  for name in "${ARTIFACT_NAMES[@]}"; do
    [ -f "$CONTRACTS/artifacts/$name.json" ] || die "contracts/artifacts/$name.json is missing: run scripts/contracts.sh build"
    reduce_artifact "$tmp/out/$name.sol/$name.json" >"$tmp/fresh.json"
    check_one "$name" "$CONTRACTS/artifacts/$name.json" "$tmp/fresh.json"
  done
}

# Compares a committed artifact ($2) with a fresh one ($3) of contract $1.
check_one() {
  node -e '
    const fs = require("fs");
    const committed = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
    const fresh = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
    const sig = (e) => `${e.type} ${e.name || ""}(${(e.inputs || []).map((i) => i.type).join(",")})`;
    const problems = [];
    const a = JSON.stringify(committed.abi), b = JSON.stringify(fresh.abi);
    if (a !== b) {
      const ca = new Set((committed.abi || []).map(sig)), fa = new Set(fresh.abi.map(sig));
      const gone = [...ca].filter((s) => !fa.has(s)), added = [...fa].filter((s) => !ca.has(s));
      problems.push("abi differs" + (gone.length ? "; only in committed: " + gone.join(", ") : "") +
        (added.length ? "; only in fresh compile: " + added.join(", ") : "") +
        (!gone.length && !added.length ? " (same entries, different details or order)" : ""));
    }
    for (const k of ["bytecode", "deployedBytecode"]) {
      const x = (committed[k] || {}).object || "", y = fresh[k].object;
      if (x !== y) {
        let i = 0;
        while (i < x.length && i < y.length && x[i] === y[i]) i++;
        problems.push(`${k}.object differs: committed ${(x.length - 2) / 2} bytes, fresh ${(y.length - 2) / 2} bytes, first difference at byte ${Math.floor((i - 2) / 2)}`);
      }
    }
    if (problems.length) {
      for (const p of problems) console.error("[contracts] check-artifact: " + p);
      console.error("[contracts] check-artifact: contracts/artifacts/" + process.argv[3] + ".json is stale: run scripts/contracts.sh build and commit it");
      process.exit(1);
    }
    console.error("[contracts] check-artifact: " + process.argv[3] + ": committed abi, bytecode and deployedBytecode match a fresh compile");
  ' "$2" "$3" "$1"
}

cmd_test() {
  cmd_install
  log "forge fmt --check"
  forge fmt --check
  log "forge test"
  forge test "$@"
  cmd_check_artifact
  cmd_anvil_smoke
}

# ------------------------------------------------------------------------------------ anvil

RPC=""
stop_anvil() {
  if [ -n "$ANVIL_PID" ]; then
    kill "$ANVIL_PID" 2>/dev/null || true
    wait "$ANVIL_PID" 2>/dev/null || true
    ANVIL_PID=""
  fi
}

start_anvil() {
  local port tries=0
  while :; do
    port=$((20000 + RANDOM % 20000))
    "$BIN/anvil" --host 127.0.0.1 --port "$port" --chain-id 33 --hardfork london --silent &
    ANVIL_PID=$!
    RPC="http://127.0.0.1:$port"
    for _ in $(seq 1 50); do
      if "$BIN/cast" chain-id --rpc-url "$RPC" >/dev/null 2>&1; then
        log "anvil (pid $ANVIL_PID) listening on $RPC, chain id 33, hardfork london"
        return 0
      fi
      kill -0 "$ANVIL_PID" 2>/dev/null || break
      sleep 0.1
    done
    stop_anvil
    tries=$((tries + 1))
    [ "$tries" -lt 5 ] || die "anvil did not start"
  done
}

json_field() { node -e 'const o=JSON.parse(require("fs").readFileSync(0,"utf8"));process.stdout.write(String(o[process.argv[1]]))' "$1"; }
to_dec() { node -e 'process.stdout.write(BigInt(process.argv[1]).toString())' "$1"; }

# anvil's first default account (a well-known public test key, only ever used on local anvil).
ANVIL_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
CP_TYPE='(bytes32,uint64,bytes32,bytes32,bytes32,uint64)'
VECTOR_DIGEST=0xaecfe10b1fd0f442aea8733cfcfe080f44e85aee931e578812b8a3c0bd80dfcf
H32() { printf '0x'; for _ in $(seq 1 32); do printf '%s' "$1"; done; }

# Deploys the committed artifact with n validators and threshold t, submits checkpoints at 600
# and 700 signed by the t lowest-address validators (signatures by cast), prints the gas used.
anvil_scenario() {
  local n="$1" t="$2" i key addr pairs="" keys=() addrs=()
  for i in $(seq 1 "$n"); do
    key="$("$BIN/cast" keccak "cdrchain anvil validator $n/$i")"
    addr="$("$BIN/cast" wallet address --private-key "$key")"
    pairs+="$(printf '%s %s %s' "$(tr 'A-F' 'a-f' <<<"$addr")" "$addr" "$key")"$'\n'
  done
  while read -r _ addr key; do
    [ -n "$addr" ] || continue
    addrs+=("$addr")
    keys+=("$key")
  done < <(printf '%s' "$pairs" | sort)
  local list genesis bytecode ctor receipt contract deploy_gas
  list="[$(IFS=,; echo "${addrs[*]}")]"
  genesis="$(H32 11)"
  bytecode="$(node -p "require('$ARTIFACT').bytecode.object")"
  ctor="$("$BIN/cast" abi-encode 'constructor(bytes32,address[],uint256)' "$genesis" "$list" "$t")"
  receipt="$("$BIN/cast" send --rpc-url "$RPC" --private-key "$ANVIL_KEY" --json --create "$bytecode${ctor#0x}")"
  [ "$(json_field status <<<"$receipt")" = "0x1" ] || die "deployment failed: $receipt"
  contract="$("$BIN/cast" to-check-sum-address "$(json_field contractAddress <<<"$receipt")")"
  deploy_gas="$(to_dec "$(json_field gasUsed <<<"$receipt")")"
  printf '  %d validators, threshold %d: contract %s, deployment gas %s\n' "$n" "$t" "$contract" "$deploy_gas"

  local height cp digest sigs j gas latest
  for height in 600 700; do
    cp="($genesis,$height,$(H32 22),$(H32 33),$(H32 44),12345)"
    digest="$("$BIN/cast" call --rpc-url "$RPC" "$contract" "checkpointDigest($CP_TYPE)(bytes32)" "$cp")"
    if [ "$contract" = "0x5FbDB2315678afecb367f032d93F642f64180aa3" ] && [ "$height" = 600 ]; then
      [ "$digest" = "$VECTOR_DIGEST" ] || die "on-chain digest $digest differs from the README test vector $VECTOR_DIGEST"
      printf '  on-chain checkpointDigest at 0x5FbD...0aa3 (chain 33) equals the README test vector\n'
    fi
    sigs=()
    for j in $(seq 0 $((t - 1))); do
      sigs+=("$("$BIN/cast" wallet sign --no-hash --private-key "${keys[$j]}" "$digest")")
    done
    receipt="$("$BIN/cast" send --rpc-url "$RPC" --private-key "$ANVIL_KEY" --json "$contract" \
      "submitCheckpoint($CP_TYPE,bytes[])" "$cp" "[$(IFS=,; echo "${sigs[*]}")]")"
    [ "$(json_field status <<<"$receipt")" = "0x1" ] || die "submitCheckpoint failed: $receipt"
    gas="$(to_dec "$(json_field gasUsed <<<"$receipt")")"
    latest="$("$BIN/cast" call --rpc-url "$RPC" "$contract" 'latestHeight()(uint64)')"
    [ "$latest" = "$height" ] || die "latestHeight is $latest after submitting $height"
    printf '  submitCheckpoint(height %d, %d signatures): gas used %s (whole transaction)\n' "$height" "$t" "$gas"
  done
  # A replay must revert with HeightNotIncreasing(700, 700).
  local err
  if err="$("$BIN/cast" call --rpc-url "$RPC" "$contract" "submitCheckpoint($CP_TYPE,bytes[])" "$cp" \
    "[$(IFS=,; echo "${sigs[*]}")]" 2>&1)"; then
    die "replaying the checkpoint at 700 did not revert"
  fi
  local want
  want="$("$BIN/cast" calldata 'HeightNotIncreasing(uint64,uint64)' 700 700)"
  grep -q -- "$want" <<<"$err" || die "replay reverted, but not with HeightNotIncreasing(700, 700): $err"
  printf '  replay of height 700 reverts with HeightNotIncreasing(700, 700)\n'
}

cmd_anvil_smoke() {
  cmd_install
  [ -f "$ARTIFACT" ] || die "contracts/artifacts/CdrCheckpoint.json is missing: run scripts/contracts.sh build"
  start_anvil
  log "deploying the committed artifact and submitting checkpoints signed with cast"
  anvil_scenario 4 3
  anvil_scenario 7 5
  stop_anvil
}

cmd_gas() {
  cmd_install
  local n
  log "forge: each call as its own transaction (--isolate), gas incl. 21000 intrinsic and calldata"
  for n in 4 7; do
    local test="test_Gas_Submit_${n}Validators"
    forge test --isolate --gas-report --json --match-test "$test" 2>/dev/null | node -e '
      const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
      const c = r.find((x) => x.contract.endsWith(":CdrCheckpoint"));
      const f = Object.entries(c.functions).find(([k]) => k.startsWith("submitCheckpoint("))[1];
      console.log(`  ${process.argv[1]} validators, ${process.argv[2]} signatures: submitCheckpoint gas min ${f.min} max ${f.max} (${f.calls} calls)`);
    ' "$n" "$([ "$n" = 4 ] && echo 3 || echo 5)"
  done
  log "anvil (London rules): real transactions from the committed artifact"
  cmd_anvil_smoke
}

# ------------------------------------------------------------------------------------ main

[ $# -ge 1 ] || usage
sub="$1"
shift
case "$sub" in
  install) cmd_install ;;
  test) cmd_test "$@" ;;
  build) cmd_build ;;
  check-artifact) cmd_check_artifact ;;
  gas) cmd_gas ;;
  anvil-smoke) cmd_anvil_smoke ;;
  -h | --help | help) usage ;;
  *) log "unknown subcommand: $sub"; usage ;;
esac
