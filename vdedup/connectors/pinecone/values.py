"""Records as Pinecone vectors and back, and what a written record looks like once stored
(connector layer; imports no SDK).

Numbers in metadata are float64 in Pinecone: an int written comes back as a float, and is kept
as returned. Writes refuse what Pinecone cannot hold (null, nested objects, lists of
non-strings, integers beyond 2**53) instead of changing it silently. `digest` is what a record
holds as Pinecone keeps it (float32 values, float64 numbers): `settle` compares it with what
reads back.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Iterator

import numpy as np

from ...errors import UsageError
from ...model import RecordBatch, RecordId

UPSERT_VECTORS = 1000            # vectors per upsert (the API's maximum)


UPSERT_BYTES = 1_500_000         # estimated JSON per upsert (the API's limit is 2 MB)


MAX_SAFE_INT = 2**53


def string_ids(ids: list[RecordId]) -> list[str]:
    out = []
    for i in ids:
        if not isinstance(i, str) or not i:
            raise UsageError("Pinecone ids are non-empty strings: map integer or UUID ids first")
        if not i.isascii():              # the SDK refuses them, echoing the id
            raise UsageError("Pinecone ids are ASCII: a record id of the batch is not "
                             "(ascii_ids in the Pinecone descriptor)")
        out.append(i)
    return out


def metadata_value(key: str, value: Any) -> Any:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        if abs(int(value)) > MAX_SAFE_INT:
            raise UsageError(f"metadata field {key!r} holds an integer beyond 2**53, which "
                             "Pinecone (float64) cannot store exactly")
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise UsageError(f"metadata field {key!r} holds NaN or infinity, which Pinecone refuses")
        return float(value)
    if isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value):
        return list(value)
    kind = "null" if value is None else type(value).__name__
    raise UsageError(f"metadata field {key!r} holds a {kind}; Pinecone keeps only strings, "
                     "numbers, booleans and lists of strings")


def to_vectors(batch: RecordBatch) -> list[dict[str, Any]]:
    if batch.multi:
        raise UsageError("Pinecone cannot store multivectors")
    if set(batch.dense) - {""} or set(batch.sparse) - {""}:
        names = sorted(set(batch.dense) | set(batch.sparse))
        raise UsageError(f"Pinecone holds one unnamed dense and one unnamed sparse vector per "
                         f"record (batch has: {', '.join(repr(n) for n in names)})")
    if batch.documents and any(d is not None for d in batch.documents):
        raise UsageError("Pinecone vector indexes have no documents: map them to metadata first")
    if batch.uris and any(u is not None for u in batch.uris):
        raise UsageError("Pinecone vector indexes have no uris: map them to metadata first")
    ids = string_ids(batch.ids)
    dense = batch.dense.get("")
    mask = batch.dense_present.get("")
    if dense is not None:
        if dense.dtype != np.float32:
            as32 = dense.astype(np.float32)
            if not np.array_equal(as32.astype(dense.dtype), dense):
                raise UsageError(f"{dense.dtype} vectors cannot be stored exactly in Pinecone (float32)")
            dense = as32
        if not np.isfinite(dense).all():
            raise UsageError("Pinecone refuses NaN or infinite vector values")
    sparse = batch.sparse.get("")
    out = []
    for i, rid in enumerate(ids):
        v: dict[str, Any] = {"id": rid}
        if dense is not None and (mask is None or mask[i]):
            v["values"] = dense[i].tolist()
        sv = sparse.row(i) if sparse is not None else None
        if sv is not None and len(sv.indices):
            v["sparse_values"] = {"indices": sv.indices.tolist(), "values": sv.values.tolist()}
        if "values" not in v and "sparse_values" not in v:
            raise UsageError("Pinecone needs dense or sparse values for every record")
        meta = batch.metadata[i] if batch.metadata is not None else None
        if meta:
            v["metadata"] = {str(k): metadata_value(str(k), x) for k, x in meta.items()}
        out.append(v)
    return out


def estimate(v: dict[str, Any]) -> int:
    size = 40 + len(v["id"]) + 20 * len(v.get("values", ()))
    sv = v.get("sparse_values")
    if sv:
        size += 32 * len(sv["indices"])
    if v.get("metadata"):
        size += len(json.dumps(v["metadata"], ensure_ascii=False).encode())
    return size


def chunks(vectors: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for v in vectors:
        cost = estimate(v)
        if chunk and (len(chunk) >= UPSERT_VECTORS or size + cost > UPSERT_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(v)
        size += cost
    if chunk:
        yield chunk


def as_upsert(r: Any) -> dict[str, Any]:
    """A fetched record in the shape `write` sends, for comparing digests."""
    v: dict[str, Any] = {"id": r.id}
    if r.values:
        v["values"] = r.values
    if r.sparse_values is not None and r.sparse_values.indices:
        v["sparse_values"] = {"indices": r.sparse_values.indices, "values": r.sparse_values.values}
    if r.metadata:
        v["metadata"] = r.metadata
    return v


def digest(v: dict[str, Any]) -> bytes:
    """What a record holds, as Pinecone keeps it (float32 values, float64 numbers), hashed."""
    h = hashlib.blake2b(digest_size=16)
    h.update(v["id"].encode())
    h.update(np.asarray(v.get("values", ()), dtype=np.float64).astype(np.float32).tobytes())
    sv = v.get("sparse_values")
    if sv:
        h.update(b"|s|" + np.asarray(sv["indices"], dtype=np.uint32).tobytes())
        h.update(np.asarray(sv["values"], dtype=np.float64).astype(np.float32).tobytes())
    meta = v.get("metadata")
    if meta:
        norm = {k: float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x
                for k, x in meta.items()}
        h.update(b"|m|" + json.dumps(norm, sort_keys=True, ensure_ascii=False).encode())
    return h.digest()
