"""The backend interface (backend layer).

Like restic's, a backend stores named objects of a few types and does only five things:
save, load (a byte range), stat, list, remove. `save` never overwrites: saving a name
that exists raises ObjectExists, which keeps two writers from clobbering each other.
Errors: ObjectNotFound, ObjectExists, TransientBackendError (retry may help), BackendError.
"""
from __future__ import annotations

from typing import Iterator, Protocol


class FileType:
    CONFIG = "config"
    KEYS = "keys"
    SNAPSHOTS = "snapshots"
    INDEX = "index"
    DATA = "data"
    LOCKS = "locks"
    AUDIT = "audit"
    ASSETS = "assets"
    KEYLIST = "keylist"
    DAMAGED = "damaged"      # objects `repair` moved aside, kept for inspection (never read)
    ALL = (CONFIG, KEYS, SNAPSHOTS, INDEX, DATA, LOCKS, AUDIT, ASSETS, KEYLIST, DAMAGED)


class Backend(Protocol):
    location: str

    def save(self, ftype: str, name: str, data: bytes) -> None: ...

    def load(self, ftype: str, name: str, offset: int = 0, length: int | None = None) -> bytes: ...

    def stat(self, ftype: str, name: str) -> int:
        """Size in bytes; raises ObjectNotFound."""

    def list(self, ftype: str) -> Iterator[tuple[str, int]]:
        """(name, size) of every object of a type."""

    def remove(self, ftype: str, name: str) -> None: ...

    def exists(self) -> bool:
        """Whether the location holds a repository (a config object)."""
