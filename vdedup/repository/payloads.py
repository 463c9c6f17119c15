"""Vector payloads of a record batch and their content ids (repository layer).

Every record's vectors become one payload (docs/design.md §4.5) whose keyed BLAKE3 hash
is its content id (§3.6). A batch whose records all carry the same plain dense vectors is
encoded as one buffer (one row per record); other batches record by record, the payloads
then joined into one buffer. Either way the content ids are the digests of consecutive
stretches of one buffer (`data`, `offsets`, `prefix`), which a hash worker process or the
calling thread computes (hashing.py).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..format.objects import BlobType
from ..format.vectors import dense_batch_rows, dense_batch_split, encode_payload, split_payload
from ..model import RecordBatch
from .packer import LazyRows, Rows

LEAD = bytes([int(BlobType.VECTORS)])       # content ids hash the blob type byte first


class EncodedBatch:
    """The payloads of one batch: `size` their total length; either `rows` (every payload
    as the rows of one array) or `payload(i)` (record i's payload); and what to hash:
    digest i of (`data`, `offsets`, `prefix`) is record i's content id."""

    __slots__ = ("size", "payload", "rows", "data", "offsets", "prefix")

    def __init__(self, size: int, payload: Callable[[int], bytes] | None, rows: Rows | LazyRows | None, data: Any,
                 offsets: list[int], prefix: bytes):
        self.size, self.payload, self.rows = size, payload, rows
        self.data, self.offsets, self.prefix = data, offsets, prefix


def _plain_dense(batch: RecordBatch) -> bool:
    return not batch.multi and not batch.sparse and all(m.all() for m in batch.dense_present.values())


def encode_batch(batch: RecordBatch) -> EncodedBatch:
    """Encode every record's vector payload.

    A batch of one plain dense vector per record is not copied: every payload is the same
    prefix and a row of the batch's array, so the content ids are hashed over the array's
    rows with the prefix (`prefix`), and the payloads are built only for the rows the
    packer stores (LazyRows)."""
    n = len(batch)
    plain = _plain_dense(batch) and n
    split = dense_batch_split(batch.dense) if plain else None
    if split is not None:
        prefix, body = split
        width = body.shape[1]
        itemsize, _ = split_payload(prefix)
        return EncodedBatch(n * (len(prefix) + width), None, LazyRows(prefix, body, itemsize),
                            body.reshape(-1), list(range(0, n * width + 1, width)), LEAD + prefix)
    built = dense_batch_rows(batch.dense, LEAD) if plain else None
    if built is None:
        payloads = [encode_payload(rec.vectors, rec.sparse) for rec in batch.records()]
        offsets = [0] + np.cumsum([len(p) for p in payloads], dtype=np.int64).tolist()
        return EncodedBatch(offsets[-1], payloads.__getitem__, None, b"".join(payloads), offsets, LEAD)
    buf, width = built
    itemsize, head_len = split_payload(buf[1:width])
    rows = Rows(np.frombuffer(buf, dtype=np.uint8).reshape(n, width)[:, 1:], head_len, itemsize)
    return EncodedBatch(n * (width - 1), None, rows, buf, list(range(0, len(buf) + 1, width)), b"")
