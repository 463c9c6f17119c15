"""`repair snapshots`: keep what is intact of snapshots that reference lost data (engine layer).

For every snapshot whose data is not all readable (a blob the index does not locate, in a
pack that is missing, truncated or described by no readable index file): each namespace
whose vector data is partly lost is written again as a new base holding only the records
whose data is intact; a namespace whose manifest cannot be read is dropped whole (nobody
can tell which records it held). The result is saved as a *new* snapshot (same source,
time and tags, plus the tag `repaired`, and `repaired_from` naming the original); the
original is kept unless `forget`. Snapshot objects that cannot be read at all are moved to
`damaged/` (never deleted). The counts of dropped records are reported per namespace; the
dropped record ids only when asked (`record_ids`: they are user data).

Run `repair index` first: records whose data is only unindexed are not lost.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import UnsupportedFormat, VdedupError
from ..repository import Repository, Snapshot
from ..assets.audit import snapshot_audit_head
from .events import Reporter

REPAIRED_TAG = "repaired"


@dataclass
class NamespaceRepair:
    collection: str
    namespace: str
    records: int
    dropped: int
    whole: bool                          # the manifest is lost: every record dropped
    ids: list[Any] = field(default_factory=list)

    def to_dict(self, with_ids: bool) -> dict[str, Any]:
        d = {"collection": self.collection, "namespace": self.namespace, "records": self.records,
             "dropped": self.dropped, "manifest_lost": self.whole}
        if with_ids:
            d["dropped_ids"] = self.ids
        return d


@dataclass
class SnapshotRepair:
    snapshot: str
    time: str
    action: str          # rewritten | emptied (nothing intact) | repaired before | moved aside
    new_snapshot: str | None = None
    namespaces: list[NamespaceRepair] = field(default_factory=list)
    forgotten: bool = False
    moved_to: str | None = None
    reason: str | None = None

    @property
    def dropped(self) -> int:
        return sum(n.dropped for n in self.namespaces)

    def to_dict(self, with_ids: bool) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "time": self.time, "action": self.action,
                "new_snapshot": self.new_snapshot, "records_dropped": self.dropped, "forgotten": self.forgotten,
                "moved_to": self.moved_to, "reason": self.reason,
                "namespaces": [n.to_dict(with_ids) for n in self.namespaces]}


@dataclass
class RepairSnapshotsResult:
    dry_run: bool
    snapshots: int = 0
    intact: int = 0
    repairs: list[SnapshotRepair] = field(default_factory=list)
    record_ids: bool = False
    seconds: float = 0.0

    @property
    def removed(self) -> list[str]:
        """Snapshot ids no longer in snapshots/ (for the audit entry)."""
        return [r.snapshot for r in self.repairs if r.forgotten or r.moved_to]

    def to_dict(self) -> dict[str, Any]:
        return {"message_type": "summary", "dry_run": self.dry_run, "snapshots": self.snapshots,
                "intact": self.intact, "seconds": round(self.seconds, 3),
                "repairs": [r.to_dict(self.record_ids) for r in self.repairs]}


def _usable_packs(repo: Repository) -> set[bytes]:
    """Packs whose blobs can be read: described by a readable index file, present, whole."""
    stored, _ = repo.list_packs()
    usable: set[bytes] = set()
    for name in repo.list_index_files():
        try:
            body = repo.read_index_file(name)
        except VdedupError:
            continue
        for pid, blocks in body.items():
            if stored.get(pid.hex(), -1) >= max((b.offset + b.length for b in blocks), default=0):
                usable.add(pid)
    return usable


def repair_snapshots(repo: Repository, forget: bool = False, dry_run: bool = False, record_ids: bool = False,
                     reporter: Reporter | None = None) -> RepairSnapshotsResult:
    reporter = reporter or Reporter()
    started = time.monotonic()
    result = RepairSnapshotsResult(dry_run, record_ids=record_ids)
    lock = repo.lock(exclusive=not dry_run, operation="repair snapshots")
    try:
        repo.sync_index()
        snaps: list[Snapshot] = []
        for name in repo.snapshot_names():
            try:
                snaps.append(repo.load_snapshot(name))
            except UnsupportedFormat:
                continue            # a newer vdedup wrote it: not damaged, never touched
            except VdedupError as e:
                r = SnapshotRepair(name, "", "moved aside", reason=e.message)
                if not dry_run:
                    r.moved_to = repo.move_snapshot_aside(name)
                result.repairs.append(r)
        snaps.sort(key=lambda s: (s.time, s.id))
        result.snapshots = len(snaps)
        avail = repo.availability(_usable_packs(repo))
        damaged: dict[str, list] = {}          # snapshot id -> its namespace findings
        reporter.phase("check snapshots", len(snaps))
        for ns in repo.check_references(snaps, avail, on_snapshot=lambda: reporter.advance(1)):
            if ns.error is not None or ns.bad:
                damaged.setdefault(ns.snapshot.id, []).append(ns)
        reporter.done()
        result.intact = len(snaps) - len(damaged)
        copies = {s.repaired_from: s.id for s in snaps if s.repaired_from and s.id not in damaged}
        reporter.phase("repair snapshots", len(damaged))
        for snap in snaps:
            if snap.id not in damaged:
                continue
            if snap.id in copies:          # repaired before: the intact copy is there
                r = SnapshotRepair(snap.id, snap.time, "repaired before", new_snapshot=copies[snap.id])
                if forget and not dry_run:
                    repo.remove_snapshot(snap.id)
                    r.forgotten = True
                result.repairs.append(r)
            else:
                result.repairs.append(_repair_one(repo, snap, damaged[snap.id], avail, forget, dry_run,
                                                  record_ids))
            reporter.advance(1)
        reporter.done()
        return result
    finally:
        result.seconds = time.monotonic() - started
        lock.release()


def _repair_one(repo: Repository, snap: Snapshot, findings: list, avail, forget: bool, dry_run: bool,
                record_ids: bool) -> SnapshotRepair:
    out = SnapshotRepair(snap.id, snap.time, "rewritten")
    bad = {(ns.collection, ns.entry["name"]): ns for ns in findings}
    collections = []
    writer = None if dry_run else repo.writer()
    try:
        for coll in snap.collections:
            entries = []
            for entry in coll["namespaces"]:
                ns = bad.get((coll["name"], entry["name"]))
                if ns is None:
                    entries.append(entry)
                    continue
                rep = NamespaceRepair(coll["name"], entry["name"], entry["count"], 0, False)
                out.namespaces.append(rep)
                rep.whole = ns.error is not None or bool(ns.bad_manifest) or ns.lost >= entry["count"]
                if not rep.whole:
                    new = _rewrite(repo, writer, entry, avail, rep, record_ids)
                    if new is not None:
                        entries.append(new)
                if rep.whole:
                    rep.dropped = entry["count"]
                    rep.ids = []
            if entries:
                collections.append({**coll, "namespaces": entries, "count": sum(e["count"] for e in entries)})
        if not collections:
            out.action = "emptied"           # nothing intact: no new snapshot
        if dry_run:
            return out
        if not collections:
            if forget:
                repo.remove_snapshot(snap.id)
                out.forgotten = True
            return out
        new_snap = repo.new_snapshot(snap.source, snap.provider,
                                     sorted(set(snap.tags) | {REPAIRED_TAG}), snap.parent)
        # where the original was for retention policies, and just after it, so that `latest`
        # is the intact copy and not the original it keeps
        new_snap.time = (snap.datetime + dt.timedelta(microseconds=1)).isoformat(timespec="microseconds")
        new_snap.collections = collections
        new_snap.summary = {**snap.summary, "records": sum(c["count"] for c in collections),
                            "records_dropped": out.dropped}
        new_snap.repaired_from = snap.id
        new_snap.audit_head = snapshot_audit_head(repo)
        writer.commit(new_snap)                   # type: ignore[union-attr]
        writer = None
        out.new_snapshot = new_snap.id
    finally:
        if writer is not None:
            writer.save_progress()
    if forget:
        repo.remove_snapshot(snap.id)
        out.forgotten = True
    return out


def _rewrite(repo: Repository, writer, entry: dict[str, Any], avail, rep: NamespaceRepair,
             record_ids: bool) -> dict[str, Any] | None:
    """The namespace entry holding only the records whose data is intact, streamed into a new
    base (dry run: only counted); None with `rep.whole` set if the manifest fails on the way."""
    def kept_runs():
        for kept, dropped_ids in repo.split_namespace(entry, avail):
            rep.dropped += len(dropped_ids)
            if record_ids:
                rep.ids.extend(dropped_ids)
            yield kept

    try:
        if writer is None:
            for _ in kept_runs():
                pass
            return {**entry, "count": entry["count"] - rep.dropped}
        new = writer.write_rows(entry["name"], kept_runs(), 0)
    except VdedupError:
        rep.whole = True
        return None
    new["logical_bytes"] = entry.get("logical_bytes", 0) * new["count"] // max(entry["count"], 1)
    if entry.get("ordered") is False:
        new["ordered"] = False
    return new
