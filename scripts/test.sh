#!/usr/bin/env bash
# Install what the tests need, start the database servers, run the whole suite, stop the
# servers: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/bench-deps.sh --restic          # the benchmark smoke test compares with restic
bash scripts/browser-deps.sh                 # Chromium for the portal's browser tests (tests/portal)
trap 'bash scripts/servers.sh stop' EXIT
bash scripts/servers.sh start
# shellcheck disable=SC1090
source "$(bash scripts/servers.sh envfile)"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
