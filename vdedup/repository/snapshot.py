"""Snapshot records and their lookup (repository layer).

A snapshot is a sealed JSON object `snapshots/ID` written last, after the packs and the
index it refers to: its existence is the commit point of a backup.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import SnapshotNotFound, UsageError


@dataclass
class Snapshot:
    id: str
    time: str                       # ISO 8601, UTC
    hostname: str
    username: str
    source: str                     # redacted URL
    provider: str
    tags: list[str] = field(default_factory=list)
    parent: str | None = None
    collections: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    program: str = ""
    # the audit log when the backup ran: {"seq": last entry's number, "hash": its hash};
    # evidence against a cut-off log (engine/rollback.py). None in older snapshots.
    audit_head: dict[str, Any] | None = None

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def datetime(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.time)

    def collection(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.collections if c["name"] == name), None)

    def record_count(self) -> int:
        return sum(c["count"] for c in self.collections)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Snapshot":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def find(snapshots: list[Snapshot], ref: str, source: str | None = None) -> Snapshot:
    """By id, unique id prefix, or 'latest' (optionally the latest of one source)."""
    if not ref:
        raise UsageError("no snapshot given")
    pool = [s for s in snapshots if source is None or s.source == source]
    if ref == "latest":
        if not pool:
            raise SnapshotNotFound("no snapshot in the repository" + (f" for {source}" if source else ""))
        return max(pool, key=lambda s: (s.time, s.id))
    matches = [s for s in pool if s.id.startswith(ref.lower())]
    if not matches:
        raise SnapshotNotFound(f"no snapshot matches {ref!r}")
    if len(matches) > 1:
        raise SnapshotNotFound(f"snapshot prefix {ref!r} is ambiguous ({len(matches)} snapshots match)")
    return matches[0]


def newest_at_or_before(snapshots: list[Snapshot], when: dt.datetime, source: str | None = None) -> Snapshot:
    pool = [s for s in snapshots if (source is None or s.source == source) and s.datetime <= when]
    if not pool:
        raise SnapshotNotFound(f"no snapshot at or before {when.isoformat()}")
    return max(pool, key=lambda s: (s.time, s.id))
