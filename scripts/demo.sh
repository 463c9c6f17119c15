#!/usr/bin/env bash
# Install vdedup into .venv and run the demo of the main job on an embedded Chroma.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
