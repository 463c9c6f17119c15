"""Writing Milvus: creating collections, upserting and deleting records (connector layer).

Writing uses upsert: inserting an existing primary key makes a duplicate in Milvus. A
collection from a Milvus schema is recreated natively (schema.py); any other schema, or a
neutral collection read back, gets the neutral layout (layout.py).
"""
from __future__ import annotations

from typing import Any

from ...errors import SourceError, UsageError
from ...model import CollectionSchema, RecordBatch, RecordId
from .layout import (DECIMAL_RE, ID_CLASH, N_ID, N_STATE, NEUTRAL_LAYOUT, create_neutral,
                     is_marker, neutral_plan, neutral_rows, partition_name)
from .schema import DEFAULT_PARTITION, Field, create_native
from .reader import UNPAGEABLE
from .session import Session
from .values import to_rows

WRITE_ROWS = 1000            # rows per upsert call (keeps requests far below gRPC limits)

def create_collection(s: Session, provider: str, schema: CollectionSchema, name: str) -> None:
    neutral = schema.provider != provider or "fields" not in schema.extras \
        or is_marker(schema.extras.get(NEUTRAL_LAYOUT))
    # the neutral plan refuses what Milvus cannot hold, before anything is created
    marker = neutral_plan(schema) if neutral else None
    client = s.client
    with s.errors("create collection", name):
        if client.has_collection(name):
            raise SourceError(f"Milvus collection {name!r} already exists at {s.where}")
        if marker is not None:
            create_neutral(client, schema, name, marker)
        else:
            create_native(client, schema, name)
    s.forget(name)

def _check_id_kinds(s: Session, collection: str, fields: list[Field],
                    rows: list[dict[str, Any]]) -> None:
    """A VARCHAR key holds int ids as decimal text: refuse an int id and a str id with the
    same text (in the batch, or one already stored), which would be one Milvus entity."""
    if next(f for f in fields if f.primary).type != "VARCHAR":
        return
    kinds: dict[str, bool] = {}
    for r in rows:
        pk = r[N_ID]
        if DECIMAL_RE.match(pk):
            is_int = bool((r[N_STATE] or {}).get("int_id"))
            if kinds.setdefault(pk, is_int) != is_int:
                raise UsageError(ID_CLASH)
    if not kinds:
        return
    s.load(collection)
    with s.errors("look up ids", collection, data=True):
        stored = s.client.query(collection, ids=list(kinds), output_fields=[N_STATE],
                                consistency_level="Strong")
    for r in stored:
        if bool((r.get(N_STATE) or {}).get("int_id")) != kinds.get(str(r[N_ID])):
            raise UsageError(ID_CLASH)

def _check_other_partitions(s: Session, collection: str, partition: str,
                            rows: list[dict[str, Any]]) -> None:
    """A Milvus key is collection-wide: upserting an id another partition holds moves it, and
    the other namespace's record is lost. Namespaces that share ids (Pinecone namespaces,
    Weaviate tenants) are refused instead, at the first batch that would move one."""
    with s.errors("list partitions", collection):
        others = [p for p in s.client.list_partitions(collection) if p != partition]
    if not others:
        return
    s.load(collection)
    with s.errors("look up ids", collection, data=True):
        found = s.client.query(collection, ids=[r[N_ID] for r in rows], output_fields=[N_ID],
                               partition_names=others, consistency_level="Strong")
    if found:
        raise UsageError(f"{len(found)} record id(s) of this batch are already in another "
                         f"namespace of Milvus collection {collection!r}: a Milvus key is "
                         "collection-wide, so writing them would move them out of that namespace "
                         "(restore the namespaces into separate collections)")


def write(s: Session, collection: str, batch: RecordBatch) -> None:
    if not len(batch):
        return
    if any(isinstance(i, str) and any(c in i for c in UNPAGEABLE) for i in batch.ids):
        raise UsageError("Milvus cannot hold string ids with a quote or backslash exactly: "
                         "pymilvus's query iterator could not read them back (see reader.py)")
    fields = s.fields(collection)
    marker = s.marker(collection)
    if marker is not None:
        rows = neutral_rows(batch, fields, marker)
        partition = partition_name(batch.namespace)
        _check_id_kinds(s, collection, fields, rows)
        _check_other_partitions(s, collection, partition, rows)
    else:
        rows = to_rows(batch, fields, s.dynamic(collection))
        partition = "" if s.partition_key(collection) else batch.namespace
    if partition and partition != DEFAULT_PARTITION:
        with s.errors("create partition", collection):
            if not s.client.has_partition(collection, partition):
                s.client.create_partition(collection, partition)
    for a in range(0, len(rows), WRITE_ROWS):
        with s.errors("write", collection, data=True):
            s.client.upsert(collection, rows[a:a + WRITE_ROWS], partition_name=partition)

def delete(s: Session, collection: str, ids: list[RecordId], namespace: str = "") -> None:
    partition = "" if s.partition_key(collection, look=False) else namespace
    for a in range(0, len(ids), WRITE_ROWS):
        with s.errors("delete", collection, data=True):
            s.client.delete(collection, ids=list(ids[a:a + WRITE_ROWS]),
                            partition_name=partition)
