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
from typing import Any

import numpy as np
from blake3 import blake3

from . import values

SEGMENT, DELTA, SEGMENT_LIST, SEGMENT2, DELTA2 = 1, 2, 3, 4, 5
OP_FULL, OP_PATCH, OP_DELETE = 0, 1, 2
F_VREF, F_META, F_META_PATCH, F_DOC, F_URI = 1, 2, 4, 8, 16
ALL_FIELDS = F_VREF | F_META | F_DOC | F_URI
MAX_KEY = 255


def record_key(rid: Any) -> bytes:
    """Sort key of a record id: b"i"+biased big-endian int, or b"s"+UTF-8 (hashed tail if long)."""
    if type(rid) is str:                                  # the common case first
        raw = b"s" + rid.encode("utf-8", "surrogatepass")
        return raw if len(raw) <= MAX_KEY else raw[:MAX_KEY - 32] + blake3(raw).digest()
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


def record_keys(ids: list) -> list[bytes]:
    """[record_key(i) for i in ids]; plain str ids without a NUL are encoded as one text
    (joined by NUL, then split: UTF-8 encodes each code point on its own, so the pieces are
    each id's bytes)."""
    if not ids:
        return []
    if set(map(type, ids)) <= {str}:
        text = "\0s".join(ids)
        if text.count("\0") == len(ids) - 1:
            keys = ("s" + text).encode("utf-8", "surrogatepass").split(b"\0")
        else:
            keys = [b"s" + i.encode("utf-8", "surrogatepass") for i in ids]
        if max(map(len, keys)) <= MAX_KEY:
            return keys
    return list(map(record_key, ids))


def split_ids(raw: bytes | memoryview, width: int = 32) -> list[bytes]:
    """Fixed-width pieces of raw (content ids): [raw[i:i + width] for i in range(0, len, width)]
    made by numpy (a void dtype keeps trailing zero bytes, unlike "S")."""
    if len(raw) % width:
        raise ValueError("id bytes are not a whole number of ids")
    return np.frombuffer(raw, dtype=f"V{width}").tolist() if len(raw) else []


_UNSET = object()


class Row:
    """One record's entry; in a delta, `op`/`flags` say which fields the row carries.

    The metadata is held as a value (`meta`), as its canonical bytes (`mraw`, see
    values.meta_bytes), or both: rows read from a manifest or built by a backup carry only the
    bytes, compared as bytes, and decode them when `meta` is first read."""
    __slots__ = ("id", "vref", "_meta", "_mraw", "doc", "uri", "op", "flags", "_key")

    def __init__(self, id: Any, vref: bytes | None = None, meta: Any = None, doc: str | None = None,
                 uri: str | None = None, op: int = OP_FULL, flags: int = ALL_FIELDS,
                 mraw: bytes | None = None):
        self.id, self.vref, self.doc, self.uri, self.op, self.flags = id, vref, doc, uri, op, flags
        self._meta = _UNSET if mraw is not None else meta
        self._mraw = mraw
        self._key: bytes | None = None

    @property
    def meta(self) -> Any:
        m = self._meta
        if m is _UNSET:
            m = self._meta = values.meta_value(self._mraw)  # type: ignore[arg-type]
        return m

    @meta.setter
    def meta(self, value: Any) -> None:
        self._meta, self._mraw = value, None

    @property
    def mraw(self) -> bytes:
        """The metadata's canonical bytes (computed once)."""
        r = self._mraw
        if r is None:
            r = self._mraw = values.meta_bytes(self._meta)
        return r

    @property
    def key(self) -> bytes:
        """The record key, computed once per row (rows' ids are never reassigned)."""
        k = self._key
        if k is None:
            k = self._key = record_key(self.id)
        return k

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Row):
            return NotImplemented
        return (self.id, self.vref, self.doc, self.uri, self.op, self.flags) == \
            (other.id, other.vref, other.doc, other.uri, other.op, other.flags) and \
            (self.op == OP_DELETE or self.mraw == other.mraw)

    def __repr__(self) -> str:
        return f"Row(id={self.id!r}, op={self.op}, flags={self.flags})"


