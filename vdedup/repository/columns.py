"""Manifest rows as columns, and the per-batch operations on them (repository layer).

Backups and restores move rows in runs of about a thousand: a run is a `Cols` (record keys,
ids, vector ids, metadata bytes, documents, URIs, each a list) sorted by record key. Merging
a run with the previous snapshot's state, applying delta rows to a segment and cutting
segments work on whole lists (slices, dict look-ups, element-wise comparisons done by the
interpreter's C loops); only the rows that differ become `Row` objects.
"""
from __future__ import annotations

import operator
from bisect import bisect_right
from itertools import accumulate, compress, repeat
from typing import Iterable, Iterator

import numpy as np

from ..format import manifest as mf
from ..format import metapatch, values
from ..format.values import same

_PLAIN = {str, type(None)}


class Cols:
    """`key_hashes`: None, or a Future of the run's segment-boundary hashes (manifest.py
    key_hashes), computed ahead by a hash worker; a run made by slicing, taking or extending
    has none (its hashes are computed when needed)."""
    __slots__ = ("keys", "ids", "vrefs", "mraws", "docs", "uris", "key_hashes")

    def __init__(self, keys: list[bytes], ids: list, vrefs: list[bytes], mraws: list[bytes], docs: list,
                 uris: list):
        self.keys, self.ids, self.vrefs, self.mraws, self.docs, self.uris = keys, ids, vrefs, mraws, docs, uris
        self.key_hashes = None

    @classmethod
    def empty(cls) -> "Cols":
        return cls([], [], [], [], [], [])

    @classmethod
    def of(cls, ids: list, vrefs: list[bytes], mraws: list[bytes], docs: list, uris: list,
           keys: list[bytes] | None = None) -> "Cols":
        return cls(mf.record_keys(ids) if keys is None else keys, ids, vrefs, mraws, docs, uris)

    @classmethod
    def from_rows(cls, rows: Iterable[mf.Row]) -> "Cols":
        out = cls.empty()
        for r in rows:
            out.append_row(r)
        return out

    def __len__(self) -> int:
        return len(self.keys)

    def slice(self, a: int, b: int | None = None) -> "Cols":
        return Cols(self.keys[a:b], self.ids[a:b], self.vrefs[a:b], self.mraws[a:b], self.docs[a:b],
                    self.uris[a:b])

    def take(self, idx: list[int]) -> "Cols":
        """The rows at these positions, in that order."""
        return Cols(*([c[i] for i in idx] for c in self._columns()))

    def _columns(self) -> tuple[list, ...]:
        return self.keys, self.ids, self.vrefs, self.mraws, self.docs, self.uris

    def extend(self, other: "Cols") -> None:
        for mine, theirs in zip(self._columns(), other._columns()):
            mine.extend(theirs)

    def append_row(self, r: mf.Row) -> None:
        self.keys.append(r.key)
        self.ids.append(r.id)
        self.vrefs.append(r.vref)
        self.mraws.append(r.mraw)
        self.docs.append(r.doc)
        self.uris.append(r.uri)

    def row(self, i: int) -> mf.Row:
        r = mf.Row(self.ids[i], self.vrefs[i], None, self.docs[i], self.uris[i], mf.OP_FULL, mf.ALL_FIELDS,
                   self.mraws[i])
        r._key = self.keys[i]
        return r

    def rows(self) -> Iterator[mf.Row]:
        for i in range(len(self.keys)):
            yield self.row(i)

    def last_key(self) -> bytes:
        return self.keys[-1]


def strictly_increasing(keys: list[bytes], after: bytes) -> bool:
    """Whether keys are sorted, no key twice, all after `after`."""
    return (not keys or keys[0] > after) and all(map(operator.lt, keys, keys[1:]))


class Cursor:
    """The previous state, handed out a run at a time (the rows up to a key)."""

    def __init__(self, chunks: Iterator[Cols]):
        self._chunks = chunks
        self._buf = Cols.empty()
        self._done = False

    def upto(self, key: bytes | None) -> Cols:
        """The rows with key <= `key` (every remaining row when key is None)."""
        while not self._done and (key is None or not len(self._buf) or self._buf.last_key() <= key):
            nxt = next(self._chunks, None)
            if nxt is None:
                self._done = True
            else:
                self._buf.extend(nxt)
        n = len(self._buf) if key is None else bisect_right(self._buf.keys, key)
        out, self._buf = self._buf.slice(0, n), self._buf.slice(n)
        return out


def diff_run(prev: Cols, cur: Cols, stats: dict[str, int]) -> list[mf.Row]:
    """The delta rows (sorted by key) turning the previous state's run `prev` into `cur`
    (both sorted by key, covering the same key range); counts go into stats."""
    if prev.keys == cur.keys:
        n = len(cur.keys)
        stretches = [(0, 0, n)] if n else []
        added: list[int] = []
        deleted: list[int] = []
    else:
        stretches, added, deleted = _match(prev.keys, cur.keys)
    changed = _changed(prev, cur, stretches)
    matched = sum(s[2] for s in stretches)
    stats["added"] += len(added)
    stats["deleted"] += len(deleted)
    stats["changed"] += len(changed)
    stats["unchanged"] += matched - len(changed)
    out: list[mf.Row] = [cur.row(i) for i in added]
    for j in deleted:
        r = mf.Row(prev.ids[j], op=mf.OP_DELETE, flags=0)
        r._key = prev.keys[j]
        out.append(r)
    out += _patch_rows(prev, cur, changed)
    if len(out) > 1:
        out.sort(key=lambda r: r.key)
    return out


