#!/usr/bin/env bash
# The test command: provisions what the interop tests need, builds, and runs every test.
#
#   ./scripts/test.sh [cargo test arguments...]
#   ./scripts/test.sh -p sluice-tests --test interop_kcat      # one test target
#
# Idempotent and quick when everything is already in place. On a fresh Debian machine
# (as root) it installs:
#   1. kcat from apt (Debian's build links librdkafka 2.0.2), plus a JDK, Maven,
#      Python's venv module or Prometheus (with promtool, for the deploy/ tests) if the
#      machine lacks them;
#   2. a Python virtualenv at .venv with the pinned kafka-python and confluent-kafka of
#      tests/interop/requirements.txt;
#   3. the pinned Java kafka-clients and its codec jars of tests/java/pom.xml, copied
#      into tests/java/target/lib;
# then runs `cargo build --workspace --bins` and `cargo test --workspace "$@"`.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

VENV="$REPO_ROOT/.venv"
REQUIREMENTS="$REPO_ROOT/tests/interop/requirements.txt"
JAVA_POM="$REPO_ROOT/tests/java/pom.xml"
JAVA_LIB="$REPO_ROOT/tests/java/target/lib"
MAVEN_DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'scripts/test.sh: error: %s\n' "$*" >&2; exit 1; }

# A stamp holds the checksum of the input a provisioning step last completed for.
checksum() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }
stamp_matches() { [[ -f "$1" && "$(cat "$1")" == "$2" ]]; }

# ---------------------------------------------------------------------------------------
step "1/5 system packages (kcat, JDK, Maven, python venv, Prometheus)"
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

# ---------------------------------------------------------------------------------------
step "2/5 Python virtualenv .venv (tests/interop/requirements.txt)"
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
step "3/5 Java kafka-clients into tests/java/target/lib (tests/java/pom.xml)"
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
step "4/5 cargo build --workspace --bins"
cargo build --workspace --bins

# ---------------------------------------------------------------------------------------
step "5/5 cargo test --workspace $*"
# Keep cargo's output as it is, and end with one line that totals every test binary
# (cargo's own last line is the doc-test run of the last crate, often "0 passed").
test_log="$(mktemp)"
trap 'rm -f "$test_log"' EXIT
status=0
cargo test --workspace "$@" 2>&1 | tee "$test_log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\nsluice: %d passed, %d failed\n", p, f }' "$test_log"
exit "$status"
