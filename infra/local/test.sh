#!/usr/bin/env bash
# Runs every test of the project: installs the test tools, then the whole workspace's tests,
# including the end-to-end tests that drive the official `hca` and `dbio` CLIs (ignored by a plain `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash infra/local/install-test-tools.sh
export DSS_TEST_HCA="$PWD/.tools/hca-venv/bin/hca" DSS_TEST_DBIO="$PWD/.tools/dbio-venv/bin/dbio"
cargo test --workspace --locked -- --include-ignored
