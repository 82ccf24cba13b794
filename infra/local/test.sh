#!/usr/bin/env bash
# Runs every test of the project: installs the test tools, starts the servers the tests talk to,
# then runs the whole workspace's tests, including those ignored by a plain `cargo test`: the
# end-to-end tests that drive the official `hca` and `dbio` CLIs or verify webhook signatures with
# requests-http-signature, the Elasticsearch adapter's conformance suite (against osmem-server
# here, or the server DSS_TEST_ES_URL names), the e-mail tests against aiosmtpd, and the AWS
# adapters' conformance suites (S3, SQS, SNS) against moto and the Google ones against
# fake-gcs-server (GCS) and the Pub/Sub emulator, and the PostgreSQL metadata adapters against a
# throw-away PostgreSQL cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/local/install-test-tools.sh
export DSS_TEST_HCA="$PWD/.tools/hca-venv/bin/hca" DSS_TEST_DBIO="$PWD/.tools/dbio-venv/bin/dbio"
export DSS_TEST_WEBHOOK_PYTHON="$PWD/.tools/webhook-venv/bin/python"
source infra/local/services.sh
if [ -z "${DSS_TEST_ES_URL:-}" ]; then
  start_osmem
  export DSS_TEST_ES_URL="$OSMEM_URL"
fi
start_smtp
export DSS_TEST_SMTP_PORT="$SMTP_PORT" DSS_TEST_MAILDIR="$SMTP_MAILDIR"
start_moto
export DSS_TEST_AWS_URL="$MOTO_URL"
start_pubsub
export DSS_TEST_PUBSUB_URL="$PUBSUB_URL"
start_fake_gcs
export DSS_TEST_GCS_URL="$FAKE_GCS_URL"
start_postgres
export DSS_TEST_PG_URL="$PG_URL"
cargo test --workspace --locked -- --include-ignored
