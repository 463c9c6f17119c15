"""Chroma values <-> record batches (connector layer): embeddings as float32 rows, string ids.
See connector.py for the why (Chroma hands embeddings back as float64, needs one per record).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import SourceError, UsageError
from ...model import RecordBatch, RecordId

def dense_rows(embeddings: Any, order: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Float32 rows in `order`; a mask when some records came back without an embedding."""
    if embeddings is None:
        return np.zeros((len(order), 0), dtype=np.float32), np.zeros(len(order), dtype=bool)
    if isinstance(embeddings, np.ndarray) and embeddings.ndim == 2:
        return np.ascontiguousarray(embeddings[order], dtype=np.float32), None
    rows = [embeddings[i] for i in order]
    dims = {len(r) for r in rows if r is not None}
    if len(dims) > 1:
        raise SourceError("Chroma returned embeddings of different lengths in one collection")
    dim = dims.pop() if dims else 0
    out = np.zeros((len(rows), dim), dtype=np.float32)
    present = np.zeros(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        if row is not None:
            out[i] = np.asarray(row, dtype=np.float32)
            present[i] = True
    return out, None if present.all() else present


def string_ids(ids: list[RecordId]) -> list[str]:
    if not all(isinstance(i, str) for i in ids):
        raise UsageError("Chroma ids are strings: map integer or UUID ids to strings first")
    if any(i == "" for i in ids):
        raise UsageError("Chroma does not accept empty ids")
    return list(ids)  # type: ignore[arg-type]


def embeddings_of(batch: RecordBatch) -> np.ndarray:
    if batch.sparse or batch.multi:
        raise UsageError("Chroma stores one dense vector per record: "
                         "the batch has sparse vectors or multivectors")
    if set(batch.dense) != {""}:
        names = ", ".join(repr(n) for n in batch.dense) or "none"
        raise UsageError(f"Chroma stores one unnamed dense vector per record (batch has: {names})")
    arr = batch.dense[""]
    mask = batch.dense_present.get("")
    if mask is not None and not np.all(mask):
        missing = int(np.size(mask) - np.count_nonzero(mask))
        raise UsageError(f"Chroma needs an embedding for every record: {missing} "
                         "records in the batch have none")
    if arr.ndim != 2 or arr.shape[0] != len(batch):
        raise UsageError("dense vectors must be a 2-D array with one row per record")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise UsageError("Chroma rejects NaN or infinite vector values")
    if arr.dtype != np.float32 and not np.array_equal(out.astype(arr.dtype), arr):
        raise UsageError(f"{arr.dtype} vectors cannot be stored exactly in Chroma (float32)")
    return out
