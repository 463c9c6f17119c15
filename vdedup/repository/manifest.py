"""Manifests in the repository: writing bases and deltas, reading a namespace's state
(repository layer). See format/manifest.py for the encoding.

A namespace entry in a snapshot:
    {"name", "count", "base": segment-list blob id, "deltas": [{"chunks": [ids], "rows": n}],
     "logical_bytes"}
The state is the base with each delta applied in order. A new snapshot appends one delta
(only the rows that changed) or, when the chain gets long or heavy, writes a new base whose
unchanged segments deduplicate against the old one.
"""
from __future__ import annotations

import heapq
import os
import struct
from typing import Any, Iterable, Iterator

from blake3 import blake3

from ..errors import IntegrityError
from ..format import manifest as mf
from ..format.objects import BlobType
from .rows import Unsorted
from .spool import TempRows

SEGMENT_AVG_MASK = 1023        # about 1,024 rows per segment
SEGMENT_MAX = 8192
DELTA_CHUNK = 4096
MAX_DELTAS = 16                # a new base after this many deltas...
MAX_DELTA_FRACTION = 0.25      # ...or when the deltas hold more rows than this share of the base


# ---- reading ------------------------------------------------------------------------------

def tree(repo, blob_id: bytes | str, decode):
    """Load a TREE blob (verified against its id) and decode it; failures are integrity errors."""
    raw_id = bytes.fromhex(blob_id) if isinstance(blob_id, str) else blob_id
    data = repo.load_blob(raw_id, BlobType.TREE)
    try:
        return decode(data)
    except (ValueError, TypeError, IndexError, KeyError, struct.error) as e:
        raise IntegrityError(f"manifest blob {raw_id.hex()[:16]} cannot be decoded: {e}") from None


def iter_base(repo, base_hex: str) -> Iterator[mf.Row]:
    for seg_id, _ in tree(repo, base_hex, mf.decode_segment_list):
        yield from tree(repo, seg_id, mf.decode_segment)


def iter_delta_layer(repo, layer: dict[str, Any]) -> Iterator[mf.Row]:
    for chunk in layer["chunks"]:
        yield from tree(repo, chunk, mf.decode_delta)


def iter_state(repo, entry: dict[str, Any]) -> Iterator[mf.Row]:
    """Every row of a namespace at snapshot time, sorted by record key: the base's rows, with
    the delta layers (merged in layer order per key) applied where they touch a record."""
    base = iter_base(repo, entry["base"])
    if not entry["deltas"]:
        yield from base
        return
    streams = [((r.key, n, r) for r in iter_delta_layer(repo, layer))
               for n, layer in enumerate(entry["deltas"], start=1)]
    changes = (t[2] for t in heapq.merge(*streams, key=lambda t: (t[0], t[1])))
    try:
        yield from apply_layer(base, changes)
    except ValueError as e:            # a delta that does not fit its base (mf.apply), or undecodable
        raise IntegrityError(f"manifest of namespace {entry['name']!r}: {e}") from None


# ---- writing ------------------------------------------------------------------------------

def sorted_rows(rows: Iterable[mf.Row]) -> Iterator[mf.Row]:
    """Pass rows through, raising Unsorted at the first one not after the one before it."""
    last = b""
    for r in rows:
        k = r.key
        if k <= last:
            raise Unsorted(k)
        last = k
        yield r


def write_base(repo, packer, rows: Iterable[mf.Row], hold_dir: str | None = None) -> tuple[str, int]:
    """Write rows (sorted) as segments and a segment list; returns (list blob id, count).

    With `hold_dir`, the encoded segments go to a private file there and reach the packer
    only once every row has arrived, so an exception while reading the rows (Unsorted) leaves
    nothing behind in the repository."""
    id_key = repo.master.id_key
    segments: list[tuple[bytes, int]] = []
    buf: list[mf.Row] = []
    total = 0
    held = None
    if hold_dir is not None:
        held = open(os.path.join(hold_dir, "segments"), "w+b")
        os.chmod(held.name, 0o600)

    def cut() -> None:
        data = mf.encode_segment(buf)
        if held is not None:
            held.write(struct.pack(">II", len(data), len(buf)))
            held.write(data)
        else:
            seg_id, _ = packer.add(BlobType.TREE, data)
            segments.append((seg_id, len(buf)))
        buf.clear()

    try:
        cuts = 0
        for row in rows:
            buf.append(row)
            total += 1
            h = int.from_bytes(blake3(row.key, key=id_key).digest(4), "big")
            if (h & SEGMENT_AVG_MASK) == 0 or len(buf) >= SEGMENT_MAX:
                cut()
                cuts += 1
        if buf or not cuts:
            cut()
        if held is not None:
            held.seek(0)
            while head := held.read(8):
                size, n = struct.unpack(">II", head)
                seg_id, _ = packer.add(BlobType.TREE, held.read(size))
                segments.append((seg_id, n))
    finally:
        if held is not None:
            held.close()
            os.unlink(held.name)
    list_id, _ = packer.add(BlobType.TREE, mf.encode_segment_list(segments))
    return list_id.hex(), total


