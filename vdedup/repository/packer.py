"""Packer: groups new blobs into blocks and blocks into pack files (repository layer).

Blobs of one type are gathered into a block until it reaches BLOCK_TARGET raw bytes; the
block is compressed (block.py), encrypted and appended to the open pack; a pack is saved
when it reaches the pack target (16 MiB, VDEDUP_PACK_SIZE). Every saved pack is indexed at
once (an index file every INDEX_EVERY packs), so an interrupted backup leaves its saved packs indexed
(and reused by the next run) up to the last index file written.
"""
from __future__ import annotations

import os
import secrets
from typing import Callable

from ..backend.base import FileType
from ..errors import UsageError
from ..format import block as blockfmt
from ..format import pack as packfmt
from ..format.objects import BlobType, ObjectType
from ..format.pack import BlockInfo

BLOCK_TARGET = 1 << 20
DEFAULT_PACK_MIB = 16
INDEX_EVERY = 1
RELEASE_EVERY = 8               # index files written between two releases of the index cache's map


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


class Packer:
    """Writes new blobs into packs and indexes every saved pack.

    `copy_all`: store every blob given, even one the index already lists (prune's repack,
    which copies blobs out of packs about to be deleted). `before_save(pack id)` is called
    before each pack is saved (prune notes the pack, so a re-run after a kill can delete it).
    Several packers, in one process or many, may write into one repository at once: pack and
    index names are random, and a blob stored twice is harmless (prune keeps one copy)."""

    def __init__(self, repo, on_bytes: Callable[[int], None] | None = None, copy_all: bool = False,
                 before_save: Callable[[bytes], None] | None = None):
        self.repo = repo
        self.on_bytes = on_bytes
        self.copy_all = copy_all
        self.before_save = before_save
        self._blocks: dict[int, tuple[list[bytes], list[bytes], int]] = {}
        self._pack: bytearray | None = None
        self._pack_id = b""
        self._pack_key = b""
        self._pack_blocks: list[BlockInfo] = []
        self._unindexed: dict[bytes, list[BlockInfo]] = {}
        self._session_ids: set[bytes] = set()
        self.bytes_written = 0
        self.blobs_written = 0
        self.raw_bytes_written = 0
        self.pack_target = pack_target()
        self._indexed = 0

    def known(self, blob_id: bytes) -> bool:
        if blob_id in self._session_ids:
            return True
        return not self.copy_all and self.repo.index.contains(blob_id)

    def add(self, blob_type: BlobType, data: bytes, blob_id: bytes | None = None) -> tuple[bytes, bool]:
        """Store a blob unless it exists; returns (id, was new)."""
        blob_id = blob_id or self.repo.content_id(blob_type, data)
        if self.known(blob_id):
            return blob_id, False
        self._store(blob_type, data, blob_id)
        return blob_id, True

    def add_many(self, blob_type: BlobType, blob_ids: list[bytes], data_of: Callable[[int], bytes]) -> int:
        """Store the blobs among `blob_ids` (already computed content ids) that do not exist;
        `data_of(i)` gives blob i's data, asked for only when it is new. Returns how many were new."""
        session = self._session_ids
        stored: set[bytes] = set()     # the session set forgets ids once they are indexed
        in_index = [False] * len(blob_ids) if self.copy_all else self.repo.index.contains_many(blob_ids)
        for i, (blob_id, indexed) in enumerate(zip(blob_ids, in_index)):
            if indexed or blob_id in session or blob_id in stored:
                continue
            self._store(blob_type, data_of(i), blob_id)
            stored.add(blob_id)
        return len(stored)

    def _store(self, blob_type: BlobType, data: bytes, blob_id: bytes) -> None:
        self._session_ids.add(blob_id)
        blobs, ids, size = self._blocks.get(int(blob_type), ([], [], 0))
        blobs.append(data)
        ids.append(blob_id)
        size += len(data)
        self._blocks[int(blob_type)] = (blobs, ids, size)
        self.blobs_written += 1
        self.raw_bytes_written += len(data)
        if size >= BLOCK_TARGET:
            self._flush_block(int(blob_type))

    def _flush_block(self, blob_type: int) -> None:
        blobs, ids, _ = self._blocks.pop(blob_type, ([], [], 0))
        if not blobs:
            return
        if self._pack is None:
            self._pack_id = secrets.token_bytes(32)
            salt = secrets.token_bytes(32)
            self._pack = bytearray(packfmt.pack_header(salt))
            self._pack_key = self.repo.master.subkey(salt)
            self._pack_blocks = []
        plain = blockfmt.encode_block(blobs, vector_payloads=blob_type == BlobType.VECTORS)
        number = len(self._pack_blocks)
        sealed = packfmt.seal_block(self._pack_key, self._pack_id, number, blob_type, plain)
        self._pack_blocks.append(BlockInfo(number, len(self._pack), len(sealed), blob_type,
                                           tuple((i, len(b)) for i, b in zip(ids, blobs))))
        self._pack += sealed
        if len(self._pack) >= self.pack_target:
            self._finish_pack()

    def _finish_pack(self) -> None:
        if self._pack is None:
            return
        if self.before_save is not None:
            self.before_save(self._pack_id)
        self._pack += packfmt.seal_trailer(self._pack_key, self._pack_id, self._pack_blocks)
        self.repo.backend.save(FileType.DATA, self._pack_id.hex(), bytes(self._pack))
        self.bytes_written += len(self._pack)
        if self.on_bytes:
            self.on_bytes(len(self._pack))
        self._unindexed[self._pack_id] = self._pack_blocks
        self._pack = None
        if len(self._unindexed) >= INDEX_EVERY:
            self.write_index()

    def write_index(self) -> None:
        if not self._unindexed:
            return
        name = secrets.token_hex(32)
        body = packfmt.encode_index(self._unindexed)
        sealed = self.repo.seal(ObjectType.INDEX, name, body)
        self.repo.backend.save(FileType.INDEX, name, sealed)
        self.bytes_written += len(sealed)
        entries = [e for pid, blocks in self._unindexed.items() for e in packfmt.locations(pid, blocks)]
        self.repo.index.add_file(name, entries)
        for blob_id, _ in entries:
            self._session_ids.discard(blob_id)
        self._unindexed = {}
        self._indexed += 1
        if self._indexed % RELEASE_EVERY == 0:
            self.repo.index.release_pages()     # bounds the index map's share of resident memory

    def flush(self) -> None:
        """Write every pending block and pack, then the index: call before saving a snapshot."""
        for blob_type in list(self._blocks):
            self._flush_block(blob_type)
        self._finish_pack()
        self.write_index()
