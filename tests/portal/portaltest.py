"""Helpers for the portal tests: the real `vdedup portal` process, plain HTTP requests, and
where Chromium and Playwright come from (see conftest.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
START_TIMEOUT = 60.0


def pinecone_emulator_class() -> Any:
    from emulators.pinecone_emulator import PineconeEmulator    # tests/emulators
    return PineconeEmulator


@dataclass
class Portal:
    link: str                 # the one-time link the command printed
    base: str                 # http://127.0.0.1:PORT
    proc: subprocess.Popen
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def start_portal(repo: Path, logdir: Path, env: dict[str, str] | None = None) -> Portal:
    """`vdedup --repo REPO portal --port 0` as its own process; waits for its link."""
    logdir.mkdir(parents=True, exist_ok=True)
    out, err = logdir / "portal.stdout", logdir / "portal.stderr"
    full_env = {**os.environ, **(env or {})}
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "vdedup_cli.main", "--repo", str(repo), "portal", "--port", "0"],
                                stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=full_env)
    deadline = time.monotonic() + START_TIMEOUT
    link = ""
    while time.monotonic() < deadline:
        text = out.read_text()
        if "\n" in text:
            link = text.splitlines()[0].strip()
            break
        if proc.poll() is not None:
            pytest.fail(f"vdedup portal exited with {proc.returncode}: {err.read_text()[-2000:]}")
        time.sleep(0.1)
    if not link:
        proc.kill()
        pytest.fail("vdedup portal printed no link")
    base = link.split("/?", 1)[0]
    while time.monotonic() < deadline:           # the link is printed just before it listens
        try:
            urllib.request.urlopen(base + "/", timeout=2)
        except urllib.error.HTTPError:
            break                                 # 403: it answers
        except OSError:
            time.sleep(0.1)
    return Portal(link, base, proc, out, err)


def playwright_entry() -> Any:
    """sync_playwright, failing (not skipping) when Playwright or Chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]' (bash scripts/setup.sh)")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: bash scripts/browser-deps.sh installs Debian's chromium")
    return sync_playwright


def http(method: str, url: str, data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request without following redirects: (status, headers, body)."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None
    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def job_json(context: Any, base: str, job_id: str) -> dict[str, Any]:
    r = context.request.get(f"{base}/jobs/{job_id}/status")
    assert r.status == 200
    return json.loads(r.body())
