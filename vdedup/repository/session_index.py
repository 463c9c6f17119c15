"""Blobs indexed during one write session, kept out of the index cache until it ends
(repository layer).

Content ids are random, so adding each new index file's few thousand entries to the LMDB
cache at once rewrites (copy on write) most of the tree's pages every time: at a million
blobs that is gigabytes written and the whole map resident. The packer instead records the
entries of the index files it writes here, as sorted numpy runs (merged like a log-structured
tree, so adding n entries costs O(n log n) in all), answers "was this id stored in this
session?" from them, and adds everything to the cache in key order when the session flushes
(or when it holds MAX_ENTRIES), so each page of the cache is written about once.

Nothing is lost if the process dies first: the index files are in the repository, and the
next process's cache sync loads every index file the cache has not seen (docs/design.md §6).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

ID = 32
LOC = 57
MAX_ENTRIES = 1 << 18          # entries held before they go to the cache early (~23 MB)
FILTER_BITS = 25               # a bit per 2^-25 of the id space (4 MB): most ids not held skip the runs
CHUNK = 1 << 16                # entries per cache write transaction


class _Run:
    __slots__ = ("prefix", "ids", "locs")

    def __init__(self, prefix: np.ndarray, ids: np.ndarray, locs: np.ndarray):
        self.prefix, self.ids, self.locs = prefix, ids, locs

    def __len__(self) -> int:
        return len(self.prefix)


def _run(ids: np.ndarray, locs: np.ndarray) -> _Run:
    prefix = ids[:, :8].copy().view(">u8").reshape(-1)
    order = np.argsort(prefix, kind="stable")
    return _Run(prefix[order], ids[order], locs[order])


def _merge(a: _Run, b: _Run) -> _Run:
    prefix = np.concatenate([a.prefix, b.prefix])
    order = np.argsort(prefix, kind="stable")
    return _Run(prefix[order], np.concatenate([a.ids, b.ids])[order], np.concatenate([a.locs, b.locs])[order])


class SessionIndex:
    """Entries (blob id -> BlobLocation bytes) of the index files a session has written but
    not yet added to the cache, and the names of those files."""

    def __init__(self) -> None:
        self._runs: list[_Run] = []
        self._filter = np.zeros(1 << (FILTER_BITS - 3), dtype=np.uint8)
        self.files: list[str] = []
        self.packs: set[bytes] = set()      # the packs the entries name
        self.count = 0

    def add(self, name: str, blob_ids: list[bytes], locs: np.ndarray, packs: Iterable[bytes]) -> None:
        """The entries of index file `name`: the blob ids and, as the rows of `locs`, their
        encoded locations (BlobLocation.to_bytes), in the packs `packs`."""
        self.files.append(name)
        if not blob_ids:
            return
        ids = np.frombuffer(b"".join(blob_ids), dtype=np.uint8).reshape(-1, ID)
        if locs.shape != (len(ids), LOC):
            raise ValueError("one location of LOC bytes per blob id is needed")
        self.packs.update(packs)
        run = _run(ids, locs)
        slot = run.prefix >> np.uint64(64 - FILTER_BITS)
        np.bitwise_or.at(self._filter, slot >> np.uint64(3), np.left_shift(1, slot & np.uint64(7)).astype(np.uint8))
        self._runs.append(run)
        self.count += len(ids)
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            b = self._runs.pop()
            self._runs[-1] = _merge(self._runs[-1], b)

    @staticmethod
    def new_filter() -> np.ndarray:
        """An empty filter of the form `mark` and `may_hold` use (4 MB)."""
        return np.zeros(1 << (FILTER_BITS - 3), dtype=np.uint8)

    def mark(self, bits: np.ndarray) -> None:
        """Set in `bits` the filter bits of every entry held here."""
        np.bitwise_or(bits, self._filter, out=bits)

    @staticmethod
    def may_hold(bits: np.ndarray, blob_ids: list[bytes]) -> list[int]:
        """The positions of the ids whose bit is set in the filter `bits` (every id marked
        is among them, and a few others)."""
        if not blob_ids:
            return []
        want = np.frombuffer(b"".join(blob_ids), dtype=np.uint8).reshape(-1, ID)
        slot = want[:, :8].copy().view(">u8").reshape(-1) >> np.uint64(64 - FILTER_BITS)
        return np.flatnonzero(bits[slot >> np.uint64(3)] & np.left_shift(1, slot & np.uint64(7)).astype(np.uint8)).tolist()

    def contains_many(self, blob_ids: list[bytes]) -> list[bool]:
        if not self._runs or not blob_ids:
            return [False] * len(blob_ids)
        want = np.frombuffer(b"".join(blob_ids), dtype=np.uint8).reshape(-1, ID)
        prefix = want[:, :8].copy().view(">u8").reshape(-1)
        found = np.zeros(len(blob_ids), dtype=bool)
        slot = prefix >> np.uint64(64 - FILTER_BITS)
        maybe = np.flatnonzero(self._filter[slot >> np.uint64(3)] & np.left_shift(1, slot & np.uint64(7)).astype(np.uint8))
        if not len(maybe):
            return found.tolist()
        want, prefix = want[maybe], prefix[maybe]
        for run in self._runs:
            lo = np.searchsorted(run.prefix, prefix, side="left")
            hi = np.searchsorted(run.prefix, prefix, side="right")
            for i in np.flatnonzero(hi > lo).tolist():         # prefix hits: compare the whole id
                k = maybe[i]
                if not found[k]:
                    found[k] = bool((run.ids[lo[i]:hi[i]] == want[i]).all(axis=1).any())
        return found.tolist()

    def drain_into(self, cache, lock) -> None:
        """Add every entry to the cache in key order, then the file names; forget them.
        The entries leave this index (under `lock`, which look-ups take) only once they are
        in the cache. The caller keeps add() from running meanwhile."""
        runs = list(self._runs)
        if runs:
            run = runs[0]
            for other in runs[1:]:
                run = _merge(run, other)
            order = np.lexsort(run.ids.T[::-1])               # full byte order, as LMDB sorts
            ids, locs = run.ids[order], run.locs[order]
            packs = sorted(self.packs)
            for a in range(0, len(ids), CHUNK):
                # the rows as bytes objects through void views (bytes kept whole, no slice each)
                cache.add_entries(list(zip(ids[a:a + CHUNK].view(f"V{ID}").reshape(-1).tolist(),
                                           locs[a:a + CHUNK].view(f"V{LOC}").reshape(-1).tolist())),
                                  packs if a == 0 else ())
                cache.release_pages()
        cache.add_files(self.files)
        with lock:                 # nothing was added meanwhile: add() runs under the same caller's lock
            self._runs = []
            self.packs = set()
            self._filter[:] = 0
            self.files = []
            self.count = 0
