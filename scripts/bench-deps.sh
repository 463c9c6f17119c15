#!/usr/bin/env bash
# Install what the peer benchmark (benchmarks/peers.py) needs; idempotent.
#   bash scripts/bench-deps.sh           restic + borgbackup (apt) and matplotlib + pyarrow (.venv)
#   bash scripts/bench-deps.sh --restic  restic only (what the smoke test in CI needs; fast)
set -euo pipefail
cd "$(dirname "$0")/.."
only_restic=0
[ "${1:-}" = "--restic" ] && only_restic=1

sudo_=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo_="sudo"; fi

pkgs=()
restic version >/dev/null 2>&1 || pkgs+=(restic)
if [ "$only_restic" -eq 0 ]; then
  borg --version >/dev/null 2>&1 || pkgs+=(borgbackup)
fi
if [ "${#pkgs[@]}" -gt 0 ]; then
  echo "bench-deps: installing ${pkgs[*]}" >&2
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

if [ "$only_restic" -eq 0 ]; then
  py=.venv/bin/python
  [ -x "$py" ] || { echo "bench-deps: $py missing; run bash scripts/setup.sh first" >&2; exit 1; }
  missing=()
  "$py" -c "import matplotlib" >/dev/null 2>&1 || missing+=(matplotlib)
  "$py" -c "import pyarrow" >/dev/null 2>&1 || missing+=(pyarrow)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "bench-deps: pip install ${missing[*]}" >&2
    "$py" -m pip install -q "${missing[@]}"
  fi
fi
restic version >/dev/null
