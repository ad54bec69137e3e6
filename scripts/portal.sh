#!/usr/bin/env bash
# Builds the partner portal's verifier (portal/verifier: cdrchain's bundle verification) to
# WebAssembly as portal/web/verifier.wasm, which the node embeds and serves, and records the
# digest of its inputs in portal/web/verifier.wasm.inputs (portal/verifier/tests/fresh.rs fails
# when the sources change without a rebuild). Run it after changing runtime/, chain-spec/,
# node/formats/ or portal/verifier/, and commit both files. Paths are remapped and the module stripped, so the
# same sources and toolchain make the same bytes on any machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "== installing the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi
root="$PWD"
registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
echo "== building portal/verifier for wasm32-unknown-unknown"
RUSTFLAGS="--cfg getrandom_backend=\"custom\" --remap-path-prefix=$root=/cdrchain --remap-path-prefix=$registry=/cargo" \
  cargo build --locked -p cdrchain-verifier --target wasm32-unknown-unknown --release --target-dir target/wasm \
  --config profile.release.debug=false --config profile.release.strip=true
cp target/wasm/wasm32-unknown-unknown/release/cdrchain_verifier.wasm portal/web/verifier.wasm
CDRCHAIN_PORTAL_WRITE_INPUTS=1 cargo test --locked -q -p cdrchain-verifier --test fresh
echo "portal/web/verifier.wasm: $(wc -c < portal/web/verifier.wasm) bytes, sha256 $(sha256sum portal/web/verifier.wasm | cut -d' ' -f1)"
