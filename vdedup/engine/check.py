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

from ..backend.base import FileType
from ..errors import UsageError, VdedupError
from ..format import block as blockfmt
from ..format import pack as packfmt
from ..format.objects import BlobType, ObjectType, open_object
from ..repository import Repository, Snapshot
from ..repository.manifest import tree_blob_ids, vector_refs
from .check_metadata import check_metadata
from .events import Reporter


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


def _read_pack(repo: Repository, name: str, result: CheckResult, damaged: set[bytes],
               indexed_blocks: list[packfmt.BlockInfo] | None) -> None:
    pack_id = bytes.fromhex(name)
    data = repo.backend.load(FileType.DATA, name)
    try:
        key = packfmt.pack_key(repo.master, data[:packfmt.PACK_HEADER])
    except VdedupError as e:                 # no key, no block can be read
        result.errors.append(f"pack {name[:16]}: {e.message}")
        damaged.update(b for blk in (indexed_blocks or []) for b, _ in blk.blobs)
        return
    try:
        tlen = int.from_bytes(data[-4:], "big")
        blocks = packfmt.open_trailer(key, pack_id, data[-4 - tlen:-4])
    except Exception as e:                   # the blocks may still be fine: check them by the index
        msg = e.message if isinstance(e, VdedupError) else f"trailer cannot be decoded ({e})"
        result.errors.append(f"pack {name[:16]}: {msg}")
        blocks = indexed_blocks or []
    if indexed_blocks is not None:          # the trailer has no ids: take them from the index
        if not packfmt.same_layout(blocks, indexed_blocks):
            result.errors.append(f"pack {name[:16]}: contents differ from the index")
        blocks = indexed_blocks
    for b in blocks:
        try:
            plain = packfmt.open_block(key, pack_id, b.number, b.blob_type, data[b.offset:b.offset + b.length])
            blobs = blockfmt.decode_block(plain)
            if len(blobs) != len(b.blobs):
                raise VdedupError("block holds a different number of blobs than listed")
            for (blob_id, raw_len), blob in zip(b.blobs, blobs):
                if len(blob) != raw_len or (blob_id and repo.content_id(BlobType(b.blob_type), blob) != blob_id):
                    damaged.add(blob_id)
                    result.errors.append(f"pack {name[:16]} block {b.number}: blob {blob_id.hex()[:16]} "
                                         f"does not match its content id")
        except Exception as e:   # any failure to authenticate or decode is damage
            msg = e.message if isinstance(e, VdedupError) else str(e)
            result.errors.append(f"pack {name[:16]} block {b.number}: {msg}")
            damaged.update(blob_id for blob_id, _ in b.blobs if blob_id)


def check(repo: Repository, read_data: bool = False, reporter: Reporter | None = None,
          subset: str | None = None) -> CheckResult:
    """`subset` (n/t or x%) reads only part of the packs; it implies read_data."""
    reporter = reporter or Reporter()
    if subset is not None:
        parse_subset(subset)        # bad input fails before the lock is taken
        read_data = True
    result = CheckResult()
    lock = repo.read_lock("check")         # lock-free, with a warning, on read-only storage
    try:
        # index files and packs
        packs_in_index: dict[bytes, list[packfmt.BlockInfo]] = {}
        n_index = 0
        for name, _ in repo.backend.list(FileType.INDEX):
            try:
                body = open_object(repo.master, ObjectType.INDEX, name, repo.backend.load(FileType.INDEX, name))
                packs_in_index.update(packfmt.decode_index(body))
                n_index += 1
            except VdedupError as e:
                result.errors.append(f"index {name[:16]}: {e.message}")
        stored = {}
        for name, size in repo.backend.list(FileType.DATA):
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                stored[name] = size
            else:
                result.warnings.append(f"data/{name[:32]} is not a pack name; ignored")
        for pack_id, blocks in packs_in_index.items():
            need = max((b.offset + b.length for b in blocks), default=0)
            size = stored.get(pack_id.hex())
            if size is None:
                result.errors.append(f"pack {pack_id.hex()[:16]} is in the index but missing")
            elif size < need:
                result.errors.append(f"pack {pack_id.hex()[:16]} is truncated ({size} < {need} bytes)")
        for name in stored:
            if bytes.fromhex(name) not in packs_in_index:
                result.warnings.append(f"pack {name[:16]} is not indexed (left by an interrupted backup)")
        repo.sync_index()

        damaged: set[bytes] = set()
        to_read = select_packs(list(stored), subset) if read_data else []
        if read_data:
            reporter.phase("read data", len(to_read))
            for name in to_read:
                _read_pack(repo, name, result, damaged, packs_in_index.get(bytes.fromhex(name)))
                reporter.advance(1)
            reporter.done()

        # snapshots and everything they reference
        snaps = []
        for name, _ in repo.backend.list(FileType.SNAPSHOTS):
            try:
                snaps.append(Snapshot.from_dict(repo.load_json_object(ObjectType.SNAPSHOT, name)))
            except VdedupError as e:
                result.errors.append(f"snapshot {name[:8]}: {e.message}")
        reporter.phase("check snapshots", len(snaps))
        refs = 0
        for snap in snaps:
            for coll in snap.collections:
                for entry in coll["namespaces"]:
                    where = f"snapshot {snap.short_id} collection {coll['name']!r}" + \
                            (f" namespace {entry['name']!r}" if entry["name"] else "")
                    try:
                        bad = 0
                        for blob_id in tree_blob_ids(repo, entry):
                            if blob_id in damaged or repo.index.get(blob_id) is None:
                                bad += 1
                        for vref in vector_refs(repo, entry):
                            refs += 1
                            if vref in damaged or repo.index.get(vref) is None:
                                bad += 1
                        if bad:
                            result.errors.append(f"{where}: {bad} referenced blobs are damaged or missing")
                            result.affected.append({"snapshot": snap.id, "time": snap.time,
                                                    "collection": coll["name"], "namespace": entry["name"],
                                                    "blobs": bad})
                    except VdedupError as e:
                        result.errors.append(f"{where}: {e.message}")
                        result.affected.append({"snapshot": snap.id, "time": snap.time,
                                                "collection": coll["name"], "namespace": entry["name"],
                                                "blobs": None})
            reporter.advance(1)
        reporter.done()
        result.counts = {"snapshots": len(snaps), "index_files": n_index, "packs": len(stored),
                         "blobs": repo.index.count(), "records_checked": refs,
                         "packs_read": len(to_read)}
        check_metadata(repo, snaps, result)      # keys, assets, audit log, rollback
        return result
    finally:
        lock.release()
