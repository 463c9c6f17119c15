"""Backend layer: bytes in, bytes out, keyed by (type, name). Knows nothing of crypto.

Backends: local disk, S3 (and S3-compatible stores), memory (tests). Wrappers: retry
(every backend `open_backend` returns is wrapped in it) and fault injection (tests).
"""
import os
from typing import TYPE_CHECKING

from .base import Backend, FileType
from .faults import FaultyBackend
from .local import LocalBackend
from .memory import MemoryBackend
from .ratelimit import RateLimitedBackend
from .retry import RetryBackend

if TYPE_CHECKING:
    from ..ratelimit import Rate

__all__ = ["Backend", "FileType", "FaultyBackend", "LocalBackend", "MemoryBackend", "RateLimitedBackend", "RetryBackend",
           "open_backend"]


def open_backend(location: str, s3_endpoint: str | None = None, limit_upload: "Rate | None" = None,
                 limit_download: "Rate | None" = None) -> Backend:
    """A backend for a repository location: a local path (or file://path), or
    s3://bucket/prefix (s3_endpoint: the URL of an S3-compatible store; credentials come
    from boto3's usual chain). Every backend is wrapped in the retry wrapper; with a limit,
    in the rate-limiting wrapper below it (bytes per second saved and loaded)."""
    from ..errors import UsageError
    inner: Backend
    if location.startswith("s3://"):
        from .s3 import S3Backend
        inner = S3Backend.from_url(location, endpoint=s3_endpoint or None)
    else:
        if location.startswith("file://"):
            location = location[len("file://"):]
        if "://" in location:
            raise UsageError(f"unsupported repository location scheme: {location.split('://')[0]}:// "
                             "(use a path or s3://bucket/prefix)")
        inner = LocalBackend(location)
    faults = os.environ.get("VDEDUP_TEST_FAULTS")
    if faults:
        inner = FaultyBackend(inner, faults)
    if limit_upload is not None or limit_download is not None:
        inner = RateLimitedBackend(inner, limit_upload, limit_download)
    return RetryBackend(inner)
