"""`--limit-rate`: records read from a source, or written to a target, no faster than a rate
(engine layer).

`throttled(connector, rate)` wraps a connector so that each batch a scan yields, and each
batch written, first takes its records (`500r/s`) or its bytes (`20MB/s`) from a token bucket
(vdedup/ratelimit.py). The bytes of a batch are those of its vectors (dense, multi-vector,
sparse), ids, documents, uris and metadata (as compact JSON): about what crosses the wire.
Everything else passes through to the wrapped connector.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

from ..model import RecordBatch
from ..ratelimit import Rate, TokenBucket


def batch_bytes(batch: RecordBatch) -> int:
    n = sum(a.nbytes for a in batch.dense.values())
    n += sum(v.nbytes for rows in batch.multi.values() for v in rows if v is not None)
    n += sum(c.indices.nbytes + c.values.nbytes for c in batch.sparse.values())
    n += sum(len(r) if isinstance(r, str) else 8 for r in batch.ids)
    for texts in (batch.documents, batch.uris):
        n += sum(len(t) for t in texts or () if t)
    for m in batch.metadata or ():
        if m:
            n += len(json.dumps(m, separators=(",", ":"), default=str))
    return n


class ThrottledConnector:
    """A connector whose scans and writes keep to a rate."""

    def __init__(self, inner: Any, rate: Rate):
        self.inner = inner
        self.rate = rate
        self.bucket = TokenBucket(rate.per_second)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _take(self, batch: RecordBatch) -> None:
        self.bucket.take(len(batch) if self.rate.unit == "records" else batch_bytes(batch))

    def _size(self, batch_size: int) -> int:
        # no batch bigger than a second's worth of records: the pace stays even
        if self.rate.unit == "records":
            return max(1, min(batch_size, int(self.rate.per_second)))
        return batch_size

    def scan(self, collection: str, namespace: str = "", batch_size: int = 1000) -> Iterator[RecordBatch]:
        return self._paced(self.inner.scan(collection, namespace, self._size(batch_size)))

    def scan_partition(self, collection: str, partition: Any, batch_size: int = 1000) -> Iterator[RecordBatch]:
        """What backups read through (engine/scaleout.py): paced like scan."""
        return self._paced(self.inner.scan_partition(collection, partition, self._size(batch_size)))

    def _paced(self, scan: Iterator[RecordBatch]) -> Iterator[RecordBatch]:
        try:
            for batch in scan:
                self._take(batch)
                yield batch
        finally:
            close = getattr(scan, "close", None)
            if close is not None:
                close()

    def write(self, collection: str, batch: RecordBatch) -> None:
        self._take(batch)
        self.inner.write(collection, batch)

    def write_new(self, collection: str, batch: RecordBatch) -> None:
        self._take(batch)
        self.inner.write_new(collection, batch)

    def __enter__(self) -> "ThrottledConnector":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.inner.close()


def throttled(connector: Any, rate: Rate | None) -> Any:
    """The connector itself without a rate; else the connector keeping to it."""
    return connector if rate is None else ThrottledConnector(connector, rate)
