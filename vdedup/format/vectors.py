"""Vector payload: the heavy part of a record, one content-addressed blob (format layer).

A record's dense vectors, multivectors and sparse vectors are encoded canonically
(entries sorted by kind and name) into one payload whose keyed BLAKE3 hash is the
record's vector content id. Layout:

    u8 version=1 | u8 body_itemsize | u32 header_len | header | body
    header: u16 n, then per entry: u8 kind | u8 dtype | u16 name_len | name | u32 rows | u32 cols
    body:   the entries' arrays back to back (dense: rows*cols items; sparse: cols u32 indices
            then cols float32 values, rows=1)

`body_itemsize` is the GCD of the element sizes of the arrays in the body (4 for float32 and
sparse, 2 for float16, 8 for float64, 1 with uint8/binary); block compression shuffles by it.
Sparse indices are big-endian u32, every other array little-endian.
"""
from __future__ import annotations

import math
import struct

import numpy as np

from ..model import SparseVector

VERSION = 1
DENSE, MULTI, SPARSE = 1, 2, 3
DTYPES = {"float32": 1, "float16": 2, "bfloat16": 3, "float64": 4, "int8": 5, "uint8": 6, "binary": 7}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
NUMPY = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int8": np.int8,
         "uint8": np.uint8, "binary": np.uint8, "bfloat16": np.uint16}


def dtype_name(arr: np.ndarray) -> str:
    name = arr.dtype.name
    if name == "bool":
        return "binary"
    if name in DTYPES:
        return name
    if name == "uint16":            # bfloat16 travels as raw uint16 bits
        return "bfloat16"
    raise TypeError(f"unsupported vector dtype {name}")


_ENTRY_CACHE: dict[tuple, tuple[bytes, int, np.dtype]] = {}


def _dense_entry(name: str, arr: np.ndarray) -> tuple[bytes, int, np.dtype]:
    """Header bytes, item size and little-endian storage dtype of a dense entry (cached)."""
    key = (name, arr.dtype.str, arr.shape)
    hit = _ENTRY_CACHE.get(key)
    if hit is not None:
        return hit
    kind = DENSE if arr.ndim == 1 else MULTI
    rows, cols = (1, arr.shape[0]) if arr.ndim == 1 else arr.shape
    dt = np.dtype(np.uint8) if arr.dtype == np.bool_ else arr.dtype
    store = dt.newbyteorder("<") if dt.itemsize > 1 else dt
    raw_name = name.encode("utf-8")
    header = struct.pack(">BBH", kind, DTYPES[dtype_name(arr)], len(raw_name)) + raw_name + \
        struct.pack(">II", rows, cols)
    if len(_ENTRY_CACHE) < 4096:
        _ENTRY_CACHE[key] = (header, dt.itemsize, store)
    return header, dt.itemsize, store


def encode_payload(vectors: dict[str, np.ndarray], sparse: dict[str, SparseVector]) -> bytes:
    parts: list[tuple[int, str, bytes, bytes, int]] = []     # kind, name, header, body, itemsize
    for name, arr in vectors.items():
        header, itemsize, store = _dense_entry(name, arr)
        body = arr.astype(store, copy=False).tobytes() if arr.dtype != np.bool_ else arr.astype(np.uint8).tobytes()
        parts.append((header[0], name, header, body, itemsize))
    for name, sv in sparse.items():
        raw_name = name.encode("utf-8")
        header = struct.pack(">BBH", SPARSE, DTYPES["float32"], len(raw_name)) + raw_name + \
            struct.pack(">II", 1, len(sv.indices))
        parts.append((SPARSE, name, header, sv.indices.astype(">u4").tobytes() + sv.values.astype("<f4").tobytes(), 4))
    if len(parts) > 1:
        parts.sort(key=lambda e: (e[0], e[1]))
    header = struct.pack(">H", len(parts)) + b"".join(p[2] for p in parts)
    itemsize = math.gcd(*(p[4] for p in parts)) if parts else 1
    return struct.pack(">BBI", VERSION, itemsize, len(header)) + header + b"".join(p[3] for p in parts)


