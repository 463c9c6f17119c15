"""Manifest encoding: what each snapshot says a collection holds (format layer).

A namespace's manifest is a sorted sequence of rows (record id -> vector content id +
metadata + document + uri), sorted by `record_key(id)`. It is stored as layers:

- a base: a segment list blob (kind 3) naming segment blobs (kind 1) of about 1,000 rows,
  cut where a keyed hash of the record key hits a boundary, so unchanged stretches of a
  collection produce identical, deduplicated segments;
- zero or more deltas (kind 2), each holding only the rows that changed since the
  previous snapshot: full rows for new records, patches (changed fields only, metadata
  as per-key set/delete) for changed ones, tombstones for deleted ones.

All manifest blobs are TREE blobs: content-addressed, compressed, encrypted in packs.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from blake3 import blake3

from . import values

SEGMENT, DELTA, SEGMENT_LIST = 1, 2, 3
OP_FULL, OP_PATCH, OP_DELETE = 0, 1, 2
F_VREF, F_META, F_META_PATCH, F_DOC, F_URI = 1, 2, 4, 8, 16
ALL_FIELDS = F_VREF | F_META | F_DOC | F_URI
MAX_KEY = 255


def record_key(rid: Any) -> bytes:
    """Sort key of a record id: b"i"+biased big-endian int, or b"s"+UTF-8 (hashed tail if long)."""
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise TypeError(f"record ids must be str or int, got {type(rid).__name__}")
    if isinstance(rid, int):
        if not -(2 ** 63) <= rid < 2 ** 64:
            raise ValueError("integer record id out of range")
        return b"i" + (rid + 2 ** 63).to_bytes(9, "big")
    raw = b"s" + rid.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_KEY:
        raw = raw[:MAX_KEY - 32] + blake3(raw).digest()
    return raw


@dataclass(slots=True)
class Row:
    """One record's entry; in a delta, `op`/`flags` say which fields the row carries."""
    id: Any
    vref: bytes | None = None
    meta: Any = None
    doc: str | None = None
    uri: str | None = None
    op: int = OP_FULL
    flags: int = ALL_FIELDS
    _key: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> bytes:
        """The record key, computed once per row (rows' ids are never reassigned)."""
        k = self._key
        if k is None:
            k = self._key = record_key(self.id)
        return k


def _col(obj: Any) -> bytes:
    raw = values.dumps(obj)
    return struct.pack(">I", len(raw)) + raw


def _read_col(data: memoryview, pos: int) -> tuple[Any, int]:
    (n,) = struct.unpack_from(">I", data, pos)
    pos += 4
    return values.loads(bytes(data[pos:pos + n])), pos + n


def encode_segment(rows: list[Row]) -> bytes:
    return b"".join([
        struct.pack(">BI", SEGMENT, len(rows)),
        _col([r.id for r in rows]),
        b"".join(r.vref for r in rows),          # type: ignore[misc]
        _col([r.meta for r in rows]),
        _col([r.doc for r in rows]),
        _col([r.uri for r in rows]),
    ])


def decode_segment(data: bytes) -> list[Row]:
    mv = memoryview(data)
    kind, n = struct.unpack_from(">BI", mv, 0)
    if kind != SEGMENT:
        raise ValueError("not a manifest segment")
    ids, pos = _read_col(mv, 5)
    vrefs = [bytes(mv[pos + 32 * i: pos + 32 * (i + 1)]) for i in range(n)]
    pos += 32 * n
    metas, pos = _read_col(mv, pos)
    docs, pos = _read_col(mv, pos)
    uris, pos = _read_col(mv, pos)
    return [Row(ids[i], vrefs[i], metas[i], docs[i], uris[i]) for i in range(n)]


def encode_delta(rows: list[Row]) -> bytes:
    vrefs = b"".join(r.vref for r in rows if r.op != OP_DELETE and r.flags & F_VREF)  # type: ignore[misc]
    return b"".join([
        struct.pack(">BI", DELTA, len(rows)),
        _col([r.id for r in rows]),
        bytes(r.op for r in rows),
        bytes(0 if r.op == OP_DELETE else r.flags for r in rows),
        struct.pack(">I", len(vrefs)), vrefs,
        _col([r.meta for r in rows if r.op != OP_DELETE and r.flags & (F_META | F_META_PATCH)]),
        _col([r.doc for r in rows if r.op != OP_DELETE and r.flags & F_DOC]),
        _col([r.uri for r in rows if r.op != OP_DELETE and r.flags & F_URI]),
    ])


