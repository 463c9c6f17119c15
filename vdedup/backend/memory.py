"""In-memory backend for tests and dry runs (backend layer)."""
from __future__ import annotations

import threading
from typing import Iterator

from ..errors import ObjectExists, ObjectNotFound


class MemoryBackend:
    def __init__(self) -> None:
        self.location = "memory:"
        self.objects: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return ("config", "config") in self.objects

    def enable_object_lock(self, mode: str, days: int) -> None:
        from ..errors import UsageError
        raise UsageError("Object Lock needs an S3 repository (s3://bucket/prefix)")

    def configure_object_lock(self, mode: str, days: float) -> None:
        """A copy of an Object Lock repository here: nothing is retained."""

    def create_layout(self) -> None:
        pass

    def save(self, ftype: str, name: str, data: bytes) -> None:
        with self._lock:
            if (ftype, name) in self.objects:
                raise ObjectExists(f"{ftype}/{name[:16]} already exists")
            self.objects[(ftype, name)] = bytes(data)

    def load(self, ftype: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        try:
            data = self.objects[(ftype, name)]
        except KeyError:
            raise ObjectNotFound(f"{ftype}/{name[:16]} not found") from None
        if offset < 0:
            offset = max(0, len(data) + offset)
        return data[offset:] if length is None else data[offset:offset + length]

    def stat(self, ftype: str, name: str) -> int:
        return len(self.load(ftype, name))

    def list(self, ftype: str) -> Iterator[tuple[str, int]]:
        for (t, n), d in sorted(self.objects.items()):
            if t == ftype:
                yield n, len(d)

    def remove(self, ftype: str, name: str) -> None:
        with self._lock:
            if self.objects.pop((ftype, name), None) is None:
                raise ObjectNotFound(f"{ftype}/{name[:16]} not found")
