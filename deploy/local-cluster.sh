#!/usr/bin/env bash
# A Sluice cluster of N brokers on 127.0.0.1, with Prometheus scraping it.
#
#   deploy/local-cluster.sh up [N] [--bin-dir DIR]   start N brokers (default 3) and Prometheus
#   deploy/local-cluster.sh status                   which processes run, and `sluice cluster`
#   deploy/local-cluster.sh down [--clean]           stop them; --clean also deletes the data
#
# Everything lives under one base directory, ${SLUICE_LOCAL_DIR:-<repo>/.local-cluster}:
#   cluster.env                  what `up` started (read by `status` and `down`)
#   node-I/data/                 broker I's data directory (kept by `down`, reused by `up`)
#   node-I/sluiced.log, .pid     its stdout/stderr and process id
#   prometheus/prometheus.yml    the generated scrape config (rules: deploy/alerts.yml)
#   prometheus/data/, .log, .pid Prometheus' storage, output and process id
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
#   SLUICE_START_TIMEOUT     seconds `up` waits for every broker and Prometheus (default 60)
#   SLUICE_STOP_TIMEOUT      seconds `down` waits for each process after SIGTERM before
#                            SIGKILL (default 30)
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

usage() {
    local status=${1:-0}
    if ((status == 0)); then
        sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    else
        sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    fi
    exit "$status"
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# ---------------------------------------------------------------------------------------
# Settings

# The base directory as an absolute, normalised path (pid files are matched against the
# command lines that name it). `up` creates it; the other commands only look.
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
    START_TIMEOUT="${SLUICE_START_TIMEOUT:-60}"
    STOP_TIMEOUT="${SLUICE_STOP_TIMEOUT:-30}"
    local name
    for name in CLIENT_BASE INTERNAL_BASE METRICS_BASE PROMETHEUS_PORT START_TIMEOUT STOP_TIMEOUT; do
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

# Write what `up` started, for `status` and `down` (values shell-quoted).
write_state() {
    {
        printf 'NODES=%q\n' "$NODES"
        printf 'VOTERS=%q\n' "$VOTERS"
        printf 'CLIENT_BASE=%q\n' "$CLIENT_BASE"
        printf 'INTERNAL_BASE=%q\n' "$INTERNAL_BASE"
        printf 'METRICS_BASE=%q\n' "$METRICS_BASE"
        printf 'PROMETHEUS_PORT=%q\n' "$PROMETHEUS_PORT"
        printf 'PROMETHEUS_STARTED=%q\n' "$PROMETHEUS_STARTED"
        printf 'SLUICED=%q\n' "$SLUICED"
        printf 'SLUICE=%q\n' "$SLUICE"
    } >"$BASE/cluster.env.tmp"
    mv "$BASE/cluster.env.tmp" "$BASE/cluster.env"
}

read_state() {
    [[ -f "$BASE/cluster.env" ]] || return 1
    # shellcheck disable=SC1091 # written by write_state above
    source "$BASE/cluster.env"
}

# ---------------------------------------------------------------------------------------
# Processes

node_dir() { echo "$BASE/node-$1"; }
prometheus_dir() { echo "$BASE/prometheus"; }

# The pid in FILE if that process is alive and its command line contains MARK (so a
# recycled pid of an unrelated process is never taken for ours); empty otherwise.
owned_pid() {
    local file=$1 mark=$2 pid
    [[ -f "$file" ]] || return 0
    pid="$(cat "$file" 2>/dev/null || true)"
    is_uint "$pid" || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "$mark" || return 0
    fi
    echo "$pid"
}

node_pid() { owned_pid "$(node_dir "$1")/sluiced.pid" "$(node_dir "$1")/data"; }
prometheus_pid() {
    owned_pid "$(prometheus_dir)/prometheus.pid" "--storage.tsdb.path=$(prometheus_dir)/data"
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
# stdin from /dev/null, output to LOG; writes its pid to PIDFILE.
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
        for i in "${!pids_[@]}"; do kill -0 "${pids_[i]}" 2>/dev/null && left+=("$i"); done
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
                for i in "${!pids_[@]}"; do kill -0 "${pids_[i]}" 2>/dev/null && left+=("$i"); done
                ((${#left[@]} == 0)) && break
                sleep 0.1
            done
            break
        fi
        sleep 0.1
    done
    for i in "${!pids_[@]}"; do
        if kill -0 "${pids_[i]}" 2>/dev/null; then
            note "${names_[i]} (pid ${pids_[i]}) did not exit"
        else
            note "stopped ${names_[i]} (pid ${pids_[i]})"
        fi
    done
}

# Stop Prometheus, then every broker. The brokers get SIGTERM together: each hands its
# leaderships over in a controlled shutdown while the controller quorum is still there
# (one by one, the last voters would be left without a quorum to ask).
stop_all() {
    local i pid pids=() names=()
    pid="$(prometheus_pid)"
    if [[ -n "$pid" ]]; then
        pids=("$pid") names=("prometheus")
        stop_pids pids names
    fi
    [[ -n "$(prometheus_pid)" ]] || rm -f "$(prometheus_dir)/prometheus.pid"
    pids=() names=()
    for ((i = 1; i <= NODES; i++)); do
        pid="$(node_pid "$i")"
        [[ -n "$pid" ]] && pids+=("$pid") names+=("broker $i")
    done
    ((${#pids[@]} > 0)) && stop_pids pids names
    for ((i = 1; i <= NODES; i++)); do
        [[ -n "$(node_pid "$i")" ]] || rm -f "$(node_dir "$i")/sluiced.pid"
    done
    return 0
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
# Commands

# Whether node I answers: its metrics endpoint serves, and (with the CLI) `sluice cluster`
# asked of it names a controller and lists every broker's address.
node_ready() {
    local i=$1 j out
    http_get "$(metrics_port "$i")" /metrics >/dev/null || return 1
    [[ -n "$SLUICE" ]] || return 0
    out="$(timeout 5 env -u SLUICE_BOOTSTRAP "$SLUICE" --bootstrap "127.0.0.1:$(client_port "$i")" cluster 2>/dev/null)" \
        || return 1
    [[ "$out" =~ Controller:\ +[0-9]+ ]] || return 1
    for ((j = 1; j <= NODES; j++)); do
        [[ "$out" == *"127.0.0.1:$(client_port "$j")"* ]] || return 1
    done
}

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
    NODES=${nodes_arg:-3}
    ((NODES >= 1 && NODES <= 99)) || die "N must be between 1 and 99, got $NODES"
    read_settings

    # Already running? Then `up` with the same size is a no-op; any other size is an error,
    # and so is a cluster that is only partly running (a broker died or was killed).
    local i pid
    if [[ -f "$BASE/cluster.env" ]]; then
        # read_state sets the variables of the cluster that was started; keep the caller's.
        local requested_nodes=$NODES env_sluiced="${SLUICED:-}" env_sluice="${SLUICE:-}"
        local running=() stopped=()
        read_state
        for ((i = 1; i <= NODES; i++)); do
            if [[ -n "$(node_pid "$i")" ]]; then running+=("broker $i"); else stopped+=("broker $i"); fi
        done
        if [[ "$PROMETHEUS_STARTED" == 1 ]]; then
            if [[ -n "$(prometheus_pid)" ]]; then running+=(prometheus); else stopped+=(prometheus); fi
        fi
        if ((${#running[@]} > 0)); then
            ((requested_nodes == NODES)) \
                || die "a $NODES-broker cluster is already up in $BASE; run '$PROG down' first"
            ((${#stopped[@]} == 0)) \
                || die "the cluster in $BASE is partly up (not running: ${stopped[*]}); run '$PROG down', then '$PROG up $NODES'"
            note "already up: $NODES brokers in $BASE"
            print_endpoints
            return 0
        fi
        local previous_nodes=$NODES
        NODES=$requested_nodes SLUICED=$env_sluiced SLUICE=$env_sluice
        read_settings
        # Stopped before: its data directories are reused, so the size must match.
        if [[ "$previous_nodes" != "$NODES" && -d "$(node_dir 1)/data" ]]; then
            die "$BASE holds the data of a $previous_nodes-broker cluster; run '$PROG down --clean' to start a $NODES-broker one"
        fi
    fi

    VOTERS="${SLUICE_VOTERS:-$(default_voters "$NODES")}"
    if ! is_uint "$VOTERS" || ((VOTERS < 1 || VOTERS > NODES)); then
        die "SLUICE_VOTERS must be between 1 and $NODES, got '$VOTERS'"
    fi
    find_binaries "$bin_dir"

    local prometheus_mode="${SLUICE_PROMETHEUS:-auto}" prometheus_bin
    prometheus_bin="$(prometheus_binary)"
    PROMETHEUS_STARTED=0
    case "$prometheus_mode" in
        0 | false | no) ;;
        1 | true | yes)
            [[ -n "$prometheus_bin" ]] \
                || die "SLUICE_PROMETHEUS=$prometheus_mode but no prometheus binary (${PROMETHEUS:-prometheus}) was found; install it (apt-get install prometheus) or set PROMETHEUS"
            PROMETHEUS_STARTED=1
            ;;
        auto) [[ -n "$prometheus_bin" ]] && PROMETHEUS_STARTED=1 ;;
        *) die "SLUICE_PROMETHEUS must be auto, 1 or 0, got '$prometheus_mode'" ;;
    esac

    # Every port free before anything starts.
    local ports=() port busy=()
    for ((i = 1; i <= NODES; i++)); do
        ports+=("$(client_port "$i")" "$(internal_port "$i")" "$(metrics_port "$i")")
    done
    ((PROMETHEUS_STARTED)) && ports+=("$PROMETHEUS_PORT")
    if (($(printf '%s\n' "${ports[@]}" | sort -u | wc -l) != ${#ports[@]})); then
        die "the port ranges overlap (${ports[*]}); space SLUICE_BASE_PORT, SLUICE_INTERNAL_BASE_PORT, SLUICE_METRICS_BASE_PORT and SLUICE_PROMETHEUS_PORT further apart"
    fi
    for port in "${ports[@]}"; do
        ((port >= 1 && port <= 65535)) || die "port $port is out of range"
        port_in_use "$port" && busy+=("$port")
    done
    ((${#busy[@]} == 0)) \
        || die "ports already in use on 127.0.0.1: ${busy[*]} (another cluster? choose other ports with SLUICE_BASE_PORT, SLUICE_INTERNAL_BASE_PORT, SLUICE_METRICS_BASE_PORT, SLUICE_PROMETHEUS_PORT)"

    local voters_list=() racks=()
    for ((i = 1; i <= VOTERS; i++)); do voters_list+=("$i@127.0.0.1:$(internal_port "$i")"); done
    local voters_flag
    voters_flag="$(IFS=,; echo "${voters_list[*]}")"
    [[ -n "${SLUICE_RACKS:-}" ]] && IFS=, read -r -a racks <<<"$SLUICE_RACKS"
    local extra=()
    # Word splitting on purpose: SLUICED_EXTRA_ARGS is a space-separated flag list.
    [[ -n "${SLUICED_EXTRA_ARGS:-}" ]] && read -r -a extra <<<"$SLUICED_EXTRA_ARGS"
    # sluiced reads SLUICE_* variables as configuration: the caller's do not go through.
    local unset_env=() name
    while read -r name; do unset_env+=(-u "$name"); done < <(compgen -e | grep '^SLUICE_' || true)

    # Written before the first process starts, so `down` can always clean up after us.
    write_state
    note "starting $NODES brokers ($VOTERS controller voters) in $BASE with $SLUICED"
    for ((i = 1; i <= NODES; i++)); do
        local dir args
        dir="$(node_dir "$i")"
        mkdir -p "$dir/data"
        args=(--node-id "$i" --data-dir "$dir/data"
            --listen "127.0.0.1:$(client_port "$i")"
            --internal-listen "127.0.0.1:$(internal_port "$i")"
            --metrics-listen "127.0.0.1:$(metrics_port "$i")"
            --controller-voters "$voters_flag")
        [[ -n "${racks[i - 1]:-}" ]] && args+=(--rack "${racks[i - 1]}")
        args+=("${extra[@]}")
        spawn "$dir/sluiced.pid" "$dir/sluiced.log" env "${unset_env[@]}" NO_COLOR=1 "$SLUICED" "${args[@]}"
    done

    if ((PROMETHEUS_STARTED)); then
        local pdir
        pdir="$(prometheus_dir)"
        mkdir -p "$pdir/data"
        write_prometheus_config "$pdir/prometheus.yml"
        spawn "$pdir/prometheus.pid" "$pdir/prometheus.log" "$prometheus_bin" \
            "--config.file=$pdir/prometheus.yml" \
            "--storage.tsdb.path=$pdir/data" \
            "--web.listen-address=127.0.0.1:$PROMETHEUS_PORT" \
            --web.enable-lifecycle
    fi

    # Wait, against one deadline, until every broker answers and Prometheus is ready.
    local deadline=$((SECONDS + START_TIMEOUT)) pending
    while :; do
        pending=()
        for ((i = 1; i <= NODES; i++)); do
            if [[ -z "$(node_pid "$i")" ]]; then
                note "broker $i exited during start-up; the end of $(node_dir "$i")/sluiced.log:" >&2
                tail -n 20 "$(node_dir "$i")/sluiced.log" >&2 || true
                stop_all >&2
                die "broker $i did not start"
            fi
            node_ready "$i" || pending+=("broker $i")
        done
        if ((PROMETHEUS_STARTED)); then
            if [[ -z "$(prometheus_pid)" ]]; then
                note "prometheus exited during start-up; the end of $(prometheus_dir)/prometheus.log:" >&2
                tail -n 20 "$(prometheus_dir)/prometheus.log" >&2 || true
                stop_all >&2
                die "prometheus did not start"
            fi
            http_get "$PROMETHEUS_PORT" /-/ready >/dev/null || pending+=("prometheus")
        fi
        ((${#pending[@]} == 0)) && break
        if ((SECONDS >= deadline)); then
            note "not ready after ${START_TIMEOUT}s: ${pending[*]} (logs in $BASE)" >&2
            stop_all >&2
            die "the cluster did not start"
        fi
        sleep 0.2
    done

    if [[ "${SLUICE_PROMETHEUS:-auto}" == auto && "$PROMETHEUS_STARTED" == 0 ]]; then
        note "(prometheus is not installed: no scraping; apt-get install prometheus)"
    fi
    note "up: $NODES brokers"
    print_endpoints
    [[ -n "$SLUICE" ]] && note "try:        $SLUICE --bootstrap $(bootstrap) cluster"
    return 0
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
    (($# == 0)) || die "unexpected argument '$1' (usage: status)"
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
            note "broker $i: stopped  kafka 127.0.0.1:$(client_port "$i")  (log: $(node_dir "$i")/sluiced.log)"
        fi
    done
    if [[ "$PROMETHEUS_STARTED" == 1 ]]; then
        pid="$(prometheus_pid)"
        if [[ -n "$pid" ]]; then
            note "prometheus: running (pid $pid)  http://127.0.0.1:$PROMETHEUS_PORT"
        else
            note "prometheus: stopped  (log: $(prometheus_dir)/prometheus.log)"
        fi
    fi
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
        up | down | status) ;;
        -h | --help | help) usage 0 ;;
        "") usage 2 ;;
        *) printf '%s: unknown command %s\n' "$PROG" "$command" >&2; usage 2 ;;
    esac
    BASE="$(base_dir "$([[ "$command" == up ]] && echo 1 || echo 0)")"
    "cmd_$command" "$@"
}

main "$@"
