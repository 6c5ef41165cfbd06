#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) and fails on any crash.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on the stable toolchain,
# RUSTC_BOOTSTRAP=1 lets it use the nightly-only sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: run 'cargo install cargo-fuzz' (skipping fuzzing)" >&2
  exit 0
fi
export RUSTC_BOOTSTRAP=1
status=0
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  if [ -d "seeds/$target" ]; then cp -n seeds/"$target"/* "corpus/$target/" 2>/dev/null || true; fi
  echo "== fuzzing $target for ${seconds}s"
  if ! cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=4096 -max_len=65536; then
    echo "!! $target found a crash: see fuzz/artifacts/$target/" >&2
    status=1
  fi
done
exit $status
