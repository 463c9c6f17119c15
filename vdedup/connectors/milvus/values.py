"""Values both ways between pymilvus rows and the model's records (connector layer).

Milvus -> model: INT64 keys are ints, VARCHAR keys strings; FLOAT_VECTOR is float32,
FLOAT16_VECTOR float16, BFLOAT16_VECTOR the raw uint16 bit patterns, INT8_VECTOR int8 and
BINARY_VECTOR one 0/1 byte per bit as the format's "binary" dtype (unpacked most significant
bit first, as `np.packbits` packs); SPARSE_FLOAT_VECTOR fields are sparse vectors; every
scalar, JSON and ARRAY field and every dynamic-field key is a metadata key (TIMESTAMPTZ a
datetime). model -> Milvus: the same, refusing what a field cannot hold exactly. Keys that
are not schema fields go into the dynamic field, where the collection has one.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from ...errors import SourceError, UsageError
from ...model import RecordBatch, RecordId, SparseColumn, SparseVector
from .schema import DENSE_TYPES, SPARSE_TYPE, Field

# ------------------------------------------------------------ Milvus -> model


def dense_value(value: Any, ftype: str, dim: int | None) -> np.ndarray:
    """One vector as pymilvus returns it, as a numpy array in the model's representation."""
    np_dtype = DENSE_TYPES[ftype][1]
    if ftype == "FLOAT_VECTOR":
        return np.asarray(value, dtype=np.float32)
    raw = as_bytes(value, np_dtype)
    if ftype == "BINARY_VECTOR":
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
        return bits[:dim].astype(np.bool_) if dim is not None else bits.astype(np.bool_)
    return np.frombuffer(raw, dtype=np.dtype(np_dtype).newbyteorder("<")).astype(np_dtype)


