#!/usr/bin/env bash
# Create the virtualenv and install the locked dependencies plus this package (editable).
# Works on a fresh machine: uv comes from PyPI when missing. Bytecode is compiled at install time
# because these machines set PYTHONDONTWRITEBYTECODE=1 (every import would recompile otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
if ! command -v uv >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check uv
fi
uv=$(command -v uv || echo "python3 -m uv")
[ -x "$venv/bin/python" ] || $uv venv --quiet --python python3 "$venv"
# sync, not install: a package dropped from the lock (moto once) leaves the venv too.
$uv pip sync --quiet --python "$venv/bin/python" --compile-bytecode requirements.lock
$uv pip install --quiet --python "$venv/bin/python" --compile-bytecode --no-deps -e .
# An editable install compiles nothing of the checkout: without this, every task process of the
# tests and benchmarks compiled the provider again (about 50 ms per worker run, measured).
"$venv/bin/python" -m compileall -q airflow_provider_bacalhau
# The browser test drives Debian's Chromium through Playwright (no browser download works here).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
