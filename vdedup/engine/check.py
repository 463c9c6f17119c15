"""Check: verify a repository's structure and, optionally, all its data (engine layer).

Structure: config and keys, every index file, every snapshot, every manifest blob and
every record's vector blob reachable from a snapshot is indexed, every indexed pack
exists with enough bytes. `read_data`: every pack is read whole, its trailer and every
block are authenticated and decoded, and every blob is hashed against its id. Damage is
reported with the snapshots and collections it affects.
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError, VdedupError
from ..repository import BlockInfo, Repository
from .check_metadata import check_metadata
from .events import Reporter
from .workers import resolve_workers


@dataclass
class CheckResult:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    affected: list[dict[str, Any]] = field(default_factory=list)   # snapshots/collections damaged

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"message_type": "summary", "ok": self.ok, "errors": self.errors,
                "warnings": self.warnings, "affected": self.affected, **self.counts}


def parse_subset(text: str) -> tuple[str, float, int]:
    """`n/t` (the n-th of t groups of packs by pack id, as restic) or `x%` (a random x%)."""
    s = text.strip()
    m = re.fullmatch(r"(\d+)/(\d+)", s)
    if m:
        n, t = int(m.group(1)), int(m.group(2))
        if not 1 <= n <= t:
            raise UsageError(f"bad --read-data-subset {text!r}: in n/t, n must be between 1 and t")
        return "group", n, t
    m = re.fullmatch(r"(\d+(?:\.\d+)?)%", s)
    if m and 0 < float(m.group(1)) <= 100:
        return "percent", float(m.group(1)), 0
    raise UsageError(f"bad --read-data-subset {text!r}: use n/t (e.g. 1/10) or a percentage (e.g. 5%)")


def select_packs(names: list[str], subset: str | None) -> list[str]:
    """The packs a --read-data-subset reads: group n of t holds the packs whose id, read as a
    number, is n-1 modulo t (so 1/t ... t/t together read every pack once)."""
    if subset is None:
        return list(names)
    kind, a, t = parse_subset(subset)
    if kind == "group":
        return [n for n in names if int(n, 16) % t == int(a) - 1]
    k = min(len(names), math.ceil(len(names) * a / 100))
    return sorted(random.SystemRandom().sample(list(names), k))


def check(repo: Repository, read_data: bool = False, reporter: Reporter | None = None,
          subset: str | None = None, workers: int | None = None) -> CheckResult:
    """`subset` (n/t or x%) reads only part of the packs; it implies read_data. `workers`:
    packs read and verified at once (default: the machine's cores)."""
    reporter = reporter or Reporter()
    n_workers = resolve_workers(workers)       # bad input fails before the lock is taken
    if subset is not None:
        parse_subset(subset)
        read_data = True
    result = CheckResult()
    lock = repo.read_lock("check")         # lock-free, with a warning, on read-only storage
    try:
        # index files and packs
        packs_in_index: dict[bytes, list[BlockInfo]] = {}
        n_index = 0
        index_names = repo.list_index_files()
        for name in index_names:
            try:
                packs_in_index.update(repo.read_index_file(name))
                n_index += 1
            except VdedupError as e:
                result.errors.append(f"{e.message} (run 'vdedup repair index')")
        stored, strays = repo.list_packs()
        for name in strays:
            result.warnings.append(f"data/{name[:32]} is not a pack name; ignored")
        usable: set[bytes] = set()        # packs whose blobs can be read: indexed, present, whole
        for pack_id, blocks in packs_in_index.items():
            need = max((b.offset + b.length for b in blocks), default=0)
            size = stored.get(pack_id.hex())
            if size is None:
                result.errors.append(f"pack {pack_id.hex()[:16]} is in the index but missing")
            elif size < need:
                result.errors.append(f"pack {pack_id.hex()[:16]} is truncated ({size} < {need} bytes)")
            else:
                usable.add(pack_id)
        for name in stored:
            if bytes.fromhex(name) not in packs_in_index:
                result.warnings.append(f"pack {name[:16]} is not indexed (left by an interrupted backup"
                                       + (", or named by a damaged index file" if n_index < len(index_names)
                                          else "") + ")")
        repo.sync_index()

        damaged: set[bytes] = set()
        to_read = select_packs(list(stored), subset) if read_data else []
        if read_data:
            reporter.phase("read data", len(to_read))
            for _, found in repo.verify_packs(to_read, packs_in_index, n_workers):
                result.errors.extend(found.errors)
                damaged |= found.damaged
                reporter.advance(1)
            reporter.done()

        # snapshots and everything they reference (parts shared by snapshots are read once)
        snaps = []
        for name in repo.snapshot_names():
            try:
                snaps.append(repo.load_snapshot(name))
            except VdedupError as e:
                result.errors.append(f"snapshot {name[:8]}: {e.message} (run 'vdedup repair snapshots')")
        reporter.phase("check snapshots", len(snaps))
        refs = 0
        avail = repo.availability(usable, damaged)
        for ns in repo.check_references(snaps, avail, on_snapshot=lambda: reporter.advance(1)):
            snap, entry = ns.snapshot, ns.entry
            where = f"snapshot {snap.short_id} collection {ns.collection!r}" + \
                    (f" namespace {entry['name']!r}" if entry["name"] else "")
            affected = {"snapshot": snap.id, "time": snap.time, "collection": ns.collection,
                        "namespace": entry["name"], "records": entry["count"]}
            if ns.error is not None:
                result.errors.append(f"{where}: {ns.error.message}; none of its {entry['count']} records can be restored")
                result.affected.append({**affected, "blobs": None, "records_affected": ns.lost})
                continue
            refs += ns.vector_refs
            if ns.bad:
                what = "its manifest cannot be read" if ns.bad_manifest else "their vector data is damaged or missing"
                result.errors.append(f"{where}: {ns.lost} of {entry['count']} records cannot be restored "
                                     f"({what}; {ns.bad} referenced blobs)")
                result.affected.append({**affected, "blobs": ns.bad, "records_affected": ns.lost})
        reporter.done()
        result.counts = {"snapshots": len(snaps), "index_files": n_index, "packs": len(stored),
                         "blobs": repo.index.count(), "records_checked": refs,
                         "packs_read": len(to_read)}
        check_metadata(repo, snaps, result)      # keys, assets, audit log, rollback
        return result
    finally:
        lock.release()