def as_bytes(value: Any, np_dtype: Any) -> bytes:
    """The raw little-endian bytes of a byte-based vector (pymilvus answers bytes, or a list
    holding one bytes object in query results)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (bytes, bytearray, memoryview)) for v in value):
        return b"".join(bytes(v) for v in value)
    want = np.dtype(np_dtype)
    if isinstance(value, np.ndarray) and value.dtype.itemsize == want.itemsize:
        return value.view(want).astype(want.newbyteorder("<")).tobytes()   # e.g. bfloat16 bits
    if isinstance(value, (list, tuple, np.ndarray)) and want.kind in "iu" and want != np.uint16:
        return np.asarray(value, dtype=want).tobytes()
    raise SourceError(f"unexpected vector value of type {type(value).__name__} from Milvus")


def sparse_value(value: Any) -> SparseVector:
    if isinstance(value, dict):
        keys = list(value.keys())
        return SparseVector(np.array(keys, dtype=np.uint32),
                            np.array([value[k] for k in keys], dtype=np.float32))
    raise SourceError(f"unexpected sparse vector value of type {type(value).__name__} from Milvus")


def scalar_value(value: Any, ftype: str) -> Any:
    if value is None:
        return None
    if ftype == "TIMESTAMPTZ" and isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if ftype in ("FLOAT", "DOUBLE"):
        return float(value)
    if ftype in ("INT8", "INT16", "INT32", "INT64"):
        return int(value)
    if ftype == "BOOL":
        return bool(value)
    if isinstance(value, np.generic):
        return value.item()
    if ftype == "ARRAY" and not isinstance(value, list):
        return [v.item() if isinstance(v, np.generic) else v for v in value]
    return value


def to_batch(rows: list[dict[str, Any]], fields: list[Field], namespace: str, where: str,
           collection: str) -> RecordBatch:
    pk = next(f for f in fields if f.primary)
    dense_fields = [f for f in fields if f.type in DENSE_TYPES and not f.function_output]
    sparse_fields = [f for f in fields if f.type == SPARSE_TYPE and not f.function_output]
    scalar_fields = [f for f in fields if not f.primary and f.type not in DENSE_TYPES
                     and f.type != SPARSE_TYPE]
    known = {f.name for f in fields}
    n = len(rows)
    ids: list[RecordId] = []
    for r in rows:
        rid = r[pk.name]
        ids.append(int(rid) if pk.type == "INT64" else str(rid))
    dense: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for f in dense_fields:
        vals = [r.get(f.name) for r in rows]
        got = [None if v is None else dense_value(v, f.type, f.dim) for v in vals]
        width = next((g.shape[0] for g in got if g is not None), f.dim or 0)
        dtype = next((g.dtype for g in got if g is not None), np.dtype(DENSE_TYPES[f.type][1]))
        arr = np.zeros((n, width), dtype=dtype)
        mask = np.zeros(n, dtype=bool)
        for i, g in enumerate(got):
            if g is not None:
                if g.shape[0] != width:
                    raise SourceError(f"Milvus returned vectors of different lengths in field "
                                      f"{f.name!r} of {collection!r} at {where}")
                arr[i] = g
                mask[i] = True
        dense[f.name] = arr
        if not mask.all():
            present[f.name] = mask
    sparse = {f.name: SparseColumn.from_rows(
        [None if r.get(f.name) is None else sparse_value(r[f.name]) for r in rows])
        for f in sparse_fields}
    metadata: list[dict[str, Any] | None] = []
    for r in rows:
        m: dict[str, Any] = {}
        for f in scalar_fields:
            if f.function_output or f.name not in r:
                continue
            m[f.name] = scalar_value(r[f.name], f.type)
        for k, v in r.items():           # dynamic-field keys, in the order Milvus gives
            if k not in known and k != "$meta":
                m[k] = v
        metadata.append(m or None)
    return RecordBatch(ids=ids, dense=dense, dense_present=present, sparse=sparse,
                       metadata=metadata, namespace=namespace)


# ------------------------------------------------------------ model -> Milvus


def vector_out(arr: np.ndarray, ftype: str, name: str) -> Any:
    if ftype == "FLOAT_VECTOR":
        out = np.asarray(arr, dtype=np.float32)
        if arr.dtype != np.float32 and not np.array_equal(out.astype(arr.dtype), arr):
            raise UsageError(f"vector {name!r} ({arr.dtype}) cannot be stored exactly as "
                             "FLOAT_VECTOR")
        return out
    if ftype == "BINARY_VECTOR":
        bits = np.asarray(arr)
        if bits.dtype == np.uint8 and bits.size and bits.max() > 1:
            raise UsageError(f"binary vector {name!r} must hold one 0/1 value per bit")
        return np.packbits(bits.astype(np.uint8)).tobytes()
    if ftype == "FLOAT16_VECTOR":
        if arr.dtype != np.float16:
            raise UsageError(f"vector {name!r} is {arr.dtype}, the field is FLOAT16_VECTOR")
        return arr.astype("<f2").tobytes()
    if ftype == "BFLOAT16_VECTOR":
        if arr.dtype != np.uint16:
            raise UsageError(f"vector {name!r} is {arr.dtype}, the field is BFLOAT16_VECTOR "
                             "(raw bfloat16 bits as uint16)")
        return arr.astype("<u2").tobytes()
    if ftype == "INT8_VECTOR":
        if arr.dtype != np.int8:
            raise UsageError(f"vector {name!r} is {arr.dtype}, the field is INT8_VECTOR")
        return np.ascontiguousarray(arr, dtype=np.int8)
    raise UsageError(f"unsupported Milvus vector type {ftype}")


def scalar_out(value: Any, ftype: str) -> Any:
    if value is None:
        return None
    if ftype == "TIMESTAMPTZ" and isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def to_rows(batch: RecordBatch, fields: list[Field], dynamic: bool) -> list[dict[str, Any]]:
    pk = next(f for f in fields if f.primary)
    by_name = {f.name: f for f in fields}
    out: list[dict[str, Any]] = []
    for f in fields:
        if f.type in DENSE_TYPES and not f.function_output and f.name not in batch.dense \
                and f.name not in batch.multi and not f.nullable:
            raise UsageError(f"the batch has no vectors for Milvus field {f.name!r}")
    for name in list(batch.dense) + list(batch.multi) + list(batch.sparse):
        f = by_name.get(name)
        if f is None or f.primary or (f.type not in DENSE_TYPES and f.type != SPARSE_TYPE):
            raise UsageError(f"the target collection has no vector field {name!r}")
    if batch.multi:
        raise UsageError("Milvus vector fields hold one vector per record, not multivectors")
    for i, rec in enumerate(batch.records()):
        if pk.type == "INT64" and not isinstance(rec.id, int):
            raise UsageError("the target collection has an INT64 primary key: ids must be ints")
        if pk.type == "VARCHAR" and not isinstance(rec.id, str):
            raise UsageError("the target collection has a VARCHAR primary key: ids must be "
                             "strings")
        row: dict[str, Any] = {pk.name: rec.id}
        for f in fields:
            if f.primary or f.function_output:
                continue
            if f.type in DENSE_TYPES:
                vec = rec.vectors.get(f.name)
                if vec is None and not f.nullable:
                    raise UsageError(f"a record has no vector for non-nullable field {f.name!r}")
                row[f.name] = None if vec is None else vector_out(vec, f.type, f.name)
            elif f.type == SPARSE_TYPE:
                sv = rec.sparse.get(f.name)
                if sv is None and not f.nullable:
                    raise UsageError(f"a record has no sparse vector for field {f.name!r}")
                row[f.name] = None if sv is None else {
                    int(k): float(v) for k, v in zip(sv.indices.tolist(), sv.values.tolist())}
        for k, v in (rec.metadata or {}).items():
            f = by_name.get(k)
            if f is not None:
                if f.primary or f.type in DENSE_TYPES or f.type == SPARSE_TYPE:
                    raise UsageError(f"metadata key {k!r} clashes with a Milvus "
                                     "primary key or vector field")
                if not f.function_output:
                    row[k] = scalar_out(v, f.type)
            elif dynamic:
                row[k] = v
            else:
                raise UsageError(f"metadata key {k!r} is not a field of the target collection "
                                 "and it has no dynamic field")
        out.append(row)
    return out
