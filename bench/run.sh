#!/usr/bin/env bash
# Builds release binaries and runs the benchmark harness; prints a markdown table.
# Installs the `wrk` load generator and `rclone` (Debian packages) and osmem-server (PyPI) when missing.
# `--quick` runs smaller sizes; `--search-only` runs only the search, indexing and journal rows
# (DSS_BENCH_SEARCH_DOCS sets their document count, e.g. 1000000);
# `--events-only` only the row of indexing through bucket events, on a fresh deployment;
# `--notify-only` only the webhook rows; `--downloads-only` only the file-download row;
# `--checkout-only` only the bundle checkout rows (DSS_BENCH_CHECKOUT_CONCURRENCY sets
# checkout.concurrency for them; default 8, the deployment default); `--sync-only` only the
# replication rows (against rclone); `--clouds-only` only the S3 → GCS copy row (against rclone,
# on moto and fake-gcs-server, which this script installs and starts); `--clients-only` only the
# `dss upload|download|search` rows (against the official hca CLI, which this script installs);
# `--hostile-only` only the API's memory under 32 concurrent maximum-size unauthenticated bodies;
# `--core-only` only the core rows (direct upload, PUT bundle, enumeration, GET bundle, queue), and
# `--upload-only`, `--put-bundle-only`, `--enumeration-only` (with GET bundle), `--queue-only` one each;
# `--metadata-only` only the shared metadata database rows (PostgreSQL, which this script starts
# with its default durability, against the embedded database; search in osmem-server);
# `--search-client-only` only the Elasticsearch adapter's writes (_bulk against one request per
# document, into osmem-server).
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
# The cloud row copies between emulators (moto, fake-gcs-server); the client rows stage the hca
# CLI's uploads on moto. Other modes need neither.
case " $* " in
  *" --"*"-only "*) [[ " $* " == *" --clouds-only "* ]] && clouds=1 || clouds=0
                   [[ " $* " == *" --clients-only "* ]] && clients=1 || clients=0 ;;
  *) clouds=1; clients=1 ;;
esac
if [ "$clouds" = 1 ] || [ "$clients" = 1 ]; then
  bash infra/local/install-test-tools.sh
fi
if [ "$clouds" = 1 ] || [ "$clients" = 1 ]; then
  source infra/local/services.sh
  start_moto
  export DSS_BENCH_AWS_URL="$MOTO_URL"
fi
if [ "$clouds" = 1 ]; then
  start_fake_gcs
  export DSS_BENCH_GCS_URL="$FAKE_GCS_URL"
fi
cargo build --release --locked -p dss -p dss-bench
if [[ " $* " == *" --metadata-only "* ]]; then
  source infra/local/services.sh
  DSS_PG_FSYNC=on start_postgres
  export DSS_BENCH_PG_URL="$PG_URL"
  start_osmem
  export DSS_BENCH_ES_URL="$OSMEM_URL"
fi
if [[ " $* " == *" --search-client-only "* ]]; then
  source infra/local/services.sh
  start_osmem
  export DSS_BENCH_ES_URL="$OSMEM_URL"
fi
# Not exec: the emulators are stopped when this shell exits.
target/release/dss-bench --dss target/release/dss "$@"
