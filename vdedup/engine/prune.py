"""Prune: remove the data no snapshot references (engine layer).

Memory stays bounded: the blob ids the snapshots reference are marked in a temporary LMDB
(not a Python set), packs are summarised one at a time from the index files, and only
per-pack figures and pack ids are held in memory.

Ordering, under an exclusive lock (so no backup is between its packs and its snapshot):

1. repack: the still-used blobs of the packs chosen for repacking are written into new
   packs through the Packer, which saves an index file right after each new pack;
2. new index files are written for every pack that stays and is named only by an index
   file about to be removed;
3. the index files that name a pack to be removed (or that repeat packs indexed elsewhere)
   are deleted;
4. the packs no longer named by any index file are deleted.

At every instant every blob a snapshot references is named by an index file that exists
and lies in a pack that exists, so a prune killed at any moment loses nothing; a re-run
finds what is left (packs indexed twice, packs no longer indexed) and finishes the work.
Before step 3, the list of packs about to be deleted is written into the local cache so
that a re-run from the same machine deletes them at once; packs that are not indexed and
not on that list are deleted only once they have been seen unindexed for the grace period
(`keep_unindexed_for`), since they may belong to a backup that is still writing.
"""
from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import IntegrityError, RetentionActive, UsageError, VdedupError
from ..repository import BlobMarks, BlockInfo, Repository, Snapshot, Writer
from .events import Reporter
from .prune_retention import hold_retained
from .workers import resolve_workers

DEFAULT_MAX_UNUSED = "5%"
DEFAULT_KEEP_UNINDEXED = 3600.0
STALE_TEMPORARY = 3600.0        # seconds: a `.tmp-*` file older than this is left by a dead save
INDEX_PACKS_PER_FILE = 2000


# ---- marking referenced blobs ------------------------------------------------------------

def mark_snapshots(repo: Repository, snaps: list[Snapshot], marks: BlobMarks, name: str = "used",
                   reporter: Reporter | None = None) -> int:
    """Mark every blob the snapshots reference (Repository.mark_snapshots, with progress);
    returns how many references were not indexed."""
    reporter = reporter or Reporter()
    reporter.phase("find used data", len(snaps))
    missing = repo.mark_snapshots(snaps, marks, name, on_snapshot=lambda: reporter.advance(1))
    reporter.done()
    return missing


# ---- options ---------------------------------------------------------------------------------

def parse_max_unused(text: str) -> tuple[str, float]:
    """`5%` (share of the repository), `unlimited`, or a size like `200M` / `1G` / `1048576`."""
    s = text.strip().lower()
    if s == "unlimited":
        return "unlimited", 0.0
    try:
        if s.endswith("%"):
            p = float(s[:-1])
            if not 0 <= p < 100:
                raise ValueError
            return "percent", p
        mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
        if s and s[-1] in mult:
            return "bytes", float(s[:-1]) * mult[s[-1]]
        return "bytes", float(s)
    except ValueError:
        raise UsageError(f"bad --max-unused {text!r}: use e.g. 5%, 200M or unlimited") from None


# ---- local state (what a killed prune left to delete) ---------------------------------------------

def _state_path(repo: Repository) -> str:
    return os.path.join(repo.cache_dir, "prune-state.json")


def _load_state(repo: Repository) -> dict[str, Any]:
    try:
        with open(_state_path(repo), encoding="utf-8") as f:
            d = json.load(f)
        return {"seen_unindexed": dict(d.get("seen_unindexed", {})), "obsolete": list(d.get("obsolete", [])),
                "written": list(d.get("written", []))}
    except (OSError, ValueError, AttributeError):
        return {"seen_unindexed": {}, "obsolete": [], "written": []}


def _save_state(repo: Repository, state: dict[str, Any]) -> None:
    path = _state_path(repo)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp-{secrets.token_hex(4)}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---- the plan ---------------------------------------------------------------------------------------

@dataclass
class PackInfo:
    size: int                   # bytes on the backend
    used: int = 0               # estimated stored bytes of the used blobs
    unused: int = 0
    used_blobs: int = 0
    unused_blobs: int = 0
    action: str = "keep"        # keep | delete | repack


