#!/usr/bin/env bash
# A Sluice cluster of N brokers on 127.0.0.1, with Prometheus scraping it.
#
#   deploy/local-cluster.sh up [N] [--bin-dir DIR]   start N brokers (default: the size in
#                                                    cluster.env, else 3) and Prometheus; on a
#                                                    cluster that is partly up, start only
#                                                    what is not running
#   deploy/local-cluster.sh status                   which processes run, and `sluice cluster`
#   deploy/local-cluster.sh start I                  start broker I again (it rejoins the ISR)
#   deploy/local-cluster.sh stop I                   stop broker I (SIGTERM: controlled shutdown)
#   deploy/local-cluster.sh kill I                   SIGKILL broker I (a crash, for failure drills)
#   deploy/local-cluster.sh down [--clean]           stop them all; --clean also deletes the data
#   deploy/local-cluster.sh [COMMAND] --help         this text
#
# Everything lives under one base directory, ${SLUICE_LOCAL_DIR:-<repo>/.local-cluster}:
#   cluster.env                  what `up` started (read by the other commands)
#   node-I/data/                 broker I's data directory (kept by `down`, reused by `up`)
#   node-I/sluiced.log, .pid     its stdout/stderr (appended by every start) and process id
#   prometheus/prometheus.yml    the generated scrape config (rules: deploy/alerts.yml)
#   prometheus/data/, .log, .pid Prometheus' storage, output and process id
#
# A broker started again (`up` on a partly running cluster, `start I`) gets the ports, data
# directory and arguments recorded in cluster.env when the cluster was started; `up` after
# `down` starts the whole cluster on its data with the current environment.
#
# Broker I (1..N) listens on 127.0.0.1 at
#   Kafka     SLUICE_BASE_PORT + I - 1           (default 19092, 19093, ...)
#   internal  SLUICE_INTERNAL_BASE_PORT + I - 1  (default 19192, ...; controller/Raft traffic)
#   metrics   SLUICE_METRICS_BASE_PORT + I - 1   (default 19644, ...; /metrics)
# and Prometheus on SLUICE_PROMETHEUS_PORT (default 19090).
#
# The controller quorum: the first V brokers are voters, the others metadata learners.
# V is SLUICE_VOTERS if set, else the largest odd number <= min(N, 5) (1, 1, 3, 3, 5, 5, ...):
# an odd quorum tolerates as many failures as the next even one with less traffic, and more
# than 5 voters only slow the metadata log down.
#
# Environment:
#   SLUICED, SLUICE          the broker and CLI binaries (else --bin-dir, else
#                            $CARGO_TARGET_DIR or <repo>/target, release before debug)
#   PROMETHEUS               the prometheus binary (default: `prometheus` on PATH)
#   SLUICE_PROMETHEUS        auto (default: start it when installed), 1 (required), 0 (never)
#   SLUICE_PROMETHEUS_SCRAPE_INTERVAL  scrape and rule evaluation interval (default 5s)
#   SLUICED_EXTRA_ARGS       extra flags for every broker, split on spaces
#                            (e.g. "--broker-session-timeout-ms 3000 --durability fsync")
#   SLUICE_RACKS             comma-separated racks: broker I gets the I-th (optional)
#   SLUICE_SHUTDOWN_TIMEOUT_MS  the brokers' --shutdown-timeout-ms (default 3000; sluiced's
#                            own default is 10000): how long a stopping broker tries to hand
#                            its leaderships over. The last voters to stop have no quorum
#                            left to ask and wait this long; a flag in SLUICED_EXTRA_ARGS wins
#   SLUICE_START_TIMEOUT     seconds `up` and `start` wait for the processes (default 60)
#   SLUICE_STOP_TIMEOUT      seconds `down` and `stop` wait for each process after SIGTERM
#                            before SIGKILL (default 30)
# The brokers get none of the caller's other SLUICE_* variables (sluiced would read them as
# its own configuration); pass broker options through SLUICED_EXTRA_ARGS.
#
# Only processes this script started are ever signalled: a pid file is trusted only while
# /proc/PID/cmdline still names this cluster's data directory.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ALERTS_FILE="$REPO_ROOT/deploy/alerts.yml"
PROG="deploy/local-cluster.sh"

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
note() { printf '%s\n' "$*"; }

