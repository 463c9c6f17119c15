"""The next scheduled run, where the machine can tell (portal layer).

vdedup has no scheduler of its own: nightly runs are a cron entry or the systemd timer
docs/assets.md describes (`vdedup-nightly.timer`, running `backup --all`). The timer's next
elapse time can be asked of systemd; a crontab cannot be read reliably, so without the
timer the portal says that it does not know.
"""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import time

TIMER = "vdedup-nightly.timer"
_CACHE: tuple[float, dt.datetime | None] | None = None
CACHE_SECONDS = 60.0


def parse_systemd_time(text: str) -> dt.datetime | None:
    """`Thu 2026-12-03 02:15:00 UTC` (what `systemctl show -p NextElapseUSecRealtime` prints)."""
    parts = text.strip().split()
    if len(parts) < 3:
        return None
    try:
        t = dt.datetime.strptime(f"{parts[1]} {parts[2]}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    zone = parts[3] if len(parts) > 3 else "UTC"
    if zone == "UTC":
        return t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone()            # systemd prints local time in the local zone


def next_run() -> dt.datetime | None:
    """When the nightly timer fires next, or None (no systemd, no such timer, not enabled)."""
    global _CACHE
    if _CACHE is not None and time.monotonic() - _CACHE[0] < CACHE_SECONDS:
        return _CACHE[1]
    found = None
    systemctl = shutil.which("systemctl")
    if systemctl:
        try:
            out = subprocess.run([systemctl, "show", TIMER, "--property=NextElapseUSecRealtime", "--value"],
                                 capture_output=True, text=True, timeout=3, check=False).stdout
            found = parse_systemd_time(out)
        except (OSError, subprocess.SubprocessError):
            found = None
    _CACHE = (time.monotonic(), found)
    return found
