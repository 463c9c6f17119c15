"""A backup started in the portal applies the asset's forget policy and its audit entry names
the snapshots the policy removed, so `check` and `audit --verify` can tell them from a
rollback (docs/assets.md)."""
from __future__ import annotations

import time
from pathlib import Path

from portaltest import Portal, http
from test_portal_security import docs_asset, login  # noqa: F401  (fixture)
from vdtest import PASSWORD, vdedup


def _backup(portal: Portal, cookie: str, csrf: str, name: str) -> None:
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded", "Origin": portal.base}
    status, h, _ = http("POST", f"{portal.base}/assets/{name}/backup", f"csrf={csrf}".encode(), headers)
    assert status == 303
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        _, _, body = http("GET", portal.base + h["location"], headers={"Cookie": cookie})
        if b'data-finished="yes"' in body:
            assert b'class="badge ok"' in body, body.decode()[-1500:]
            return
        time.sleep(0.3)
    raise AssertionError("the backup job did not end")


def test_portal_backup_records_what_the_policy_removed(portal: Portal, repo: Path, docs_asset: str) -> None:
    assert vdedup("--repo", str(repo), "assets", "policy", docs_asset, "--keep-last", "1") == 0
    cookie, csrf = login(portal)
    _backup(portal, cookie, csrf, docs_asset)
    first = _snapshot_ids(repo)
    _backup(portal, cookie, csrf, docs_asset)
    assert len(_snapshot_ids(repo)) == 1 and _snapshot_ids(repo) != first
    from vdedup.assets.audit import AuditLog
    from vdedup.backend import open_backend
    from vdedup.repository import Repository
    with Repository.open(open_backend(str(repo)), PASSWORD) as r:
        entries = [e for e in AuditLog(r).read() if e["operation"] == "portal backup"]
    assert entries[-1].get("removed") == sorted(first)
    assert "removed" not in entries[0]
    portal.stop()
    assert vdedup("--repo", str(repo), "audit", "--verify") == 0
    assert vdedup("--repo", str(repo), "check") == 0


def _snapshot_ids(repo: Path) -> list[str]:
    from vdedup.backend import open_backend
    from vdedup.repository import Repository
    with Repository.open(open_backend(str(repo)), PASSWORD) as r:
        return sorted(s.id for s in r.list_snapshots())
