"""Weaviate objects as records and back (connector layer; imports no SDK).

A whole `number` comes back without a fraction (Go writes 3.0 as `3`): numbers are turned back
into floats from the property's dataType, so metadata keeps its types. Reference values come
back as `[{"beacon": ..., "href": ...}]`; they are backed up verbatim and written back with
their beacons only (`href` is derived by the server).
"""
from __future__ import annotations

import uuid as uuidlib
from typing import Any

import numpy as np

from ...errors import UsageError
from ...model import Record, RecordId

def typed(value: Any, kind: Any) -> Any:
    """Give values the type their dataType says (a whole number arrives as an int)."""
    if isinstance(kind, tuple):
        base, nested = kind
        if isinstance(value, list):
            return [typed(v, kind) for v in value]
        if isinstance(value, dict):
            return {k: typed(v, nested.get(k)) for k, v in value.items()}
        return value
    if kind in ("number", "number[]"):
        if isinstance(value, list):
            return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
    return value


def to_record(obj: dict[str, Any], types: dict[str, Any]) -> Record:
    vectors: dict[str, np.ndarray] = {}
    if obj.get("vector"):
        vectors[""] = np.asarray(obj["vector"], dtype=np.float32)
    for name, vec in (obj.get("vectors") or {}).items():
        if vec is not None and len(vec):
            vectors[name] = np.asarray(vec, dtype=np.float32)
    props = obj.get("properties") or {}
    metadata = {k: typed(v, types.get(k)) for k, v in props.items()}
    return Record(id=str(obj["id"]), vectors=vectors, metadata=metadata)


def object_id(rid: RecordId) -> str:
    try:
        return str(uuidlib.UUID(str(rid)))
    except ValueError:
        raise UsageError("Weaviate object ids are UUIDs: map other ids to UUIDs first") from None


def to_object(rec: Record, cls: str, tenant: str, refs: set[str], named: bool) -> dict[str, Any]:
    if rec.sparse:
        raise UsageError("Weaviate cannot store sparse vectors "
                         f"({', '.join(repr(n) for n in rec.sparse)})")
    props = dict(rec.metadata or {})
    for name in refs & set(props):
        if isinstance(props[name], list):
            props[name] = [{"beacon": r["beacon"]} if isinstance(r, dict) and "beacon" in r else r
                           for r in props[name]]
    obj: dict[str, Any] = {"class": cls, "id": object_id(rec.id), "properties": props}
    if tenant:
        obj["tenant"] = tenant
    vectors = {}
    for name, vec in rec.vectors.items():
        arr = np.asarray(vec)
        exact = arr.astype(np.float32)
        if arr.dtype != np.float32 and not np.array_equal(exact.astype(arr.dtype), arr):
            raise UsageError(f"{arr.dtype} vectors cannot be stored exactly in Weaviate (float32)")
        if not np.isfinite(exact).all():
            raise UsageError("Weaviate rejects NaN or infinite vector values")
        vectors[name] = exact.tolist()
    if "" in vectors:
        if named:
            raise UsageError(f"Weaviate class {cls!r} has named vectors only: "
                             "map the unnamed vector to a name first")
        obj["vector"] = vectors.pop("")
    if vectors:
        obj["vectors"] = vectors
    return obj
