"""The read-only view of a target whose local storage does not exist yet (connector layer).

Opening an embedded database at a new path creates it (Chroma's persist directory, Qdrant's
local storage with its `.lock` and `meta.json`). A dry run must create nothing, so the
registry hands it this stand-in instead: a database with no collections, which refuses any
write. A restore gets `OpenOnWrite`: the same empty view while it plans (so a refused plan or
a usage error leaves nothing behind), and the real connector from its first write on.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from ..errors import CollectionNotFound, UsageError
from ..model import CollectionSchema, RecordBatch, RecordId
from .base import ConnectorBase
from .url import SourceURL


class AbsentTarget(ConnectorBase):
    """An empty, read-only database at a location that does not exist yet, standing in for
    a connector of class `cls` (its provider, descriptor and scan order)."""

    def __init__(self, cls: type, where: str, url_collection: str | None = None) -> None:
        self.provider = cls.provider
        self.descriptor = cls.descriptor
        self.key_ordered_scan = cls.key_ordered_scan
        self.concurrent_writes = cls.concurrent_writes
        self.takes_metadata_json = cls.takes_metadata_json
        self.url_collection = url_collection
        self._where = where

    @classmethod
    def from_url(cls, url: SourceURL, credentials: Any) -> "AbsentTarget":
        raise UsageError("an absent target is made by the registry, not opened")

    def list_collections(self) -> list[str]:
        return []

    def exists(self, collection: str) -> bool:
        return False

    def count(self, collection: str, namespace: str = "") -> int:
        return 0

    def describe(self, collection: str) -> CollectionSchema:
        raise CollectionNotFound(f"collection {collection!r} not found at {self._where} (it does not exist yet)")

    def scan(self, collection: str, namespace: str = "", batch_size: int = 1000) -> Iterator[RecordBatch]:
        raise CollectionNotFound(f"collection {collection!r} not found at {self._where} (it does not exist yet)")

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        raise UsageError(f"{self._where} was opened read-only (a dry run): nothing is created")

    def write(self, collection: str, batch: RecordBatch) -> None:
        raise UsageError(f"{self._where} was opened read-only (a dry run): nothing is written")

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        raise UsageError(f"{self._where} was opened read-only (a dry run): nothing is deleted")

    def close(self) -> None:
        pass


class OpenOnWrite:
    """An empty database until the first write, which opens the real connector (creating its
    storage); every call after that goes to the real one."""

    def __init__(self, absent: AbsentTarget, open_real: Callable[[], Any]) -> None:
        self._absent = absent
        self._open_real = open_real
        self._real: Any = None

    def _opened(self) -> Any:
        if self._real is None:
            self._real = self._open_real()
        return self._real

    def __getattr__(self, name: str) -> Any:          # reads: the empty view until opened
        return getattr(self._real if self._real is not None else self._absent, name)

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        self._opened().create_collection(schema, name)

    def write(self, collection: str, batch: RecordBatch) -> None:
        self._opened().write(collection, batch)

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        self._opened().delete(collection, ids, namespace)

    def close(self) -> None:
        if self._real is not None:
            self._real.close()
