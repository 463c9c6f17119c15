"""The connector interface (connector layer; depends only on model and errors).

A connector talks to one database. The engine drives it through this protocol and
never imports an SDK itself. All SDK errors are wrapped at this boundary into
`SourceError` / `CollectionNotFound` (see vdedup.errors).
"""
from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

import numpy as np

from ..errors import NotSupported
from ..model import CollectionSchema, RecordBatch, RecordId


@runtime_checkable
class Connector(Protocol):
    provider: str

    def list_collections(self) -> list[str]:
        """Names of every collection (index, table, class) the credentials can see."""

    def describe(self, collection: str) -> CollectionSchema:
        """The collection's schema, namespaces included; raises CollectionNotFound."""

    def count(self, collection: str, namespace: str = "") -> int:
        """Number of records in one namespace."""

    def scan(self, collection: str, namespace: str = "", batch_size: int = 1000) -> Iterator[RecordBatch]:
        """Every record of one namespace, in batches of at most batch_size (bounded memory)."""

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        """Create an empty collection `name` from `schema`."""

    def exists(self, collection: str) -> bool:
        """Whether a collection of that name exists."""

    def write(self, collection: str, batch: RecordBatch) -> None:
        """Insert or replace the batch's records (in batch.namespace)."""

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        """Delete records by id."""

    def close(self) -> None:
        """Release clients and connections."""

    # Optional: `write_new(collection, batch)` inserts records the caller guarantees are not in
    # the collection (restore into a collection it has just created, every id once): a faster
    # write where replacing costs a look-up. Without it the engine calls `write`.
    # Optional attribute: `key_ordered_scan = False` on a connector whose scan order has no
    # reason to follow the ids (table storage order, insertion order); backup then spools the
    # rows from the start instead of first trying to stream them (engine/backup.py).
    # Optional: `settle(collection, namespace)`, for eventually consistent providers, returns
    # only when everything written so far is readable; `finish(collection)` is called once a
    # collection's records are all written (e.g. to build indexes after a bulk load). The
    # engine calls them when present.
    # Optional attribute: `url_collection`, the collection (index, class, table) the URL the
    # connector was opened with names, or None: a restore writes there (as `--as` would).
    # Optional: `query(collection, namespace, vector, k, vector_name="")`, the ids of the k
    # nearest records to `vector` by the collection's own metric and index (as the database
    # serves them); `verify` compares them with exact answers. Without it: NotSupported.


def query(connector: Connector, collection: str, namespace: str, vector: np.ndarray, k: int,
          vector_name: str = "") -> list[RecordId]:
    """The connector's nearest-neighbour query; NotSupported when it has none."""
    fn = getattr(connector, "query", None)
    if fn is None:
        raise NotSupported(f"the {connector.provider} connector has no nearest-neighbour query")
    return list(fn(collection, namespace, vector, k, vector_name))


def url_collection(connector: Connector) -> str | None:
    """The collection the connector's URL names, if any."""
    return getattr(connector, "url_collection", None)
