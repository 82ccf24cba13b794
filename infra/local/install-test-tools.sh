#!/usr/bin/env bash
# Installs the tools the tests drive, into .tools/ of the checkout (idempotent):
#   - the official DSS CLI `hca` 7.0.1 in a Python venv (8.x is a deprecation stub). Its pinned
#     tenacity 5 does not import on Python >= 3.10, so tenacity 8 is installed over the pin.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.tools/hca-venv"
# An import check only: `hca --version` would fetch the public API document.
check() { "$venv/bin/python" -c 'import hca.dss, tenacity' 2>/dev/null; }
if [ -x "$venv/bin/hca" ] && check; then
  exit 0
fi
python="${PYTHON:-python3}"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check 'hca==7.0.1'
"$venv/bin/pip" install --quiet --disable-pip-version-check 'tenacity>=8,<9' 'MarkupSafe<2.1' 2>&1 | grep -v "dependency resolver\|requires tenacity" || true
check
