#!/usr/bin/env bash
# Installs what the tests need (Debian packages such as sip-tester and baresip, the
# Python test dependencies) and runs the lint, type checks and the default test suite.
# Extra arguments go to pytest (e.g. `scripts/test.sh -m slow` for the load suites).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
    bash scripts/install-test-deps.sh
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv python3-dev gcc
    fi
else
    echo "test.sh: not root, so Debian packages (sipp, baresip, kamailio) are assumed installed" >&2
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -r requirements-test.txt -e .

export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff"
ruff check pbx_services tests bench
echo "== mypy"
mypy
echo "== pytest"
pytest -q -p no:cacheprovider --durations=40 "$@"
