#!/usr/bin/env bash
# Installs what a fresh machine of this kind lacks for building and testing cdrchain. Idempotent:
# checks first, installs only what is missing, says what it does.
#   Debian: libclang-dev and clang (RocksDB's bindings), pkg-config; kamailio,
#           kamailio-extra-modules (acc_json), kamailio-utils-modules (http_client) and
#           sip-tester (sipp) for the SIP ingest end-to-end test; iproute2 (`ip netns`, veth)
#           for the test that runs a node on a non-loopback address in a network namespace;
#           chromium for the partner portal's browser test; prometheus for promtool.
#   npm:    forge, anvil, cast and solc-js for contracts/ (scripts/contracts.sh install);
#           playwright-core for the portal's browser test (tests/portal).
#   Cargo:  cargo-nextest (the test runner), if absent.
#
# With --build-only (scripts/run.sh, scripts/testnet.sh) it installs only what building the
# binary needs (the Debian packages for RocksDB's bindings): a first `scripts/run.sh` does not
# wait for Kamailio, sipp, the contract toolchain or the test runner, which only tests use.
set -euo pipefail

log() { printf '[install-deps] %s\n' "$*" >&2; }

build_only=0
case "${1:-}" in
  --build-only) build_only=1 ;;
  "") ;;
  *) log "usage: $0 [--build-only]"; exit 2 ;;
esac

apt_packages=(libclang-dev clang pkg-config)
if [ "$build_only" -eq 0 ]; then
  # iproute2: network namespaces, veth and tc for the fault tests (tests/faults.rs).
  apt_packages+=(kamailio kamailio-extra-modules kamailio-utils-modules sip-tester iproute2)
  # chromium: the partner portal's browser test (tests/portal.rs), driven by playwright-core.
  apt_packages+=(chromium)
  # prometheus: its promtool checks and unit-tests monitoring/'s alerting rules (the server is
  # not run).
  apt_packages+=(prometheus)
fi
need_apt=()
for pkg in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    need_apt+=("$pkg")
  fi
done
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing Debian packages: ${need_apt[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ "$build_only" -eq 1 ]; then
  if ! command -v cargo >/dev/null 2>&1; then
    log "cargo is not installed: this machine kind ships Rust; install rustup and re-run"
    exit 1
  fi
  exit 0
fi

# The contract toolchain (forge, anvil, cast, solc-js) from the npm registry, into contracts/.
if ! command -v npm >/dev/null 2>&1; then
  log "npm is missing: this machine kind ships Node.js and npm; install them and re-run"
  exit 1
fi
"$(dirname "$0")/contracts.sh" install

# playwright-core (the portal's browser test drives Debian's Chromium with it), from the lock file.
portal_tests="$(dirname "$0")/../tests/portal"
if [ ! -d "$portal_tests/node_modules/playwright-core" ]; then
  log "installing playwright-core into tests/portal"
  npm ci --prefix "$portal_tests" --no-audit --no-fund >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  log "cargo is not installed: this machine kind ships Rust; install rustup and re-run"
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest from crates.io"
  cargo install --locked cargo-nextest
fi
