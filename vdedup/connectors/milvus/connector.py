"""Milvus connector (connector layer; depends only on model and errors).

    milvus://[USER@]HOST:PORT[/DB[/COLLECTION]][?secure=1]

The connector is the face the engine sees; the work is done by the modules beside it, one
concern each (pymilvus 3.0.2):
- url.py: the URL grammar and authentication;
- session.py: the open client, what is cached of each collection, loading, SDK errors;
- schema.py: Milvus field types, describe_collection as the model's schema, native creation;
- values.py: values both ways between pymilvus rows and record batches;
- layout.py: the neutral layout a schema from another provider gets;
- reader.py / writer.py: describe, count, scan and query / create, upsert and delete.
"""
from __future__ import annotations

from typing import Any, Iterator

from ...model import CollectionSchema, Partition, RecordBatch, RecordId
from ..credentials import NO_CREDENTIALS, Credentials
from ..base import ConnectorBase
from ..url import SourceURL
from .descriptor import DESCRIPTOR
from . import reader, writer
from .session import Session
from .url import parse, plain_transport as url_plain_transport


class MilvusConnector(ConnectorBase):
    """One Milvus database (optionally narrowed to one collection by the URL)."""

    provider = "milvus"
    descriptor = DESCRIPTOR

    def __init__(self, session: Session, collection: str | None = None) -> None:
        self._s = session
        self._only = collection

    @classmethod
    def plain_transport(cls, u: SourceURL) -> tuple[str, str] | None:
        return url_plain_transport(u)

    @classmethod
    def from_url(cls, u: SourceURL, credentials: Credentials = NO_CREDENTIALS) -> "MilvusConnector":
        address = parse(u)
        return cls(Session.open(address, credentials), address.collection)

    @property
    def url_collection(self) -> str | None:
        """The collection the URL names (a restore writes there)."""
        return self._only

    def close(self) -> None:
        self._s.close()

    # --------------------------------------------------------------- reading

    def list_collections(self) -> list[str]:
        if self._only is not None:
            return [self._only]
        with self._s.errors("list collections"):
            return sorted(self._s.client.list_collections())

    def exists(self, collection: str) -> bool:
        return reader.exists(self._s, collection)

    def describe(self, collection: str) -> CollectionSchema:
        return reader.describe(self._s, self.provider, collection)

    def count(self, collection: str, namespace: str = "") -> int:
        return reader.count(self._s, collection, namespace)

    def scan(self, collection: str, namespace: str = "",
             batch_size: int = 1000) -> Iterator[RecordBatch]:
        return reader.scan(self._s, collection, namespace, batch_size)

    def partitions(self, collection: str, namespace: str = "", target_size: int = 100_000) -> list[Partition]:
        return reader.partitions(self._s, collection, namespace, target_size)

    def scan_partition(self, collection: str, partition: Partition, batch_size: int = 1000) -> Iterator[RecordBatch]:
        return reader.scan(self._s, collection, partition.namespace, batch_size,
                           reader.pk_filter(self._s, collection, partition))

    def query(self, collection: str, namespace: str, vector: Any, k: int,
              vector_name: str = "") -> list[RecordId]:
        return reader.query(self._s, collection, namespace, vector, k, vector_name)

    # --------------------------------------------------------------- writing

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        writer.create_collection(self._s, self.provider, schema, name)

    def write(self, collection: str, batch: RecordBatch) -> None:
        writer.write(self._s, collection, batch)

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        writer.delete(self._s, collection, ids, namespace)
