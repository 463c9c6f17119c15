"""Reading Milvus: describe, count and scan (connector layer).

Reading uses `query_iterator` (plain queries stop at 16,384 rows) after loading the
collection. Namespaces are partitions (`_default` included); a partition-key collection has
one namespace "": its partitions belong to Milvus, which routes rows by the key. Counting
uses `count(*)` with Strong consistency.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from ...errors import CollectionNotFound, SourceError, UsageError
from ...model import CollectionSchema, Partition, RecordBatch, RecordId
from ...model.partition import stride_ranges, whole
from .layout import N_STATE, neutral_batch, neutral_schema, partition_name, read_marker
from .schema import index_info, native_schema
from .session import Session
from .values import to_batch

# pymilvus's query_iterator asks for the next page with `pk > "LAST"`, the last key pasted in
# without escaping: a key holding a quote or a backslash makes that filter wrong (records
# come back twice, or are skipped). Writes refuse such keys (writer.py); a collection that
# holds one is refused loudly rather than read wrongly.
UNPAGEABLE = ('"', "\\")
UNPAGEABLE_READ = ("Milvus collection {collection!r} at {where} has a string id with a quote or "
                   "backslash, which pymilvus's query iterator cannot page past: it cannot be "
                   "read exactly")

MAX_ITER_BATCH = 16384       # Milvus refuses larger query pages


def exists(s: Session, collection: str) -> bool:
    with s.errors("look up", collection):
        return bool(s.client.has_collection(collection))


def describe(s: Session, provider: str, collection: str) -> CollectionSchema:
    client = s.client
    with s.errors("describe", collection):
        info = client.describe_collection(collection)
        partitions = sorted(client.list_partitions(collection))
    marker = read_marker(info)
    if marker is not None:
        return neutral_schema(provider, s.db, collection, s.where, info, marker, partitions)
    with s.errors("describe", collection):
        index_names = client.list_indexes(collection)
        indexes = [index_info(client.describe_index(collection, n), n) for n in index_names]
        aliases = sorted(client.list_aliases(collection_name=collection).get("aliases") or [])
        load_state = str(client.get_load_state(collection).get("state"))
    return native_schema(provider, s.db, collection, info, indexes, aliases, load_state,
                         partitions)


def count(s: Session, collection: str, namespace: str = "") -> int:
    try:
        s.load(collection)
    except CollectionNotFound:
        raise
    except SourceError:
        # Real Milvus loads only collections whose vector fields all have an index;
        # without one, the (flushed) row statistics are the best count there is.
        return _count_from_stats(s, collection, namespace)
    try:
        parts = s.partitions_arg(collection, namespace)
    except CollectionNotFound:
        if not exists(s, collection):
            raise
        return 0                    # a partition that does not exist holds no records
    if parts and s.is_lite():
        return _count_by_ids(s, collection, parts)
    with s.errors("count", collection):
        got = s.client.query(collection, filter="", output_fields=["count(*)"],
                             partition_names=parts, consistency_level="Strong")
    return int(got[0]["count(*)"])


def _count_from_stats(s: Session, collection: str, namespace: str) -> int:
    if s.marker(collection) is not None:
        namespace = partition_name(namespace)
    client = s.client
    with s.errors("count", collection):
        if namespace and not s.partition_key(collection):
            if not client.has_partition(collection, namespace):
                return 0
            stats = client.get_partition_stats(collection, namespace)
        else:
            stats = client.get_collection_stats(collection)
    return int(stats.get("row_count", 0))


def _count_by_ids(s: Session, collection: str, parts: list[str]) -> int:
    """milvus-lite answers count(*) for the whole collection whatever partition is
    asked, so there a partition is counted by paging its primary keys."""
    pk = next(f.name for f in s.fields(collection) if f.primary)
    total = 0
    with s.errors("count", collection):
        it = s.client.query_iterator(collection, batch_size=MAX_ITER_BATCH, filter="",
                                     output_fields=[pk], partition_names=parts)
        try:
            while True:
                rows = it.next()
                if not rows:
                    return total
                total += len(rows)
        finally:
            with contextlib.suppress(Exception):
                it.close()


def partitions(s: Session, collection: str, namespace: str, target_size: int) -> list[Partition]:
    """Primary-key ranges of about target_size records inside one namespace (a Milvus
    partition) when the primary key is an Int64; the whole namespace else. Milvus has no
    min/max aggregate, so the bounds come from one pass over the primary keys alone."""
    fields = s.fields(collection)
    pk = next((f for f in fields if f.primary), None)
    if pk is None or pk.type.upper() not in ("INT64", "DATATYPE.INT64") or s.marker(collection) is not None:
        return [whole(namespace)]
    s.load(collection)
    parts = s.partitions_arg(collection, namespace)
    lo = hi = None
    n = 0
    with s.errors("plan partitions", collection):
        it = s.client.query_iterator(collection, batch_size=MAX_ITER_BATCH, filter="", output_fields=[pk.name],
                                     partition_names=parts, consistency_level="Strong")
        try:
            while rows := it.next():
                keys = [int(r[pk.name]) for r in rows]
                n += len(keys)
                lo = min(keys) if lo is None else min(lo, min(keys))
                hi = max(keys) if hi is None else max(hi, max(keys))
        finally:
            with contextlib.suppress(Exception):
                it.close()
    if not n:
        return [whole(namespace, 0)]
    return stride_ranges(lo, hi, n, target_size, "pk", namespace)   # type: ignore[arg-type]


def pk_filter(s: Session, collection: str, partition: Partition) -> str:
    """The filter expression reading one partition's primary-key range ("" for all)."""
    lo, hi = partition.spec.get("lo"), partition.spec.get("hi")
    if not partition.key or (lo is None and hi is None):
        return ""
    pk = next(f.name for f in s.fields(collection) if f.primary)
    conds = ([f"{pk} >= {int(lo)}"] if lo is not None else []) + ([f"{pk} < {int(hi)}"] if hi is not None else [])
    return " and ".join(conds)


