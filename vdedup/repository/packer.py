"""Packer: groups new blobs into blocks and blocks into pack files (repository layer).

Blobs of one type are gathered into a block until it reaches BLOCK_TARGET raw bytes; the
block is compressed (block.py), encrypted and appended to the open pack; a pack is saved
when it reaches the pack target (16 MiB, VDEDUP_PACK_SIZE). Every saved pack is indexed at
once (an index file every INDEX_EVERY packs), so an interrupted backup leaves its saved packs
indexed (and reused by the next run) up to the last index file written.

With `workers` > 1 the work runs beside the caller: blocks are compressed by a pool of
`workers` threads (zstd and numpy release the GIL), and sealing a full pack (AES-GCM, which
releases it too), saving it and then its index file is done, one pack after another, by a
saver thread. The caller places the compressed blocks in packs in order (block numbers and
offsets follow the order blobs were added, exactly as without workers: a sealed block is its
plaintext plus the 16-byte tag, so its offset is known before it is sealed). Queues are
bounded (2 x workers blocks being compressed, 1 pack waiting to be saved), so memory stays
flat. The saver keeps the order of
docs/design.md §7: a pack, then the index file naming it; `flush` returns only when every
pack and index file is saved, and only then may a snapshot be written.
"""
from __future__ import annotations

import operator
import os
import secrets
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import compress, repeat
from typing import Callable

import numpy as np

from ..backend.base import FileType
from ..errors import UsageError
from ..format import block as blockfmt
from ..format import pack as packfmt
from ..format.objects import BlobType, ObjectType
from ..format.pack import BlockInfo
from .session_index import MAX_ENTRIES, SessionIndex

BLOCK_TARGET = 1 << 20
DEFAULT_PACK_MIB = 16
INDEX_EVERY = 1
RELEASE_LOOKUPS = 1 << 16       # look-ups between two releases of the index cache's map
SAVES_QUEUED = 1                # full packs waiting for the saver (besides the one it saves)


def pack_target() -> int:
    """Target pack size in bytes: VDEDUP_PACK_SIZE (MiB, 1-512) or 16 MiB, as restic's --pack-size."""
    raw = os.environ.get("VDEDUP_PACK_SIZE")
    mib = DEFAULT_PACK_MIB
    if raw:
        try:
            mib = min(512, max(1, int(raw)))
        except ValueError:
            raise UsageError(f"VDEDUP_PACK_SIZE must be a whole number of MiB, not {raw!r}") from None
    return mib << 20


class Rows:
    """Payloads of one layout as the rows of an (n, width) uint8 array (a batch of plain
    dense vectors): a head of `head_len` bytes, then a body of `itemsize`-byte elements.
    With a `prefix`, the whole head is that prefix, the same for every payload, and the array
    holds the bodies only (a batch's own vectors, not copied: payload i is prefix + row i)."""

    __slots__ = ("array", "head_len", "itemsize", "prefix")

    def __init__(self, array: np.ndarray, head_len: int, itemsize: int, prefix: bytes = b""):
        self.array, self.head_len, self.itemsize, self.prefix = array, head_len, itemsize, prefix

    def layout(self) -> tuple[int, int, int]:
        return len(self.prefix) + self.array.shape[1], self.head_len, self.itemsize

    def piece(self) -> np.ndarray | tuple[bytes, np.ndarray]:
        """What format/block.py encode_rows_block takes for these rows."""
        return (self.prefix, self.array) if self.prefix else self.array

    def payloads(self) -> list[bytes]:
        prefix = self.prefix
        return [prefix + r.tobytes() for r in self.array]


class LazyRows:
    """Payloads of one layout not built yet: payload i is `prefix` followed by row i of the
    (n, width) uint8 array `body`; `select` gives the Rows of the positions stored (the
    bodies as they are when every row is stored, else the rows taken out)."""

    __slots__ = ("prefix", "body", "itemsize")

    def __init__(self, prefix: bytes, body: np.ndarray, itemsize: int):
        self.prefix, self.body, self.itemsize = prefix, body, itemsize

    def select(self, positions: list[int]) -> Rows:
        body = self.body if len(positions) == len(self.body) else self.body[np.asarray(positions)]
        if not self.prefix:
            return Rows(body, 0, self.itemsize)
        return Rows(body, len(self.prefix), self.itemsize, self.prefix)


