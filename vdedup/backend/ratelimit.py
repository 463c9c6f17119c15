"""Rate-limiting wrapper around any backend (backend layer).

`--limit-upload` and `--limit-download` cap the bytes per second of objects saved to and
loaded from the repository's storage, each with its own token bucket (vdedup/ratelimit.py).
The wrapper sits below RetryBackend, so a retried request is counted again, as it is sent
again. Listing, stat and remove move next to no data and are not limited.
"""
from __future__ import annotations

from typing import Iterator

from ..ratelimit import Rate, TokenBucket
from .base import Backend


class RateLimitedBackend:
    def __init__(self, inner: Backend, upload: Rate | None = None, download: Rate | None = None):
        self.inner = inner
        self.upload = TokenBucket(upload.per_second) if upload is not None else None
        self.download = TokenBucket(download.per_second) if download is not None else None

    @property
    def location(self) -> str:
        return self.inner.location

    def __getattr__(self, name: str):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def exists(self) -> bool:
        return self.inner.exists()

    def save(self, ftype: str, name: str, data: bytes) -> None:
        if self.upload is not None:
            self.upload.take(len(data))
        self.inner.save(ftype, name, data)

    def load(self, ftype: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.load(ftype, name, offset, length)
        if self.download is not None:
            self.download.take(len(data))
        return data

    def stat(self, ftype: str, name: str) -> int:
        return self.inner.stat(ftype, name)

    def list(self, ftype: str) -> Iterator[tuple[str, int]]:
        return self.inner.list(ftype)

    def remove(self, ftype: str, name: str) -> None:
        self.inner.remove(ftype, name)
