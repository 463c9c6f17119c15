"""Manifest rows as the engine sees them (repository layer).

The engine compares, filters and plans on manifest rows (restore selections, in-place
plans, diffs) but never encodes or decodes them: this module gives it the row type and
the comparisons it needs, so nothing above the repository imports format/.

`RowBatch` is the columnar form in which rows travel between the engine and the
repository: one batch per batch of records read from a source, made by
`Writer.store_batch` and consumed by `Writer.write_namespace`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ..format import manifest as mf
from ..format.values import canonical, meta_bytes_many, same

if TYPE_CHECKING:
    from .columns import Cols

Row = mf.Row
record_key = mf.record_key

KINDS = ("vector", "metadata", "document", "uri")

__all__ = ["KINDS", "Row", "RowBatch", "Unsorted", "changed_fields", "meta_bytes_many", "record_key", "same_value"]


class Unsorted(Exception):
    """Rows that were to arrive in record-key order did not (or an id came twice)."""


def same_value(a: Any, b: Any) -> bool:
    """Whether two metadata values are equal as a backup would store them: types included
    (1 != 1.0, True != 1, floats bit for bit), the order of dict keys not (verify compares
    what a target hands back with what a snapshot holds)."""
    return same(canonical(a), canonical(b))


def changed_fields(a: Row, b: Row) -> list[str]:
    """Which parts of a record differ between two rows of it (KINDS, in that order):
    metadata compared by its canonical bytes, documents and URIs by value and type."""
    out = []
    if a.vref != b.vref:
        out.append("vector")
    if a.mraw != b.mraw:
        out.append("metadata")
    if not same(a.doc, b.doc):
        out.append("document")
    if not same(a.uri, b.uri):
        out.append("uri")
    return out


@dataclass
class RowBatch:
    """The manifest rows of one batch of records, as columns.

    `vrefs` is an (n, 32) uint8 array of vector content ids; `mraws` each record's metadata
    bytes (docs/design.md §4.8); `logical_bytes` the batch's share of the namespace's
    logical size; `new_blobs` how many vector blobs storing the batch added."""
    ids: list[Any]
    vrefs: np.ndarray
    mraws: list[bytes]
    docs: list[str | None]
    uris: list[str | None]
    logical_bytes: int = 0
    new_blobs: int = 0
    keys: list[bytes] | None = None     # the record keys, if already computed
    key_hashes: Any = None              # a Future of their segment-boundary hashes (manifest.key_hashes)
    vref_list: list[bytes] | None = None    # the rows of `vrefs` as bytes, if already made

    def __len__(self) -> int:
        return len(self.ids)

    def cols(self) -> "Cols":
        """The batch as a run of rows (record keys computed)."""
        from .columns import Cols
        vrefs = self.vref_list
        if vrefs is None:
            vrefs = mf.split_ids(self.vrefs.tobytes())
        out = Cols.of(self.ids, vrefs, self.mraws, self.docs, self.uris, self.keys)
        out.key_hashes = self.key_hashes
        return out

    def rows(self) -> Iterator[Row]:
        """The batch as full manifest rows."""
        Row_, full, fields = mf.Row, mf.OP_FULL, mf.ALL_FIELDS
        raw = self.vrefs.tobytes()
        for i, (rid, mraw, doc, uri) in enumerate(zip(self.ids, self.mraws, self.docs, self.uris)):
            yield Row_(rid, raw[32 * i:32 * i + 32], None, doc, uri, full, fields, mraw)
