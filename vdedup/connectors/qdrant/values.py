"""Qdrant points as records and back (connector layer; the SDK is imported only to build
its models).

Point ids are unsigned 64-bit integers or UUIDs: ints stay ints, UUIDs become their canonical
lowercase string. Vectors come back as Python floats. A vector declared `float16` or `uint8`
is stored in that dtype only when the values convert exactly (a real server has already
rounded them; local mode keeps float32 whatever the datatype says); otherwise float32, exact
either way. The decision is per record, so an unchanged record always has the same content.
Payloads are JSON: what would not come back as the same type is refused.
"""
from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np

from ...errors import UsageError
from ...model import Record, RecordId, SparseVector

EXACT_DTYPES = {"float16": np.float16, "uint8": np.uint8}   # narrower than what the client returns


MAX_ID = 2**64 - 1


def narrow(arr: np.ndarray, datatype: str | None) -> np.ndarray:
    """float32 values in the declared narrower dtype when that is exact, else float32."""
    target = EXACT_DTYPES.get(datatype or "")
    if target is None or not np.isfinite(arr).all():
        return arr
    if target is np.uint8 and (arr.min(initial=0) < 0 or arr.max(initial=0) > 255):
        return arr
    narrow = arr.astype(target)
    return narrow if narrow.astype(np.float32).tobytes() == arr.tobytes() else arr


def to_record(point: Any, datatypes: dict[str, str | None]) -> Record:
    pid = point.id
    rid: RecordId = pid if isinstance(pid, int) else str(uuid.UUID(str(pid)))
    raw = point.vector
    if raw is None:
        named: dict[str, Any] = {}
    elif isinstance(raw, dict):
        named = raw
    else:
        named = {"": raw}
    vectors: dict[str, np.ndarray] = {}
    sparse: dict[str, SparseVector] = {}
    for name, value in named.items():
        if hasattr(value, "indices"):
            sparse[name] = SparseVector(np.asarray(value.indices, dtype=np.uint32),
                                        np.asarray(value.values, dtype=np.float32))
            continue
        arr = np.asarray(value, dtype=np.float32)
        vectors[name] = narrow(arr, datatypes.get(name))
    return Record(id=rid, vectors=vectors, sparse=sparse,
                  metadata=point.payload if point.payload is not None else None)


def point_id(rid: RecordId) -> int | str:
    if isinstance(rid, bool):
        raise UsageError("Qdrant point ids are unsigned integers or UUIDs, not booleans")
    if isinstance(rid, int):
        if not 0 <= rid <= MAX_ID:
            raise UsageError("Qdrant integer point ids must be between 0 and 2**64-1")
        return rid
    if isinstance(rid, uuid.UUID):
        return str(rid)
    try:
        return str(uuid.UUID(str(rid)))
    except ValueError:
        raise UsageError("Qdrant point ids are unsigned integers or UUIDs: "
                         "map other string ids first") from None


def point_vector(rec: Record) -> Any:
    from qdrant_client import models

    out: dict[str, Any] = {}
    for name, arr in rec.vectors.items():
        if arr.dtype.kind not in "fiu":
            raise UsageError(f"vector {name!r} has dtype {arr.dtype}, which Qdrant cannot store")
        if not np.isfinite(arr).all():
            raise UsageError(f"vector {name!r} holds NaN or infinite values")
        out[name] = arr.astype(np.float64).tolist()
    for name, sv in rec.sparse.items():
        out[name] = models.SparseVector(indices=sv.indices.tolist(),
                                        values=sv.values.astype(np.float64).tolist())
    if set(out) == {""}:
        return out[""]
    return out


def to_payload(rec: Record) -> dict[str, Any] | None:
    if rec.metadata is None:
        return None
    if not isinstance(rec.metadata, dict):
        raise UsageError("Qdrant payloads are JSON objects")
    for key, value in rec.metadata.items():
        check_json(value, key)
    return rec.metadata


def check_json(value: Any, key: str) -> None:
    """Qdrant payloads are JSON: refuse what would not come back as the same type."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not -2**63 <= value < 2**63:
            raise UsageError(f"payload key {key!r}: integers beyond 64 bits cannot be stored in Qdrant")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"payload key {key!r}: NaN or infinite floats cannot be stored in Qdrant")
        return
    if isinstance(value, list):
        for v in value:
            check_json(v, key)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise UsageError(f"payload key {key!r}: nested keys must be strings")
            check_json(v, key)
        return
    raise UsageError(f"payload key {key!r}: a {type(value).__name__} value cannot be stored in "
                     "Qdrant's JSON payload")
