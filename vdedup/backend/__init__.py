"""Backend layer: bytes in, bytes out, keyed by (type, name). Knows nothing of crypto."""
from .base import Backend, FileType
from .local import LocalBackend
from .memory import MemoryBackend

__all__ = ["Backend", "FileType", "LocalBackend", "MemoryBackend", "open_backend"]


def open_backend(location: str) -> Backend:
    """A backend for a repository location: a local path (or file://path)."""
    if location.startswith("file://"):
        location = location[len("file://"):]
    if "://" in location:
        from ..errors import UsageError
        raise UsageError(f"unsupported repository location scheme: {location.split('://')[0]}://")
    return LocalBackend(location)
