"""A write session: the one way blobs, manifests and snapshots get into a repository
(repository layer).

It keeps the commit protocol of docs/design.md §7: new blobs go into packs, each saved pack
is indexed at once, and a snapshot is saved only by `commit`, after every pending pack and
index file is written. If the operation fails, `save_progress` indexes the packs already
saved so that the next run reuses them.

The engine hands it columnar batches: `store_batch` takes a batch of records, stores the
vector payloads the repository does not hold yet (their content ids are computed here) and
returns the batch's manifest rows; `write_namespace` turns a namespace's row batches (and
the previous snapshot's entry for it) into a new namespace entry.

Several writers may work on one repository at once, in one process or in many (pack and
index names are random; a blob two writers both store is kept once by prune): a worker can
write the packs and index of its share and hand back namespace entries for one coordinator
to commit in a single snapshot.
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..format.manifest import record_keys, split_ids
from ..format.objects import BlobType
from ..format.values import meta_bytes_many
from ..model import RecordBatch
from . import manifest, parts
from .columns import Cols
from .packer import Packer
from .hashing import HashWorkers, digests_inline
from .manifest import KEY_HASH_LEN, key_hash_input
from .payloads import EncodedBatch, encode_batch
from .rows import RowBatch
from .snapshot import Snapshot
from .spool import TempRows, spool_dir


LOOKAHEAD = 2                  # batches whose content ids are computed ahead
# ... when the rows go to a merge with the parent (a nightly): its reading thread is the one
# busy thread, and with 2 it waited on the hash workers, which share the cores with it and
# the line helper (nightly 1M x 768 7.01 -> 6.66 s, 8 interleaved pairs with AHEAD 8 in
# lines.py; first backups keep 2: both cores are busy there and each batch held costs memory)
LOOKAHEAD_MERGE = 4
HASH_AFTER = 20_000            # records from which a session's content ids are computed by hash workers
HASH_EARLY = 5_000             # records from which it starts them (in the background, to be ready by then)
SEEN_MAX = 1 << 16             # parent content ids held at once for deferred batches (more: looked up)


class Writer:
    """`workers` > 1: blocks are compressed and packs saved beside the caller (packer.py),
    and, once a session has stored HASH_AFTER records (or from HASH_EARLY, as soon as
    they are ready), content ids are computed by `workers` hash worker processes
    (hashing.py) while the caller reads on. One each core, not one fewer: a job's copy into
    the worker's memory, pipe round trip and hashing run one after another, so with a single
    worker a nightly's reading thread waited on it (1.6 s of a 1M x 768 nightly); two
    overlap (nightly 1M x 768 8.2 -> 7.8 s, 200k 2.13 -> 2.01 s, interleaved pairs; initial
    backups, which keep both cores busy, within noise)."""

    def __init__(self, repo, copy_all: bool = False, before_save: Callable[[bytes], None] | None = None,
                 workers: int = 1):
        self.repo = repo
        self.workers = max(1, workers)
        self._packer = Packer(repo, copy_all=copy_all, before_save=before_save, workers=self.workers)
        self._hashers: HashWorkers | None = None
        self._hashing: ThreadPoolExecutor | None = None
        self._starter: threading.Thread | None = None
        self._hash_lock = threading.Lock()
        self._hash_closed = False
        self._records = 0
        self._at_end: list[Callable[[], None]] = []
        # a nightly from a vouched parent (trust_parent): batches whose vector blobs are
        # stored once the merge has shown which content ids the parent's rows hold
        self._trusted = False
        self._pending: deque[tuple[list[bytes], EncodedBatch]] = deque()
        self._seen: set[bytes] = set()
        self._settled_new = 0

    @property
    def bytes_written(self) -> int:
        """Bytes of packs and index files saved so far."""
        return self._packer.bytes_written

    # ---- records ----------------------------------------------------------------------
    def store_batch(self, batch: RecordBatch) -> RowBatch:
        """Store the batch's new vector payloads; return its manifest rows."""
        return self._finish(*self._start(batch))

    def trust_parent(self, snapshot_id: str) -> bool:
        """Take the vector blobs of the parent snapshot's rows as stored, without looking each
        up, when this machine's index cache vouches for the snapshot (its backup here located
        every one of its blobs in the cache, or stored it: Writer.commit with vouch) and every
        pack the cache names is present. Content ids that the merge then finds among the
        parent's rows (write_partition, ordered) are not looked up; the others are, as
        usual. docs/design.md section 6."""
        self._trusted = False
        index = self.repo.index
        if not index.vouched_for(snapshot_id):
            return False
        packs = index.known_packs()
        if packs is None or not all(map(self.repo.pack_present, packs)):
            return False
        self._trusted = True
        return True

    def take_settled_new(self) -> int:
        """Vector blobs stored since the last call for batches whose storing waited for the merge."""
        n, self._settled_new = self._settled_new, 0
        return n

    def store_batches(self, batches: Iterable[RecordBatch | tuple[RecordBatch, list[bytes]]],
                      boundaries: bool = False, defer: bool = False) -> Iterator[RowBatch]:
        """store_batch for each batch, in order; with workers, the content ids of the next
        batches are computed while the caller reads them and the packer stores earlier ones.
        An item may be a (batch, metadata bytes) pair: the canonical bytes of the batch's
        metadata (meta_bytes_many of it), computed elsewhere; the batch's metadata is then
        not read. `boundaries`: the rows will be written as new bases (a source's first
        backup), so the hash workers also compute their segment-boundary hashes ahead.
        `defer` (rows for an ordered write_partition, after trust_parent): a batch's vector
        blobs are stored (RowBatch.new_blobs 0; take_settled_new counts them) once the
        merge has read the parent's rows of its keys."""
        depth = LOOKAHEAD_MERGE if defer else LOOKAHEAD
        defer = defer and self._trusted
        ahead: deque[tuple] = deque()
        for item in batches:
            batch, mraws = item if type(item) is tuple else (item, None)
            ahead.append(self._start(batch, mraws, boundaries))
            if len(ahead) > depth:
                yield self._finish(*ahead.popleft(), defer=defer)
        while ahead:
            yield self._finish(*ahead.popleft(), defer=defer)

    def _start(self, batch: RecordBatch, mraws: list[bytes] | None = None, boundaries: bool = False) -> tuple:
        enc = encode_batch(batch)
        self._records += len(batch)
        if self._hashing is None and self.workers > 1 and self._records >= min(HASH_EARLY, HASH_AFTER):
            self._hash_workers(wait=self._records >= HASH_AFTER)
        if self._hashing is not None and self._hashers:
            ids: Future = self._hashing.submit(self._hashers.digests, enc.data, enc.offsets, enc.prefix)
        else:
            ids = Future()
            ids.set_result(digests_inline(self.repo.master.id_key, enc.data, enc.offsets, enc.prefix))
        n = len(batch)
        if mraws is None:
            mraws = meta_bytes_many(batch.metadata or [None] * n)
        elif len(mraws) != n:
            raise ValueError("one metadata value per record is needed")
        keys = khash = None
        if boundaries and self._hashing is not None and self._hashers:
            # the segment-boundary hashes of the record keys, in the hash worker while this
            # thread reads on (a base written from these rows needs them: manifest.py)
            keys = record_keys(batch.ids)
            khash = self._hashing.submit(self._hashers.digests, *key_hash_input(keys), b"", KEY_HASH_LEN)
        return batch, enc, ids, mraws, keys, khash

    def _hash_workers(self, wait: bool) -> None:
        """Start the hash workers on a thread of their own (a process start takes about a
        tenth of a second: the caller hashes the batches in between itself); `wait`: until
        they are ready."""
        if self._starter is None:
            self._starter = threading.Thread(target=self._start_hashers, name="vdedup-hash-start", daemon=True)
            self._starter.start()
        if wait:
            self._starter.join()

    def _start_hashers(self) -> None:
        try:
            hashers = HashWorkers(self.repo.master.id_key, self.workers)
        except Exception:                     # none then: the caller hashes everything itself
            return
        pool = ThreadPoolExecutor(len(hashers) or 1, "vdedup-hash")
        with self._hash_lock:
            if not self._hash_closed:
                self._hashers = hashers
                self._hashing = pool
                return
        pool.shutdown(wait=False)
        hashers.close()

    def _finish(self, batch: RecordBatch, enc: EncodedBatch, ids_future: Future, mraws: list[bytes],
                keys: list[bytes] | None = None, khash: Future | None = None, defer: bool = False) -> RowBatch:
        raw = ids_future.result()
        ids = split_ids(raw)
        if defer:
            self._pending.append((ids, enc))
            new = 0
        else:
            new = self._store(ids, enc)
        n = len(batch)
        docs = batch.documents or [None] * n
        uris = batch.uris or [None] * n
        size = enc.size + _rows_size(batch.ids, mraws, docs, uris)
        vrefs = np.frombuffer(raw, dtype=np.uint8).reshape(n, 32)
        return RowBatch(list(batch.ids), vrefs, mraws, docs, uris, size, new, keys, khash, ids)

    def _store(self, ids: list[bytes], enc: EncodedBatch, known: list[bool] | None = None) -> int:
        if enc.rows is not None:
            return self._packer.add_rows(BlobType.VECTORS, ids, enc.rows, known)
        return self._packer.add_many(BlobType.VECTORS, ids, enc.payload, known)   # type: ignore[arg-type]

    def _saw(self, vrefs: list[bytes]) -> None:
        """The merge read these rows of the parent (their content ids are stored)."""
        if self._pending and len(self._seen) < SEEN_MAX:
            self._seen.update(vrefs)

    def _settle(self, keep: int) -> None:
        """Store the vector blobs of the deferred batches but the `keep` newest: the content
        ids the merge found among the parent's rows are not looked up."""
        while len(self._pending) > keep:
            ids, enc = self._pending.popleft()
            seen = self._seen
            self._settled_new += self._store(ids, enc, list(map(seen.__contains__, ids)) if seen else None)
        self._seen.clear()

    # ---- manifests --------------------------------------------------------------------
    def write_namespace(self, name: str, prev: dict[str, Any] | None, batches: Iterable[RowBatch],
                        ordered: bool, tuning: parts.Tuning = parts.DEFAULT,
                        expected_rows: int | None = None) -> tuple[dict[str, Any], dict[str, int]]:
        """The snapshot entry of namespace `name` holding the rows of `batches` (the whole
        namespace, read as one partition), written against `prev` (the parent snapshot's
        entry, or None), and the counts (added, changed, deleted, unchanged). See
        write_partition; a previous entry written by several partitions is read merged."""
        if prev is not None and set(parts.sources_of(prev)) != {""}:
            prev = None if prev is None else {"name": name, "count": prev["count"],
                                              "features": [parts.FEATURE], "parts": self._replanned(prev, tuning)}
        piece, stats = self.write_partition(name, "", prev, batches, ordered, tuning, expected_rows)
        return self.namespace_entry(name, [piece]), stats

    def _replanned(self, prev: dict[str, Any], tuning: parts.Tuning) -> list[dict[str, Any]]:
        """A previous entry of several sources rewritten as bases of the source "" (its
        sources' states merged), for a backup that reads the namespace whole."""
        runs = parts.iter_state_cols(self.repo, prev)
        return parts.write_bases(self.repo, self._packer, runs, "", "", tuning.rows_per_part(prev["count"]))

    def write_partition(self, name: str, source: str, prev: dict[str, Any] | None, batches: Iterable[RowBatch],
                        ordered: bool, tuning: parts.Tuning = parts.DEFAULT,
                        expected_rows: int | None = None) -> tuple[dict[str, Any], dict[str, int]]:
        """The manifest parts of one source partition of namespace `name` (model/partition.py)
        holding the rows of `batches`, written against the parts of the same source in `prev`
        (the parent snapshot's namespace entry, or None), as a piece for namespace_entry, and
        the counts. Workers call this for their partitions without coordinating.

        `ordered`: the rows arrive in record-key order and stream straight into the merge;
        at the first row out of order (or an id given twice) this raises Unsorted, having
        stored nothing but vector blobs. Otherwise the rows are spooled and sorted first
        (a repeated id: the last one given wins, and the stats count the extra ones as
        `duplicates`) and the parts say `"ordered": false`."""
        logical = [0]
        prev_parts = parts.sources_of(prev).get(source, []) if prev is not None else []

        def runs() -> Iterator[Cols]:
            # deferred batches (store_batches with defer): when the next batch is asked for,
            # the merge has read the parent's rows up to the keys of the ones before it
            for b in batches:
                self._settle(keep=1 if ordered else 0)
                logical[0] += b.logical_bytes
                yield b.cols()
            self._settle(keep=0)

        with TempRows(spool_dir()) as tmp:
            if ordered:
                held = parts.HeldPacker(self.repo, tmp.dir)
                try:
                    out, stats = parts.write_source(self.repo, held, spool_dir(), source, prev_parts,
                                                    manifest.sorted_runs(runs()), tuning, expected_rows,
                                                    seen=self._saw)
                    self._settle(keep=0)
                    held.release(self._packer)
                except BaseException:
                    self._pending.clear()           # Unsorted: the partition is read again, stored then
                    self._seen.clear()
                    raise
                finally:
                    held.close()
                stats["duplicates"] = 0             # a repeated id raised Unsorted
            else:
                given = 0
                for run in runs():
                    tmp.put_cols(run)
                    given += len(run)
                kept = tmp.count()
                out, stats = parts.write_source(self.repo, self._packer, spool_dir(), source, prev_parts,
                                                tmp.iter_cols(), tuning, expected_rows or kept)
                out = [{**p, "ordered": False} for p in out]
                stats["duplicates"] = given - kept  # ids given more than once: the last one was kept
        return {"parts": out, "logical_bytes": logical[0]}, stats

    @staticmethod
    def namespace_entry(name: str, pieces: list[dict[str, Any]]) -> dict[str, Any]:
        """The entry of a namespace from the pieces write_partition gave for its partitions."""
        entry = parts.entry_of(name, [(p["parts"], p["logical_bytes"]) for p in pieces])
        if any(p.get("ordered") is False for p in entry["parts"]):
            entry["ordered"] = False
        return entry

    def write_rows(self, name: str, runs: Iterable[Cols], logical_bytes: int) -> dict[str, Any]:
        """A namespace entry holding exactly these rows (runs in record-key order), written as
        a new base (repair snapshots keeps the rows whose data is intact)."""
        with TempRows(spool_dir()) as tmp:
            entry, _ = manifest.write_namespace(self.repo, self._packer, name, tmp, None, logical_bytes,
                                                manifest.sorted_runs(runs))
        return entry

    # ---- blobs copied as they are (prune) -------------------------------------------------
    def copy_blob(self, blob_type: BlobType, data: bytes, blob_id: bytes) -> None:
        """Store a blob already verified against `blob_id` (repack)."""
        self._packer.add(blob_type, data, blob_id)

    # ---- commit -----------------------------------------------------------------------
    def flush(self) -> None:
        """Save every pending block and pack, then the index file naming them."""
        self._packer.flush()

    def commit(self, snap: Snapshot, vouch: bool = False) -> int:
        """Flush, then save the snapshot (the commit point); returns the snapshot's size.
        `vouch`: every row of the snapshot went through this session (a backup in this
        process), so each of its vector blobs is now located in this machine's index cache;
        the cache notes it, for trust_parent."""
        self.flush()
        self._stop()
        try:
            size = self.repo.save_snapshot(snap)
            if vouch:
                self.repo.index.vouch(snap.id)
            return size
        finally:
            self._end()

    def at_end(self, fn: Callable[[], None]) -> None:
        """Call `fn` when the session ends: after the snapshot is saved, or on close (a
        helper process finishing its own work meanwhile, such as the line memo)."""
        self._at_end.append(fn)

    def _end(self) -> None:
        while self._at_end:
            self._at_end.pop(0)()

    def save_progress(self) -> None:
        """After a failure: index the packs already saved (best effort), so the next run
        reuses them; blocks not yet in a saved pack are lost."""
        try:
            self._packer.abort()
        except Exception:
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker threads and processes (flush first to keep what was stored)."""
        try:
            self._stop()
        finally:
            self._end()

    def _stop(self) -> None:
        self._packer.close()
        with self._hash_lock:
            self._hash_closed = True
        if self._starter is not None:
            self._starter.join()
        if self._hashing is not None:
            self._hashing.shutdown(wait=True, cancel_futures=True)
            self._hashing = None
        if self._hashers is not None:
            self._hashers.close()
            self._hashers = None

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _rows_size(ids: list, mraws: list[bytes], docs: list, uris: list) -> int:
    """sum(map(_row_size, ids, mraws, docs, uris)), a column at a time."""
    id_types = set(map(type, ids))
    if id_types == {str}:
        size = sum(map(len, ids))
    elif str not in id_types:
        size = 8 * len(ids)
    else:
        size = sum(len(r) if type(r) is str else 8 for r in ids)
    size += 32 * len(ids) + sum(map(len, mraws))
    for col in (docs, uris):
        if any(col):
            size += sum(len(x) for x in col if x)
    return size


def _row_size(rid: Any, mraw: bytes, doc: str | None, uri: str | None) -> int:
    """A row's share of logical_bytes: id, vector content id, metadata, document, uri."""
    return (len(rid) if type(rid) is str else 8) + 32 + len(mraw) + (len(doc) if doc else 0) + \
        (len(uri) if uri else 0)


def batch_rows(repo, batch: RecordBatch) -> RowBatch:
    """The manifest rows a backup would record for a batch of records (the same content
    ids), computed without storing anything: what an in-place restore compares the live
    records with before it asks to go ahead."""
    enc = encode_batch(batch)
    n = len(batch)
    raw = digests_inline(repo.master.id_key, enc.data, enc.offsets, enc.prefix)
    vrefs = np.frombuffer(raw, dtype=np.uint8).reshape(n, 32)
    return RowBatch(list(batch.ids), vrefs, meta_bytes_many(batch.metadata or [None] * n),
                    list(batch.documents or [None] * n), list(batch.uris or [None] * n))
