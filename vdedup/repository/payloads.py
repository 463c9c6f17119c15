"""Vector payloads of a record batch and their content ids (repository layer).

Every record's vectors become one payload (docs/design.md §4.5) whose keyed BLAKE3 hash
is its content id (§3.6). A batch whose records all carry the same plain dense vectors is
encoded as one buffer (one row per record) and hashed row by row without copying; other
batches are encoded record by record.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from blake3 import blake3

from ..format.objects import BlobType
from ..format.vectors import dense_batch_rows, encode_payload
from ..model import RecordBatch

_LEAD = bytes([int(BlobType.VECTORS)])      # content ids hash the blob type byte first


class EncodedBatch:
    """The payloads of one batch: `vrefs` an (n, 32) uint8 array of content ids, `size`
    the payloads' total length, `payload(i)` record i's payload (built or sliced on demand)."""

    __slots__ = ("vrefs", "size", "payload")

    def __init__(self, vrefs: np.ndarray, size: int, payload: Callable[[int], bytes]):
        self.vrefs, self.size, self.payload = vrefs, size, payload


def _plain_dense(batch: RecordBatch) -> bool:
    return not batch.multi and not batch.sparse and all(m.all() for m in batch.dense_present.values())


def encode_batch(batch: RecordBatch, id_key: bytes) -> EncodedBatch:
    """Encode and hash every record's vector payload."""
    built = dense_batch_rows(batch.dense, _LEAD) if _plain_dense(batch) else None
    n = len(batch)
    if built is None:
        payloads = [encode_payload(rec.vectors, rec.sparse) for rec in batch.records()]
        ids = b"".join([blake3(_LEAD + p, key=id_key).digest() for p in payloads])
        vrefs = np.frombuffer(ids, dtype=np.uint8).reshape(n, 32) if n else np.zeros((0, 32), np.uint8)
        return EncodedBatch(vrefs, sum(map(len, payloads)), payloads.__getitem__)
    buf, width = built
    mv = memoryview(buf)
    ids = b"".join([blake3(mv[i:i + width], key=id_key).digest() for i in range(0, len(buf), width)])
    vrefs = np.frombuffer(ids, dtype=np.uint8).reshape(n, 32)
    return EncodedBatch(vrefs, n * (width - 1), lambda i: buf[i * width + 1:(i + 1) * width])
