#!/usr/bin/env bash
# Runs every cargo-fuzz target (protocol/fuzz: what Sluice decodes from a peer) for MINUTES
# each and prints the executions per target; a crash leaves its input in
# protocol/fuzz/artifacts/<target>/ (see protocol/fuzz/README.md for reproducing it and
# keeping it as a regression test). Needs a nightly toolchain (`rustup toolchain install
# nightly`); installs cargo-fuzz if it is missing. Bounded: MINUTES per target.
#
# Usage: scripts/fuzz.sh [MINUTES]     (default 1)
set -euo pipefail
cd "$(dirname "$0")/../protocol/fuzz"
minutes="${1:-1}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
failed=()
for target in $(cargo +nightly fuzz list); do
  log="$(mktemp)"
  dict=()
  [ -f "$target.dict" ] && dict=("-dict=$target.dict")
  if cargo +nightly fuzz run "$target" -- -max_total_time=$((minutes * 60)) "${dict[@]}" >"$log" 2>&1; then
    runs="$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -1)"
    echo "$target: ${runs:-finished} (${minutes} min)"
  else
    tail -40 "$log"
    echo "$target: CRASHED, input in protocol/fuzz/artifacts/$target/"
    failed+=("$target")
  fi
  rm -f "$log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]}"
  exit 1
fi