def split_payload(payload: bytes) -> tuple[int, int]:
    """(body_itemsize, offset of body) without decoding the arrays."""
    _, itemsize, hlen = struct.unpack_from(">BBI", payload, 0)
    return itemsize, 6 + hlen


def decode_payload(payload: bytes) -> tuple[dict[str, np.ndarray], dict[str, SparseVector]]:
    version, _, hlen = struct.unpack_from(">BBI", payload, 0)
    if version != VERSION:
        raise ValueError(f"unknown vector payload version {version}")
    pos = 6
    (n,) = struct.unpack_from(">H", payload, pos)
    pos += 2
    body = 6 + hlen
    vectors: dict[str, np.ndarray] = {}
    sparse: dict[str, SparseVector] = {}
    for _ in range(n):
        kind, dt, nlen = struct.unpack_from(">BBH", payload, pos)
        pos += 4
        name = payload[pos:pos + nlen].decode("utf-8")
        pos += nlen
        rows, cols = struct.unpack_from(">II", payload, pos)
        pos += 8
        if kind == SPARSE:
            idx = np.frombuffer(payload, dtype=">u4", count=cols, offset=body).astype(np.uint32)
            body += 4 * cols
            vals = np.frombuffer(payload, dtype="<f4", count=cols, offset=body).astype(np.float32)
            body += 4 * cols
            sparse[name] = SparseVector(idx, vals)
            continue
        dname = DTYPE_NAMES[dt]
        np_dt = np.dtype(NUMPY[dname])
        le = np_dt.newbyteorder("<") if np_dt.itemsize > 1 else np_dt
        arr = np.frombuffer(payload, dtype=le, count=rows * cols, offset=body).astype(np_dt)
        body += np_dt.itemsize * rows * cols
        if dname == "binary":
            arr = arr.astype(np.uint8)
        vectors[name] = arr.reshape(cols) if kind == DENSE else arr.reshape(rows, cols)
    return vectors, sparse


