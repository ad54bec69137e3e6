#!/usr/bin/env bash
# The long run of the deterministic consensus simulator: N4 seeds with 4 validators and N7 with 7
# (f = (n-1)/3 Byzantine in each, with message loss, delay, duplication and crashes), split over
# JOBS processes. Prints each chunk's result and the total; exits 1 with the replay command of the
# first failing seed.
#
#   scripts/simulate.sh [N4] [N7] [JOBS]      (defaults: 70000 30000 2)
set -euo pipefail
cd "$(dirname "$0")/.."
n4="${1:-70000}"
n7="${2:-30000}"
jobs="${3:-2}"
cargo build --locked --release -p cdrchain-consensus --example simulate
bin=target/release/examples/simulate
started=$(date +%s)
chunks=()
for spec in "4 $n4" "7 $n7"; do
  read -r validators count <<<"$spec"
  [ "$count" -gt 0 ] || continue
  size=$(( (count + jobs - 1) / jobs ))
  for ((first = 0; first < count; first += size)); do
    n=$(( count - first < size ? count - first : size ))
    chunks+=("$validators $first $n")
  done
done
printf "%s\n" "${chunks[@]}" | xargs -P "$jobs" -L1 bash -c '"$0" --validators "$1" --first "$2" --seeds "$3"' "$bin"
echo "simulate: $((n4 + n7)) seeds ($n4 with 4 validators, $n7 with 7) passed in $(( $(date +%s) - started )) s on $jobs processes"
