#!/usr/bin/env bash
# Create .venv (if missing) and install vdedup with every provider SDK, Ray (the scale-out
# tests run a two-node cluster), the test tools and the servers the tests run (milvus-lite,
# moto; PostgreSQL is installed by servers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[all,ray,test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import vdedup, vdedup_cli, vdedup_portal, chromadb, pytest, playwright, ray" \
  || { echo "setup: installation failed" >&2; exit 1; }