# The header above (every comment line after the first), to stdout for --help; the
# command list alone, to stderr, after a usage error.
usage() {
    local status=${1:-0}
    if ((status == 0)); then
        awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
    else
        {
            echo "usage:"
            awk 'NR <= 3 { next } /^#$/ { exit } { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
            printf '(%s --help for the ports, directories and variables)\n' "$PROG"
        } >&2
    fi
    exit "$status"
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# ---------------------------------------------------------------------------------------
# Settings

# The base directory as an absolute, normalised path (pid files are matched against the
# command lines that name it). `up` creates it (after parsing its arguments); the other
# commands only look.
base_dir() {
    local dir="${SLUICE_LOCAL_DIR:-$REPO_ROOT/.local-cluster}" create=$1
    if [[ ! -d "$dir" ]]; then
        if ((create)); then
            mkdir -p "$dir" || die "cannot create $dir"
        else
            [[ "$dir" == /* ]] || dir="$PWD/$dir"
            echo "$dir"
            return 0
        fi
    fi
    (cd "$dir" && pwd)
}

read_settings() {
    CLIENT_BASE="${SLUICE_BASE_PORT:-19092}"
    INTERNAL_BASE="${SLUICE_INTERNAL_BASE_PORT:-19192}"
    METRICS_BASE="${SLUICE_METRICS_BASE_PORT:-19644}"
    PROMETHEUS_PORT="${SLUICE_PROMETHEUS_PORT:-19090}"
    SCRAPE_INTERVAL="${SLUICE_PROMETHEUS_SCRAPE_INTERVAL:-5s}"
    SHUTDOWN_TIMEOUT_MS="${SLUICE_SHUTDOWN_TIMEOUT_MS:-3000}"
    START_TIMEOUT="${SLUICE_START_TIMEOUT:-60}"
    STOP_TIMEOUT="${SLUICE_STOP_TIMEOUT:-30}"
    local name
    for name in CLIENT_BASE INTERNAL_BASE METRICS_BASE PROMETHEUS_PORT SHUTDOWN_TIMEOUT_MS START_TIMEOUT STOP_TIMEOUT; do
        is_uint "${!name}" || die "$name must be a number, got '${!name}'"
    done
    [[ "$SCRAPE_INTERVAL" =~ ^[0-9]+(ms|s|m)$ ]] \
        || die "SLUICE_PROMETHEUS_SCRAPE_INTERVAL must look like 1s, 500ms or 1m, got '$SCRAPE_INTERVAL'"
}

default_voters() {
    local n=$1 v
    v=$((n < 5 ? n : 5))
    ((v % 2 == 1)) || v=$((v - 1))
    echo "$v"
}

client_port() { echo $((CLIENT_BASE + $1 - 1)); }
internal_port() { echo $((INTERNAL_BASE + $1 - 1)); }
metrics_port() { echo $((METRICS_BASE + $1 - 1)); }

bootstrap() {
    local i out=()
    for ((i = 1; i <= NODES; i++)); do out+=("127.0.0.1:$(client_port "$i")"); done
    (IFS=,; echo "${out[*]}")
}

# Every broker's metrics address, comma-joined (for `sluice top --metrics`).
metrics_addresses() {
    local i out=()
    for ((i = 1; i <= NODES; i++)); do out+=("127.0.0.1:$(metrics_port "$i")"); done
    (IFS=,; echo "${out[*]}")
}

# Locate sluiced and sluice: SLUICED/SLUICE, then --bin-dir, then the cargo target dir.
find_binaries() {
    local bin_dir=$1 dir
    if [[ -z "${SLUICED:-}" || -z "${SLUICE:-}" ]]; then
        local candidates=()
        if [[ -n "$bin_dir" ]]; then
            candidates=("$bin_dir")
        else
            local target="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
            candidates=("$target/release" "$target/debug")
        fi
        for dir in "${candidates[@]}"; do
            if [[ -x "$dir/sluiced" ]]; then
                SLUICED="${SLUICED:-$dir/sluiced}"
                [[ -x "$dir/sluice" ]] && SLUICE="${SLUICE:-$dir/sluice}"
                break
            fi
        done
    fi
    [[ -n "${SLUICED:-}" && -x "${SLUICED:-}" ]] \
        || die "no sluiced binary (looked in ${candidates[*]:-SLUICED=${SLUICED:-}}); build it with 'cargo build --release --bins', or set SLUICED or --bin-dir"
    SLUICED="$(cd "$(dirname "$SLUICED")" && pwd)/$(basename "$SLUICED")"
    if [[ -n "${SLUICE:-}" && -x "$SLUICE" ]]; then
        SLUICE="$(cd "$(dirname "$SLUICE")" && pwd)/$(basename "$SLUICE")"
    else
        SLUICE=""
    fi
}

# Write what `up` started, for the other commands and for restarts (values shell-quoted).
write_state() {
    {
        printf 'NODES=%q\n' "$NODES"
        printf 'VOTERS=%q\n' "$VOTERS"
        printf 'CLIENT_BASE=%q\n' "$CLIENT_BASE"
        printf 'INTERNAL_BASE=%q\n' "$INTERNAL_BASE"
        printf 'METRICS_BASE=%q\n' "$METRICS_BASE"
        printf 'PROMETHEUS_PORT=%q\n' "$PROMETHEUS_PORT"
        printf 'PROMETHEUS_STARTED=%q\n' "$PROMETHEUS_STARTED"
        printf 'PROMETHEUS_BIN=%q\n' "$PROMETHEUS_BIN"
        printf 'SLUICED=%q\n' "$SLUICED"
        printf 'SLUICE=%q\n' "$SLUICE"
        printf 'EXTRA_ARGS=%q\n' "$EXTRA_ARGS"
        printf 'RACKS=%q\n' "$RACKS"
        printf 'SHUTDOWN_TIMEOUT_MS=%q\n' "$SHUTDOWN_TIMEOUT_MS"
    } >"$BASE/cluster.env.tmp"
    mv "$BASE/cluster.env.tmp" "$BASE/cluster.env"
}

read_state() {
    [[ -f "$BASE/cluster.env" ]] || return 1
    # Not in a cluster.env written by an older version of this script.
    PROMETHEUS_BIN="" EXTRA_ARGS="" RACKS=""
    # shellcheck disable=SC1091 # written by write_state above
    source "$BASE/cluster.env"
}

# ---------------------------------------------------------------------------------------
# Processes

node_dir() { echo "$BASE/node-$1"; }
prometheus_dir() { echo "$BASE/prometheus"; }

# Whether PID is alive. A zombie (exited, not reaped yet: our processes are reparented to
# init, which may take a second or two) counts as gone.
pid_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 0
    stat=${stat##*) }
    [[ "${stat%% *}" != Z ]]
}

# The pid in FILE if that process is alive and its command line contains MARK (so a
# recycled pid of an unrelated process is never taken for ours); empty otherwise.
owned_pid() {
    local file=$1 mark=$2 pid
    [[ -f "$file" ]] || return 0
    pid="$(cat "$file" 2>/dev/null || true)"
    is_uint "$pid" || return 0
    pid_alive "$pid" || return 0
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "$mark" || return 0
    fi
    echo "$pid"
}

node_pid() { owned_pid "$(node_dir "$1")/sluiced.pid" "$(node_dir "$1")/data"; }
prometheus_pid() {
    owned_pid "$(prometheus_dir)/prometheus.pid" "--storage.tsdb.path=$(prometheus_dir)/data"
}

# A member of the cluster is a broker number or "prometheus".
member_name() { if [[ "$1" == prometheus ]]; then echo prometheus; else echo "broker $1"; fi; }
member_pid() { if [[ "$1" == prometheus ]]; then prometheus_pid; else node_pid "$1"; fi; }
member_pid_file() {
    if [[ "$1" == prometheus ]]; then echo "$(prometheus_dir)/prometheus.pid"; else echo "$(node_dir "$1")/sluiced.pid"; fi
}
member_log() {
    if [[ "$1" == prometheus ]]; then echo "$(prometheus_dir)/prometheus.log"; else echo "$(node_dir "$1")/sluiced.log"; fi
}

# Whether something accepts connections on 127.0.0.1:PORT.
port_in_use() {
    # shellcheck disable=SC2016 # $0 is expanded by the inner shell
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

# HTTP/1.0 GET over bash's /dev/tcp, for machines without curl: prints the body, fails
# unless the status is 200.
raw_http_get() {
    local port=$1 path=$2 response status_line
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
    response="$(cat <&3)"
    exec 3<&-
    status_line="${response%%$'\r'*}"
    [[ "$status_line" == *" 200 "* ]] || return 1
    printf '%s' "${response#*$'\r\n\r\n'}"
}

# GET http://127.0.0.1:PORT/PATH (3 s at most); prints the body, fails unless status 200.
http_get() {
    local port=$1 path=$2
    if command -v curl >/dev/null; then
        curl -fsS --max-time 3 "http://127.0.0.1:$port$path" 2>/dev/null
    else
        timeout 3 bash -c "$(declare -f raw_http_get); raw_http_get \"\$@\"" _ "$port" "$path" 2>/dev/null
    fi
}

# Start a detached process: its own session (Ctrl-C in this terminal does not reach it),
# stdin from /dev/null, output appended to LOG; writes its pid to PIDFILE.
spawn() {
    local pidfile=$1 log=$2
    shift 2
    printf '\n---- %s: %s ----\n' "$(date '+%F %T')" "$*" >>"$log"
    if command -v setsid >/dev/null; then
        setsid "$@" </dev/null >>"$log" 2>&1 &
    else
        nohup "$@" </dev/null >>"$log" 2>&1 &
    fi
    echo $! >"$pidfile"
}

# SIGTERM every PID at once, wait up to STOP_TIMEOUT seconds for them to exit, then SIGKILL
# the ones left. NAMES[i] says what PIDS[i] is.
stop_pids() {
    local -n pids_=$1 names_=$2
    local i deadline left
    for i in "${!pids_[@]}"; do kill -TERM "${pids_[i]}" 2>/dev/null || true; done
    deadline=$((SECONDS + STOP_TIMEOUT))
    while :; do
        left=()
        for i in "${!pids_[@]}"; do pid_alive "${pids_[i]}" && left+=("$i"); done
        ((${#left[@]} == 0)) && break
        if ((SECONDS >= deadline)); then
            for i in "${left[@]}"; do
                note "${names_[i]} (pid ${pids_[i]}) still running ${STOP_TIMEOUT}s after SIGTERM: SIGKILL"
                kill -KILL "${pids_[i]}" 2>/dev/null || true
            done
            # Gone once the kernel has torn it down; bounded as well.
            deadline=$((SECONDS + 10))
            while ((SECONDS < deadline)); do
                left=()
                for i in "${!pids_[@]}"; do pid_alive "${pids_[i]}" && left+=("$i"); done
                ((${#left[@]} == 0)) && break
                sleep 0.1
            done
            break
        fi
        sleep 0.1
    done
    for i in "${!pids_[@]}"; do
        if pid_alive "${pids_[i]}"; then
            note "${names_[i]} (pid ${pids_[i]}) did not exit"
        else
            note "stopped ${names_[i]} (pid ${pids_[i]})"
        fi
    done
}

# Stop the MEMBERs that run, together (stop_pids), and drop the pid files of those gone.
stop_members() {
    local member pid pids=() names=()
    for member in "$@"; do
        pid="$(member_pid "$member")"
        [[ -n "$pid" ]] && pids+=("$pid") names+=("$(member_name "$member")")
    done
    ((${#pids[@]} > 0)) && stop_pids pids names
    for member in "$@"; do
        [[ -n "$(member_pid "$member")" ]] || rm -f "$(member_pid_file "$member")"
    done
    return 0
}

# Stop Prometheus, then every broker. The brokers get SIGTERM together: each hands its
# leaderships over in a controlled shutdown, which the controller quorum must commit, so
# the last voters to stop may have no quorum left and wait --shutdown-timeout-ms
# (SLUICE_SHUTDOWN_TIMEOUT_MS). Together, every request usually commits before anyone
# leaves (3 brokers, debug build: `down` in 0.2-1.6 s, and in about a third of the runs the
# controller leaves first and one broker waits the timeout). Stopping the non-controllers
# first and the controller last, or the controller first, was slower: the last one then
# always waited the timeout.
stop_all() {
    local i nodes=()
    stop_members prometheus
    for ((i = 1; i <= NODES; i++)); do nodes+=("$i"); done
    stop_members "${nodes[@]}"
}

# ---------------------------------------------------------------------------------------
# Prometheus

prometheus_binary() {
    local bin="${PROMETHEUS:-prometheus}"
    command -v "$bin" 2>/dev/null || true
}

write_prometheus_config() {
    local file=$1 i
    {
        echo "# Generated by $PROG for the $NODES-broker cluster in $BASE."
        echo "global:"
        echo "  scrape_interval: $SCRAPE_INTERVAL"
        echo "  evaluation_interval: $SCRAPE_INTERVAL"
        echo "  external_labels: {cluster: local}"
        echo "rule_files:"
        echo "  - '$ALERTS_FILE'"
        echo "scrape_configs:"
        echo "  - job_name: sluice"
        echo "    static_configs:"
        # One target group per broker, labelled with its node id.
        for ((i = 1; i <= NODES; i++)); do
            echo "      - targets: ['127.0.0.1:$(metrics_port "$i")']"
            echo "        labels: {node: '$i'}"
        done
    } >"$file"
}

# ---------------------------------------------------------------------------------------
# Starting

# The ports MEMBER listens on.
member_ports() {
    if [[ "$1" == prometheus ]]; then
        echo "$PROMETHEUS_PORT"
    else
        echo "$(client_port "$1") $(internal_port "$1") $(metrics_port "$1")"
    fi
}

# Refuse to start MEMBERs unless every port they need is free.
check_ports_free() {
    local member port busy=()
    for member in "$@"; do
        for port in $(member_ports "$member"); do
            ((port >= 1 && port <= 65535)) || die "port $port is out of range"
            port_in_use "$port" && busy+=("$port")
        done
    done
    ((${#busy[@]} == 0)) \
        || die "ports already in use on 127.0.0.1: ${busy[*]} (another cluster? choose other ports with SLUICE_BASE_PORT, SLUICE_INTERNAL_BASE_PORT, SLUICE_METRICS_BASE_PORT, SLUICE_PROMETHEUS_PORT)"
}

# Start broker I with the arguments recorded in cluster.env (the same on every start).
start_node() {
    local i=$1 v dir voters_list=() racks=() extra=() args=() unset_env=() name
    dir="$(node_dir "$i")"
    mkdir -p "$dir/data"
    for ((v = 1; v <= VOTERS; v++)); do voters_list+=("$v@127.0.0.1:$(internal_port "$v")"); done
    [[ -n "$RACKS" ]] && IFS=, read -r -a racks <<<"$RACKS"
    # Word splitting on purpose: SLUICED_EXTRA_ARGS is a space-separated flag list.
    [[ -n "$EXTRA_ARGS" ]] && read -r -a extra <<<"$EXTRA_ARGS"
    args=(--node-id "$i" --data-dir "$dir/data"
        --listen "127.0.0.1:$(client_port "$i")"
        --internal-listen "127.0.0.1:$(internal_port "$i")"
        --metrics-listen "127.0.0.1:$(metrics_port "$i")"
        --controller-voters "$(IFS=,; echo "${voters_list[*]}")")
    [[ -n "${racks[i - 1]:-}" ]] && args+=(--rack "${racks[i - 1]}")
    # sluiced refuses a flag given twice: one in SLUICED_EXTRA_ARGS wins.
    [[ " $EXTRA_ARGS" == *" --shutdown-timeout-ms"* ]] \
        || args+=(--shutdown-timeout-ms "$SHUTDOWN_TIMEOUT_MS")
    args+=("${extra[@]}")
    # sluiced reads SLUICE_* variables as configuration: the caller's do not go through.
    while read -r name; do unset_env+=(-u "$name"); done < <(compgen -e | grep '^SLUICE_' || true)
    spawn "$dir/sluiced.pid" "$dir/sluiced.log" env "${unset_env[@]}" NO_COLOR=1 "$SLUICED" "${args[@]}"
}

start_prometheus() {
    local pdir
    pdir="$(prometheus_dir)"
    mkdir -p "$pdir/data"
    [[ -f "$pdir/prometheus.yml" ]] || write_prometheus_config "$pdir/prometheus.yml"
    spawn "$pdir/prometheus.pid" "$pdir/prometheus.log" "$PROMETHEUS_BIN" \
        "--config.file=$pdir/prometheus.yml" \
        "--storage.tsdb.path=$pdir/data" \
        "--web.listen-address=127.0.0.1:$PROMETHEUS_PORT" \
        --web.enable-lifecycle
}

# Whether broker I answers: its metrics endpoint serves, and (with the CLI) `sluice cluster`
# asked of it names a controller and lists every running broker's address.
node_ready() {
    local i=$1 j out
    http_get "$(metrics_port "$i")" /metrics >/dev/null || return 1
    [[ -n "$SLUICE" && -x "$SLUICE" ]] || return 0
    out="$(timeout 5 env -u SLUICE_BOOTSTRAP "$SLUICE" --bootstrap "127.0.0.1:$(client_port "$i")" cluster 2>/dev/null)" \
        || return 1
    [[ "$out" =~ Controller:\ +[0-9]+ ]] || return 1
    for ((j = 1; j <= NODES; j++)); do
        [[ -z "$(node_pid "$j")" || "$out" == *"127.0.0.1:$(client_port "$j")"* ]] || return 1
    done
}

member_ready() {
    if [[ "$1" == prometheus ]]; then http_get "$PROMETHEUS_PORT" /-/ready >/dev/null; else node_ready "$1"; fi
}

# Whether the process this run just spawned for MEMBER is alive. Checked by its pid alone:
# between fork and exec its command line is still this script's, which owned_pid would
# not take for ours (under load that gap is long enough to be seen).
spawned_alive() {
    local pid
    pid="$(cat "$(member_pid_file "$1")" 2>/dev/null || true)"
    is_uint "$pid" && pid_alive "$pid"
}

# Start MEMBERs and wait, against one deadline, until each is ready. If one exits or is not
# ready in time, the end of its log is shown, the MEMBERs are stopped (nothing else) and
# the script fails.
start_members() {
    local member pending
    for member in "$@"; do
        if [[ "$member" == prometheus ]]; then start_prometheus; else start_node "$member"; fi
    done
    local deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        pending=()
        for member in "$@"; do
            if ! spawned_alive "$member"; then
                note "$(member_name "$member") exited during start-up; the end of $(member_log "$member"):" >&2
                tail -n 20 "$(member_log "$member")" >&2 || true
                stop_members "$@" >&2
                die "$(member_name "$member") did not start"
            fi
            member_ready "$member" || pending+=("$(member_name "$member")")
        done
        ((${#pending[@]} == 0)) && return 0
        if ((SECONDS >= deadline)); then
            note "not ready after ${START_TIMEOUT}s: ${pending[*]} (logs in $BASE)" >&2
            stop_members "$@" >&2
            die "${pending[*]} did not start"
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------
# Commands

print_endpoints() {
    local i
    note "bootstrap:  $(bootstrap)"
    for ((i = 1; i <= NODES; i++)); do
        note "broker $i:   kafka 127.0.0.1:$(client_port "$i")  internal 127.0.0.1:$(internal_port "$i")  metrics http://127.0.0.1:$(metrics_port "$i")/metrics"
    done
    if [[ "$PROMETHEUS_STARTED" == 1 ]]; then
        note "prometheus: http://127.0.0.1:$PROMETHEUS_PORT  (rules: $ALERTS_FILE)"
    fi
    note "logs:       $BASE/node-*/sluiced.log"
    if [[ "$PROMETHEUS_STARTED" == 1 ]]; then
        note "            $(prometheus_dir)/prometheus.log"
    fi
    print_try
}

# Ready-to-paste CLI commands for this cluster.
print_try() {
    local cli="${SLUICE:-sluice}"
    note "try:        $cli --bootstrap $(bootstrap) cluster"
    note "            $cli --bootstrap $(bootstrap) top --metrics $(metrics_addresses)"
}

# Parse the broker number of start/stop/kill into NODE_ARG (--help prints the usage).
node_arg() {
    local command=$1
    shift
    [[ "${1:-}" == -h || "${1:-}" == --help ]] && usage 0
    (($# == 1)) || die "expected one broker number (usage: $command I)"
    is_uint "$1" || die "not a broker number: '$1' (usage: $command I)"
    NODE_ARG=$1
}

# Load cluster.env for start/stop/kill, and check I is one of its brokers.
load_cluster_for() {
    local i=$1
    read_settings
    read_state || die "no cluster in $BASE (run '$PROG up')"
    ((i >= 1 && i <= NODES)) || die "broker $i: the cluster in $BASE has brokers 1..$NODES"
}

cmd_up() {
    local bin_dir="" nodes_arg=""
    while (($# > 0)); do
        case "$1" in
            --bin-dir) (($# >= 2)) || die "--bin-dir needs a directory"; bin_dir=$2; shift 2 ;;
            --bin-dir=*) bin_dir=${1#--bin-dir=}; shift ;;
            -h | --help) usage 0 ;;
            *)
                if [[ -n "$nodes_arg" ]] || ! is_uint "$1"; then
                    die "unexpected argument '$1' (usage: up [N] [--bin-dir DIR])"
                fi
                nodes_arg=$1
                shift
                ;;
        esac
    done
    if [[ -n "$nodes_arg" ]]; then
        ((nodes_arg >= 1 && nodes_arg <= 99)) || die "N must be between 1 and 99, got $nodes_arg"
    fi
    BASE="$(base_dir 1)"
    read_settings

    local i member
    if [[ -f "$BASE/cluster.env" ]]; then
        # read_state sets the variables of the cluster that was started; keep the caller's.
        local env_sluiced="${SLUICED:-}" env_sluice="${SLUICE:-}"
        local running=() stopped=()
        read_state
        for ((i = 1; i <= NODES; i++)); do
            if [[ -n "$(node_pid "$i")" ]]; then running+=("$i"); else stopped+=("$i"); fi
        done
        if [[ "$PROMETHEUS_STARTED" == 1 ]]; then
            if [[ -n "$(prometheus_pid)" ]]; then running+=(prometheus); else stopped+=(prometheus); fi
        fi
        if ((${#running[@]} > 0)); then
            # Running (or partly): same size, same settings; start what is not running.
            [[ -z "$nodes_arg" || "$nodes_arg" == "$NODES" ]] \
                || die "a $NODES-broker cluster is already up in $BASE; run '$PROG down' first"
            if ((${#stopped[@]} == 0)); then
                note "already up: $NODES brokers in $BASE"
                print_endpoints
                return 0
            fi
            local names=()
            for member in "${stopped[@]}"; do names+=("$(member_name "$member")"); done
            [[ -x "$SLUICED" ]] || die "$SLUICED (recorded in $BASE/cluster.env) is gone"
            if [[ "$PROMETHEUS_STARTED" == 1 ]]; then
                PROMETHEUS_BIN="${PROMETHEUS_BIN:-$(prometheus_binary)}"
                [[ -n "$PROMETHEUS_BIN" && -x "$PROMETHEUS_BIN" ]] \
                    || die "the prometheus binary '${PROMETHEUS_BIN}' is gone"
            fi
            check_ports_free "${stopped[@]}"
            local list
            list="$(printf "%s, " "${names[@]}")"
            list=${list%, }
            note "starting $list of the $NODES-broker cluster in $BASE (the rest runs)"
            start_members "${stopped[@]}"
            note "up: $NODES brokers (started again: $list)"
            print_endpoints
            return 0
        fi
        # Stopped before: its data directories are reused, so the size must match.
        local previous_nodes=$NODES
        NODES=${nodes_arg:-$previous_nodes} SLUICED=$env_sluiced SLUICE=$env_sluice
        read_settings
        if [[ "$previous_nodes" != "$NODES" && -d "$(node_dir 1)/data" ]]; then
            die "$BASE holds the data of a $previous_nodes-broker cluster; run '$PROG down --clean' to start a $NODES-broker one"
        fi
    else
        NODES=${nodes_arg:-3}
    fi

    VOTERS="${SLUICE_VOTERS:-$(default_voters "$NODES")}"
    if ! is_uint "$VOTERS" || ((VOTERS < 1 || VOTERS > NODES)); then
        die "SLUICE_VOTERS must be between 1 and $NODES, got '$VOTERS'"
    fi
    find_binaries "$bin_dir"
    EXTRA_ARGS="${SLUICED_EXTRA_ARGS:-}" RACKS="${SLUICE_RACKS:-}"

    local prometheus_mode="${SLUICE_PROMETHEUS:-auto}"
    PROMETHEUS_BIN="$(prometheus_binary)"
    PROMETHEUS_STARTED=0
    case "$prometheus_mode" in
        0 | false | no) ;;
        1 | true | yes)
            [[ -n "$PROMETHEUS_BIN" ]] \
                || die "SLUICE_PROMETHEUS=$prometheus_mode but no prometheus binary (${PROMETHEUS:-prometheus}) was found; install it (apt-get install prometheus) or set PROMETHEUS"
            PROMETHEUS_STARTED=1
            ;;
        auto) [[ -n "$PROMETHEUS_BIN" ]] && PROMETHEUS_STARTED=1 ;;
        *) die "SLUICE_PROMETHEUS must be auto, 1 or 0, got '$prometheus_mode'" ;;
    esac

    # Every port free before anything starts.
    local members=() ports=()
    for ((i = 1; i <= NODES; i++)); do members+=("$i"); done
    ((PROMETHEUS_STARTED)) && members+=(prometheus)
    read -r -a ports <<<"$(for member in "${members[@]}"; do member_ports "$member"; done | tr '\n' ' ')"
    if (($(printf '%s\n' "${ports[@]}" | sort -u | wc -l) != ${#ports[@]})); then
        die "the port ranges overlap (${ports[*]}); space SLUICE_BASE_PORT, SLUICE_INTERNAL_BASE_PORT, SLUICE_METRICS_BASE_PORT and SLUICE_PROMETHEUS_PORT further apart"
    fi
    check_ports_free "${members[@]}"

    # Written before the first process starts, so `down` can always clean up after us.
    write_state
    if ((PROMETHEUS_STARTED)); then
        mkdir -p "$(prometheus_dir)"
        write_prometheus_config "$(prometheus_dir)/prometheus.yml"
    fi
    note "starting $NODES brokers ($VOTERS controller voters) in $BASE with $SLUICED"
    start_members "${members[@]}"

    if [[ "${SLUICE_PROMETHEUS:-auto}" == auto && "$PROMETHEUS_STARTED" == 0 ]]; then
        note "(prometheus is not installed: no scraping; apt-get install prometheus)"
    fi
    note "up: $NODES brokers"
    print_endpoints
    return 0
}

cmd_start() {
    local i
    node_arg start "$@"
    i=$NODE_ARG
    BASE="$(base_dir 0)"
    load_cluster_for "$i"
    local pid
    pid="$(node_pid "$i")"
    if [[ -n "$pid" ]]; then
        note "broker $i is already running (pid $pid)"
        return 0
    fi
    [[ -x "$SLUICED" ]] || die "$SLUICED (recorded in $BASE/cluster.env) is gone"
    check_ports_free "$i"
    note "starting broker $i in $BASE"
    start_members "$i"
    note "started broker $i (pid $(node_pid "$i")); log: $(member_log "$i")"
}

cmd_stop() {
    local i
    node_arg stop "$@"
    i=$NODE_ARG
    BASE="$(base_dir 0)"
    load_cluster_for "$i"
    if [[ -z "$(node_pid "$i")" ]]; then
        note "broker $i is not running"
        return 0
    fi
    stop_members "$i"
}

cmd_kill() {
    local i pid deadline
    node_arg kill "$@"
    i=$NODE_ARG
    BASE="$(base_dir 0)"
    load_cluster_for "$i"
    pid="$(node_pid "$i")"
    if [[ -z "$pid" ]]; then
        note "broker $i is not running"
        return 0
    fi
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while [[ -n "$(node_pid "$i")" ]] && ((SECONDS < deadline)); do sleep 0.1; done
    [[ -z "$(node_pid "$i")" ]] || die "broker $i (pid $pid) still there 10s after SIGKILL"
    rm -f "$(member_pid_file "$i")"
    note "killed broker $i (pid $pid); '$PROG start $i' starts it again"
}

cmd_down() {
    local clean=0
    while (($# > 0)); do
        case "$1" in
            --clean) clean=1; shift ;;
            -h | --help) usage 0 ;;
            *) die "unexpected argument '$1' (usage: down [--clean])" ;;
        esac
    done
    BASE="$(base_dir 0)"
    read_settings
    if read_state; then
        stop_all
    else
        note "no cluster state in $BASE: nothing to stop"
    fi
    if ((clean)); then
        # Only a directory this script laid out is deleted.
        if [[ -f "$BASE/cluster.env" || -d "$BASE/node-1" ]]; then
            rm -rf "$BASE"
            note "removed $BASE"
        fi
    elif [[ -f "$BASE/cluster.env" ]]; then
        note "data kept in $BASE ('$PROG down --clean' deletes it)"
    fi
}

cmd_status() {
    case "${1:-}" in
        "") ;;
        -h | --help) usage 0 ;;
        *) die "unexpected argument '$1' (usage: status)" ;;
    esac
    BASE="$(base_dir 0)"
    read_settings
    read_state || { note "no cluster in $BASE (run '$PROG up')"; exit 1; }
    local i pid alive=0
    note "cluster in $BASE: $NODES brokers, $VOTERS controller voters"
    for ((i = 1; i <= NODES; i++)); do
        pid="$(node_pid "$i")"
        if [[ -n "$pid" ]]; then
            alive=$((alive + 1))
            note "broker $i: running (pid $pid)  kafka 127.0.0.1:$(client_port "$i")  internal 127.0.0.1:$(internal_port "$i")  metrics http://127.0.0.1:$(metrics_port "$i")/metrics"
        else
            note "broker $i: stopped  kafka 127.0.0.1:$(client_port "$i")  (log: $(node_dir "$i")/sluiced.log; '$PROG start $i')"
        fi
    done
    if [[ "$PROMETHEUS_STARTED" == 1 ]]; then
        pid="$(prometheus_pid)"
        if [[ -n "$pid" ]]; then
            note "prometheus: running (pid $pid)  http://127.0.0.1:$PROMETHEUS_PORT"
        else
            note "prometheus: stopped  (log: $(prometheus_dir)/prometheus.log; '$PROG up')"
        fi
    fi
    print_try
    if ((alive > 0)) && [[ -n "$SLUICE" && -x "$SLUICE" ]]; then
        note ""
        note "\$ sluice --bootstrap $(bootstrap) cluster"
        timeout 10 env -u SLUICE_BOOTSTRAP "$SLUICE" --bootstrap "$(bootstrap)" cluster \
            || note "(sluice cluster failed)"
    fi
    ((alive == NODES))
}

main() {
    local command="${1:-}"
    (($# > 0)) && shift
    case "$command" in
        up | down | status | start | stop | kill) ;;
        -h | --help | help) usage 0 ;;
        "") usage 2 ;;
        *) printf '%s: unknown command %s\n' "$PROG" "$command" >&2; usage 2 ;;
    esac
    "cmd_$command" "$@"
}

main "$@"
