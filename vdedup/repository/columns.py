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
from typing import Iterable, Iterator

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
        pairs_prev = pairs_cur = range(len(cur.keys))
        added: list[int] = []
        deleted: list[int] = []
    else:
        where = dict(zip(prev.keys, range(len(prev.keys))))
        found = list(map(where.get, cur.keys))
        pairs_cur = [i for i, j in enumerate(found) if j is not None]
        pairs_prev = [found[i] for i in pairs_cur]
        added = [i for i, j in enumerate(found) if j is None]
        kept = set(pairs_prev)
        deleted = [j for j in range(len(prev.keys)) if j not in kept]
    changed = _changed(prev, cur, list(pairs_prev), list(pairs_cur))
    stats["added"] += len(added)
    stats["deleted"] += len(deleted)
    stats["changed"] += len(changed)
    stats["unchanged"] += len(pairs_cur) - len(changed)
    out: list[mf.Row] = [cur.row(i) for i in added]
    for j in deleted:
        r = mf.Row(prev.ids[j], op=mf.OP_DELETE, flags=0)
        r._key = prev.keys[j]
        out.append(r)
    out += _patch_rows(prev, cur, changed)
    if len(out) > 1:
        out.sort(key=lambda r: r.key)
    return out


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


def _changed(prev: Cols, cur: Cols, jp: list[int], ic: list[int]) -> list[tuple[int, int]]:
    """The (prev, cur) positions of matched records whose vector id, metadata bytes,
    document or URI differ."""
    if not ic:
        return []
    aligned = jp == ic
    def col(c: list, idx: list[int]) -> list:
        if aligned and len(idx) == len(c):
            return c
        return list(map(c.__getitem__, idx))
    differ = list(map(operator.ne, col(prev.vrefs, jp), col(cur.vrefs, ic)))
    pm, cm = col(prev.mraws, jp), col(cur.mraws, ic)
    if pm != cm:                                  # metadata bytes: equal bytes, equal values
        differ = list(map(operator.or_, differ, map(operator.ne, pm, cm)))
    for a, b in ((prev.docs, cur.docs), (prev.uris, cur.uris)):
        pa, cb = col(a, jp), col(b, ic)
        plain = set(map(type, pa)) | set(map(type, cb)) <= _PLAIN
        if plain and pa == cb:
            continue                              # str and None: equal means the same value and type
        ne = map(operator.ne, pa, cb) if plain else (not same(x, y) for x, y in zip(pa, cb))
        differ = list(map(operator.or_, differ, ne))
    return [(j, i) for j, i, d in zip(jp, ic, differ) if d]
