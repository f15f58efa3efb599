#!/usr/bin/env bash
# The test command: provisions what the interop tests need, builds, and runs every test.
#
#   ./scripts/test.sh [cargo test arguments...]
#   ./scripts/test.sh -p sluice-tests --test interop_kcat      # one test target
#
# Idempotent and quick when everything is already in place. On a fresh Debian machine
# (as root) it installs:
#   1. kcat from apt (Debian's build links librdkafka 2.0.2), plus a JDK, Maven,
#      Python's venv module, Prometheus (with promtool, for the deploy/ tests), Node.js
#      and npm, Go, libfaketime (Debian's faketime, for the clock-jump chaos run) and
#      nftables and iptables (packet loss and delay in the chaos network lab) if the
#      machine lacks them;
#   2. a Python virtualenv at .venv with the pinned kafka-python and confluent-kafka of
#      tests/interop/requirements.txt;
#   3. the pinned Java kafka-clients and its codec jars of tests/java/pom.xml, copied
#      into tests/java/target/lib;
#   4. the pinned kafkajs of tests/node/package-lock.json, by `npm ci` into
#      tests/node/node_modules;
#   5. the Go interop programs of tests/go/cmd/ (franz-go pinned in tests/go/go.mod and
#      go.sum), built into tests/go/bin/;
# then runs `cargo build --workspace --bins` (plus `sluiced-faults`, the broker built
# with the test-only fault-fs feature for the chaos power cuts) and
# `cargo test --workspace "$@"`.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

VENV="$REPO_ROOT/.venv"
REQUIREMENTS="$REPO_ROOT/tests/interop/requirements.txt"
JAVA_POM="$REPO_ROOT/tests/java/pom.xml"
JAVA_LIB="$REPO_ROOT/tests/java/target/lib"
MAVEN_DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
NODE_DIR="$REPO_ROOT/tests/node"
GO_DIR="$REPO_ROOT/tests/go"
GO_BIN="$GO_DIR/bin"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'scripts/test.sh: error: %s\n' "$*" >&2; exit 1; }

# A stamp holds the checksum of the input a provisioning step last completed for.
checksum() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }
stamp_matches() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

