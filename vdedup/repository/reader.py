"""Reading a namespace back as verified record batches (repository layer).

1. Plan. The rows of the namespace (its manifest state, read once, or the rows the caller
   selected) are written as they come, a run at a time, to a private temporary file, and
   the index gives every row's block and position (a look-up a row, or, for a large whole
   namespace, one walk over the index in id order: _joined_plan). Nothing is written to the target before
   every row is known to be indexed and, for a whole namespace, the row count matches the
   snapshot's; but for a whole namespace the first blocks the plan meets are read (and
   verified) meanwhile, by the workers that will read the rest.
2. Stream. Rows are read back in manifest order. A block is fetched, authenticated,
   decompressed and its blobs hashed once, by a pool of `workers` threads (zstd, numpy,
   the AEAD and BLAKE3 release the GIL), ahead of the rows that need it; batches are
   decoded by the same pool while the caller writes the previous ones. A row whose block
   was read earlier and has left the window of recent blocks (a snapshot whose vectors are
   spread over older packs) is set aside in a spool sorted by location.
3. The rows set aside are read in location order, each block once more.

So each block is read once when a snapshot's vectors lie in storage order (the usual case),
and at most twice otherwise; every payload is checked against its content id (and its
blob type against the index) before it is decoded, so nothing unverified leaves this module.
"""
from __future__ import annotations

import os
import pickle
from collections import OrderedDict, deque
from concurrent.futures import Future
from itertools import compress
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..arrays import heads
from ..errors import IntegrityError
from ..format.objects import BlobType
from ..format.values import meta_value, meta_values_json
from ..format.vectors import decode_dense_batch, decode_dense_pieces, decode_payload
from ..model import Record, RecordBatch
from .columns import Cols
from .manifest import iter_state_cols
from .parallel import Workers
from .rows import Row
from .spool import TempRows, spool_dir, spool_dumps, spool_loads

RUN = 1024                    # rows per run of the plan file (selected rows)
RELEASE_RUNS = 64             # runs looked up between two releases of the index cache's map
RECENT_BLOCKS = 8             # blocks a later run may still use without setting its rows aside
JOIN_MIN_ROWS = 50_000        # a whole namespace from this size (up to JOIN_MAX_ROWS: ~80 bytes a row
JOIN_MAX_ROWS = 4_000_000     # at the walk's start) is located by one walk over the index...
JOIN_MAX_RATIO = 4            # ...when the index cache holds at most this many entries a row
JOIN_CHUNK = 1 << 14          # index entries read per transaction of that walk
HASH_AFTER = 20_000           # rows from which content ids are recomputed by hash worker processes
EARLY_BYTES = 24 << 20        # stored bytes of the blocks read (and verified) while a whole namespace is planned
EARLY_STRIDE = 8              # rows of which one is looked up to find those blocks (fewer index pages resident)
_VECTORS = int(BlobType.VECTORS)


class _Plan:
    """Where every row's vector blob lives: blocks (pack, number, offset, length, type) and,
    per row in manifest order, its block and position in the block."""

    def __init__(self) -> None:
        self.blocks: list[tuple[bytes, int, int, int, int]] = []
        self.block_of = np.zeros(0, dtype=np.uint32)
        self.ordinal = np.zeros(0, dtype=np.uint32)
        self.aside = np.zeros(0, dtype=bool)

    @property
    def n(self) -> int:
        return len(self.block_of)