def scan(s: Session, collection: str, namespace: str = "",
         batch_size: int = 1000, expr: str = "") -> Iterator[RecordBatch]:
    if batch_size < 1:
        raise UsageError("batch size must be at least 1")
    fields = s.fields(collection)
    marker = s.marker(collection)
    s.load(collection)
    parts = s.partitions_arg(collection, namespace)
    with s.errors("scan", collection):
        # A Strong query first: the iterator reads at a timestamp of its own (client-side
        # when the server gives none, as Milvus 2.3 does), which may not yet see writes
        # and deletes made just before; this waits until they are visible.
        s.client.query(collection, filter="", output_fields=["count(*)"],
                       partition_names=parts, consistency_level="Strong")
        it = s.client.query_iterator(
            collection, batch_size=min(batch_size, MAX_ITER_BATCH), filter=expr,
            output_fields=["*"], partition_names=parts, consistency_level="Strong")
    pk = next(f.name for f in fields if f.primary)
    try:
        while True:
            with s.errors("scan", collection, data=True):
                rows = it.next()
            if not rows:
                return
            last = rows[-1].get(pk)
            if isinstance(last, str) and any(c in last for c in UNPAGEABLE):
                raise SourceError(UNPAGEABLE_READ.format(collection=collection, where=s.where))
            if marker is not None:
                yield neutral_batch(rows, fields, marker, namespace)
            else:
                yield to_batch(rows, fields, namespace, s.where, collection)
    finally:
        with contextlib.suppress(Exception):
            it.close()


def query(s: Session, collection: str, namespace: str, vector: Any, k: int,
          vector_name: str = "") -> list[RecordId]:
    """The ids of the k nearest entities as the collection's index serves them (`search`)."""
    fields = s.fields(collection)
    marker = s.marker(collection)
    field = vector_name if marker is None else \
        next((v["field"] for v in marker["vectors"] if v["name"] == vector_name), vector_name)
    pk = next(f for f in fields if f.primary)
    s.load(collection)
    parts = s.partitions_arg(collection, namespace)
    with s.errors("query", collection, data=True):
        hits = s.client.search(
            collection, data=[[float(x) for x in np.asarray(vector, dtype=np.float32)]],
            anns_field=field, limit=k, partition_names=parts,
            output_fields=[N_STATE] if marker is not None else [], consistency_level="Strong")[0]
    out: list[RecordId] = []
    for h in hits:
        rid = h.get("id", h.get(pk.name))
        state = (h.get("entity") or {}).get(N_STATE) or {}
        out.append(int(rid) if pk.type == "INT64" or state.get("int_id") else str(rid))
    return out
