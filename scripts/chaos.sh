#!/usr/bin/env bash
# Longer chaos runs than the default suite's (issue 13): the crash run (kill -9, SIGSTOP
# pauses, clean restarts) of
# tests/tests/chaos_crash.rs for several seeds, each for SECONDS. Histories are kept in
# target/chaos/crash-seed-<seed>.jsonl; a failing seed prints its anomalies, and
# should be added as a regression test.
#
# Usage: scripts/chaos.sh [SECONDS] [SEED...]     (default: 60 s, seeds 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
cargo build --workspace --bins
failed=()
for seed in "${seeds[@]}"; do
  echo "== seed $seed, $seconds s"
  if ! SLUICE_CHAOS_SEED="$seed" SLUICE_CHAOS_SECONDS="$seconds" \
      cargo test -p sluice-tests --test chaos_crash -- --nocapture 2>&1 | grep -E "^seed|anomalies|panicked|test result"; then
    failed+=("$seed")
  fi
  grep -q . "target/chaos/crash-seed-$seed.jsonl" || failed+=("$seed (no history)")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed seeds: ${failed[*]}"
  exit 1
fi
echo "all seeds passed"