@dataclass
class PruneResult:
    dry_run: bool
    snapshots: int = 0
    packs: int = 0
    blobs_used: int = 0
    used_bytes: int = 0
    unused_bytes: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    blobs_repacked: int = 0
    unindexed_deleted: int = 0
    unindexed_kept: int = 0
    temporaries_removed: int = 0   # `.tmp-*` files of saves that never finished (local storage)
    temporary_bytes_removed: int = 0
    packs_written: int = 0
    index_files_written: int = 0
    index_files_deleted: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    bytes_freed: int = 0
    unused_after: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    retained: list[dict[str, str]] = field(default_factory=list)   # Object Lock: {object, until}

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items()}
        d["seconds"] = round(self.seconds, 3)
        return {"message_type": "summary", **d}


def _blob_sizes(block: BlockInfo) -> list[int]:
    """Stored bytes per blob of a block: its share of the sealed block by raw length."""
    raw_total = sum(n for _, n in block.blobs) or 1
    return [block.length * n // raw_total for _, n in block.blobs]


def prune(repo: Repository, max_unused: str = DEFAULT_MAX_UNUSED,
          keep_unindexed_for: float = DEFAULT_KEEP_UNINDEXED, dry_run: bool = False,
          reporter: Reporter | None = None, workers: int | None = None) -> PruneResult:
    """`workers`: packs read and verified at once while repacking, and threads that compress
    and save the new packs (default: the machine's cores)."""
    reporter = reporter or Reporter()
    mode, limit = parse_max_unused(max_unused)
    n_workers = resolve_workers(workers)
    started = time.monotonic()
    result = PruneResult(dry_run)
    lock = repo.lock(exclusive=not dry_run, operation="prune")
    try:
        repo.sync_index()
        if not dry_run:
            result.temporaries_removed, result.temporary_bytes_removed = \
                repo.remove_stale_temporaries(STALE_TEMPORARY)
        snaps = repo.list_snapshots(strict=True)    # an unreadable snapshot may need any pack
        result.snapshots = len(snaps)
        stored, _ = repo.list_packs()
        index_sizes = repo.list_index_files()
        result.bytes_before = sum(stored.values()) + sum(index_sizes.values())
        damaged_files = _damaged_index_files(repo, index_sizes)
        hint = "run 'vdedup repair index'" if damaged_files else "run 'vdedup check --read-data'"
        with BlobMarks() as marks:
            try:
                missing = mark_snapshots(repo, snaps, marks, "used", reporter)
            except IntegrityError as e:    # what that snapshot references is unknown: keep everything
                raise IntegrityError(f"{e.message}; prune cannot know what that snapshot needs and changed "
                                     f"nothing", hint=hint) from None
            if missing and not damaged_files:
                raise IntegrityError(f"{missing} blob(s) referenced by snapshots are not in the index; "
                                     f"prune changed nothing", hint=hint)
            if missing:
                repo.warn(f"{missing} blob(s) referenced by snapshots are not in a readable index "
                                       f"file; packs no readable index file names are kept ({hint})")
            result.blobs_used = marks.count("used")
            packs, file_packs = _summarise(repo, marks, stored, index_sizes, reporter, damaged_files)
            _choose(packs, mode, limit)
            unindexed = [name for name in stored if bytes.fromhex(name) not in packs]
            state = _load_state(repo)
            now = time.time()
            # what a killed prune left: packs it was deleting, and packs it wrote and had not indexed
            obsolete_before = set(state["obsolete"]) | set(state["written"])
            seen = {k: v for k, v in state["seen_unindexed"].items() if k in stored}
            delete_unindexed = []
            for name in unindexed:
                first = seen.setdefault(name, now)
                if damaged_files:      # a damaged index file may name it: never delete it now
                    result.unindexed_kept += 1
                elif name in obsolete_before or now - first >= keep_unindexed_for:
                    delete_unindexed.append(name)
                else:
                    result.unindexed_kept += 1
            held_files, result.retained = hold_retained(repo, packs, file_packs, delete_unindexed)
            result.packs = len(packs)
            result.used_bytes = sum(p.used for p in packs.values())
            result.unused_bytes = sum(p.unused for p in packs.values())
            to_delete = [pid for pid, p in packs.items() if p.action == "delete"]
            to_repack = [pid for pid, p in packs.items() if p.action == "repack"]
            result.packs_deleted = len(to_delete)
            result.packs_repacked = len(to_repack)
            result.unindexed_deleted = len(delete_unindexed)
            result.unused_after = sum(p.unused for p in packs.values() if p.action == "keep")
            gone = set(to_delete) | set(to_repack)
            # index files to remove: those naming a pack that goes, or only repeating packs
            # already named by a file that stays
            covered: set[bytes] = set()
            keep_files, drop_files = [], []
            for name in sorted(file_packs, key=lambda n: any(p in gone for p in file_packs[n])):
                pids = file_packs[name]
                if name not in held_files and (any(p in gone for p in pids) or all(p in covered for p in pids) and pids):
                    drop_files.append(name)
                else:
                    keep_files.append(name)
                    covered.update(pids)
            if not drop_files and not delete_unindexed:
                if not dry_run:
                    _save_state(repo, {"seen_unindexed": seen, "obsolete": [], "written": []})
                result.bytes_after = result.bytes_before
                return result
            if dry_run:
                freed = sum(stored.get(p.hex(), 0) for p in gone) + \
                    sum(stored[n] for n in delete_unindexed)
                result.bytes_freed = freed - sum(packs[p].used for p in to_repack)
                result.bytes_after = result.bytes_before - result.bytes_freed
                return result

            # 1. repack the used blobs of the packs chosen for it (each new pack is indexed at once)
            state = {"seen_unindexed": seen, "obsolete": sorted(delete_unindexed), "written": []}
            _save_state(repo, state)
            if to_repack:
                reporter.phase("repack", len(to_repack))
                items = [(pid.hex(), packs[pid].used_blobs) for pid in to_repack]
                with _repack_writer(repo, state, n_workers) as writer:
                    try:
                        for n in repo.repack(writer, items, lambda name, blob_id: marks.get(
                                blob_id, "claimed") == bytes.fromhex(name), n_workers):
                            result.blobs_repacked += n
                            reporter.advance(1)
                        writer.flush()
                    except BaseException:
                        writer.save_progress()      # index the new packs already saved
                        raise
                reporter.done()
            result.packs_written = _count_new_packs(repo, stored)
            # 2. index files for the packs that stay but lose their index file
            need = pids_needed(drop_files, file_packs, covered, gone)
            result.index_files_written = _write_index_files(repo, need, drop_files)
            # record what is about to become unindexed, so a killed run's re-run deletes it at once
            doomed = sorted({p.hex() for p in gone} | set(delete_unindexed))
            _save_state(repo, {"seen_unindexed": seen, "obsolete": doomed, "written": []})
            # 3. remove the replaced index files
            reporter.phase("remove index files", len(drop_files))
            for name in drop_files:
                try:
                    repo.remove_index_file(name)
                except RetentionActive as e:   # it stays, and so does every pack it names
                    keep = {pid.hex() for pid in file_packs[name]}
                    doomed = [d for d in doomed if d not in keep]
                    result.retained.append({"object": f"index/{name}", "until": str(e.until or "")})
                    reporter.advance(1)
                    continue
                result.index_files_deleted += 1
                reporter.advance(1)
            reporter.done()
            # 4. remove the packs no index names any more
            reporter.phase("remove packs", len(doomed))
            for name in doomed:
                repo.remove_pack(name)
                reporter.advance(1)
            reporter.done()
            _save_state(repo, {"seen_unindexed": {k: v for k, v in seen.items() if k not in doomed},
                               "obsolete": [], "written": []})
            repo.sync_index()        # index files were removed: the cache rebuilds itself
        after = sum(repo.list_packs()[0].values()) + sum(repo.list_index_files().values())
        result.bytes_after = after
        result.bytes_freed = result.bytes_before - after
        return result
    finally:
        result.seconds = time.monotonic() - started
        lock.release()


def pids_needed(drop_files: list[str], file_packs: dict[str, list[bytes]], covered: set[bytes],
                gone: set[bytes]) -> list[bytes]:
    """Packs that stay, are named by a file to be removed and by no file that stays."""
    out: list[bytes] = []
    seen: set[bytes] = set()
    for name in drop_files:
        for pid in file_packs[name]:
            if pid not in gone and pid not in covered and pid not in seen:
                seen.add(pid)
                out.append(pid)
    return out


def _damaged_index_files(repo: Repository, index_sizes: dict[str, int]) -> set[str]:
    """The index files that cannot be read (each named in a warning). They stay, and so
    does every pack no readable index file names: prune cannot know what they hold."""
    damaged = set()
    for name in index_sizes:
        try:
            repo.read_index_file(name)
        except VdedupError as e:
            damaged.add(name)
            repo.warn(f"{e.message}: prune keeps it and every pack no readable index file names "
                      f"(run 'vdedup repair index')")
    return damaged


def _summarise(repo: Repository, marks: BlobMarks, stored: dict[str, int], index_sizes: dict[str, int],
               reporter: Reporter, damaged_files: set[str] = frozenset()) -> tuple[dict[bytes, PackInfo],
                                                                               dict[str, list[bytes]]]:
    """Per pack: used and unused bytes; per readable index file: the packs it names.

    A used blob is claimed by the first pack found holding it; copies of it in other packs
    (left by a killed prune) count as unused there."""
    packs: dict[bytes, PackInfo] = {}
    file_packs: dict[str, list[bytes]] = {}
    reporter.phase("read index", len(index_sizes))
    for name in index_sizes:
        if name in damaged_files:
            reporter.advance(1)
            continue
        body = repo.read_index_file(name)
        file_packs[name] = list(body)
        for pid, blocks in body.items():
            if pid in packs:
                continue
            size = stored.get(pid.hex())
            if size is None:
                raise IntegrityError(f"pack {pid.hex()[:16]} is named by index {name[:16]} but missing; "
                                     f"prune changed nothing", hint="run 'vdedup check'")
            info = PackInfo(size)
            claimed = []
            for b in blocks:
                for (blob_id, _), nbytes in zip(b.blobs, _blob_sizes(b)):
                    if marks.get(blob_id, "used") is not None and marks.get(blob_id, "claimed") is None:
                        info.used += nbytes
                        info.used_blobs += 1
                        claimed.append(blob_id)
                    else:
                        info.unused += nbytes
                        info.unused_blobs += 1
            marks.add_many(claimed, "claimed", pid)
            packs[pid] = info
        reporter.advance(1)
    reporter.done()
    return packs, file_packs


def _choose(packs: dict[bytes, PackInfo], mode: str, limit: float) -> None:
    """Delete unused packs; repack partly used ones, most wasteful first, until the unused
    share is within the limit (as restic: unused <= p% of what the repository will hold)."""
    used_total = sum(p.used for p in packs.values())
    for p in packs.values():
        if p.used_blobs == 0:
            p.action = "delete"
    partial = sorted((p for p in packs.values() if p.used_blobs and p.unused_blobs),
                     key=lambda p: p.unused / max(p.size, 1), reverse=True)
    if mode == "unlimited":
        return
    allowed = limit if mode == "bytes" else used_total * limit / (100 - limit)
    unused = sum(p.unused for p in partial)
    for p in partial:
        if unused <= allowed:
            break
        p.action = "repack"
        unused -= p.unused


def _repack_writer(repo: Repository, state: dict[str, Any], workers: int) -> Writer:
    """A write session that stores every blob given to it once, even if the index already
    has it, and notes each pack id in the local prune state before saving the pack, so that
    a re-run after a kill deletes the packs it wrote but had not indexed yet."""
    def note(pack_id: bytes) -> None:
        state["written"].append(pack_id.hex())
        _save_state(repo, state)
    return repo.writer(copy_all=True, before_save=note, workers=workers)


def _count_new_packs(repo: Repository, before: dict[str, int]) -> int:
    return sum(1 for name in repo.list_packs()[0] if name not in before)


def _write_index_files(repo: Repository, need: list[bytes], drop_files: list[str]) -> int:
    """Write index files naming the packs in `need`, with the block tables of the files
    about to be removed (read again, one at a time)."""
    if not need:
        return 0
    wanted = set(need)
    buf: dict[bytes, list[BlockInfo]] = {}
    written = 0

    def flush() -> None:
        nonlocal written, buf
        if not buf:
            return
        repo.write_index_file(buf)
        written += 1
        buf = {}

    for name in drop_files:
        body = repo.read_index_file(name)
        for pid, blocks in body.items():
            if pid in wanted:
                wanted.discard(pid)
                buf[pid] = blocks
                if len(buf) >= INDEX_PACKS_PER_FILE:
                    flush()
    flush()
    if wanted:   # cannot happen unless an index file vanished under the lock
        raise IntegrityError(f"{len(wanted)} pack(s) lost their index entries during prune; "
                             f"old index files were kept", hint="run 'vdedup check'")
    return written