def _col(obj: Any) -> bytes:
    """Format-1 column (read only): u32 length | typed value of the list."""
    raw = values.dumps(obj)
    return struct.pack(">I", len(raw)) + raw


def _read_col(data: memoryview, pos: int) -> tuple[Any, int]:
    (n,) = struct.unpack_from(">I", data, pos)
    pos += 4
    return values.loads(bytes(data[pos:pos + n])), pos + n


def _col2(items: list) -> bytes:
    """Format-2 column of ids, documents or URIs: u32 length | JSON list or typed list."""
    raw = values.dumps_column(items)
    return struct.pack(">I", len(raw)) + raw


def _read_col2(data: memoryview, pos: int, n: int | None) -> tuple[list, int]:
    """A format-2 column at pos, and the position after it; n = the length it must have (None:
    a delta's column, which holds only the rows that carry that field)."""
    (size,) = struct.unpack_from(">I", data, pos)
    pos += 4
    out = values.loads_column(bytes(data[pos:pos + size]))
    if n is not None and len(out) != n:
        raise ValueError("manifest column length does not match its row count")
    return out, pos + size


def _meta_col(raws: list[bytes]) -> bytes:
    """Format-2 metadata column: u32 count | count x u32 length | the rows' metadata bytes."""
    return b"".join([struct.pack(">I", len(raws)), np.fromiter(map(len, raws), dtype=">u4",
                                                               count=len(raws)).tobytes(), *raws])


def _read_meta_col(data: memoryview, pos: int) -> tuple[list[bytes], int]:
    (n,) = struct.unpack_from(">I", data, pos)
    pos += 4
    lengths = np.frombuffer(data, dtype=">u4", count=n, offset=pos)
    pos += 4 * n
    ends = (np.cumsum(lengths, dtype=np.int64) + pos).tolist()
    if ends and ends[-1] > len(data):
        raise ValueError("metadata column is truncated")
    raw = bytes(data)
    out = [raw[s:e] for s, e in zip([pos] + ends[:-1], ends)]
    return out, (ends[-1] if ends else pos)


def encode_segment(rows: list[Row]) -> bytes:
    return b"".join([
        struct.pack(">BI", SEGMENT2, len(rows)),
        _col2([r.id for r in rows]),
        b"".join([r.vref for r in rows]),          # type: ignore[misc]
        _meta_col([r.mraw for r in rows]),
        _col2([r.doc for r in rows]),
        _col2([r.uri for r in rows]),
    ])


def encode_segment_cols(ids: list, vrefs: list[bytes], mraws: list[bytes], docs: list, uris: list) -> bytes:
    """encode_segment of the rows given as columns (the same bytes)."""
    return b"".join([struct.pack(">BI", SEGMENT2, len(ids)), _col2(ids), b"".join(vrefs), _meta_col(mraws),
                     _col2(docs), _col2(uris)])


def decode_segment_cols(data: bytes) -> tuple[list, list[bytes], list[bytes], list, list]:
    """A segment as columns (ids, vrefs, metadata bytes, documents, uris); format-1 segments
    are decoded through their rows."""
    mv = memoryview(data)
    kind, n = struct.unpack_from(">BI", mv, 0)
    if kind != SEGMENT2:
        rows = decode_segment(data)
        return ([r.id for r in rows], [r.vref for r in rows], [r.mraw for r in rows],  # type: ignore[misc]
                [r.doc for r in rows], [r.uri for r in rows])
    ids, pos = _read_col2(mv, 5, n)
    raw = bytes(mv[pos:pos + 32 * n])
    if len(raw) != 32 * n:
        raise ValueError("segment is truncated")
    vrefs = split_ids(raw)
    pos += 32 * n
    metas, pos = _read_meta_col(mv, pos)
    docs, pos = _read_col2(mv, pos, n)
    uris, pos = _read_col2(mv, pos, n)
    if len(metas) != n:
        raise ValueError("metadata column length does not match its row count")
    return ids, vrefs, metas, docs, uris


