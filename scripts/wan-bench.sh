#!/usr/bin/env bash
# The WAN figures of docs/reliability.md: four validators in network namespaces behind the test
# harness's delaying relay (tests/common/relay.rs), with no added delay and with 100 ms RTT
# (50 ms ± 10 ms each way) between every pair; `cdrchain bench localnet --attach` measures the
# ceiling and the latency at 20,000 CDRs/s offered on each. Needs root. Release build.
#
#   scripts/wan-bench.sh [SECONDS]      (load per run, default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
WAN_BENCH_DURATION_S="${1:-20}" cargo test --release --locked -p cdrchain-cli --test e2e_faults -- \
  --ignored --exact wan_benchmark --nocapture
