#!/usr/bin/env bash
# Soak runs of the fault harness (issue 13, docs/chaos.md, docs/reliability.md): N seeded
# schedules of each chaos run, each SECONDS long, then a summary of all of them.
#
#   scripts/chaos.sh [N] [SECONDS] [RUN...]      (default: 3 schedules, 60 s, every run)
#
# Runs (tests/tests/chaos_<run>.rs): crash (kill -9, pauses, restarts, rolling restarts,
# reassignments), partition and partition_five (network partitions in namespaces; root),
# slow_network (packet loss, delay, reordering, duplication; root), power_loss (power cuts
# under --durability fsync and replicated), clock (wall-clock jumps), kafka (the crash
# run's workload and faults against Apache Kafka 4.1.1), kafka_partition (the partition
# run's against Kafka in the same kind of network lab; root). Seeds are FIRST_SEED..FIRST_SEED+N-1
# (SLUICE_CHAOS_FIRST_SEED, default 1000, away from the seeds the default suite runs).
# Histories go to target/chaos/<run>-seed-<seed>.jsonl (the test's whole output to .out
# beside it); each checked run adds a line to
# target/chaos/runs.jsonl; the summary (schedules, faults, records, anomalies,
# unavailability p50/p99 per fault) is printed and written to target/chaos/summary.md.
# A failing seed prints its anomalies and should be kept as a regression test. Bounded:
# every run ends after SECONDS plus its drain.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-3}"
seconds="${2:-60}"
shift 2 || shift $# || true
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(crash partition partition_five slow_network power_loss clock kafka kafka_partition)
first="${SLUICE_CHAOS_FIRST_SEED:-1000}"
cargo build --workspace --bins
cargo build -p sluice-broker --bin sluiced-faults --features fault-fs
mkdir -p target/chaos
rm -f target/chaos/runs.jsonl
failed=()
for ((seed = first; seed < first + count; seed++)); do
  for run in "${runs[@]}"; do
    echo "== $run, seed $seed, $seconds s"
    out="target/chaos/$run-seed-$seed.out"
    if ! SLUICE_CHAOS_SEED="$seed" SLUICE_CHAOS_SECONDS="$seconds" \
        cargo test -q -p sluice-tests --test "chaos_$run" -- --nocapture >"$out" 2>&1; then
      grep -E "seed [0-9]+:|anomalies|panicked" "$out" || true
      echo "   (whole output in $out)"
      failed+=("$run/$seed")
    else
      grep -E "seed [0-9]+:" "$out" || true
    fi
  done
done
python3 - <<'PY' | tee target/chaos/summary.md
import json, collections
runs = [json.loads(l) for l in open("target/chaos/runs.jsonl")] if __import__("os").path.exists("target/chaos/runs.jsonl") else []
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] if values else 0
groups = collections.defaultdict(list)
for r in runs:
    groups[(r["run"], r["target"])].append(r)
print("| run | target | schedules | faults | acknowledged | group commits | anomalies | longest gap p50 / p99 ms | gap per fault p50 / p99 ms |")
print("|---|---|---|---|---|---|---|---|---|")
for (run, target), rs in sorted(groups.items()):
    faults = collections.Counter(f for r in rs for f in r["faults"])
    by_fault = collections.defaultdict(list)
    for r in rs:
        for kind, ms in r["unavailable_by_fault"].items():
            by_fault[kind].append(ms)
    longest = [r["longest_unavailable_ms"] for r in rs]
    print("| %s | %s | %d | %s | %d | %d | %d | %d / %d | %s |" % (
        run, target, len(rs), ", ".join("%s %d" % kv for kv in sorted(faults.items())),
        sum(r["acked"] for r in rs), sum(r["commits"] for r in rs), sum(r["anomalies"] for r in rs),
        pct(longest, 50), pct(longest, 99),
        ", ".join("%s %d / %d" % (k, pct(v, 50), pct(v, 99)) for k, v in sorted(by_fault.items()))))
PY
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "every run passed"