# ---------------------------------------------------------------------------------------
step "1/7 system packages (kcat, JDK, Maven, python venv, Prometheus, Node.js, npm, Go, faketime, nftables, iptables)"
missing=()
command -v kcat >/dev/null || missing+=(kcat)
command -v javac >/dev/null || missing+=(default-jdk-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v python3 >/dev/null || missing+=(python3)
if command -v python3 >/dev/null && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi
# tests/tests/prometheus_scrape.rs runs promtool on deploy/ and a Prometheus scraping
# deploy/local-cluster.sh's cluster. Debian's package may also start a system Prometheus on
# :9090 where a service manager runs; the tests use their own ports and data directories.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    missing+=(prometheus)
fi
# tests/node (kafkajs) and tests/go (franz-go). Debian's golang-go (1.19 on bookworm) is
# new enough for tests/go/go.mod; a Go already on PATH (say /usr/local/go) is used as is.
# The chaos harness's network lab drops packets with nftables and delays them through an
# iptables NFQUEUE rule (tests/src/netns.rs).
command -v nft >/dev/null || missing+=(nftables)
command -v iptables-legacy >/dev/null || missing+=(iptables)
# tests/tests/chaos_clock.rs preloads libfaketime into the brokers to step their clocks.
compgen -G '/usr/lib/*/faketime/libfaketimeMT.so.1' >/dev/null || missing+=(faketime)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v go >/dev/null || missing+=(golang-go)
if ((${#missing[@]} > 0)); then
    echo "installing: ${missing[*]}"
    command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand"
    [[ $(id -u) -eq 0 ]] || die "installing ${missing[*]} needs root"
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only when they are absent or do not know a package.
    needs_update=0
    compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null || needs_update=1
    for package in "${missing[@]}"; do
        candidate="$(apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ {print $2}')"
        [[ -n "$candidate" && "$candidate" != "(none)" ]] || needs_update=1
    done
    if ((needs_update)); then
        apt-get update -qq
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "kcat:   $(kcat -V 2>&1 | grep -o 'Version [^ ]*.*librdkafka [0-9.]*' | sed 's/ (.*librdkafka/, librdkafka/')"
echo "java:   $(java -version 2>&1 | head -1)"
echo "mvn:    $(mvn -v 2>/dev/null | head -1 | sed 's/\x1b\[[0-9;]*m//g')"
echo "python: $(python3 --version 2>&1)"
echo "prometheus: $(prometheus --version 2>&1 | head -1)"
echo "node:   $(node --version 2>&1), npm $(npm --version 2>&1)"
echo "go:     $(go version 2>&1)"

# ---------------------------------------------------------------------------------------
step "2/7 Python virtualenv .venv (tests/interop/requirements.txt)"
if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    echo "the existing .venv is broken (its Python moved?); recreating it"
    rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
want="$(checksum "$REQUIREMENTS")-$("$VENV/bin/python" -c 'import sys; print(sys.version)' | tr -d ' \n')"
if stamp_matches "$VENV/.sluice-requirements" "$want"; then
    echo "up to date"
else
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    "$VENV/bin/python" - <<'EOF'
import confluent_kafka
from kafka import codec
missing = [name for name, ok in [("snappy", codec.has_snappy()), ("lz4", codec.has_lz4()),
                                 ("zstd", codec.has_zstd())] if not ok]
if missing:
    raise SystemExit("kafka-python lacks codecs: %s" % ", ".join(missing))
EOF
    echo "$want" >"$VENV/.sluice-requirements"
fi
"$VENV/bin/python" -c '
import confluent_kafka, kafka
v = confluent_kafka.version()
v = v[0] if isinstance(v, tuple) else v
print("kafka-python %s, confluent-kafka %s (librdkafka %s)" % (kafka.__version__, v, confluent_kafka.libversion()[0]))'

# ---------------------------------------------------------------------------------------
step "3/7 Java kafka-clients into tests/java/target/lib (tests/java/pom.xml)"
want="$(checksum "$JAVA_POM")"
if stamp_matches "$JAVA_LIB/.sluice-pom" "$want"; then
    echo "up to date"
else
    rm -rf "$JAVA_LIB"
    mvn_log="$(mktemp)"
    if ! mvn -B -q -f "$JAVA_POM" "$MAVEN_DEPENDENCY_PLUGIN:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$JAVA_LIB" >"$mvn_log" 2>&1; then
        cat "$mvn_log" >&2
        rm -f "$mvn_log"
        die "mvn could not fetch the Java client jars"
    fi
    rm -f "$mvn_log"
    echo "$want" >"$JAVA_LIB/.sluice-pom"
fi
ls "$JAVA_LIB" | grep '\.jar$' | tr '\n' ' '
echo

# ---------------------------------------------------------------------------------------
step "4/7 Node.js kafkajs into tests/node/node_modules (tests/node/package-lock.json)"
want="$(checksum "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json")-$(node --version)"
if stamp_matches "$NODE_DIR/node_modules/.sluice-lock" "$want"; then
    echo "up to date"
else
    # npm ci installs exactly the lock file (and fails if package.json disagrees with it).
    npm_log="$(mktemp)"
    if ! (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error) >"$npm_log" 2>&1; then
        cat "$npm_log" >&2
        rm -f "$npm_log"
        die "npm ci could not install tests/node's packages"
    fi
    rm -f "$npm_log"
    echo "$want" >"$NODE_DIR/node_modules/.sluice-lock"
fi
(cd "$NODE_DIR" && node -e 'console.log("kafkajs " + require("kafkajs/package.json").version)')

# ---------------------------------------------------------------------------------------
step "5/7 Go interop programs into tests/go/bin (tests/go/go.mod)"
go_sources=("$GO_DIR/go.mod" "$GO_DIR/go.sum")
mapfile -t -O 2 go_sources < <(find "$GO_DIR/cmd" -name '*.go' | LC_ALL=C sort)
want="$(checksum "${go_sources[@]}")-$(go version | tr -d ' ')"
if stamp_matches "$GO_BIN/.sluice-build" "$want"; then
    echo "up to date"
else
    rm -rf "$GO_BIN"
    # -mod=readonly: go.mod and go.sum must already be complete (run `go mod tidy` in
    # tests/go after changing an import); -buildvcs=false: no git stamping.
    if ! (cd "$GO_DIR" && go build -mod=readonly -buildvcs=false -trimpath -o "$GO_BIN/" ./cmd/...); then
        die "go build of tests/go failed"
    fi
    echo "$want" >"$GO_BIN/.sluice-build"
fi
ls "$GO_BIN" | tr '\n' ' '
echo

# ---------------------------------------------------------------------------------------
step "6/7 cargo build --workspace --bins, and sluiced-faults"
cargo build --workspace --bins
cargo build -p sluice-broker --bin sluiced-faults --features fault-fs

# ---------------------------------------------------------------------------------------
step "7/7 cargo test --workspace $*"
# Keep cargo's output as it is, and end with one line that totals every test binary
# (cargo's own last line is the doc-test run of the last crate, often "0 passed").
test_log="$(mktemp)"
trap 'rm -f "$test_log"' EXIT
status=0
cargo test --workspace "$@" 2>&1 | tee "$test_log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\nsluice: %d passed, %d failed\n", p, f }' "$test_log"
exit "$status"
