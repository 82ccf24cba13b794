#!/usr/bin/env bash
# Builds release binaries and runs the benchmark harness; prints a markdown table.
# Installs the `wrk` load generator (Debian package) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; }
fi
cargo build --release --locked -p dss -p dss-bench
exec target/release/dss-bench --dss target/release/dss "$@"