def diff_into(prev: Iterator[mf.Row], tmp: TempRows, cur: Iterator[mf.Row] | None = None) -> dict[str, int]:
    """Merge-walk the previous state and the new rows (the spooled ones, or `cur` when given,
    sorted by key), spooling delta rows into tmp."""
    stats = {"added": 0, "changed": 0, "deleted": 0, "unchanged": 0}
    cur = tmp.iter_rows() if cur is None else cur
    with tmp.env.begin(write=True) as txn:
        a = next(prev, None)
        b = next(cur, None)
        while a is not None or b is not None:
            if b is None or (a is not None and a.key < b.key):
                tmp.put_delta(mf.Row(a.id, op=mf.OP_DELETE, flags=0), txn)
                stats["deleted"] += 1
                a = next(prev, None)
            elif a is None or b.key < a.key:
                tmp.put_delta(b, txn)
                stats["added"] += 1
                b = next(cur, None)
            else:
                d = mf.diff(a, b)
                if d is None:
                    stats["unchanged"] += 1
                else:
                    tmp.put_delta(d, txn)
                    stats["changed"] += 1
                a, b = next(prev, None), next(cur, None)
    return stats


def apply_layer(rows: Iterator[mf.Row], delta: Iterator[mf.Row]) -> Iterator[mf.Row]:
    """The rows (sorted by key) with the delta rows (sorted by key; several for one key, as from
    merged layers, are applied in the order they come) applied."""
    a = next(rows, None)
    d = next(delta, None)
    while d is not None:
        key = d.key
        while a is not None and a.key < key:
            yield a
            a = next(rows, None)
        state = None
        if a is not None and a.key == key:
            state, a = a, next(rows, None)
        while d is not None and d.key == key:
            state = mf.apply(state, d)
            d = next(delta, None)
        if state is not None:
            yield state
    while a is not None:
        yield a
        a = next(rows, None)


def write_delta(packer, rows: Iterator[mf.Row]) -> dict[str, Any]:
    chunks: list[str] = []
    buf: list[mf.Row] = []
    n = 0
    for row in rows:
        buf.append(row)
        n += 1
        if len(buf) >= DELTA_CHUNK:
            chunks.append(packer.add(BlobType.TREE, mf.encode_delta(buf))[0].hex())
            buf = []
    if buf:
        chunks.append(packer.add(BlobType.TREE, mf.encode_delta(buf))[0].hex())
    return {"chunks": chunks, "rows": n}


def write_namespace(repo, packer, name: str, tmp: TempRows, prev: dict[str, Any] | None,
                    logical_bytes: int, rows: Iterator[mf.Row] | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """The new namespace entry for the new rows, given the previous entry (or None).

    The rows are those spooled in tmp, or `rows` when given: an iterator in record-key order
    (see sorted_rows), read once as it streams, so nothing but the delta is spooled; if it
    raises, nothing has been added to the packer yet."""
    if prev is None:
        if rows is None:
            base, count = write_base(repo, packer, tmp.iter_rows())
        else:
            base, count = write_base(repo, packer, rows, hold_dir=tmp.dir)
        return ({"name": name, "count": count, "base": base, "deltas": [], "logical_bytes": logical_bytes},
                {"added": count, "changed": 0, "deleted": 0, "unchanged": 0})
    stats = diff_into(iter_state(repo, prev), tmp, rows)
    count = stats["added"] + stats["changed"] + stats["unchanged"]
    n_delta = tmp.count(tmp.delta)
    deltas = list(prev["deltas"])
    chain_rows = sum(d["rows"] for d in deltas) + n_delta
    entry = {"name": name, "count": count, "logical_bytes": logical_bytes}
    if n_delta == 0:
        entry.update(base=prev["base"], deltas=deltas)
    elif len(deltas) + 1 > MAX_DELTAS or chain_rows > MAX_DELTA_FRACTION * max(count, 1):
        new_rows = tmp.iter_rows() if rows is None else apply_layer(iter_state(repo, prev), tmp.iter_delta())
        base, _ = write_base(repo, packer, new_rows)
        entry.update(base=base, deltas=[])
    else:
        entry.update(base=prev["base"], deltas=deltas + [write_delta(packer, tmp.iter_delta())])
    return entry, stats
