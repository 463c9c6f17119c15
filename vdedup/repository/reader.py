"""Reading a namespace back as verified record batches (repository layer).

The rows of a namespace (its manifest state, or the part of it the caller selected) are
spooled into a temporary LMDB keyed by where their vector blob lives (pack, block,
position), then read in that order: every block is fetched, authenticated and
decompressed once, and every payload is checked against its content id and its blob type
against the index before a batch is made of it. Nothing unverified leaves this module.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from ..errors import IntegrityError
from ..format.objects import BlobType
from ..format.values import meta_value, meta_values_json
from ..format.vectors import decode_dense_batch, decode_payload
from ..model import Record, RecordBatch
from .manifest import iter_state
from .rows import Row
from .spool import TempRows, spool_dir, spool_dumps, spool_loads

SPOOL_CHUNK = 1000            # rows looked up in the index per write transaction
RELEASE_CHUNKS = 64           # transactions between two releases of the maps


def read_namespace(repo, entry: dict[str, Any], rows: Iterable[Row] | None = None, batch_size: int = 1000,
                   namespace: str = "") -> Iterator[RecordBatch]:
    """The records of a namespace entry (or of the given rows of it) as batches in storage
    order, every vector payload verified against its content id. With `rows` None the
    whole namespace is read and its record count must match the entry's."""
    with TempRows(spool_dir()) as tmp:
        seq = _spool_by_location(repo, iter_state(repo, entry) if rows is None else rows, tmp)
        if rows is None and seq != entry["count"]:
            raise IntegrityError(f"namespace {entry['name']!r}: manifest holds {seq} records, "
                                 f"snapshot says {entry['count']}")
        buf: list[tuple] = []
        for _, v in tmp.items_released():
            buf.append(spool_loads(v))
            if len(buf) >= batch_size:
                yield _batch(repo, buf, namespace)
                buf = []
        if buf:
            yield _batch(repo, buf, namespace)


def _spool_by_location(repo, rows: Iterable[Row], tmp: TempRows) -> int:
    """Spool rows keyed by where their vector blob lives; returns how many.

    Key: pack id[32] | u32 block | u32 ordinal | u64 sequence (the index's BlobLocation
    bytes hold the pack id and block at 0..36 and the ordinal at 48..52)."""
    seq = 0
    chunk: list[Row] = []

    def put(txn) -> None:
        nonlocal seq
        for row, raw in zip(chunk, repo.index.get_many([r.vref for r in chunk])):
            if raw is None:
                raise IntegrityError(f"vector blob {row.vref.hex()[:16]} is not in the index")
            key = raw[:36] + raw[48:52] + seq.to_bytes(8, "big")
            txn.put(key, spool_dumps((row.id, row.vref, row.mraw, row.doc, row.uri, raw)), db=tmp.rows)
            seq += 1
        chunk.clear()

    chunks = 0
    for row in rows:
        chunk.append(row)
        if len(chunk) >= SPOOL_CHUNK:
            with tmp.env.begin(write=True) as txn:
                put(txn)
            chunks += 1
            if chunks % RELEASE_CHUNKS == 0:         # bound what the maps add to resident memory
                tmp.release_pages()
                repo.index.release_pages()
    with tmp.env.begin(write=True) as txn:
        put(txn)
    return seq


def _batch(repo, spooled: list[tuple], namespace: str) -> RecordBatch:
    ids, payloads, metas, docs, uris = [], [], [], [], []
    blob_at, vectors_type = repo.blob_at_raw, BlobType.VECTORS
    for rid, vref, mraw, doc, uri, loc in spooled:
        ids.append(rid)
        payloads.append(blob_at(vref, vectors_type, loc))
        metas.append(mraw)
        docs.append(doc)
        uris.append(uri)
    metadata = meta_values(metas)
    documents = docs if any(d is not None for d in docs) else None
    uri_col = uris if any(u is not None for u in uris) else None
    dense = decode_dense_batch(payloads)
    if dense is not None:
        return RecordBatch(ids=ids, dense=dense, metadata=metadata, documents=documents, uris=uri_col,
                           namespace=namespace)
    records = []
    for rid, payload, meta, doc, uri in zip(ids, payloads, metadata, docs, uris):
        vectors, sparse = decode_payload(payload)
        records.append(Record(rid, vectors, sparse, meta, doc, uri))
    return RecordBatch.from_records(records, namespace)


def meta_values(raws: list[bytes]) -> list[Any]:
    """Decode many rows' metadata bytes: one JSON parse when all are JSON text."""
    if raws and all(r[0] >= 0x20 for r in raws):
        out = meta_values_json(raws)
        if len(out) == len(raws):
            return out
    return [meta_value(r) for r in raws]