class _Block:
    """An open block: parts (single blobs as bytes, or Rows) and the ids and raw lengths of
    its blobs, in order."""

    __slots__ = ("parts", "ids", "lengths", "size")

    def __init__(self) -> None:
        self.parts: list[bytes | Rows] = []
        self.ids: list[bytes] = []
        self.lengths: list[int] = []
        self.size = 0


def _encode(parts: list[bytes | Rows], blob_type: int) -> bytes:
    vectors = blob_type == BlobType.VECTORS
    if vectors and parts and all(type(p) is Rows for p in parts):
        layouts = {p.layout() for p in parts}          # type: ignore[union-attr]
        if len(layouts) == 1:
            _, head_len, itemsize = layouts.pop()
            return blockfmt.encode_rows_block([p.piece() for p in parts], head_len, itemsize)  # type: ignore[union-attr]
    blobs: list[bytes] = []
    for p in parts:
        if type(p) is Rows:
            blobs.extend(p.payloads())
        else:
            blobs.append(p)                            # type: ignore[arg-type]
    return blockfmt.encode_block(blobs, vector_payloads=vectors)


class Packer:
    """Writes new blobs into packs and indexes every saved pack.

    `copy_all`: store every blob given, even one the index already lists (prune's repack,
    which copies blobs out of packs about to be deleted). `before_save(pack id)` is called
    before each pack is saved (prune notes the pack, so a re-run after a kill can delete it).
    Several packers, in one process or many, may write into one repository at once: pack and
    index names are random, and a blob stored twice is harmless (prune keeps one copy)."""

    def __init__(self, repo, on_bytes: Callable[[int], None] | None = None, copy_all: bool = False,
                 before_save: Callable[[bytes], None] | None = None, workers: int = 1):
        self.repo = repo
        self.on_bytes = on_bytes
        self.copy_all = copy_all
        self.before_save = before_save
        self._blocks: dict[int, _Block] = {}
        self._pack: list[bytes] | None = None       # compressed blocks of the open pack
        self._pack_id = b""
        self._pack_size = 0
        self._pack_blocks: list[BlockInfo] = []
        self._unindexed: dict[bytes, list[BlockInfo]] = {}
        self._session_ids: set[bytes] = set()      # stored in this session, not indexed yet
        self._session_index = SessionIndex()        # indexed in this session, not in the cache yet
        # a session that began with an empty index cache (a first backup) looks up there only
        # the ids that may be among those it drained there itself (_cache_lookups)
        self._fresh_cache = not copy_all and repo.index.count() == 0
        self._drained = SessionIndex.new_filter() if self._fresh_cache else None
        self._drained_n = 0
        self._lookups = 0
        self._live: set[bytes] = set()              # packs the index names, seen to exist
        self._gone: set[bytes] = set()              # ... seen to be missing
        self.bytes_written = 0
        self.blobs_written = 0
        self.raw_bytes_written = 0
        self.pack_target = pack_target()
        self._indexed = 0
        self._lock = threading.Lock()               # session ids, counters
        self._index_lock = threading.RLock()        # one index file written at a time
        self.workers = max(1, workers)
        self._pool = ThreadPoolExecutor(self.workers, "vdedup-block") if self.workers > 1 else None
        self._saver = ThreadPoolExecutor(1, "vdedup-save") if self.workers > 1 else None
        self._compressing: deque[tuple[int, list[bytes], list[int], Future]] = deque()
        self._saving: deque[Future] = deque()

    # ---- adding blobs -------------------------------------------------------------------
    def known(self, blob_id: bytes) -> bool:
        return bool(self.new_ids([blob_id]) == [])

    def add(self, blob_type: BlobType, data: bytes, blob_id: bytes | None = None) -> tuple[bytes, bool]:
        """Store a blob unless it exists; returns (id, was new)."""
        blob_id = blob_id or self.repo.content_id(blob_type, data)
        if self.known(blob_id):
            return blob_id, False
        with self._lock:
            self._session_ids.add(blob_id)
        self._append(int(blob_type), [data], [blob_id], [len(data)])
        return blob_id, True

    def new_ids(self, blob_ids: list[bytes]) -> list[int]:
        """Positions of the ids (already computed content ids) that are neither stored in
        this session nor in the index cache, each id's first occurrence only. An id moves
        from the session's unindexed set to its session index atomically (under the lock)."""
        with self._lock:
            ids = self._session_ids
            session = list(map(ids.__contains__, blob_ids))
            if self._session_index.count:
                session = list(map(operator.or_, session, self._session_index.contains_many(blob_ids)))
        if self.copy_all:
            indexed = [False] * len(blob_ids)
        else:
            indexed = self._stored(self._cache_lookups(blob_ids))
            if self._lookups >= RELEASE_LOOKUPS:      # random look-ups make the whole map resident
                self._lookups = 0
                self.repo.index.release_pages()
        # the positions stored nowhere yet, found by C loops over the columns
        fresh = list(compress(range(len(blob_ids)), map(operator.not_, map(operator.or_, session, indexed))))
        if len(set(map(blob_ids.__getitem__, fresh))) == len(fresh):
            return fresh                   # no id twice among them (a first backup's batches)
        out, seen = [], set()
        for i in fresh:
            blob_id = blob_ids[i]
            if blob_id not in seen:
                seen.add(blob_id)
                out.append(i)
        return out

    def _cache_lookups(self, blob_ids: list[bytes]) -> list[bytes | None]:
        """index.get_many(blob_ids), without looking up ids the cache cannot hold: when the
        session began with an empty cache and the cache holds as many entries as this session
        drained into it (no other writer added any), an id whose bit is not in the filter of
        the drained ids is not there (a look-up costs ~1 us; the filter, a few ns)."""
        if self._fresh_cache:
            with self._lock:
                drained = self._drained_n
            if self.repo.index.count() == drained:
                out: list[bytes | None] = [None] * len(blob_ids)
                maybe = SessionIndex.may_hold(self._drained, blob_ids) if drained else []
                if maybe:
                    for i, raw in zip(maybe, self.repo.index.get_many([blob_ids[i] for i in maybe])):
                        out[i] = raw
                    self._lookups += len(maybe)
                return out
        self._lookups += len(blob_ids)
        return self.repo.index.get_many(blob_ids)

    def _stored(self, raws: list[bytes | None]) -> list[bool]:
        """Which located blobs are really there: the index cache may name a pack that is gone
        (deleted or lost since the cache was filled); such a blob is stored again, so that no
        new snapshot references lost data (a warning names the pack)."""
        packs = {raw[:32] for raw in raws if raw is not None}
        for pack in packs - self._live - self._gone:
            if self.repo.pack_present(bytes(pack)):
                self._live.add(pack)
            else:
                self._gone.add(pack)
                self.repo.warn(f"pack {bytes(pack).hex()[:16]} is missing: the data it held is stored again "
                               f"(see 'vdedup check')")
        if not packs & self._gone:
            return list(map(operator.is_not, raws, repeat(None)))
        gone = self._gone
        return [raw is not None and raw[:32] not in gone for raw in raws]

    def _unknown_ids(self, blob_ids: list[bytes], known: list[bool] | None) -> list[int]:
        """new_ids, asked only for the ids not `known` (stored for certain: see Writer.trust_parent)."""
        if known is None:
            return self.new_ids(blob_ids)
        ask = list(compress(range(len(blob_ids)), map(operator.not_, known)))
        if not ask:
            return []
        return [ask[j] for j in self.new_ids([blob_ids[i] for i in ask])]

    def add_many(self, blob_type: BlobType, blob_ids: list[bytes], data_of: Callable[[int], bytes],
                 known: list[bool] | None = None) -> int:
        """Store the blobs among `blob_ids` (already computed content ids) that do not exist;
        `data_of(i)` gives blob i's data, asked for only when it is new. Returns how many were new.
        `known`: ids stored for certain, not looked up."""
        new = self._unknown_ids(blob_ids, known)
        if not new:
            return 0
        ids = [blob_ids[i] for i in new]
        with self._lock:
            self._session_ids.update(ids)
        datas = [data_of(i) for i in new]
        self._append(int(blob_type), datas, ids, [len(d) for d in datas])
        return len(new)

    def add_rows(self, blob_type: BlobType, blob_ids: list[bytes], rows: Rows | LazyRows,
                 known: list[bool] | None = None) -> int:
        """add_many for payloads given as the rows of one array (row i: blob_ids[i])."""
        new = self._unknown_ids(blob_ids, known)
        if not new:
            return 0
        ids = [blob_ids[i] for i in new]
        with self._lock:
            self._session_ids.update(ids)
        if isinstance(rows, LazyRows):
            rows = rows.select(new)
            arr = rows.array
        else:
            arr = rows.array if len(new) == len(blob_ids) else rows.array[np.asarray(new)]
        width = len(rows.prefix) + arr.shape[1]
        btype = int(blob_type)
        pos = 0
        while pos < len(ids):
            block = self._blocks.get(btype)
            size = block.size if block is not None else 0
            take = max(1, -(-(BLOCK_TARGET - size) // width))     # rows until the block is full
            part = Rows(arr[pos:pos + take], rows.head_len, rows.itemsize, rows.prefix)
            n = part.array.shape[0]
            self._append(btype, [part], ids[pos:pos + n], [width] * n, n * width)
            pos += n
        return len(new)

    def _append(self, btype: int, parts: list, ids: list[bytes], lengths: list[int], size: int = -1) -> None:
        """Add parts to the open block of their type; single blobs close the block as soon as
        it reaches BLOCK_TARGET (a Rows part is cut by the caller to end there)."""
        block = self._blocks.get(btype)
        if block is None:
            block = self._blocks[btype] = _Block()
        self.blobs_written += len(ids)
        if size >= 0:
            block.parts.extend(parts)
            block.ids.extend(ids)
            block.lengths.extend(lengths)
            block.size += size
            self.raw_bytes_written += size
            if block.size >= BLOCK_TARGET:
                self._close_block(btype)
            return
        for part, blob_id, n in zip(parts, ids, lengths):
            block.parts.append(part)
            block.ids.append(blob_id)
            block.lengths.append(n)
            block.size += n
            self.raw_bytes_written += n
            if block.size >= BLOCK_TARGET:
                self._close_block(btype)
                block = self._blocks[btype] = _Block()

    # ---- blocks and packs ---------------------------------------------------------------
    def _close_block(self, btype: int) -> None:
        block = self._blocks.pop(btype, None)
        if block is None or not block.ids:
            return
        if self._pool is None:
            self._seal(btype, block.ids, block.lengths, _encode(block.parts, btype))
            return
        self._compressing.append((btype, block.ids, block.lengths, self._pool.submit(_encode, block.parts, btype)))
        while len(self._compressing) > 2 * self.workers:
            self._seal_next()

    def _seal_next(self) -> None:
        btype, ids, lengths, fut = self._compressing.popleft()
        self._seal(btype, ids, lengths, fut.result())

    def _seal(self, btype: int, ids: list[bytes], lengths: list[int], plain: bytes) -> None:
        """Place a compressed block in the open pack (block numbers in the order blocks were
        closed; its sealed length is known before sealing: the plaintext's plus the tag) and
        hand the pack to the saver when it is full."""
        if self._pack is None:
            self._pack = []
            self._pack_id = secrets.token_bytes(32)
            self._pack_blocks = []
            self._pack_size = packfmt.PACK_HEADER
        number = len(self._pack_blocks)
        sealed_len = len(plain) + packfmt.TAG_SIZE
        self._pack.append(plain)
        self._pack_blocks.append(BlockInfo(number, self._pack_size, sealed_len, btype, tuple(zip(ids, lengths))))
        self._pack_size += sealed_len
        if self._pack_size >= self.pack_target:
            self._finish_pack()

    def _finish_pack(self) -> None:
        if self._pack is None:
            return
        job = (self._pack_id, self._pack, self._pack_blocks)
        self._pack = None
        if self._saver is None:
            self._save(*job)
            return
        self._saving.append(self._saver.submit(self._save, *job))
        while len(self._saving) > SAVES_QUEUED:
            self._saving.popleft().result()

    def _save(self, pack_id: bytes, plains: list[bytes], blocks: list[BlockInfo]) -> None:
        """Seal a pack's blocks and trailer under a fresh pack key, save the pack, then
        (every INDEX_EVERY packs) the index file naming it."""
        salt = secrets.token_bytes(32)
        key = self.repo.master.subkey(salt)
        head = packfmt.pack_header(salt)
        trailer = packfmt.seal_trailer(key, pack_id, blocks)
        # the pack is built in place: each block sealed straight into its slot (no copies)
        size = len(head) + sum(b.length for b in blocks) + len(trailer)
        data = bytearray(size)
        view = memoryview(data)
        view[:len(head)] = head
        for i, b in enumerate(blocks):
            packfmt.seal_block_into(key, pack_id, b.number, b.blob_type, plains[i], view[b.offset:b.offset + b.length])
            plains[i] = b""                     # each compressed block is dropped once sealed
        view[size - len(trailer):] = trailer
        view.release()
        if self.before_save is not None:
            self.before_save(pack_id)
        self.repo.backend.save(FileType.DATA, pack_id.hex(), data)
        with self._index_lock:
            self.bytes_written += len(data)
            if self.on_bytes:
                self.on_bytes(len(data))
            self._unindexed[pack_id] = blocks
            if len(self._unindexed) >= INDEX_EVERY:
                self.write_index()

    def write_index(self) -> None:
        """Save an index file for the packs saved and not indexed yet, and add it to the cache."""
        with self._index_lock:
            if not self._unindexed:
                return
            name = secrets.token_hex(32)
            body = packfmt.encode_index(self._unindexed)
            sealed = self.repo.seal(ObjectType.INDEX, name, body)
            self.repo.backend.save(FileType.INDEX, name, sealed)
            self.bytes_written += len(sealed)
            ids: list[bytes] = []
            rows = []
            for pid, blocks in self._unindexed.items():
                pack_ids, pack_rows = packfmt.location_rows(pid, blocks)
                ids += pack_ids
                rows.append(pack_rows)
            with self._lock:
                self._session_index.add(name, ids, np.concatenate(rows), self._unindexed)
                self._session_ids.difference_update(ids)
            self._unindexed = {}
            self._indexed += 1
            if self._session_index.count >= MAX_ENTRIES:
                self._drain()

    def _drain(self) -> None:
        """Add the session's index entries to the cache, in key order (session_index.py)."""
        with self._index_lock:
            if self._drained is not None:
                with self._lock:            # marked before any of them is in the cache only
                    self._session_index.mark(self._drained)
                    self._drained_n += self._session_index.count
            self._session_index.drain_into(self.repo.index, self._lock)

    # ---- finishing ----------------------------------------------------------------------
    def flush(self) -> None:
        """Write every pending block and pack, then the index: call before saving a snapshot."""
        for blob_type in list(self._blocks):
            self._close_block(blob_type)
        while self._compressing:
            self._seal_next()
        self._finish_pack()
        while self._saving:
            self._saving.popleft().result()
        self.write_index()
        self._drain()

    def abort(self) -> None:
        """After a failure: drop the blocks not yet in a saved pack, wait for the pack being
        saved (if any), and index what was saved (best effort, as the failure path of §7)."""
        for _, _, _, fut in self._compressing:
            fut.cancel()
        self._compressing.clear()
        for fut in self._saving:
            fut.cancel()
        for fut in self._saving:
            if not fut.cancelled():
                try:
                    fut.result()
                except BaseException:
                    pass
        self._saving.clear()
        try:
            self.write_index()
            self._drain()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker threads (after flush or abort)."""
        for pool in (self._pool, self._saver):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._saver = None