def read_namespace(repo, entry: dict[str, Any], rows: Iterable[Row] | None = None, batch_size: int = 1000,
                   namespace: str = "", workers: int = 1, metadata_json: bool = False) -> Iterator[RecordBatch]:
    """The records of a namespace entry (or of the given rows of it) as batches, every vector
    payload verified against its content id. With `rows` None the whole namespace is read
    and its record count must match the entry's. With `metadata_json`, a batch of dense
    vectors whose metadata bytes are all of the JSON form (docs/design.md §4.8) carries them
    undecoded (RecordBatch.metadata_json) instead of a decoded metadata column."""
    with TempRows(spool_dir()) as tmp:
        path = os.path.join(tmp.dir, "plan")
        if rows is None:
            # the whole namespace: its size is known, so the workers start first and read
            # the first blocks while the plan is being made (blocks are read in the order
            # the plan first meets them, which is the order of the stream)
            with Workers(repo, workers, hash_processes=entry["count"] >= HASH_AFTER) as pool:
                plan = _Plan()
                reader = _BlockReader(repo, plan, pool, workers)
                plan = _make_plan(repo, iter_state_cols(repo, entry), path, plan, reader.prefetch, entry["count"])
                if plan.n != entry["count"]:
                    raise IntegrityError(f"namespace {entry['name']!r}: manifest holds {plan.n} records, "
                                         f"snapshot says {entry['count']}")
                yield from _batches(reader.stream(path, tmp), batch_size, namespace, pool, workers, metadata_json)
                yield from _batches(reader.aside(tmp), batch_size, namespace, pool, workers, metadata_json)
            return
        plan = _make_plan(repo, _runs(rows), path)
        with Workers(repo, workers, hash_processes=plan.n >= HASH_AFTER) as pool:
            reader = _BlockReader(repo, plan, pool, workers)
            yield from _batches(reader.stream(path, tmp), batch_size, namespace, pool, workers, metadata_json)
            yield from _batches(reader.aside(tmp), batch_size, namespace, pool, workers, metadata_json)


def _runs(rows: Iterable[Row]) -> Iterator[Cols]:
    run = Cols.empty()
    for r in rows:
        run.append_row(r)
        if len(run) >= RUN:
            yield run
            run = Cols.empty()
    if len(run):
        yield run


def _block_entry(raw: bytes) -> tuple[bytes, int, int, int, int]:
    """The plan's entry of the block an encoded location (BlobLocation.to_bytes) names:
    (pack, number, offset, length, blob type)."""
    return (raw[:32], int.from_bytes(raw[32:36], "big"), int.from_bytes(raw[36:44], "big"),
            int.from_bytes(raw[44:48], "big"), raw[56])


def _make_plan(repo, runs: Iterable[Cols], path: str, plan: _Plan | None = None,
               found: Callable[[int], None] | None = None, expected: int | None = None) -> _Plan:
    """Write the runs to the plan file (per run: u64 length | pickle) and locate every row's
    blob (into `plan`, a new one if None); `found(b)` is called for each block as it is
    first met. `expected`: the number of rows (a whole namespace); from JOIN_MIN_ROWS to
    JOIN_MAX_ROWS rows, and an index cache of at most JOIN_MAX_RATIO entries a row, the rows
    are located by one walk over the index in id order (_joined_plan) instead of a look-up
    each: at 1M x 768, 1.1-1.8 s of look-ups (and the index pages they make resident, ~100 MB)
    against ~0.4 s."""
    plan = _Plan() if plan is None else plan
    if expected is not None and JOIN_MIN_ROWS <= expected <= JOIN_MAX_ROWS \
            and repo.index.count() <= JOIN_MAX_RATIO * expected:
        return _joined_plan(repo, runs, path, plan, found, expected)
    table: dict[bytes, int] = {}
    block_parts, ordinal_parts = [], []
    with open(path, "wb") as f:
        os.chmod(path, 0o600)
        for k, run in enumerate(runs):
            raws = repo.index.get_many(run.vrefs)
            if None in raws:
                missing = run.vrefs[raws.index(None)]
                raise IntegrityError(f"vector blob {missing.hex()[:16]} is not in the index", hint=repo.missing_hint())
            loc = np.frombuffer(b"".join(raws), dtype=np.uint8).reshape(len(raws), -1)
            ordinal_parts.append(np.ascontiguousarray(loc[:, 48:52]).view(">u4").reshape(-1).astype(np.uint32))
            # one look-up of the block table per stretch of rows in one block (pack id, number)
            starts = [0, *(np.flatnonzero((loc[1:, :36] != loc[:-1, :36]).any(axis=1)) + 1).tolist()]
            ids = np.empty(len(raws), dtype=np.uint32)
            for a, e in zip(starts, starts[1:] + [len(raws)]):
                raw = raws[a]
                b = table.get(raw[:36])
                if b is None:
                    b = table[raw[:36]] = len(plan.blocks)
                    plan.blocks.append(_block_entry(raw))
                    if found is not None:
                        found(b)
                ids[a:e] = b
            block_parts.append(ids)
            data = pickle.dumps((run.ids, run.vrefs, run.mraws, run.docs, run.uris), protocol=5)
            f.write(len(data).to_bytes(8, "big"))
            f.write(data)
            if (k + 1) % RELEASE_RUNS == 0:
                repo.index.release_pages()         # bound what the map adds to resident memory
    if block_parts:
        plan.block_of = np.concatenate(block_parts)
        plan.ordinal = np.concatenate(ordinal_parts)
    plan.aside = _set_aside(plan.block_of)
    return plan


