"""What snapshots reference: one walk for check, prune and stats (repository layer).

A namespace entry is made of parts: its base (the segment list, its segments and every
vector blob their rows name) and each chunk of its delta layers (the chunk and the vector
blobs of its rows, superseded ones too). Snapshots share parts (an unchanged namespace
reuses its parent's base and deltas), so every walk here reads each part once: marking
puts each part's blob ids into a disk-backed set, and checking remembers per part how many
references it has and how many of them are missing or damaged.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import lmdb

from ..errors import IntegrityError, VdedupError
from ..format import manifest as mf
from .parts import blob_parts, parts_of
from .manifest import iter_delta_layer, tree
from .snapshot import Snapshot
from .spool import spool_dir

Part = tuple[str, str]           # ("base", segment list id) or ("chunk", delta blob id), hex
CHUNK = 10_000                   # references looked up in the index at a time


class BlobMarks:
    """A disk-backed set of blob ids (LMDB in a temporary directory of the cache), in named
    tables; a value may be stored with each id."""

    def __init__(self):
        parent = spool_dir()
        os.makedirs(parent, mode=0o700, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix=f"vdedup-marks-{os.getpid()}-", dir=parent)
        self.env = lmdb.open(self.dir, map_size=1 << 40, max_dbs=8, sync=False, metasync=False,
                             writemap=True, map_async=True)
        self._dbs: dict[str, Any] = {}

    def db(self, name: str):
        if name not in self._dbs:
            self._dbs[name] = self.env.open_db(name.encode())
        return self._dbs[name]

    def add_many(self, ids: Iterable[bytes], name: str = "used", value: bytes = b"") -> None:
        db = self.db(name)
        txn = self.env.begin(write=True, db=db)
        n = 0
        try:
            for blob_id in ids:
                txn.put(blob_id, value, db=db)
                n += 1
                if n % 100_000 == 0:
                    txn.commit()
                    txn = self.env.begin(write=True, db=db)
            txn.commit()
        except BaseException:
            txn.abort()
            raise

    def get(self, blob_id: bytes, name: str = "used") -> bytes | None:
        with self.env.begin(db=self.db(name)) as txn:
            v = txn.get(blob_id)
            return None if v is None else bytes(v)

    def put(self, blob_id: bytes, value: bytes, name: str) -> None:
        with self.env.begin(write=True, db=self.db(name)) as txn:
            txn.put(blob_id, value)

    def keys(self, name: str = "used") -> Iterator[tuple[bytes, bytes]]:
        with self.env.begin(db=self.db(name)) as txn:
            for k, v in txn.cursor():
                yield bytes(k), bytes(v)

    def count(self, name: str = "used") -> int:
        db = self.db(name)
        with self.env.begin() as txn:
            return txn.stat(db)["entries"]

    def close(self) -> None:
        self.env.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "BlobMarks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def namespace_parts(entry: dict[str, Any]) -> list[Part]:
    return blob_parts(entry)


def part_refs(repo, part: Part) -> Iterator[tuple[bytes, bool]]:
    """Every blob a part references, as (id, is a vector blob); manifest blobs first."""
    kind, hex_id = part
    yield bytes.fromhex(hex_id), False
    if kind == "base":
        segments = tree(repo, hex_id, mf.decode_segment_list)
        for seg_id, _ in segments:
            yield seg_id, False
        for seg_id, _ in segments:
            for r in tree(repo, seg_id, mf.decode_segment):
                yield r.vref, True  # type: ignore[misc]
    else:
        for r in iter_delta_layer(repo, {"chunks": [hex_id]}):
            if r.op != mf.OP_DELETE and r.flags & mf.F_VREF:
                yield r.vref, True  # type: ignore[misc]


def manifest_problem(repo, entry: dict[str, Any]) -> str | None:
    """Why a namespace's manifest cannot be read (a blob not indexed, or in a pack that is
    missing), or None. Reads only the segment lists (of every part, parts.py); the rest is
    looked up, not read."""
    ids: list[bytes] = []
    for p in parts_of(entry):
        try:
            segments = tree(repo, p["base"], mf.decode_segment_list)
        except VdedupError as e:
            return e.message
        ids += [seg_id for seg_id, _ in segments] + \
            [bytes.fromhex(c) for layer in p["deltas"] for c in layer["chunks"]]
    for i in range(0, len(ids), CHUNK):
        part = ids[i:i + CHUNK]
        for blob_id, raw in zip(part, repo.index.get_many(part)):
            if raw is None:
                return f"manifest blob {blob_id.hex()[:16]} is not in the index"
            if not repo.pack_present(bytes(raw[:32])):
                return f"pack {bytes(raw[:32]).hex()[:16]} is missing"
    return None


def _chunks(refs: Iterator[tuple[bytes, bool]], size: int = CHUNK) -> Iterator[list[tuple[bytes, bool]]]:
    buf: list[tuple[bytes, bool]] = []
    for r in refs:
        buf.append(r)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def mark_snapshots(repo, snaps: list[Snapshot], marks: BlobMarks, name: str = "used",
                   on_snapshot: Callable[[], None] | None = None) -> int:
    """Mark (in table `name`) every blob the snapshots reference; returns how many of the
    references walked are not in the index. `on_snapshot` is called after each snapshot."""
    seen: set[Part] = set()
    missing = 0
    for snap in snaps:
        for coll in snap.collections:
            for entry in coll["namespaces"]:
                for part in namespace_parts(entry):
                    if part in seen:
                        continue
                    seen.add(part)
                    try:
                        for chunk in _chunks(part_refs(repo, part)):
                            ids = [blob_id for blob_id, _ in chunk]
                            missing += sum(1 for ok in repo.index.contains_many(ids) if not ok)
                            marks.add_many(ids, name)
                    except VdedupError as e:
                        raise IntegrityError(f"snapshot {snap.short_id}: {e.message}") from None
        if on_snapshot is not None:
            on_snapshot()
    return missing


@dataclass
class NamespaceRefs:
    """What checking one namespace entry found: vector references, references that are
    damaged or not readable (`bad`; `bad_manifest` of them manifest blobs), the records
    that lost their data (`lost`: all of them when the manifest cannot be read), or the
    error that stopped reading its manifest."""
    snapshot: Snapshot
    collection: str
    entry: dict[str, Any]
    vector_refs: int = 0
    bad: int = 0
    bad_manifest: int = 0
    lost: int = 0
    error: VdedupError | None = None


def check_references(repo, snaps: list[Snapshot], avail,
                     on_snapshot: Callable[[], None] | None = None) -> Iterator[NamespaceRefs]:
    """For every namespace entry of every snapshot (in order), how many referenced blobs
    are not readable (`avail`: availability.Availability) and how many records lost their
    data; each shared part is read once, and the records are counted (a second pass over
    the manifest) only for namespaces with something missing. `on_snapshot` is called
    after each snapshot."""
    from .availability import lost_records
    memo: dict[Part, tuple[int, int, int] | VdedupError] = {}
    lost_memo: dict[tuple[Part, ...], int] = {}
    for snap in snaps:
        for coll in snap.collections:
            for entry in coll["namespaces"]:
                out = NamespaceRefs(snap, coll["name"], entry)
                parts = namespace_parts(entry)
                for part in parts:
                    found = memo.get(part)
                    if found is None:
                        try:
                            found = _count_part(repo, part, avail)
                        except VdedupError as e:
                            found = e
                        memo[part] = found
                    if isinstance(found, VdedupError):
                        out.error = found
                        break
                    out.vector_refs += found[0]
                    out.bad += found[1]
                    out.bad_manifest += found[2]
                if out.error is not None or out.bad_manifest:
                    out.lost = int(entry["count"])
                elif out.bad:
                    key = tuple(parts)
                    if key not in lost_memo:
                        lost_memo[key] = lost_records(repo, entry, avail)
                    out.lost = lost_memo[key]
                yield out
        if on_snapshot is not None:
            on_snapshot()


def _count_part(repo, part: Part, avail) -> tuple[int, int, int]:
    vectors = bad = bad_manifest = 0
    for chunk in _chunks(part_refs(repo, part)):
        readable = avail.readable_many([blob_id for blob_id, _ in chunk])
        for (_, is_vector), ok in zip(chunk, readable):
            if not ok:
                bad += 1
                bad_manifest += not is_vector
        vectors += sum(1 for _, is_vector in chunk if is_vector)
    return vectors, bad, bad_manifest