def dense_batch_rows(dense: dict[str, np.ndarray], lead: bytes = b"") -> tuple[bytes, int] | None:
    """The payloads of a batch whose records all carry the same dense vectors (one 2-d array
    per name, a row per record), built at once: returns (buffer, width) where record i's
    payload, preceded by `lead`, is buffer[i*width:(i+1)*width]; identical to
    `lead + encode_payload(...)` of each record. None when the arrays do not qualify."""
    if not dense:
        return None
    names = sorted(dense)
    n = None
    entries = []
    for name in names:
        arr = dense[name]
        if arr.ndim != 2 or arr.dtype == np.bool_ or (n is not None and arr.shape[0] != n):
            return None
        n = arr.shape[0]
        header, itemsize, store = _dense_entry(name, arr[0]) if n else (None, 0, None)
        if header is None:
            return None
        entries.append((header, itemsize, np.ascontiguousarray(arr, dtype=store)))
    header = struct.pack(">H", len(entries)) + b"".join(e[0] for e in entries)
    itemsize = math.gcd(*(e[1] for e in entries))
    prefix = lead + struct.pack(">BBI", VERSION, itemsize, len(header)) + header
    bodies = [e[2].view(np.uint8).reshape(n, -1) for e in entries]
    width = len(prefix) + sum(b.shape[1] for b in bodies)
    out = np.empty((n, width), dtype=np.uint8)
    out[:, :len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    col = len(prefix)
    for b in bodies:
        out[:, col:col + b.shape[1]] = b
        col += b.shape[1]
    return out.tobytes(), width


def dense_batch_split(dense: dict[str, np.ndarray]) -> tuple[bytes, np.ndarray] | None:
    """A batch whose records all carry one dense vector of the same name (a 2-d array, a
    row per record) as (prefix, body): record i's payload is `prefix + body[i].tobytes()`,
    identical to encode_payload's, and `body` is the array's own memory when it is stored
    as it is (little-endian), so nothing is copied. None when the batch does not qualify."""
    if len(dense) != 1:
        return None
    (name, arr), = dense.items()
    if arr.ndim != 2 or arr.dtype == np.bool_ or not arr.shape[0]:
        return None
    header, itemsize, store = _dense_entry(name, arr[0])
    header = struct.pack(">H", 1) + header
    prefix = struct.pack(">BBI", VERSION, itemsize, len(header)) + header
    return prefix, np.ascontiguousarray(arr, dtype=store).view(np.uint8).reshape(arr.shape[0], -1)


def decode_dense_batch(payloads: list[bytes]) -> dict[str, np.ndarray] | None:
    """Inverse of dense_batch_rows: when every payload has the same header and holds only
    dense (1-d) vectors, their arrays as one (n, dim) array per name, equal to stacking
    decode_payload's arrays row by row. None otherwise (decode them one by one)."""
    if not payloads:
        return None
    first = payloads[0]
    _, body = split_payload(first)
    prefix, size = first[:body], len(first)
    for p in payloads:
        if len(p) != size or not p.startswith(prefix):
            return None
    vectors, sparse = decode_payload(first)
    if sparse or any(v.ndim != 1 for v in vectors.values()):
        return None
    n, width = len(payloads), size - body
    mat = np.frombuffer(b"".join([p[body:] for p in payloads]), dtype=np.uint8).reshape(n, width)
    return _columns(mat, vectors, n, width)


def _columns(mat: np.ndarray, vectors: dict[str, np.ndarray], n: int, width: int) -> dict[str, np.ndarray] | None:
    """The vectors of n payload bodies (the rows of `mat`, `width` bytes each) laid out as the
    first payload's `vectors`: one (n, dim) array per name, or None if the widths disagree."""
    out: dict[str, np.ndarray] = {}
    col = 0
    for name in sorted(vectors):             # payload entries are in name order (one kind)
        v = vectors[name]
        stored = np.dtype(v.dtype)
        stored = stored.newbyteorder("<") if stored.itemsize > 1 else stored
        nbytes = stored.itemsize * v.shape[0]
        part = mat if nbytes == width else np.ascontiguousarray(mat[:, col:col + nbytes])
        out[name] = part.view(stored).reshape(n, v.shape[0]).astype(v.dtype, copy=False)
        col += nbytes
    return out if col == width else None


def decode_dense_rows(rows: np.ndarray) -> dict[str, np.ndarray] | None:
    """decode_dense_batch of payloads given as the rows of an (n, width) uint8 array (blobs
    of one layout, format/block.py decode_block_rows): the same arrays, or None."""
    return decode_dense_pieces([rows])


def decode_dense_pieces(pieces: list[np.ndarray]) -> dict[str, np.ndarray] | None:
    """decode_dense_rows of the rows of several (n_i, width) uint8 arrays stacked, without
    stacking them first: each vector byte is copied once, from its piece into the result."""
    pieces = [p for p in pieces if len(p)]
    n = sum(len(p) for p in pieces)
    if not n:
        return None
    first = pieces[0][0].tobytes()
    _, body = split_payload(first)
    width = pieces[0].shape[1] - body
    if width < 0 or any(p.shape[1] != width + body for p in pieces):
        return None
    head = pieces[0][0, :body]
    if not all((p[:, :body] == head).all() for p in pieces):
        return None
    vectors, sparse = decode_payload(first)
    if sparse or any(v.ndim != 1 for v in vectors.values()):
        return None
    mat = np.empty((n, width), dtype=np.uint8)
    i = 0
    for p in pieces:
        mat[i:i + len(p)] = p[:, body:]
        i += len(p)
    return _columns(mat, vectors, n, width)