def decode_segment(data: bytes) -> list[Row]:
    mv = memoryview(data)
    kind, n = struct.unpack_from(">BI", mv, 0)
    if kind == SEGMENT:
        return _decode_segment1(mv, n)
    if kind != SEGMENT2:
        raise ValueError("not a manifest segment")
    ids, pos = _read_col2(mv, 5, n)
    raw = bytes(mv[pos:pos + 32 * n])
    if len(raw) != 32 * n:
        raise ValueError("segment is truncated")
    vrefs = split_ids(raw)
    pos += 32 * n
    metas, pos = _read_meta_col(mv, pos)
    docs, pos = _read_col2(mv, pos, n)
    uris, pos = _read_col2(mv, pos, n)
    if len(metas) != n:
        raise ValueError("metadata column length does not match its row count")
    return [Row(i, v, None, d, u, OP_FULL, ALL_FIELDS, m) for i, v, m, d, u in zip(ids, vrefs, metas, docs, uris)]


def _decode_segment1(mv: memoryview, n: int) -> list[Row]:
    ids, pos = _read_col(mv, 5)
    vrefs = [bytes(mv[pos + 32 * i: pos + 32 * (i + 1)]) for i in range(n)]
    pos += 32 * n
    metas, pos = _read_col(mv, pos)
    docs, pos = _read_col(mv, pos)
    uris, pos = _read_col(mv, pos)
    return [Row(ids[i], vrefs[i], metas[i], docs[i], uris[i]) for i in range(n)]


def _carries(r: Row, flag: int) -> bool:
    return r.op != OP_DELETE and bool(r.flags & flag)


def encode_delta(rows: list[Row]) -> bytes:
    vrefs = b"".join([r.vref for r in rows if _carries(r, F_VREF)])  # type: ignore[misc]
    return b"".join([
        struct.pack(">BI", DELTA2, len(rows)),
        _col2([r.id for r in rows]),
        bytes(r.op for r in rows),
        bytes(0 if r.op == OP_DELETE else r.flags for r in rows),
        struct.pack(">I", len(vrefs)), vrefs,
        _meta_col([r.mraw for r in rows if _carries(r, F_META | F_META_PATCH)]),
        _col2([r.doc for r in rows if _carries(r, F_DOC)]),
        _col2([r.uri for r in rows if _carries(r, F_URI)]),
    ])


def decode_delta(data: bytes) -> list[Row]:
    mv = memoryview(data)
    kind, n = struct.unpack_from(">BI", mv, 0)
    if kind not in (DELTA, DELTA2):
        raise ValueError("not a manifest delta")
    v2 = kind == DELTA2
    if v2:
        ids, pos = _read_col2(mv, 5, n)
    else:
        ids, pos = _read_col(mv, 5)
    ops = bytes(mv[pos:pos + n])
    flags = bytes(mv[pos + n:pos + 2 * n])
    pos += 2 * n
    (vlen,) = struct.unpack_from(">I", mv, pos)
    pos += 4
    vrefs = iter(split_ids(mv[pos:pos + vlen]))
    pos += vlen
    if v2:
        metas, pos = _read_meta_col(mv, pos)
        docs, pos = _read_col2(mv, pos, None)
        uris, pos = _read_col2(mv, pos, None)
    else:
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
                if v2:
                    row._meta, row._mraw = _UNSET, next(mi)
                else:
                    row.meta = next(mi)
            if f & F_DOC:
                row.doc = next(di)
            if f & F_URI:
                row.uri = next(ui)
        rows.append(row)
    return rows


