"""The read-only view of a target whose local storage does not exist yet (connector layer).

Opening an embedded database at a new path creates it (Chroma's persist directory, Qdrant's
local storage with its `.lock` and `meta.json`). A dry run must create nothing, so the
registry hands it this stand-in instead: a database with no collections, which refuses any
write.
"""
from __future__ import annotations

from typing import Iterator

from ..errors import CollectionNotFound, UsageError
from ..model import CollectionSchema, RecordBatch, RecordId


class AbsentTarget:
    """An empty, read-only database at a location that does not exist yet."""

    def __init__(self, provider: str, where: str, url_collection: str | None = None) -> None:
        self.provider = provider
        self.url_collection = url_collection
        self._where = where

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
