"""The local LMDB index cache (repository layer).

Maps blob id -> location (pack, block, offset, length, ordinal, raw length, type). It is
only a cache: the truth is the repository's index files. On open it loads index files it
has not seen; if index files it had loaded are gone (prune replaced them) it rebuilds
from scratch. A repository therefore works from any machine.
"""
from __future__ import annotations

import contextlib
import operator
import os
import shutil
import threading
from itertools import repeat
from typing import Callable, Iterable, Iterator

import lmdb

from ..format.pack import BlobLocation

MAP_SIZE = 1 << 40   # address space only; the file grows as needed


def cache_root() -> str:
    if os.environ.get("VDEDUP_CACHE_DIR"):
        return os.environ["VDEDUP_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "vdedup")


class IndexCache:
    def __init__(self, path: str):
        self.path = path
        os.makedirs(path, mode=0o700, exist_ok=True)
        # the packer's saver thread adds index files while the backup's thread looks blobs up;
        # the lock keeps release_pages (closing the map) away from any transaction
        self._lock = _SharedLock()
        self._open()

    def _open(self) -> None:
        # no readahead: look-ups are random, and pages read ahead would be mapped into (and
        # counted in) the resident memory of the process
        self.env = lmdb.open(self.path, map_size=MAP_SIZE, max_dbs=4, subdir=True, sync=True, readahead=False)
        self.blobs = self.env.open_db(b"blobs")
        self.files = self.env.open_db(b"indexfiles")

    def release_pages(self) -> None:
        """Close and reopen the environment: every page of the map the process has touched
        counts in its resident memory until the map is dropped (for a million blobs, some
        hundreds of MB). Called between transactions, e.g. after each index file is added."""
        with self._lock.exclusive():
            self.env.close()
            self._open()

    def close(self) -> None:
        with self._lock.exclusive():
            self.env.close()

    def get(self, blob_id: bytes) -> BlobLocation | None:
        with self._lock, self.env.begin(db=self.blobs) as txn:
            raw = txn.get(blob_id)
        return None if raw is None else BlobLocation.from_bytes(raw)

    def get_many(self, blob_ids: list[bytes]) -> list[bytes | None]:
        """The encoded locations (BlobLocation.to_bytes) of many blobs, in one read transaction."""
        with self._lock, self.env.begin(db=self.blobs) as txn:
            return list(map(txn.get, blob_ids))

    def contains_many(self, blob_ids: list[bytes]) -> list[bool]:
        """contains() for many ids in one read transaction."""
        with self._lock, self.env.begin(db=self.blobs) as txn:
            return list(map(operator.is_not, map(txn.get, blob_ids), repeat(None)))

    def contains(self, blob_id: bytes) -> bool:
        with self._lock, self.env.begin(db=self.blobs) as txn:
            return txn.get(blob_id) is not None

    def loaded_files(self) -> set[str]:
        with self._lock, self.env.begin(db=self.files) as txn:
            return {k.decode() for k, _ in txn.cursor()}

    def add_file(self, name: str, entries: Iterable[tuple[bytes, BlobLocation]]) -> None:
        with self._lock, self.env.begin(write=True) as txn:
            for blob_id, loc in entries:
                txn.put(blob_id, loc.to_bytes(), db=self.blobs)
            txn.put(name.encode(), b"", db=self.files)

    def add_entries(self, entries: list[tuple[bytes, bytes]]) -> None:
        """Locations already encoded (BlobLocation.to_bytes), in one transaction; sorted by
        id, they fill the tree's pages in order."""
        with self._lock, self.env.begin(write=True) as txn:
            txn.cursor(db=self.blobs).putmulti(entries)

    def add_files(self, names: list[str]) -> None:
        """Note index files as loaded (after their entries were added)."""
        with self._lock, self.env.begin(write=True) as txn:
            for name in names:
                txn.put(name.encode(), b"", db=self.files)

    def clear(self) -> None:
        with self._lock, self.env.begin(write=True) as txn:
            txn.drop(self.blobs, delete=False)
            txn.drop(self.files, delete=False)

    def items(self) -> Iterator[tuple[bytes, BlobLocation]]:
        """Every (blob id, location), streamed in id order (not while blobs are being added)."""
        with self.env.begin(db=self.blobs) as txn:
            for k, v in txn.cursor():
                yield bytes(k), BlobLocation.from_bytes(v)

    def count(self) -> int:
        with self._lock, self.env.begin(db=self.blobs) as txn:
            return txn.stat(self.blobs)["entries"]

    def sync(self, present: set[str], load: Callable[[str], Iterable[tuple[bytes, BlobLocation]]],
             loaded: set[str] | None = None) -> None:
        """Bring the cache in line with the repository's index files `present` (`loaded`: what
        the cache held before `present` was listed)."""
        loaded = self.loaded_files() if loaded is None else loaded
        if loaded - present:
            self.clear()
            loaded = set()
        for name in sorted(present - loaded):
            self.add_file(name, load(name))

    @staticmethod
    def remove_dir(path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)


class _SharedLock:
    """Transactions share it (LMDB lets readers and a writer run at once); closing and
    reopening the map takes it alone (`exclusive()`)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0

    def __enter__(self) -> None:
        with self._cond:
            self._shared += 1

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._shared -= 1
            if not self._shared:
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._shared == 0)
            yield
