#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ for SECONDS each (default 30) on their committed corpora,
# JOBS at a time (default 1), installing cargo-fuzz (with the nightly toolchain) when missing.
# Prints one line per target: executions, seconds, new corpus entries. A crash leaves its input
# in fuzz/artifacts/<target>/ and makes the script fail; turn it into a regression test.
#
#   scripts/fuzz.sh [--jobs JOBS] [SECONDS] [TARGET...]
#
# CI runs `scripts/fuzz.sh --jobs 2 5` (scripts/test.sh); docs/reliability.md has the long runs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
jobs=1
if [ "${1:-}" = "--jobs" ]; then
  jobs="$2"
  shift 2
fi
seconds="${1:-30}"
shift || true
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
echo "== building ${#targets[@]} fuzz targets"
cargo +nightly fuzz build -O
logs="target/fuzz-logs"
mkdir -p "$logs"

run_one() {
  local target="$1" seconds="$2" logs="$3"
  mkdir -p "corpus/$target" "artifacts/$target"
  local before
  before=$(find "corpus/$target" -type f | wc -l)
  # 4 KiB inputs at most: the decoders' branches are reached by small inputs, and larger ones
  # would fill the corpus with megabytes of switch logs. -timeout: one input over 10 s is a hang.
  # The binary itself, not `cargo fuzz run`, so that a long run does not rebuild mid-way.
  "target/x86_64-unknown-linux-gnu/release/$target" "corpus/$target" \
    -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 >"$logs/$target.log" 2>&1 || true
  local execs after
  execs=$(grep -aoP "stat::number_of_executed_units:\s*\K[0-9]+" "$logs/$target.log" | tail -1 || echo 0)
  after=$(find "corpus/$target" -type f | wc -l)
  if [ -n "$(ls -A "artifacts/$target" 2>/dev/null)" ]; then
    echo "fuzz: $target FOUND A CRASH after ${execs} executions: fuzz/artifacts/$target/ (log: fuzz/$logs/$target.log)"
    grep -E "panicked|SUMMARY|ERROR" "$logs/$target.log" | head -5
    return 1
  fi
  printf "fuzz: %-20s %12s executions in %5s s, corpus %5s -> %5s\n" "$target" "$execs" "$seconds" "$before" "$after"
}
export -f run_one
printf "%s\n" "${targets[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} "$seconds" "$logs"
