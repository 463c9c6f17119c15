"""Delta rows as columns, applied to runs of a base a column at a time (repository layer).

Reading a namespace's state applies its delta layers to each base run (columns.Cols), one
layer after the other: the delta rows of a layer that fall in the run (a `DeltaRun`, decoded
column by column from the delta chunks) are assigned into copies of the run's columns, the
records it deletes or adds edited in, and its metadata patches applied in one batch
(format/metapatch.py). Only a record that one delta touches twice (never written, but
readable) goes through mf.apply row by row.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import groupby
from typing import Iterable, Iterator

from ..format import manifest as mf
from ..format import metapatch
from .columns import Cols

EDIT_IN_PLACE = 64             # records a delta adds or deletes in a run, edited in place up to this
_META = mf.F_META | mf.F_META_PATCH


class DeltaRun:
    """Delta rows sorted by key, as columns (None where a row does not carry a field)."""
    __slots__ = ("keys", "ids", "ops", "flags", "vrefs", "mraws", "docs", "uris")

    def __init__(self, keys, ids, ops, flags, vrefs, mraws, docs, uris):
        self.keys, self.ids, self.ops, self.flags = keys, ids, ops, flags
        self.vrefs, self.mraws, self.docs, self.uris = vrefs, mraws, docs, uris

    @classmethod
    def decode(cls, data: bytes) -> "DeltaRun":
        ids, ops, flags, vrefs, mraws, docs, uris = mf.decode_delta_cols(data)
        return cls(mf.record_keys(ids), ids, ops, flags, vrefs, mraws, docs, uris)

    @classmethod
    def from_rows(cls, rows: list[mf.Row]) -> "DeltaRun":
        live = [r.op != mf.OP_DELETE for r in rows]
        flags = [r.flags if x else 0 for r, x in zip(rows, live)]
        return cls([r.key for r in rows], [r.id for r in rows], [r.op for r in rows], flags,
                   [r.vref if f & mf.F_VREF else None for r, f in zip(rows, flags)],
                   [r.mraw if f & _META else None for r, f in zip(rows, flags)],
                   [r.doc if f & mf.F_DOC else None for r, f in zip(rows, flags)],
                   [r.uri if f & mf.F_URI else None for r, f in zip(rows, flags)])

    def __len__(self) -> int:
        return len(self.keys)

    def slice(self, a: int, b: int | None = None) -> "DeltaRun":
        return DeltaRun(*(c[a:b] for c in self._columns()))

    def _columns(self) -> tuple[list, ...]:
        return self.keys, self.ids, self.ops, self.flags, self.vrefs, self.mraws, self.docs, self.uris

    def row(self, k: int) -> mf.Row:
        r = mf.Row(self.ids[k], self.vrefs[k], None, self.docs[k], self.uris[k], self.ops[k], self.flags[k],
                   self.mraws[k])
        r._key = self.keys[k]
        return r


def apply_delta(chunk: Cols, delta: DeltaRun | list[mf.Row]) -> Cols:
    """A run of rows with delta rows (sorted by key; several for one key are applied in the
    order they come) applied."""
    if isinstance(delta, list):
        delta = DeltaRun.from_rows(delta)
    n = len(delta)
    if not n:
        return chunk
    where = dict(zip(chunk.keys, range(len(chunk.keys))))
    if len(set(delta.keys)) != n:
        delta = _folded(chunk, delta, where)
        n = len(delta)
    keys, ids, vrefs, mraws, docs, uris = (list(c) for c in chunk._columns())
    at = list(map(where.get, delta.keys))
    ops, flags = delta.ops, delta.flags
    deleted: list[int] = []
    added: list[int] = []
    d_ids, d_vrefs, d_mraws, d_docs, d_uris = delta.ids, delta.vrefs, delta.mraws, delta.docs, delta.uris
    if None not in at and ops.count(mf.OP_PATCH) == n:
        patches: range | list[int] = range(n)
        rest: list[int] = []
    else:
        patch_op = mf.OP_PATCH
        patches = [k for k in range(n) if ops[k] == patch_op and at[k] is not None]
        rest = [k for k in range(n) if ops[k] != patch_op or at[k] is None]
    # patches of records the run holds (the common case), assigned a field at a time
    pflags = [flags[k] for k in patches]
    kinds = set(pflags)
    for bit, col, dcol in ((mf.F_VREF, vrefs, d_vrefs), (mf.F_META, mraws, d_mraws), (mf.F_DOC, docs, d_docs),
                           (mf.F_URI, uris, d_uris)):
        for k in _having(pflags, patches, kinds, lambda f, b=bit: f & b):
            col[at[k]] = dcol[k]
    ks = _having(pflags, patches, kinds, lambda f: f & mf.F_META_PATCH and not f & mf.F_META)
    patch_at, patch_raws = [at[k] for k in ks], [d_mraws[k] for k in ks]
    for k in rest:
        i = at[k]
        op = ops[k]
        if op == mf.OP_DELETE:
            if i is not None:
                deleted.append(i)
        elif op == mf.OP_FULL:
            if i is None:
                added.append(k)
            else:
                ids[i], vrefs[i], mraws[i], docs[i], uris[i] = d_ids[k], d_vrefs[k], d_mraws[k], d_docs[k], d_uris[k]
        else:
            raise ValueError("manifest delta patches a record that does not exist")
    if patch_at:
        for i, m in zip(patch_at, metapatch.apply_patches([mraws[i] for i in patch_at], patch_raws)):
            mraws[i] = m
    out = Cols(keys, ids, vrefs, mraws, docs, uris)
    if not (deleted or added):
        return out
    new = [(delta.keys[k], d_ids[k], d_vrefs[k], d_mraws[k], d_docs[k], d_uris[k]) for k in added]
    if len(deleted) + len(added) <= EDIT_IN_PLACE:
        cols = out._columns()
        for i in sorted(deleted, reverse=True):
            for c in cols:
                del c[i]
        for row in new:                    # sorted by key: each goes where its key belongs
            i = bisect_left(keys, row[0])
            for c, v in zip(cols, row):
                c.insert(i, v)
        return out
    gone = set(deleted)
    if gone:
        out = out.take([i for i in range(len(keys)) if i not in gone])
    if new:
        for c, vs in zip(out._columns(), zip(*new)):
            c.extend(vs)
        out = out.take(sorted(range(len(out.keys)), key=out.keys.__getitem__))
    return out


def _having(flags: list[int], positions, kinds: set[int], test) -> range | list[int]:
    """The positions (flags: theirs, kinds: the distinct flags) whose flags pass `test`."""
    passing = {f for f in kinds if test(f)}
    if not passing:
        return []
    if passing == kinds:
        return positions
    return [k for k, f in zip(positions, flags) if f in passing]


def _folded(chunk: Cols, delta: DeltaRun, where: dict[bytes, int]) -> DeltaRun:
    """The delta with the several rows of one record folded into one (its final state as a
    full row, or a deletion)."""
    out: list[mf.Row] = []
    for key, group in groupby(range(len(delta)), key=delta.keys.__getitem__):
        rows = [delta.row(k) for k in group]
        if len(rows) == 1:
            out.append(rows[0])
            continue
        i = where.get(key)
        state = chunk.row(i) if i is not None else None
        for d in rows:
            state = mf.apply(state, d)
        if state is None:
            state = mf.Row(rows[-1].id, op=mf.OP_DELETE, flags=0)
        state._key = key
        out.append(state)
    return DeltaRun.from_rows(out)


class DeltaFeed:
    """Delta rows sorted by key, handed out a run at a time (those up to a key)."""

    def __init__(self, rows: Iterator[mf.Row]):
        self._rows = rows
        self._next = next(rows, None)

    def upto(self, key: bytes | None) -> list[mf.Row]:
        """The rows with key <= `key` (every remaining row when key is None)."""
        out = []
        while self._next is not None and (key is None or self._next.key <= key):
            out.append(self._next)
            self._next = next(self._rows, None)
        return out


def apply_deltas(chunks: Iterable[Cols], delta: Iterator[mf.Row]) -> Iterator[Cols]:
    """Runs of rows (sorted, consecutive) with the delta rows applied; delta rows after the
    last run's last key come as a final run."""
    return apply_feed(chunks, DeltaFeed(delta))


