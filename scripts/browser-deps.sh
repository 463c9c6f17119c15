#!/usr/bin/env bash
# Install the browser the portal's tests drive: Debian's Chromium (Playwright, installed from
# pip with the test extra, drives it; its own browser download cannot work here, so
# `playwright install` is never called). Idempotent: nothing to do when /usr/bin/chromium exists.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
sudo_=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo_="sudo"; fi
echo "browser-deps: installing chromium (Debian package)" >&2
$sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
$sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
/usr/bin/chromium --version >/dev/null
