#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a bounded time each, starting from the committed
# seeds; the corpus, crashes and build live under the system temp directory, never in the tree.
#
#   shared/fuzz/run.sh [seconds per target] [target …]     (default: 60 s, every target)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); libFuzzer builds on the stable
# toolchain with RUSTC_BOOTSTRAP=1. Prints the executions of each target and exits non-zero
# if any found a crash (its input is kept in the artifacts directory printed).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
work="${TMPDIR:-/tmp}/dss-fuzz"
mkdir -p "$work"
export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$work/target"
cargo fuzz build -O
status=0
printf '%-22s %12s %10s %s\n' target executions exec/s result
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t" artifacts="$work/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  cp -n "seeds/$t"/* "$corpus"/ 2>/dev/null || true
  log="$work/$t.log"
  if cargo fuzz run -O "$t" "$corpus" -- -max_total_time="$secs" -rss_limit_mb=2048 \
      -timeout=10 -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (see $artifacts, $log)"
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'exec/s: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  printf '%-22s %12s %10s %s\n' "$t" "${runs:-?}" "${rate:-?}" "$result"
done
exit $status