def apply_feed(chunks: Iterable[Cols], feed) -> Iterator[Cols]:
    """apply_deltas with the delta rows handed out by `feed.upto(key)` (DeltaFeed), or by
    `feed.layers_upto(key)` a DeltaRun per delta layer, applied one layer after the other
    (LayerFeed)."""
    def applied(chunk: Cols, key: bytes | None) -> Cols:
        if not isinstance(feed, LayerFeed):
            return apply_delta(chunk, feed.upto(key))
        for rows in feed.layers_upto(key):
            chunk = apply_delta(chunk, rows)
        return chunk

    for chunk in chunks:
        if not len(chunk):
            continue
        out = applied(chunk, chunk.last_key())
        if len(out):
            yield out
    tail = applied(Cols.empty(), None)
    if len(tail):
        yield tail


class LayerFeed:
    """The rows of several delta layers (each an iterator of DeltaRuns sorted by key, one
    per chunk), handed out a run at a time: those up to a key, a DeltaRun per layer."""

    def __init__(self, layers: list[Iterator[DeltaRun]]):
        self._layers = [_ChunkFeed(layer) for layer in layers]

    def layers_upto(self, key: bytes | None) -> list[DeltaRun]:
        return [f.upto(key) for f in self._layers]


class _ChunkFeed:
    def __init__(self, chunks: Iterator[DeltaRun]):
        self._chunks = chunks
        self._run: DeltaRun | None = None
        self._pos = 0

    def upto(self, key: bytes | None) -> DeltaRun | list:
        got: list[DeltaRun] = []
        while True:
            run = self._run
            if run is None or self._pos >= len(run):
                self._run, self._pos = next(self._chunks, None), 0
                if self._run is None:
                    break
                continue
            n = len(run) if key is None else bisect_right(run.keys, key, self._pos)
            if n > self._pos:
                got.append(run.slice(self._pos, n) if (self._pos or n < len(run)) else run)
            self._pos = n
            if n < len(run):
                break
        if len(got) == 1:
            return got[0]
        if not got:
            return []
        out = DeltaRun(*([] for _ in range(8)))
        for g in got:
            for mine, theirs in zip(out._columns(), g._columns()):
                mine.extend(theirs)
        return out
