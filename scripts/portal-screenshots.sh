#!/usr/bin/env bash
# Take the screenshots in docs/portal/ again: the portal's end-to-end test takes one of each
# page as it goes (a fresh repository, the Pinecone emulator, two backups, a restore into a
# local Qdrant) and copies them there. bash scripts/portal-screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/browser-deps.sh
rm -rf /tmp/vdedup-portal-shots
VDEDUP_PORTAL_SCREENSHOTS="$(pwd)/docs/portal" .venv/bin/python -m pytest -q -p no:cacheprovider \
  --basetemp=/tmp/vdedup-portal-shots tests/portal/test_portal_e2e.py
ls docs/portal
