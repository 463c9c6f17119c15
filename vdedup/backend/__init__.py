"""Backend layer: bytes in, bytes out, keyed by (type, name). Knows nothing of crypto."""
from .base import Backend, FileType
from .local import LocalBackend
from .memory import MemoryBackend

__all__ = ["Backend", "FileType", "LocalBackend", "MemoryBackend", "open_backend"]


def open_backend(location: str, s3_endpoint: str | None = None) -> Backend:
    """A backend for a repository location: a local path (or file://path); s3://bucket/prefix
    once the S3 backend exists (s3_endpoint: an S3-compatible store's URL)."""
    if location.startswith("file://"):
        location = location[len("file://"):]
    if "://" in location:
        from ..errors import UsageError
        raise UsageError(f"unsupported repository location scheme: {location.split('://')[0]}://")
    return LocalBackend(location)
