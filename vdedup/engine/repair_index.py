"""`repair index`: rebuild the index from the packs (engine layer).

Index files only describe packs (docs/design.md §4.9), and a pack describes itself: its
sealed trailer lists its blocks, and each block's blobs are hashed again to their content
ids. So the index can always be rebuilt from the packs that are intact:

1. every index file is read; one that cannot be read is *damaged*; one that names a pack
   that is missing or shorter than its blocks is *stale*;
2. the packs no readable, current index file describes are read whole (all of them with
   `read_all`) and their block tables rebuilt; a block that does not open is left out;
   a pack a stale file describes keeps that file's table for its blocks that still fit;
3. new index files are written for them, and only then are the damaged and stale files
   removed (write before delete, so a repair killed at any moment loses nothing).

Under the exclusive lock (no backup is between its packs and its snapshot). Packs that
cannot be read at all stay unindexed (prune removes them after its grace period).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import VdedupError
from ..repository import BlockInfo, Repository
from .events import Reporter
from .workers import resolve_workers

PACKS_PER_FILE = 2000


@dataclass
class RepairIndexResult:
    dry_run: bool
    index_files: int = 0
    damaged_files: list[str] = field(default_factory=list)      # names (hex), not user data
    stale_files: list[str] = field(default_factory=list)
    missing_packs: list[str] = field(default_factory=list)      # named by an index file, gone
    packs: int = 0
    packs_read: int = 0
    packs_indexed: int = 0
    blobs_indexed: int = 0
    unreadable: list[str] = field(default_factory=list)         # error lines (packs, blocks)
    index_files_written: int = 0
    index_files_removed: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.damaged_files or self.stale_files or self.packs_indexed)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["seconds"] = round(self.seconds, 3)
        return {"message_type": "summary", **d}


def _fits(blocks: list[BlockInfo], size: int) -> list[BlockInfo]:
    return [b for b in blocks if b.offset + b.length <= size]


def repair_index(repo: Repository, read_all: bool = False, dry_run: bool = False,
                 reporter: Reporter | None = None, workers: int | None = None) -> RepairIndexResult:
    reporter = reporter or Reporter()
    n_workers = resolve_workers(workers)
    started = time.monotonic()
    result = RepairIndexResult(dry_run)
    lock = repo.lock(exclusive=not dry_run, operation="repair index")
    try:
        stored, _ = repo.list_packs()
        result.packs = len(stored)
        index_names = repo.list_index_files()
        result.index_files = len(index_names)
        covered: set[bytes] = set()                 # described by a file that stays
        from_stale: dict[bytes, list[BlockInfo]] = {}
        missing: set[bytes] = set()
        reporter.phase("read index", len(index_names))
        for name in index_names:
            try:
                body = repo.read_index_file(name)
            except VdedupError:
                result.damaged_files.append(name)
                reporter.advance(1)
                continue
            gone = [pid for pid, blocks in body.items()
                    if stored.get(pid.hex(), -1) < max((b.offset + b.length for b in blocks), default=0)]
            if gone or read_all:
                if not read_all:
                    result.stale_files.append(name)
                for pid, blocks in body.items():
                    size = stored.get(pid.hex())
                    if size is None:
                        missing.add(pid)
                    elif pid not in from_stale:
                        from_stale[pid] = _fits(blocks, size)
            else:
                covered.update(body)
            reporter.advance(1)
        reporter.done()
        drop = result.damaged_files + result.stale_files + ([] if not read_all else list(index_names))
        result.missing_packs = sorted(p.hex() for p in missing - covered)

        # the packs no file that stays describes: from a stale file's table, or read again
        need = [name for name in sorted(stored) if bytes.fromhex(name) not in covered]
        tables: dict[bytes, list[BlockInfo]] = {}
        to_read = [n for n in need if read_all or bytes.fromhex(n) not in from_stale]
        for n in need:
            pid = bytes.fromhex(n)
            if pid not in to_read and from_stale.get(pid):
                tables[pid] = from_stale[pid]
        reporter.phase("read packs", len(to_read))
        for name, blocks, errors in repo.index_packs(to_read, n_workers):
            result.packs_read += 1
            result.unreadable.extend(errors)
            if blocks:
                tables[bytes.fromhex(name)] = blocks
            reporter.advance(1)
        reporter.done()
        result.packs_indexed = len(tables)
        result.blobs_indexed = sum(len(b.blobs) for blocks in tables.values() for b in blocks)
        if dry_run or not (tables or drop):
            if dry_run:
                result.index_files_written = -(-len(tables) // PACKS_PER_FILE)
                result.index_files_removed = len(set(drop))
            return result
        # write first, then remove: at every moment every pack is described by some file
        items = sorted(tables.items())
        for i in range(0, len(items), PACKS_PER_FILE):
            repo.write_index_file(dict(items[i:i + PACKS_PER_FILE]))
            result.index_files_written += 1
        for name in sorted(set(drop)):
            repo.remove_index_file(name)
            result.index_files_removed += 1
        repo.sync_index()            # files were removed: the cache rebuilds itself
        return result
    finally:
        result.seconds = time.monotonic() - started
        lock.release()
