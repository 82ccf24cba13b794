#!/usr/bin/env bash
# Builds release binaries and runs the benchmark harness; prints a markdown table.
# Installs the `wrk` load generator and `rclone` (Debian packages) and osmem-server (PyPI) when missing.
# `--quick` runs smaller sizes; `--search-only` runs only the search, indexing and journal rows;
# `--notify-only` only the webhook rows; `--downloads-only` only the file-download row;
# `--checkout-only` only the bundle checkout rows (DSS_BENCH_CHECKOUT_CONCURRENCY sets
# checkout.concurrency for them; default 8, the deployment default); `--sync-only` only the
# replication rows (against rclone); `--clouds-only` only the S3 → GCS copy row (against rclone,
# on moto and fake-gcs-server, which this script installs and starts).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk rclone; do
  if ! command -v "$tool" >/dev/null; then
    apt-get install -y -qq "$tool" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$tool"; }
  fi
done
# osmem-server (PyPI), an in-memory OpenSearch-API server, is the search reference.
if [ ! -x .tools/osmem-venv/bin/python ]; then
  python3 -m venv .tools/osmem-venv
fi
.tools/osmem-venv/bin/pip install -q 'osmem-server==0.1.6'
# The cloud row (the full run or --clouds-only) copies between emulators; other modes need none.
case " $* " in
  *" --"*"-only "*) [[ " $* " == *" --clouds-only "* ]] && clouds=1 || clouds=0 ;;
  *) clouds=1 ;;
esac
if [ "$clouds" = 1 ]; then
  bash infra/local/install-test-tools.sh
  source infra/local/services.sh
  start_moto
  start_fake_gcs
  export DSS_BENCH_AWS_URL="$MOTO_URL" DSS_BENCH_GCS_URL="$FAKE_GCS_URL"
fi
cargo build --release --locked -p dss -p dss-bench
# Not exec: the emulators are stopped when this shell exits.
target/release/dss-bench --dss target/release/dss "$@"
