"""Local-disk backend (backend layer).

Layout: `config`, `keys/NAME`, `snapshots/NAME`, `index/NAME`, `locks/NAME`,
`data/XY/NAME` (XY: first two characters of the name). A save writes a temporary file,
fsyncs it and links it into place (link fails if the name exists: no clobbering), then
fsyncs the directory, so a crash leaves either the whole object or none of it.

Objects of MIN_SIZE bytes or more (packs) are written past the page cache (O_DIRECT,
vdedup/directio.py) where the file system takes it. Smaller ones, and all of them where it
does not, stay in the page cache up to KEEP_CACHED bytes (the most recent
ones); older ones have their pages dropped (posix_fadvise DONTNEED, where the system has
it): a backup writes gigabytes it will not read again, and letting them fill the cache
costs the kernel several times the copy itself (fresh pages for every write: at 1M x 768,
10 of the saving thread's 15 CPU seconds; benchmarks/results/profile.md) and evicts what
other programs keep there. The last 128 MB stay, for a restore or check soon after (a
larger window costs the kernel fresh pages for all of it: ~0.7 s for 512 MB here).
"""
from __future__ import annotations

import errno
import os
import secrets
import threading
import time
from collections import deque
from typing import Iterator

from ..directio import write_all
from ..errors import BackendError, ObjectExists, ObjectNotFound, WriteRefused
from .base import FileType

def _drop_cached(fd: int) -> None:
    """Drop a written and fsynced file's pages from the page cache (a hint: never fails)."""
    if _FADVISE is not None:
        try:
            _FADVISE(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


def _drop_cached_path(path: str) -> None:
    """_drop_cached for a file by name (gone or unreadable: nothing to do)."""
    if _FADVISE is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        _drop_cached(fd)
    finally:
        os.close(fd)


_FADVISE = getattr(os, "posix_fadvise", None)
KEEP_CACHED = 128 << 20        # bytes of the most recently saved objects left in the page cache

# the storage refuses writes, though reads may work: full, read-only, no permission
REFUSED = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
TMP_PREFIX = ".tmp-"           # a save in progress; see remove_stale_temporaries
STALE_TMP_SECONDS = 3600.0


class LocalBackend:
    def __init__(self, path: str):
        self.location = os.path.abspath(path)
        self._cached: deque[tuple[str, int]] = deque()    # saved objects still in the page cache
        self._cached_bytes = 0
        self._cached_lock = threading.Lock()

    def _saved(self, path: str, size: int) -> None:
        """Note a saved object; drop the pages of the oldest ones beyond KEEP_CACHED bytes."""
        drop = []
        with self._cached_lock:
            self._cached.append((path, size))
            self._cached_bytes += size
            while self._cached_bytes > KEEP_CACHED and self._cached:
                old, n = self._cached.popleft()
                self._cached_bytes -= n
                drop.append(old)
        for old in drop:
            _drop_cached_path(old)

    def _path(self, ftype: str, name: str) -> str:
        if ftype == FileType.CONFIG:
            return os.path.join(self.location, "config")
        if not name or "/" in name or name.startswith("."):
            raise BackendError(f"bad object name {name!r}")
        if ftype == FileType.DATA:
            return os.path.join(self.location, ftype, name[:2], name)
        return os.path.join(self.location, ftype, name)

    def exists(self) -> bool:
        return os.path.isfile(os.path.join(self.location, "config"))

    def enable_object_lock(self, mode: str, days: int) -> None:
        from ..errors import UsageError
        raise UsageError("Object Lock needs an S3 repository (s3://bucket/prefix)")

    def configure_object_lock(self, mode: str, days: float) -> None:
        """A copy of an Object Lock repository here: nothing is retained."""

    def create_layout(self) -> None:
        try:
            os.makedirs(self.location, exist_ok=True)
            for t in FileType.ALL:
                if t != FileType.CONFIG:
                    os.makedirs(os.path.join(self.location, t), exist_ok=True)
        except OSError as e:
            raise BackendError(f"cannot create repository at {self.location}: {e.strerror}") from e

    def save(self, ftype: str, name: str, data: bytes) -> None:
        path = self._path(ftype, name)
        directory = os.path.dirname(path)
        tmp = os.path.join(directory, f"{TMP_PREFIX}{secrets.token_hex(8)}")
        try:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:                         # from here on, the temporary file is ours to remove
                try:
                    direct = write_all(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.link(tmp, path)
            except FileExistsError:
                raise ObjectExists(f"{ftype}/{name[:16]} already exists") from None
            finally:                     # whatever happened (disk full too), no .tmp-* stays
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            if not direct:               # written through the page cache
                self._saved(path, len(data))
        except OSError as e:
            if e.errno in REFUSED:
                raise WriteRefused(f"cannot write {ftype}/{name[:16]}: {e.strerror}") from e
            raise BackendError(f"cannot write {ftype}/{name[:16]}: {e.strerror}") from e

    def remove_stale_temporaries(self, older_than: float = STALE_TMP_SECONDS) -> tuple[int, int]:
        """Delete `.tmp-*` files a killed process left (a save is never that old while it
        runs): (files, bytes) removed. Prune calls it."""
        removed = size = 0
        cutoff = time.time() - older_than
        dirs = [os.path.join(self.location, t) for t in FileType.ALL if t != FileType.CONFIG]
        dirs.append(self.location)
        data = os.path.join(self.location, FileType.DATA)
        try:
            dirs += [os.path.join(data, d) for d in os.listdir(data)]
        except OSError:
            pass
        for d in dirs:
            try:
                entries = list(os.scandir(d))
            except OSError:
                continue
            for e in entries:
                if not e.name.startswith(TMP_PREFIX):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                    if st.st_mtime > cutoff:
                        continue
                    os.unlink(e.path)
                except OSError:
                    continue
                removed += 1
                size += st.st_size
        return removed, size

    def load(self, ftype: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(ftype, name)
        try:
            with open(path, "rb") as f:
                if offset < 0:
                    f.seek(max(offset, -os.fstat(f.fileno()).st_size), os.SEEK_END)
                elif offset:
                    f.seek(offset)
                return f.read() if length is None else f.read(length)
        except FileNotFoundError:
            raise ObjectNotFound(f"{ftype}/{name[:16]} not found") from None
        except OSError as e:
            raise BackendError(f"cannot read {ftype}/{name[:16]}: {e.strerror}") from e

    def stat(self, ftype: str, name: str) -> int:
        try:
            return os.stat(self._path(ftype, name)).st_size
        except FileNotFoundError:
            raise ObjectNotFound(f"{ftype}/{name[:16]} not found") from None

    def list(self, ftype: str) -> Iterator[tuple[str, int]]:
        base = os.path.join(self.location, ftype)
        dirs = [base]
        if ftype == FileType.DATA:
            try:
                dirs = [os.path.join(base, d) for d in sorted(os.listdir(base))]
            except FileNotFoundError:
                return
        for d in dirs:
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for e in entries:
                if e.is_file() and not e.name.startswith("."):
                    try:
                        size = e.stat().st_size
                    except FileNotFoundError:      # removed while listing (prune, lock refresh)
                        continue
                    yield e.name, size

    def remove(self, ftype: str, name: str) -> None:
        try:
            os.unlink(self._path(ftype, name))
        except FileNotFoundError:
            raise ObjectNotFound(f"{ftype}/{name[:16]} not found") from None
        except OSError as e:
            if e.errno in REFUSED:
                raise WriteRefused(f"cannot remove {ftype}/{name[:16]}: {e.strerror}") from e
            raise BackendError(f"cannot remove {ftype}/{name[:16]}: {e.strerror}") from e
