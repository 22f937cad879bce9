#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 30) on the
# stable toolchain (`cargo fuzz -s none`: coverage-guided, no sanitizer), starting from
# the committed seeds (fuzz/seeds/<target>) plus what earlier runs on this machine found
# (kept under $FUZZ_WORK). Fails on the first crash, leak-free timeout or panic, and
# leaves the reproducer in fuzz/artifacts/<target>/. Prints each target's executions.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH="${FUZZ_SECONDS:-30}"
WORK="${FUZZ_WORK:-$HOME/.cache/tributary/fuzz-corpus}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/tributary/fuzz-target}"
cargo fuzz build -s none
targets=$(cargo fuzz list)
for t in $targets; do
  mkdir -p "$WORK/$t"
  log=$(mktemp)
  if ! cargo fuzz run -s none "$t" "$WORK/$t" "seeds/$t" -- \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    grep -m 3 -A 4 "panicked at" "$log" || true
    tail -n 40 "$log"
    echo "fuzz: $t FAILED (reproducer in fuzz/artifacts/$t/)"
    exit 1
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
  cov=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | grep -oE 'cov: [0-9]+' | tail -1 || true)
  echo "fuzz: $t ok: $runs executions in ${SECONDS_EACH}s, $cov"
  rm -f "$log"
done