def _joined_plan(repo, runs: Iterable[Cols], path: str, plan: _Plan, found: Callable[[int], None] | None,
                 expected: int) -> _Plan:
    """_make_plan, the rows located after they are all written to the plan file: their
    vector ids (32 bytes a row) sorted, then matched against the index walked in id order
    (IndexCache.locate_sorted). The blocks of the first runs are looked up row by row
    while the plan file is written and handed to `found` at once (the workers read them
    meanwhile, up to EARLY_BYTES); the others are numbered as the walk meets them and
    handed to `found` afterwards, in the order the stream will need them."""
    wanted = bytearray(32 * expected)
    n = 0
    table: dict[bytes, int] = {}
    early = found is not None
    with open(path, "wb") as f:
        os.chmod(path, 0o600)
        for run in runs:
            if early:
                early = _early_blocks(repo, run.vrefs, plan, table, found)   # type: ignore[arg-type]
                if not early:
                    repo.index.release_pages()
            k = len(run.vrefs)
            if 32 * (n + k) > len(wanted):
                wanted += bytes(max(32 * k, len(wanted) // 8))
            joined = b"".join(run.vrefs)
            if len(joined) != 32 * k:
                raise IntegrityError("a manifest row holds a vector id that is not 32 bytes long")
            wanted[32 * n:32 * (n + k)] = joined
            n += k
            data = pickle.dumps((run.ids, run.vrefs, run.mraws, run.docs, run.uris), protocol=5)
            f.write(len(data).to_bytes(8, "big"))
            f.write(data)
    keys = np.frombuffer(wanted, dtype="S32", count=n)
    order = _id_order(np.frombuffer(wanted, dtype=np.uint8, count=32 * n).reshape(n, 32), keys)
    skeys = keys[order]
    del keys, wanted                              # 48 bytes a row from here on
    block_sorted = np.empty(n, dtype=np.uint32)
    ordinal_sorted = np.empty(n, dtype=np.uint32)
    for i, j, pos, locs in repo.index.locate_sorted(skeys, JOIN_CHUNK):
        if (pos < 0).any():
            missing = skeys[i + int(np.flatnonzero(pos < 0)[0])].ljust(32, b"\0")
            raise IntegrityError(f"vector blob {missing.hex()[:16]} is not in the index", hint=repo.missing_hint())
        loc = locs[pos]
        ordinal_sorted[i:j] = np.ascontiguousarray(loc[:, 48:52]).view(">u4").reshape(-1)
        first, inverse = _distinct_blocks(loc)
        ids = np.empty(len(first), dtype=np.uint32)
        for u, r in enumerate(first.tolist()):
            raw = loc[r].tobytes()
            b = table.get(raw[:36])
            if b is None:
                b = table[raw[:36]] = len(plan.blocks)
                plan.blocks.append(_block_entry(raw))
            ids[u] = b
        block_sorted[i:j] = ids[inverse.reshape(-1)]
    del skeys
    plan.block_of = np.empty(n, dtype=np.uint32)
    plan.block_of[order] = block_sorted
    plan.ordinal = np.empty(n, dtype=np.uint32)
    plan.ordinal[order] = ordinal_sorted
    if found is not None:
        for b in _first_appearance(plan.block_of):
            found(b)
    plan.aside = _set_aside(plan.block_of)
    return plan


def _early_blocks(repo, vrefs: list[bytes], plan: _Plan, table: dict[bytes, int],
                  found: Callable[[int], bool]) -> bool:
    """Number the blocks of a run's rows before the walk does (one row in EARLY_STRIDE is
    looked up: a block holding fewer rows may be missed, and is read in its turn), and hand
    each to `found` (the workers read it meanwhile); False once `found` wants no more (or a
    row is not indexed: the walk says so)."""
    last = None
    for raw in repo.index.get_many(vrefs[::EARLY_STRIDE]):
        if raw is None:
            return False
        key = raw[:36]
        if key == last:
            continue
        last = key
        if key not in table:
            table[key] = len(plan.blocks)
            plan.blocks.append(_block_entry(raw))
            if not found(table[key]):
                return False
    return True


def _id_order(ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """np.argsort(keys, kind="stable") for 32-byte ids (`ids`: their rows of bytes, `keys`:
    the same as "S32"), sorted by their first 8 bytes as integers (several times faster than
    sorting the strings); the strings are sorted only when two different ids share those 8
    bytes (equal ids may: one vector stored for several records)."""
    head = heads(ids)
    order = np.argsort(head, kind="stable")
    if len(order) > 1:
        sh = head[order]
        tie = np.flatnonzero(sh[1:] == sh[:-1])
        if len(tie) and (ids[order[tie]] != ids[order[tie + 1]]).any():
            return np.argsort(keys, kind="stable")
    return order


def _distinct_blocks(loc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct blocks (pack id, block number: bytes 0-36) named by rows of encoded
    locations: the row where each first appears and, per row, which of them it names (as
    np.unique's return_index and return_inverse give). The blocks are told apart as integer
    pairs (the pack's first 8 bytes, the block number), the packs checked whole; the 36-byte
    strings are sorted only when two packs share those 8 bytes."""
    _, head_first, pack_of = np.unique(heads(loc), return_index=True, return_inverse=True)
    pack_of = pack_of.reshape(-1)
    if not (loc[:, :32] == loc[head_first[pack_of], :32]).all():
        _, first, inverse = np.unique(np.ascontiguousarray(loc[:, :36]).view("S36").reshape(-1),
                                      return_index=True, return_inverse=True)
        return first, inverse.reshape(-1)
    number = np.ascontiguousarray(loc[:, 32:36]).view(">u4").reshape(-1).astype(np.uint64)
    _, first, inverse = np.unique((pack_of.astype(np.uint64) << np.uint64(32)) | number,
                                  return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def _set_aside(block_of: np.ndarray) -> np.ndarray:
    """Rows whose block was read before and is no longer among the RECENT_BLOCKS last ones."""
    aside = np.zeros(len(block_of), dtype=bool)
    if not len(block_of):
        return aside
    starts = np.flatnonzero(np.r_[True, block_of[1:] != block_of[:-1]])
    ends = np.r_[starts[1:], len(block_of)]
    recent: OrderedDict[int, None] = OrderedDict()
    seen: set[int] = set()
    for s, e, b in zip(starts.tolist(), ends.tolist(), block_of[starts].tolist()):
        if b in recent:
            recent.move_to_end(b)
        elif b in seen:
            aside[s:e] = True
        else:
            seen.add(b)
            recent[b] = None
            if len(recent) > RECENT_BLOCKS:
                recent.popitem(last=False)
    return aside


class _BlockReader:
    """Reads blocks ahead of the rows that need them and hands out verified payloads."""

    def __init__(self, repo, plan: _Plan, pool: Workers, workers: int):
        self.repo, self.plan, self.pool = repo, plan, pool
        self.ahead = 2 * workers + RECENT_BLOCKS
        self._early: dict[int, Future] = {}        # blocks read while the plan was made
        self._streaming = False                    # the plan is made
        self._early_bytes = 0

    def prefetch(self, b: int) -> bool:
        """Start reading block b (just found by the plan) unless blocks of EARLY_BYTES (at
        least `ahead` blocks) are already; whether more are wanted."""
        if self.pool.n < 2 or (len(self._early) >= self.ahead and self._early_bytes >= EARLY_BYTES):
            return False
        if b not in self._early:
            self._early[b] = self._submit(b)
            self._early_bytes += self.plan.blocks[b][3]
        return True

    def _submit(self, b: int) -> Future:
        if self.plan.blocks[b][4] != _VECTORS:
            return _failed(b)
        return self.pool.submit(self._read, b)

    def _read(self, b: int) -> tuple[np.ndarray | list[bytes], Future | list[bytes]]:
        """A block's blobs and their content ids: as an (n, width) array and a future of an
        (n, 32) array when the blobs have one layout (the usual case), else as lists of bytes."""
        pack, number, offset, length, btype = self.plan.blocks[b]
        blobs = self.repo.read_block_rows(pack, number, offset, length, btype)
        if isinstance(blobs, np.ndarray):
            if self._streaming:
                # once the plan is made, hashed aside while this thread reads on (during the plan
                # hashed at once: hashing aside then takes CPU from the plan)
                return blobs, self.pool.content_id_rows_later(btype, blobs)
            return blobs, self.pool.content_id_rows(btype, blobs)
        return blobs, self.pool.content_ids(btype, blobs)

    def _payloads(self, runs: Iterator[_Run], order: list[int], uses: dict[int, int]) -> Iterator[_Run]:
        """The runs with their verified payloads (blocks read in `order`, up to `ahead` at
        once besides those read early; a block's result is dropped after its `uses` rows).
        A run's rows are handled a stretch of one block at a time: one look-up of the block,
        the content ids of the stretch compared as one list."""
        pending: dict[int, Future] = {}
        early, self._early = self._early, {}
        self._streaming = True
        queue = deque(order)

        def top_up() -> None:
            while queue and len(pending) < self.ahead:
                b = queue.popleft()
                pending[b] = early.pop(b, None) or self._submit(b)

        top_up()
        for run in runs:
            ordinals, vrefs = run.ordinals, run.cols[1]
            payloads: list[np.ndarray | list[bytes]] = []
            for s, e, b in _stretches(run.blocks):
                if b not in pending:
                    top_up()
                fut = pending.get(b)
                if fut is None:                     # not in `order`: cannot happen
                    raise IntegrityError("restore plan does not match the rows")
                try:
                    blobs, ids = fut.result()
                except _WrongType:
                    raise IntegrityError(f"blob {vrefs[s].hex()[:16]} has the wrong type") from None
                if isinstance(ids, Future):
                    ids = ids.result()
                want = ordinals[s:e]
                if max(want) >= len(blobs):
                    k = next(k for k, o in enumerate(want) if o >= len(blobs))
                    raise IntegrityError(f"blob {vrefs[s + k].hex()[:16]} is not where the index says")
                if isinstance(blobs, np.ndarray):
                    payloads.append(_verified_rows(blobs, ids, want, vrefs[s:e]))
                else:
                    got = list(map(ids.__getitem__, want))
                    if got != vrefs[s:e]:
                        _mismatch(got, vrefs[s:e])
                    payloads.append(list(map(blobs.__getitem__, want)))
                uses[b] -= e - s
                if not uses[b]:
                    del pending[b]
                    top_up()
            run.payloads = payloads
            yield run

    def stream(self, path: str, tmp: TempRows) -> Iterator[_Run]:
        """The rows not set aside, in manifest order; the others go to the spool."""
        plan = self.plan
        kept = ~plan.aside
        order = _first_appearance(plan.block_of[kept])
        uses = dict(zip(*np.unique(plan.block_of[kept], return_counts=True)))
        uses = {int(b): int(c) for b, c in uses.items()}
        return self._payloads(self._stream_runs(path, tmp), order, uses)

    def _stream_runs(self, path: str, tmp: TempRows) -> Iterator[_Run]:
        plan = self.plan
        i = 0
        with open(path, "rb") as f:
            while True:
                head = f.read(8)
                if not head:
                    return
                cols = pickle.loads(f.read(int.from_bytes(head, "big")))
                n = len(cols[0])
                blocks, ordinals = plan.block_of[i:i + n], plan.ordinal[i:i + n]
                aside = plan.aside[i:i + n]
                if aside.any():
                    with tmp.env.begin(write=True) as txn:
                        for k in np.flatnonzero(aside).tolist():
                            j = i + k
                            key = int(blocks[k]).to_bytes(4, "big") + int(ordinals[k]).to_bytes(4, "big") + \
                                j.to_bytes(8, "big")
                            txn.put(key, spool_dumps(tuple(c[k] for c in cols)), db=tmp.rows)
                    keep = (~aside).tolist()
                    cols = tuple(list(compress(c, keep)) for c in cols)
                    blocks, ordinals = blocks[~aside], ordinals[~aside]
                i += n
                if len(cols[0]):
                    yield _Run(blocks, ordinals.tolist(), cols)

    def aside(self, tmp: TempRows) -> Iterator[_Run]:
        """The rows set aside, in location order (each of their blocks read once more)."""
        distinct, counts = np.unique(self.plan.block_of[self.plan.aside], return_counts=True)
        blocks = distinct.tolist()
        uses = dict(zip(blocks, counts.tolist()))

        def runs() -> Iterator[_Run]:
            bl: list[int] = []
            od: list[int] = []
            rows: list[tuple] = []
            for key, value in tmp.items_released():
                bl.append(int.from_bytes(key[:4], "big"))
                od.append(int.from_bytes(key[4:8], "big"))
                rows.append(spool_loads(value))
                if len(rows) >= RUN:
                    yield _Run(np.array(bl, dtype=np.uint32), od, tuple(map(list, zip(*rows))))
                    bl, od, rows = [], [], []
            if rows:
                yield _Run(np.array(bl, dtype=np.uint32), od, tuple(map(list, zip(*rows))))

        return self._payloads(runs(), blocks, uses)


def _verified_rows(blobs: np.ndarray, ids: np.ndarray, want: list[int], vrefs: list[bytes]) -> np.ndarray:
    """The rows `want` of a block's blob array, each checked against its content id."""
    a = want[0]
    if want[-1] - a == len(want) - 1 and (len(want) < 3 or want == list(range(a, a + len(want)))):
        got, rows = ids[a:a + len(want)], blobs[a:a + len(want)]     # a run of the block: views
    else:
        idx = np.asarray(want)
        got, rows = ids[idx], blobs[idx]
    if got.tobytes() != b"".join(vrefs):
        _mismatch([bytes(g) for g in got], vrefs)
    return rows


def _mismatch(got: list[bytes], vrefs: list[bytes]) -> None:
    k = next(k for k, (x, y) in enumerate(zip(got, vrefs)) if x != y)
    raise IntegrityError(f"blob {vrefs[k].hex()[:16]} does not match its content id")


class _Run:
    """Consecutive rows to read: each row's block (an array) and position in it, the row columns
    (ids, vector ids, metadata bytes, documents, URIs) and, once read, the payloads (pieces:
    arrays whose rows are payloads, or lists of payloads)."""

    __slots__ = ("blocks", "ordinals", "cols", "payloads")

    def __init__(self, blocks: np.ndarray, ordinals: list[int], cols: tuple[list, ...]):
        self.blocks, self.ordinals, self.cols = blocks, ordinals, cols
        self.payloads: list[np.ndarray | list[bytes]] = []


def _stretches(blocks: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, value) of each stretch of equal consecutive values."""
    if not len(blocks):
        return []
    bounds = (np.flatnonzero(blocks[1:] != blocks[:-1]) + 1).tolist()
    starts = [0, *bounds]
    return list(zip(starts, [*bounds, len(blocks)], blocks[starts].tolist()))


def _first_appearance(block_of: np.ndarray) -> list[int]:
    if not len(block_of):
        return []
    uniq, first = np.unique(block_of, return_index=True)
    return uniq[np.argsort(first)].tolist()


def _batches(runs: Iterator[_Run], batch_size: int, namespace: str, pool: Workers,
             workers: int, metadata_json: bool = False) -> Iterator[RecordBatch]:
    """Cut the verified runs into batches of batch_size rows, decoded by the pool a few
    batches ahead."""
    ahead: deque[Future] = deque()
    buf: list[list] = [[], [], [], []]            # ids, metadata bytes, documents, URIs
    pieces: list[np.ndarray | list[bytes]] = []   # the payloads of those rows
    for run in runs:
        ids, _, mraws, docs, uris = run.cols
        for mine, theirs in zip(buf, (ids, mraws, docs, uris)):
            mine += theirs
        pieces += run.payloads
        while len(buf[0]) >= batch_size:
            part = [c[:batch_size] for c in buf]
            buf = [c[batch_size:] for c in buf]
            taken, pieces = _cut(pieces, batch_size)
            ahead.append(pool.submit_batch(_decode, part[0], taken, *part[1:], namespace, metadata_json))
            if len(ahead) > workers:
                yield ahead.popleft().result()
    if buf[0]:
        ahead.append(pool.submit_batch(_decode, buf[0], pieces, *buf[1:], namespace, metadata_json))
    while ahead:
        yield ahead.popleft().result()


def _cut(pieces: list, n: int) -> tuple[list, list]:
    """The first n payloads of the pieces, and the rest."""
    taken = []
    i = 0
    while n:
        p = pieces[i]
        if len(p) <= n:
            taken.append(p)
            n -= len(p)
            i += 1
        else:
            taken.append(p[:n])
            return taken, [p[n:]] + pieces[i + 1:]
    return taken, pieces[i:]


def _payload_list(pieces: list) -> list[bytes]:
    """The payloads of pieces (arrays of rows or lists of bytes) as one list of bytes."""
    out: list[bytes] = []
    for p in pieces:
        out += [r.tobytes() for r in p] if isinstance(p, np.ndarray) else p
    return out


def _decode(ids: list, pieces: list, mraws: list[bytes], docs: list, uris: list,
            namespace: str, metadata_json: bool = False) -> RecordBatch:
    documents = docs if any(d is not None for d in docs) else None
    uri_col = uris if any(u is not None for u in uris) else None
    arrays = [p for p in pieces if len(p)]
    if arrays and all(isinstance(p, np.ndarray) for p in arrays) and len({p.shape[1] for p in arrays}) == 1:
        dense = decode_dense_pieces(arrays)             # the vectors copied once, not stacked first
        payloads = [r.tobytes() for p in arrays for r in p] if dense is None else []
    else:
        payloads = _payload_list(arrays)
        dense = decode_dense_batch(payloads)
    if dense is not None:
        if metadata_json and mraws and min(mraws)[0] >= 0x20:     # every row's bytes JSON text
            return RecordBatch(ids=ids, dense=dense, metadata_json=mraws, documents=documents, uris=uri_col,
                               namespace=namespace)
        return RecordBatch(ids=ids, dense=dense, metadata=meta_values(mraws), documents=documents, uris=uri_col,
                           namespace=namespace)
    metadata = meta_values(mraws)
    records = []
    for rid, payload, meta, doc, uri in zip(ids, payloads, metadata, docs, uris):
        vectors, sparse = decode_payload(payload)
        records.append(Record(rid, vectors, sparse, meta, doc, uri))
    return RecordBatch.from_records(records, namespace)


def meta_values(raws: list[bytes]) -> list[Any]:
    """Decode many rows' metadata bytes: one JSON parse when all are JSON text."""
    if raws and all(r[0] >= 0x20 for r in raws):
        out = meta_values_json(raws)
        if len(out) == len(raws):
            return out
    return [meta_value(r) for r in raws]


class _WrongType(Exception):
    """A block the index lists under another blob type than the one asked for."""


def _failed(b: int) -> Future:
    fut: Future = Future()
    fut.set_exception(_WrongType(b))
    return fut
