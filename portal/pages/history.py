"""What the pages know about past backups: snapshots and the audit log read together
(portal layer).

A snapshot says when a version was taken, what it holds and its data size; how many bytes
a backup added to the repository, and whether a backup failed (a failure leaves no
snapshot), only the audit log knows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vdedup.assets.audit import AuditLog
from vdedup.engine.nightly import asset_tag
from vdedup.repository import Repository, Snapshot

from ..auditing import BACKUP_OPERATIONS
from ..plot import Point
from ..web import parse_time


@dataclass
class History:
    snapshots: list[Snapshot]
    entries: list[dict[str, Any]]
    bytes_added: dict[str, int] = field(default_factory=dict)     # snapshot id -> bytes

    @classmethod
    def load(cls, repo: Repository) -> "History":
        entries = AuditLog(repo).read()
        added = {}
        for e in entries:
            if e.get("operation") in BACKUP_OPERATIONS and e.get("snapshot") and e.get("outcome") == "ok":
                b = (e.get("counts") or {}).get("bytes_added")
                if isinstance(b, int):
                    added[e["snapshot"]] = b
        return cls(repo.list_snapshots(), entries, added)

    def of_asset(self, name: str) -> list[Snapshot]:
        tag = asset_tag(name)
        return [s for s in self.snapshots if tag in s.tags]

    def last_backup(self, name: str) -> dict[str, Any] | None:
        """The newest backup entry of the asset: time, outcome, records, bytes added, error."""
        for e in reversed(self.entries):
            if e.get("operation") in BACKUP_OPERATIONS and e.get("asset") == name:
                c = e.get("counts") or {}
                return {"time": e.get("time"), "outcome": e.get("outcome"), "records": c.get("records"),
                        "bytes_added": c.get("bytes_added"), "snapshot": e.get("snapshot"),
                        "error": e.get("error"), "exit_code": e.get("exit_code"),
                        "operation": e.get("operation")}
        snaps = self.of_asset(name)        # a log that does not reach back that far
        if snaps:
            s = snaps[-1]
            return {"time": s.time, "outcome": "ok", "records": s.record_count(),
                    "bytes_added": self.bytes_added.get(s.id), "snapshot": s.id, "error": None,
                    "exit_code": 0, "operation": None}
        return None

    def points(self, name: str) -> list[Point]:
        stored = 0
        known = True
        out = []
        for s in self.of_asset(name):
            b = self.bytes_added.get(s.id)
            if b is None:
                known = False
            else:
                stored += b
            out.append(Point(parse_time(s.time), s.short_id, s.record_count(),
                             int(s.summary.get("logical_bytes", 0)), stored if known else None))
        return out
