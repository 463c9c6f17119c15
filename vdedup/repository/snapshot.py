"""Snapshot records and their lookup (repository layer).

A snapshot is a sealed JSON object `snapshots/ID` written last, after the packs and the
index it refers to: its existence is the commit point of a backup. It is a typed, versioned
object: `version` and `features` (format/versions.py, refused by the codec when unknown), and
collection entries whose namespace entries are versioned records of their own, checked field
by field when read (a malformed one is a FormatError naming the field, not a KeyError deep in
a restore). Snapshots written before versions existed read as version 1.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import FormatError, SnapshotNotFound, UsageError
from ..format.objects import ObjectType
from ..format.versions import FORMATS, CollectionEntry, namespace_entry, new_namespace_entry

VERSION = FORMATS[ObjectType.SNAPSHOT].writes


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
    collections: list[CollectionEntry] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    program: str = ""
    # the audit log when the backup ran: {"seq": last entry's number, "hash": its hash};
    # evidence against a cut-off log (engine/rollback.py). None in older snapshots.
    audit_head: dict[str, Any] | None = None
    # `repair snapshots`: the snapshot this one keeps the intact records of. None otherwise.
    repaired_from: str | None = None
    version: int = VERSION
    features: list[str] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.id[:8]

    @property
    def datetime(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.time)

    def collection(self, name: str) -> CollectionEntry | None:
        return next((c for c in self.collections if c["name"] == name), None)

    def record_count(self) -> int:
        return sum(c["count"] for c in self.collections)

    def to_dict(self) -> dict[str, Any]:
        """The record as written: this vdedup's version, every namespace entry stamped and
        checked (a malformed entry is a bug, caught before the commit point)."""
        d = asdict(self)
        d["version"] = VERSION
        if d.get("repaired_from") is None:
            d.pop("repaired_from", None)
        d["collections"] = [{**c, "namespaces": [new_namespace_entry(e, f"snapshot {self.short_id} collection "
                                                                         f"{c.get('name')!r}")
                                                 for e in c["namespaces"]]}
                            for c in d["collections"]]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Snapshot":
        """A snapshot as read (its version and features already checked by the codec).
        Fields it does not know are ignored; the ones it relies on are checked."""
        if not isinstance(d, dict):
            raise FormatError("snapshot: not an object")
        where = f"snapshot {str(d.get('id'))[:8]}"
        bad = [k for k in ("id", "time", "hostname", "username", "source", "provider")
               if not isinstance(d.get(k), str)]
        if not isinstance(d.get("collections", []), list) or not isinstance(d.get("tags", []), list):
            bad.append("collections" if not isinstance(d.get("collections", []), list) else "tags")
        if bad:
            raise FormatError(f"{where}: malformed ({', '.join(bad)})")
        colls = []
        for c in d.get("collections", []):
            if not (isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("schema"), dict)
                    and type(c.get("count")) is int and isinstance(c.get("namespaces"), list)):
                raise FormatError(f"{where}: malformed collection entry")
            inner = f"{where} collection {c['name']!r}"
            colls.append({**c, "namespaces": [namespace_entry(e, inner) for e in c["namespaces"]]})
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{**{k: v for k, v in d.items() if k in known}, "collections": colls,
                      "version": d.get("version", 1), "features": list(d.get("features", []))})


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
