#!/usr/bin/env bash
# Fetch sessions (KIP-227) benchmark: an idle Java consumer (kafka-console-consumer 4.1.1)
# of one topic with many partitions, against sluiced with fetch sessions on (the default
# 1000 slots) and off (--fetch-session-cache-slots 0). Prints the Fetch requests served and
# their request and response bytes per fetch, from sluiced's own metrics.
#
# Needs a release build (cargo build --release --bin sluiced) and the Kafka jars that
# scripts/test.sh provisions in tests/java/target/lib. Bounded: one 15 s consumer run per
# setting. Usage: scripts/bench-fetch-sessions.sh [PARTITIONS]   (default 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
partitions="${1:-1000}"
port="${SLUICE_BENCH_PORT:-29211}"
metrics_port="${SLUICE_BENCH_METRICS_PORT:-29212}"
classpath="tests/java/target/lib/*"
[ -x target/release/sluiced ] || { echo "build first: cargo build --release --bin sluiced" >&2; exit 1; }
ls tests/java/target/lib/kafka-tools-*.jar >/dev/null 2>&1 || { echo "run scripts/test.sh once to provision the Kafka jars" >&2; exit 1; }

sum() { grep "^$1{api=\"Fetch\"" | awk '{s += $2} END {printf "%d", s}'; }

for slots in 1000 0; do
  dir="$(mktemp -d)"
  ./target/release/sluiced --data-dir "$dir" --listen "127.0.0.1:$port" \
    --metrics-listen "127.0.0.1:$metrics_port" --fetch-session-cache-slots "$slots" \
    >"$dir/sluiced.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "127.0.0.1:$metrics_port/metrics" >/dev/null && break; sleep 0.1; done
  java -cp "$classpath" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" \
    --create --topic wide --partitions "$partitions" >/dev/null 2>&1
  timeout 30 java -cp "$classpath" org.apache.kafka.tools.consumer.ConsoleConsumer \
    --bootstrap-server "127.0.0.1:$port" --topic wide --timeout-ms 15000 >/dev/null 2>&1 || true
  metrics="$(curl -s "127.0.0.1:$metrics_port/metrics")"
  fetches="$(echo "$metrics" | sum sluice_requests_total)"
  request_bytes="$(echo "$metrics" | sum sluice_request_bytes_total)"
  response_bytes="$(echo "$metrics" | sum sluice_response_bytes_total)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  echo "slots=$slots partitions=$partitions fetches=$fetches request_bytes_per_fetch=$((request_bytes / fetches)) response_bytes_per_fetch=$((response_bytes / fetches))"
done
