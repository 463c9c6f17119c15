"""Fixtures for the portal: the real `vdedup portal` process, and headless Chromium (Debian's
package) driven by Playwright from pip.

A missing browser or Playwright fails these tests instead of skipping them: CI installs both
(scripts/browser-deps.sh, the `test` extra), and a portal test that silently skipped would
prove nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from portaltest import CHROMIUM, CHROMIUM_ARGS, Portal, playwright_entry, start_portal
from vdtest import vdedup


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    assert vdedup("--repo", str(path), "init") == 0
    return path


@pytest.fixture
def portal(repo: Path, tmp_path: Path) -> Iterator[Portal]:
    p = start_portal(repo, tmp_path / "logs")
    yield p
    code = p.stop()
    assert code == 0 and "Traceback" not in p.logs(), p.logs()[-3000:]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A persistent Chromium context whose profile lies in the test's tmp dir (so that the
    secrecy checks read it too)."""
    sync_playwright = playwright_entry()
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1280, "height": 860}, device_scale_factor=1,
            timezone_id="UTC", locale="en-US")
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()
