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
from itertools import chain, islice, repeat
from typing import Callable, Iterable, Iterator

import lmdb
import numpy as np

from ..arrays import heads
from ..format.pack import BlobLocation

MAP_SIZE = 1 << 40   # address space only; the file grows as needed
LOC_LEN = 57         # bytes of an encoded location (BlobLocation.to_bytes)
PACKS_KEPT = b"packs-kept"   # meta: the packs database names every pack of the cache's locations


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
        self.env = lmdb.open(self.path, map_size=MAP_SIZE, max_dbs=8, subdir=True, sync=True, readahead=False)
        self.blobs = self.env.open_db(b"blobs")
        self.files = self.env.open_db(b"indexfiles")
        self.dups = self.env.open_db(b"duplicates")     # second locations seen while syncing
        self.packs = self.env.open_db(b"packs")         # every pack a location names (with PACKS_KEPT)
        self.vouched = self.env.open_db(b"vouched")     # snapshots whose vector blobs are all here
        self.meta = self.env.open_db(b"meta")

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

    def add_file(self, name: str, entries: Iterable[tuple[bytes, BlobLocation]]) -> int:
        """Add an index file's locations; a blob already located keeps its location and the
        new one is set aside (`resolve_duplicates` picks between them). Returns how many
        were set aside."""
        dups = 0
        packs: set[bytes] = set()
        with self._lock, self.env.begin(write=True) as txn:
            for blob_id, loc in entries:
                raw = loc.to_bytes()
                packs.add(loc.pack)
                if not txn.put(blob_id, raw, db=self.blobs, overwrite=False):
                    if txn.get(blob_id, db=self.blobs) != raw:
                        txn.put(blob_id, raw, db=self.dups)
                        dups += 1
            for pack in packs:
                txn.put(pack, b"", db=self.packs)
            txn.put(name.encode(), b"", db=self.files)
        return dups

    def resolve_duplicates(self, pack_present: Callable[[bytes], bool]) -> int:
        """A blob stored twice (a killed prune, a blob stored again because its pack was lost):
        keep a location whose pack exists. Returns how many locations were replaced."""
        replaced = 0
        with self._lock, self.env.begin(write=True) as txn:
            for blob_id, raw in list(txn.cursor(db=self.dups)):
                current = txn.get(blob_id, db=self.blobs)
                if current is None or (not pack_present(bytes(current[:32])) and pack_present(bytes(raw[:32]))):
                    txn.put(blob_id, raw, db=self.blobs)
                    replaced += 1
            txn.drop(self.dups, delete=False)
        return replaced

    def add_entries(self, entries: list[tuple[bytes, bytes]], packs: Iterable[bytes] | None = None) -> None:
        """Locations already encoded (BlobLocation.to_bytes), in one transaction; sorted by
        id, they fill the tree's pages in order. `packs`: the packs they name (None: read
        from the entries)."""
        if packs is None:
            packs = {bytes(raw[:32]) for _, raw in entries}
        with self._lock, self.env.begin(write=True) as txn:
            txn.cursor(db=self.blobs).putmulti(entries)
            for pack in packs:
                txn.put(pack, b"", db=self.packs)

    def add_files(self, names: list[str]) -> None:
        """Note index files as loaded (after their entries were added)."""
        with self._lock, self.env.begin(write=True) as txn:
            for name in names:
                txn.put(name.encode(), b"", db=self.files)

    def clear(self) -> None:
        with self._lock, self.env.begin(write=True) as txn:
            for db in (self.blobs, self.files, self.dups, self.packs, self.vouched):
                txn.drop(db, delete=False)
            txn.put(PACKS_KEPT, b"1", db=self.meta)

    # ---- what a nightly backup may take on trust (docs/design.md section 6) ------------
    def known_packs(self) -> list[bytes] | None:
        """Every pack a location in the cache names, or None when the cache does not know
        (filled before it kept them: sync() empties such a cache once)."""
        with self._lock, self.env.begin() as txn:
            if txn.get(PACKS_KEPT, db=self.meta) is None:
                return None
            return [bytes(k) for k, _ in txn.cursor(db=self.packs)]

    def vouch(self, snapshot_id: str) -> None:
        """Note that every vector blob the snapshot references is located in this cache (its
        backup looked each up here, stored it, or took it from a vouched parent)."""
        with self._lock, self.env.begin(write=True) as txn:
            txn.put(bytes.fromhex(snapshot_id), b"", db=self.vouched)

    def vouched_for(self, snapshot_id: str) -> bool:
        with self._lock, self.env.begin(db=self.vouched) as txn:
            return txn.get(bytes.fromhex(snapshot_id)) is not None

    def items(self) -> Iterator[tuple[bytes, BlobLocation]]:
        """Every (blob id, location), streamed in id order (not while blobs are being added)."""
        with self.env.begin(db=self.blobs) as txn:
            for k, v in txn.cursor():
                yield bytes(k), BlobLocation.from_bytes(v)

    def locate_sorted(self, keys: np.ndarray, chunk: int = 1 << 14,
                      release_every: int = 8) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """The locations of many blob ids, found by walking the index in id order instead of
        one look-up each. `keys`: the ids as a sorted "S32" array. Yields (i, j, positions,
        locs): keys[i:j] are located, `locs` (uint8, rows of LOC_LEN bytes:
        BlobLocation.to_bytes) holds their locations, `positions` is -1 where an id is not in
        the index. Each stretch of `chunk` entries is read in a read transaction of its own,
        starting at the first id not yet located (stretches without wanted ids are skipped),
        and the map is released every `release_every` stretches (resident memory stays
        bounded). Ids are matched by their first 8 bytes as integers, then compared whole
        (numpy compares 32-byte strings several times slower); an id that shares those 8
        bytes with another entry is compared with each of them."""
        i, n, reads = 0, len(keys), 0
        want = np.ascontiguousarray(keys).view(np.uint8).reshape(n, 32) if n else np.zeros((0, 32), np.uint8)
        want_head = heads(want)
        while i < n:
            start = keys[i].ljust(32, b"\0")
            with self._lock, self.env.begin(db=self.blobs) as txn:
                cur = txn.cursor()
                items = list(islice(cur.iternext(), chunk)) if cur.set_range(start) else []
            reads += 1
            if reads % release_every == 0:
                self.release_pages()
            if not items:                     # past the last entry: the rest are not there
                yield i, n, np.full(n - i, -1), np.zeros((0, LOC_LEN), dtype=np.uint8)
                return
            m = len(items)
            rows = b"".join(chain.from_iterable(items))          # id | location, entry after entry
            if len(rows) != (32 + LOC_LEN) * m:
                raise ValueError("index cache entry of an unexpected length")
            table = np.frombuffer(rows, dtype=np.uint8).reshape(m, 32 + LOC_LEN)
            found, locs = table[:, :32], table[:, 32:]
            # the wanted ids this stretch covers: up to its last entry, or all when it is the
            # index's last stretch
            j = n if m < chunk else int(np.searchsorted(keys, bytes(items[-1][0]), side="right"))
            yield i, j, _matches(found, heads(found), want[i:j], want_head[i:j]), locs
            i = j

    def count(self) -> int:
        with self._lock, self.env.begin(db=self.blobs) as txn:
            return txn.stat(self.blobs)["entries"]

    def _keeps_packs(self) -> bool:
        with self._lock, self.env.begin(db=self.meta) as txn:
            return txn.get(PACKS_KEPT) is not None

    def sync(self, present: set[str], load: Callable[[str], Iterable[tuple[bytes, BlobLocation]] | None],
             loaded: set[str] | None = None, pack_present: Callable[[bytes], bool] | None = None) -> None:
        """Bring the cache in line with the repository's index files `present` (`loaded`: what
        the cache held before `present` was listed). `load` returns None for a file that
        cannot be read (it is not noted as loaded, so it is tried again next time). A blob
        located twice keeps the first location unless its pack is missing (`pack_present`,
        asked only when there are such blobs) and the other's is not."""
        loaded = self.loaded_files() if loaded is None else loaded
        if loaded - present or not self._keeps_packs():
            self.clear()               # a cache filled before it kept its packs: loaded again, once
            loaded = set()
        dups = 0
        for name in sorted(present - loaded):
            entries = load(name)
            if entries is not None:
                dups += self.add_file(name, entries)
        if dups and pack_present is not None:
            self.resolve_duplicates(pack_present)

    @staticmethod
    def remove_dir(path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)


def _matches(found: np.ndarray, found_head: np.ndarray, want: np.ndarray, want_head: np.ndarray) -> np.ndarray:
    """For each wanted id (rows of `want`), its position among the `found` ids (both sorted,
    rows of 32 bytes, with their arrays.heads), or -1."""
    m = len(found)
    pos = np.searchsorted(found_head, want_head)
    inside = pos < m
    pos[~inside] = 0
    same_head = inside & (found_head[pos] == want_head) if m else np.zeros(len(want), dtype=bool)
    hit = same_head.copy()
    hit[same_head] = (found[pos[same_head]] == want[same_head]).all(axis=1)
    # an id that shares its first 8 bytes with another: the entries with those bytes follow
    # one another from `pos`; compare each whole
    for k in np.flatnonzero(same_head & ~hit).tolist():
        at = int(pos[k])
        while at < m and found_head[at] == want_head[k]:
            if (found[at] == want[k]).all():
                pos[k], hit[k] = at, True
                break
            at += 1
    return np.where(hit, pos, -1)


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
