#!/usr/bin/env bash
# Runs every cargo-fuzz target for MINUTES each and prints the executions per target:
# protocol/fuzz (what Sluice decodes from a peer: frames, headers, request bodies, batches)
# and broker/fuzz (the dispatcher of an in-process broker, the controller's frames, files
# and metadata commands, partition log recovery from arbitrary file bytes). A crash leaves
# its input in <workspace>/artifacts/<target>/ (see protocol/fuzz/README.md and
# broker/fuzz/README.md for reproducing it and keeping it as a regression test). Needs a
# nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if it is
# missing. Bounded: MINUTES per target; scratch files go to a temporary directory removed
# at exit.
#
# Usage: scripts/fuzz.sh [MINUTES] [TARGET...]     (default 1 minute, every target)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
minutes="${1:-1}"
shift || true
only=("$@")
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
scratch="$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"
failed=()
for workspace in protocol/fuzz broker/fuzz; do
  cd "$root/$workspace"
  if [ "$workspace" = broker/fuzz ] && [ ! -d corpus ]; then
    cargo +nightly run --quiet --bin seeds
  fi
  for target in $(cargo +nightly fuzz list); do
    if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " =~ " $target " ]]; then
      continue
    fi
    log="$(mktemp)"
    dict=()
    [ -f "$target.dict" ] && dict=("-dict=$target.dict")
    # The broker's background threads (the log deleter) outlive a dropped LogManager by
    # design; LeakSanitizer reports their thread-locals as leaks, so leaks are not checked.
    [ "$workspace" = broker/fuzz ] && dict+=("-detect_leaks=0")
    mkdir -p "corpus/$target"
    if cargo +nightly fuzz run "$target" "corpus/$target" -- -max_total_time=$((minutes * 60)) -rss_limit_mb=4096 "${dict[@]}" >"$log" 2>&1; then
      runs="$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1)"
      echo "$target: ${runs:-finished} (${minutes} min)"
    else
      tail -40 "$log"
      echo "$target: CRASHED, input in $workspace/artifacts/$target/"
      failed+=("$target")
    fi
    rm -f "$log"
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]}"
  exit 1
fi