def _match(pk: list[bytes], ck: list[bytes]) -> tuple[list[tuple[int, int, int]], list[int], list[int]]:
    """Records of two sorted runs of distinct keys matched by key: the stretches
    (prev start, cur start, length) of consecutive matched rows in both, in order, the
    positions of cur's keys prev lacks (added) and of prev's keys cur lacks (deleted)."""
    where = dict(zip(pk, range(len(pk))))
    found = np.fromiter(map(where.get, ck, repeat(-1)), dtype=np.int64, count=len(ck))
    hit = found >= 0
    ic = np.flatnonzero(hit)
    jp = found[hit]
    kept = np.zeros(len(pk), dtype=bool)
    kept[jp] = True
    if not len(ic):
        return [], list(range(len(ck))), np.flatnonzero(~kept).tolist()
    cut = np.flatnonzero((np.diff(ic) != 1) | (np.diff(jp) != 1)) + 1
    first = np.concatenate(([0], cut))
    lengths = np.diff(np.concatenate((first, [len(ic)])))
    stretches = list(zip(jp[first].tolist(), ic[first].tolist(), lengths.tolist()))
    return stretches, np.flatnonzero(~hit).tolist(), np.flatnonzero(~kept).tolist()


def _patch_rows(prev: Cols, cur: Cols, changed: list[tuple[int, int]]) -> list[mf.Row]:
    """The delta rows (mf.diff) of changed records, given as (prev, cur) positions, with the
    metadata patches computed in one batch (format/metapatch.py)."""
    meta_changed = [prev.mraws[j] != cur.mraws[i] for j, i in changed]
    pairs = [p for p, m in zip(changed, meta_changed) if m]
    patches = iter(metapatch.patches([prev.mraws[j] for j, _ in pairs], [cur.mraws[i] for _, i in pairs]))
    same = values.same
    out = []
    for (j, i), m in zip(changed, meta_changed):
        flags = 0
        row = mf.Row(cur.ids[i], op=mf.OP_PATCH)
        if prev.vrefs[j] != cur.vrefs[i]:
            flags |= mf.F_VREF
            row.vref = cur.vrefs[i]
        if m:
            patch = next(patches)
            flags |= mf.F_META if patch is None else mf.F_META_PATCH
            row._meta, row._mraw = mf._UNSET, cur.mraws[i] if patch is None else patch
        od, nd = prev.docs[j], cur.docs[i]
        if not (od == nd and type(od) is type(nd)) and not same(od, nd):
            flags |= mf.F_DOC
            row.doc = nd
        ou, nu = prev.uris[j], cur.uris[i]
        if not (ou == nu and type(ou) is type(nu)) and not same(ou, nu):
            flags |= mf.F_URI
            row.uri = nu
        row.flags = flags
        row._key = cur.keys[i]
        out.append(row)
    return out


def _changed(prev: Cols, cur: Cols, stretches: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """The (prev, cur) positions of matched records (given as stretches, see _match) whose
    vector id, metadata bytes, document or URI differ."""
    if not stretches:
        return []
    def col(c: list, which: int) -> list:
        if len(stretches) == 1:
            a, b, n = stretches[0]
            at = a if which == 0 else b
            return c if at == 0 and n == len(c) else c[at:at + n]
        out: list = []
        for s in stretches:
            out += c[s[which]:s[which] + s[2]]
        return out
    differ = list(map(operator.ne, col(prev.vrefs, 0), col(cur.vrefs, 1)))
    pm, cm = col(prev.mraws, 0), col(cur.mraws, 1)
    if pm != cm:                                  # metadata bytes: equal bytes, equal values
        differ = list(map(operator.or_, differ, map(operator.ne, pm, cm)))
    for a, b in ((prev.docs, cur.docs), (prev.uris, cur.uris)):
        pa, cb = col(a, 0), col(b, 1)
        plain = set(map(type, pa)) | set(map(type, cb)) <= _PLAIN
        if plain and pa == cb:
            continue                              # str and None: equal means the same value and type
        ne = map(operator.ne, pa, cb) if plain else (not same(x, y) for x, y in zip(pa, cb))
        differ = list(map(operator.or_, differ, ne))
    hits = list(compress(range(len(differ)), differ))
    if not hits:
        return []
    starts = list(accumulate([s[2] for s in stretches[:-1]], initial=0))
    out = []
    for k in hits:
        s = bisect_right(starts, k) - 1
        d = k - starts[s]
        out.append((stretches[s][0] + d, stretches[s][1] + d))
    return out
