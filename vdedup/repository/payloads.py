"""Vector payloads of a record batch and their content ids (repository layer).

Every record's vectors become one payload (docs/design.md §4.5) whose keyed BLAKE3 hash
is its content id (§3.6). A batch whose records all carry the same plain dense vectors is
encoded as one buffer (one row per record); other batches record by record, the payloads
then joined into one buffer. Either way the content ids are the digests of consecutive
stretches of one buffer (`data`, `offsets`, `prefix`), which a hash worker process or the
calling thread computes (hashing.py).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..format.objects import BlobType
from ..format.vectors import dense_batch_rows, encode_payload, split_payload
from ..model import RecordBatch
from .packer import Rows

LEAD = bytes([int(BlobType.VECTORS)])       # content ids hash the blob type byte first


class EncodedBatch:
    """The payloads of one batch: `size` their total length; either `rows` (every payload
    as the rows of one array) or `payload(i)` (record i's payload); and what to hash:
    digest i of (`data`, `offsets`, `prefix`) is record i's content id."""

    __slots__ = ("size", "payload", "rows", "data", "offsets", "prefix")

    def __init__(self, size: int, payload: Callable[[int], bytes] | None, rows: Rows | None, data: bytes,
                 offsets: list[int], prefix: bytes):
        self.size, self.payload, self.rows = size, payload, rows
        self.data, self.offsets, self.prefix = data, offsets, prefix


def _plain_dense(batch: RecordBatch) -> bool:
    return not batch.multi and not batch.sparse and all(m.all() for m in batch.dense_present.values())


def encode_batch(batch: RecordBatch) -> EncodedBatch:
    """Encode every record's vector payload."""
    built = dense_batch_rows(batch.dense, LEAD) if _plain_dense(batch) and len(batch) else None
    n = len(batch)
    if built is None:
        payloads = [encode_payload(rec.vectors, rec.sparse) for rec in batch.records()]
        offsets = [0] + np.cumsum([len(p) for p in payloads], dtype=np.int64).tolist()
        return EncodedBatch(offsets[-1], payloads.__getitem__, None, b"".join(payloads), offsets, LEAD)
    buf, width = built
    itemsize, head_len = split_payload(buf[1:width])
    rows = Rows(np.frombuffer(buf, dtype=np.uint8).reshape(n, width)[:, 1:], head_len, itemsize)
    return EncodedBatch(n * (width - 1), None, rows, buf, list(range(0, len(buf) + 1, width)), b"")