def decode_delta(data: bytes) -> list[Row]:
    mv = memoryview(data)
    kind, n = struct.unpack_from(">BI", mv, 0)
    if kind != DELTA:
        raise ValueError("not a manifest delta")
    ids, pos = _read_col(mv, 5)
    ops = bytes(mv[pos:pos + n])
    flags = bytes(mv[pos + n:pos + 2 * n])
    pos += 2 * n
    (vlen,) = struct.unpack_from(">I", mv, pos)
    pos += 4
    vrefs = iter([bytes(mv[pos + i:pos + i + 32]) for i in range(0, vlen, 32)])
    pos += vlen
    metas, pos = _read_col(mv, pos)
    docs, pos = _read_col(mv, pos)
    uris, pos = _read_col(mv, pos)
    mi, di, ui = iter(metas), iter(docs), iter(uris)
    rows = []
    for i in range(n):
        f = flags[i]
        row = Row(ids[i], op=ops[i], flags=f)
        if ops[i] != OP_DELETE:
            if f & F_VREF:
                row.vref = next(vrefs)
            if f & (F_META | F_META_PATCH):
                row.meta = next(mi)
            if f & F_DOC:
                row.doc = next(di)
            if f & F_URI:
                row.uri = next(ui)
        rows.append(row)
    return rows


def encode_segment_list(entries: list[tuple[bytes, int]]) -> bytes:
    return struct.pack(">BI", SEGMENT_LIST, len(entries)) + b"".join(
        blob_id + struct.pack(">I", count) for blob_id, count in entries)


def decode_segment_list(data: bytes) -> list[tuple[bytes, int]]:
    kind, n = struct.unpack_from(">BI", data, 0)
    if kind != SEGMENT_LIST:
        raise ValueError("not a segment list")
    return [(bytes(data[5 + 36 * i:5 + 36 * i + 32]), struct.unpack_from(">I", data, 5 + 36 * i + 32)[0])
            for i in range(n)]


# ---- row arithmetic -------------------------------------------------------------------

def _meta_patch(old: Any, new: Any) -> dict | None:
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return None
    patch = {"set": {k: v for k, v in new.items() if k not in old or not values.same(old[k], v)},
             "del": [k for k in old if k not in new]}
    return patch if values.same(_apply_meta_patch(old, patch), new) else None


def _apply_meta_patch(old: dict, patch: dict) -> dict:
    out = {k: v for k, v in old.items() if k not in patch["del"]}
    out.update(patch["set"])
    return {k: out[k] for k in sorted(out)}     # rows hold canonical (key-sorted) metadata


def diff(old: Row, new: Row) -> Row | None:
    """The delta row turning `old` into `new`, or None when they are equal."""
    same = values.same
    vref_changed = old.vref != new.vref
    meta_changed = not same(old.meta, new.meta)
    doc_changed = not same(old.doc, new.doc)
    uri_changed = not same(old.uri, new.uri)
    if not (vref_changed or meta_changed or doc_changed or uri_changed):
        return None                  # the common case: no delta row is built
    flags = 0
    row = Row(new.id, op=OP_PATCH)
    if vref_changed:
        flags |= F_VREF
        row.vref = new.vref
    if meta_changed:
        patch = _meta_patch(old.meta, new.meta)
        if patch is not None:
            flags |= F_META_PATCH
            row.meta = patch
        else:
            flags |= F_META
            row.meta = new.meta
    if doc_changed:
        flags |= F_DOC
        row.doc = new.doc
    if uri_changed:
        flags |= F_URI
        row.uri = new.uri
    row.flags = flags
    return row


def apply(old: Row | None, delta: Row) -> Row | None:
    """Apply a delta row to the previous state of a record (None: absent)."""
    if delta.op == OP_DELETE:
        return None
    if delta.op == OP_FULL:
        return Row(delta.id, delta.vref, delta.meta, delta.doc, delta.uri)
    if old is None:
        raise ValueError("manifest delta patches a record that does not exist")
    row = Row(old.id, old.vref, old.meta, old.doc, old.uri)
    f = delta.flags
    if f & F_VREF:
        row.vref = delta.vref
    if f & F_META:
        row.meta = delta.meta
    elif f & F_META_PATCH:
        row.meta = _apply_meta_patch(old.meta, delta.meta)
    if f & F_DOC:
        row.doc = delta.doc
    if f & F_URI:
        row.uri = delta.uri
    return row
