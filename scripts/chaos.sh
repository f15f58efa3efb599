#!/usr/bin/env bash
# Longer chaos runs than the default suite's (issue 13), for several seeds, each for
# SECONDS: the crash run (kill -9, SIGSTOP pauses, clean restarts; tests/tests/chaos_crash.rs)
# and the partition runs (nodes in network namespaces: isolated, split, one-way, bridged,
# killed, and with 5 nodes majority/minority, bridge and ring; tests/tests/chaos_partition.rs
# and chaos_partition_five.rs, need root), the bad-network run (packet loss, delay and
# reordering in the lab; chaos_slow_network.rs), and the power-cut runs (nodes whose unsynced
# writes die with them, under --durability fsync and replicated; tests/tests/chaos_power_loss.rs)
# and the clock-jump run (wall clocks stepped by libfaketime; tests/tests/chaos_clock.rs), and
# the crash run's workload and faults against a 3-node Apache Kafka (tests/tests/chaos_kafka.rs).
# Histories are kept in
# target/chaos/<run>-seed-<seed>.jsonl; a failing seed prints its anomalies and should be
# added as a regression test. Bounded: each run ends after SECONDS plus its drain.
#
# Usage: scripts/chaos.sh [SECONDS] [SEED...]     (default: 60 s, seeds 1 2 3)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
cargo build --workspace --bins
cargo build -p sluice-broker --bin sluiced-faults --features fault-fs
failed=()
for seed in "${seeds[@]}"; do
  for run in crash partition partition_five slow_network power_loss clock kafka; do
    echo "== $run, seed $seed, $seconds s"
    if ! SLUICE_CHAOS_SEED="$seed" SLUICE_CHAOS_SECONDS="$seconds" \
        cargo test -p sluice-tests --test "chaos_$run" -- --nocapture 2>&1 \
        | grep -E "^seed|anomalies|panicked|test result: ok"; then
      failed+=("$run/$seed")
    fi
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "every run passed"