def decode_delta_cols(data: bytes) -> tuple[list, list[int], list[int], list, list, list, list]:
    """A delta as columns (ids, ops, flags, vrefs, metadata bytes, documents, uris), one
    entry per row: None where a row does not carry the field. Format-1 deltas are decoded
    through their rows."""
    mv = memoryview(data)
    kind, n = struct.unpack_from(">BI", mv, 0)
    if kind != DELTA2:
        rows = decode_delta(data)
        carry = [(r.op != OP_DELETE, r.flags) for r in rows]
        return ([r.id for r in rows], [r.op for r in rows], [0 if r.op == OP_DELETE else r.flags for r in rows],
                [r.vref if c and f & F_VREF else None for r, (c, f) in zip(rows, carry)],
                [r.mraw if c and f & (F_META | F_META_PATCH) else None for r, (c, f) in zip(rows, carry)],
                [r.doc if c and f & F_DOC else None for r, (c, f) in zip(rows, carry)],
                [r.uri if c and f & F_URI else None for r, (c, f) in zip(rows, carry)])
    ids, pos = _read_col2(mv, 5, n)
    ops = list(mv[pos:pos + n])
    flags = [0 if o == OP_DELETE else f for o, f in zip(ops, mv[pos + n:pos + 2 * n])]
    pos += 2 * n
    (vlen,) = struct.unpack_from(">I", mv, pos)
    pos += 4
    raw = bytes(mv[pos:pos + vlen])
    pos += vlen
    vrefs = split_ids(raw)
    metas, pos = _read_meta_col(mv, pos)
    docs, pos = _read_col2(mv, pos, None)
    uris, pos = _read_col2(mv, pos, None)
    cols = []
    for col, mask in ((vrefs, F_VREF), (metas, F_META | F_META_PATCH), (docs, F_DOC), (uris, F_URI)):
        has = [bool(f & mask) for f in flags]
        if len(col) != sum(has):
            raise ValueError("manifest delta column length does not match its flags")
        if len(col) == n:
            cols.append(col)
        else:
            it = iter(col)
            cols.append([next(it) if h else None for h in has])
    return (ids, ops, flags, *cols)


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
    meta_changed = old.mraw != new.mraw
    doc_changed = not (old.doc == new.doc and type(old.doc) is type(new.doc)) and not same(old.doc, new.doc)
    uri_changed = not (old.uri == new.uri and type(old.uri) is type(new.uri)) and not same(old.uri, new.uri)
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
            _take_meta(row, new)
    if doc_changed:
        flags |= F_DOC
        row.doc = new.doc
    if uri_changed:
        flags |= F_URI
        row.uri = new.uri
    row.flags = flags
    return row


def _take_meta(dst: Row, src: Row) -> None:
    """Give dst the metadata of src in whatever form src holds it (no decoding)."""
    dst._meta, dst._mraw = src._meta, src._mraw


def apply(old: Row | None, delta: Row) -> Row | None:
    """Apply a delta row to the previous state of a record (None: absent)."""
    if delta.op == OP_DELETE:
        return None
    row = Row(delta.id if delta.op == OP_FULL or old is None else old.id)
    if delta.op == OP_FULL:
        row.vref, row.doc, row.uri = delta.vref, delta.doc, delta.uri
        _take_meta(row, delta)
        return row
    if old is None:
        raise ValueError("manifest delta patches a record that does not exist")
    row.vref, row.doc, row.uri = old.vref, old.doc, old.uri
    _take_meta(row, old)
    f = delta.flags
    if f & F_VREF:
        row.vref = delta.vref
    if f & F_META:
        _take_meta(row, delta)
    elif f & F_META_PATCH:
        row.meta = _apply_meta_patch(old.meta, delta.meta)
    if f & F_DOC:
        row.doc = delta.doc
    if f & F_URI:
        row.uri = delta.uri
    return row
