#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, single node: broker + controller in one JVM) on
# loopback, for reference and comparison only: to check that an interop program is right
# before pointing it at sluiced, or to compare a wire exchange byte by byte.
#
#   scripts/kafka-reference.sh start [--port P] [--keep-data]   # default port 19092
#   scripts/kafka-reference.sh stop     # SIGTERM, waits for the exit
#   scripts/kafka-reference.sh kill     # SIGKILL (a crash), waits for the exit
#   scripts/kafka-reference.sh status
#
# The Kafka jars come from Maven Central through `mvn dependency:copy-dependencies` on a
# small generated pom, cached under target/kafka-reference/ (override with
# KAFKA_REFERENCE_DIR). Each start formats a fresh storage directory: the broker keeps no
# data between runs, except with --keep-data, which starts it again on the data and config
# of the last run (a restart: `sluice-bench scale --kafka-restart` times it).
# KAFKA_REFERENCE_OFFSETS_PARTITIONS sets offsets.topic.num.partitions (default 1, for a
# quick start; Kafka's own default is 50, which `sluice-bench groups` compares against).
# KAFKA_REFERENCE_GROUP_INITIAL_DELAY_MS sets group.initial.rebalance.delay.ms (default 0,
# so groups form at once; Kafka's own default is 3000).
set -euo pipefail

KAFKA_VERSION="${KAFKA_REFERENCE_VERSION:-4.1.1}"
SCALA_VERSION="2.13"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${KAFKA_REFERENCE_DIR:-$REPO_ROOT/target/kafka-reference}"
LIB_DIR="$CACHE_DIR/lib-$KAFKA_VERSION"
RUN_DIR="$CACHE_DIR/run"
PID_FILE="$CACHE_DIR/kafka.pid"
PORT_FILE="$CACHE_DIR/kafka.port"
LOG_FILE="$CACHE_DIR/kafka.log"
START_DEADLINE_SECS="${KAFKA_REFERENCE_START_DEADLINE_SECS:-90}"
STOP_DEADLINE_SECS=30

log() { printf '[kafka-reference] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

fetch_jars() {
    if [[ -f "$LIB_DIR/.complete" ]]; then
        return 0
    fi
    command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
    log "fetching org.apache.kafka:kafka_$SCALA_VERSION:$KAFKA_VERSION and its runtime dependencies into $LIB_DIR"
    local pom_dir="$CACHE_DIR/pom-$KAFKA_VERSION"
    mkdir -p "$pom_dir"
    cat >"$pom_dir/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>sluice</groupId>
  <artifactId>kafka-reference</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <!-- kafka_2.13 declares its logging backend only for tests; the broker needs one.
         Kafka $KAFKA_VERSION resolves slf4j-api 1.7.x, so the binding must be 1.7.x too. -->
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
EOF
    rm -rf "$LIB_DIR"
    mvn -B -q -Dstyle.color=never -f "$pom_dir/pom.xml" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIB_DIR" \
        || die "mvn could not fetch the Kafka jars"
    touch "$LIB_DIR/.complete"
}

cmd_start() {
    local port=19092 keep_data=false
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) port="${2:?--port needs a value}"; shift 2 ;;
            --port=*) port="${1#--port=}"; shift ;;
            --keep-data) keep_data=true; shift ;;
            *) usage ;;
        esac
    done
    if $keep_data && [[ -f "$PORT_FILE" ]]; then
        port="$(cat "$PORT_FILE")"
    fi
    local controller_port=$((port + 1))

    if pid="$(running_pid)"; then
        log "already running: pid $pid, bootstrap 127.0.0.1:$(cat "$PORT_FILE" 2>/dev/null || echo '?')"
        echo "pid=$pid"
        echo "bootstrap=127.0.0.1:$(cat "$PORT_FILE" 2>/dev/null || echo "$port")"
        return 0
    fi
    command -v java >/dev/null || die "java not found (a JDK 17+ is needed for Kafka 4)"
    if port_open "$port"; then die "127.0.0.1:$port is already in use"; fi
    if port_open "$controller_port"; then die "127.0.0.1:$controller_port (controller) is already in use"; fi

    fetch_jars

    local props="$RUN_DIR/server.properties"
    if $keep_data; then
        [[ -f "$props" ]] || die "--keep-data: no earlier run in $RUN_DIR"
        log "starting again on the data in $RUN_DIR/data"
    else
        format_storage "$port" "$controller_port"
    fi
    launch "$port"
}

# A fresh data directory and server.properties for ports $1 (client) and $2 (controller).
format_storage() {
    local port="$1" controller_port="$2"
    local props="$RUN_DIR/server.properties"
    local cp="$LIB_DIR/*"
    local jvm_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
        -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR/data"
    cat >"$props" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$RUN_DIR/data
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=${KAFKA_REFERENCE_OFFSETS_PARTITIONS:-1}
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=${KAFKA_REFERENCE_GROUP_INITIAL_DELAY_MS:-0}
message.max.bytes=10485760
EOF

    log "formatting KRaft storage in $RUN_DIR/data"
    java "${jvm_opts[@]}" -cp "$cp" kafka.tools.StorageTool format \
        --config "$props" --cluster-id "$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" \
        >"$RUN_DIR/format.log" 2>&1 \
        || { cat "$RUN_DIR/format.log" >&2; die "kafka storage format failed"; }
}

# Start the broker on $RUN_DIR and wait until it accepts connections on port $1.
launch() {
    local port="$1"
    local props="$RUN_DIR/server.properties"
    local cp="$LIB_DIR/*"
    local jvm_opts=(-Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true
        -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
    log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$port (log: $LOG_FILE)"
    nohup java "${jvm_opts[@]}" -cp "$cp" kafka.Kafka "$props" >"$LOG_FILE" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$PID_FILE"
    echo "$port" >"$PORT_FILE"

    local deadline=$((SECONDS + START_DEADLINE_SECS))
    until port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$LOG_FILE" >&2 || true
            rm -f "$PID_FILE"
            die "Kafka exited during start-up"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 40 "$LOG_FILE" >&2 || true
            kill "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            die "Kafka did not accept connections on 127.0.0.1:$port within ${START_DEADLINE_SECS}s"
        fi
        sleep 0.5
    done
    log "ready"
    echo "pid=$pid"
    echo "bootstrap=127.0.0.1:$port"
}

cmd_stop() {
    local signal="${1:-TERM}"
    local pid
    if ! pid="$(running_pid)"; then
        log "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    log "stopping pid $pid (SIG$signal)"
    kill "-$signal" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_DEADLINE_SECS))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "no exit after ${STOP_DEADLINE_SECS}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.5
    done
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "running pid=$pid bootstrap=127.0.0.1:$(cat "$PORT_FILE" 2>/dev/null || echo '?')"
    else
        echo "not running"
        return 1
    fi
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop TERM ;;
    kill) shift; cmd_stop KILL ;;
    status) shift; cmd_status "$@" ;;
    *) usage ;;
esac
