"""The line helper's memo of the lines it parsed (child side of vdedup.repository.lines).

A nightly backup of a files export reads every line again, though most are byte for byte
those of the night before. The helper keeps, in the repository's local cache, a memo of the
lines it parsed in the last backup of the same export: for each line, a keyed digest of its
raw bytes (BLAKE2b, 16 bytes) and where in those bytes the answer of `job` lies (the id, the canonical bytes of
the metadata, the document, the URI, as byte ranges), plus which set of (key, type) pairs its
metadata has. A line whose digest is in the memo is answered from its own bytes without
being parsed or encoded again.

The memo is a cache of a pure function of the line's bytes: what it gives is, by
construction, what parsing gives (every range is checked against the parsed values when the
memo entry is made), whatever snapshot the repository holds. A line whose values cannot be
found in its bytes as ranges (metadata written in another key order or with spaces, strings
with escapes other than JSON's) gets no entry and is parsed every time. A memo that is
missing, damaged or from another key is ignored.

Nothing in it is plaintext: the file is sealed by the codec (format/objects.py seal_local:
AES-256-GCM under a subkey derived from a purpose key of the repository's master key and a
fresh salt), and the digests are keyed. Its form (little endian): MAGIC | seal_local(aad
MAGIC) of: u32 entries | u32 length | the pair sets as JSON | the entries, in the order of their lines (one per digest: the first),
column after column (COLUMNS).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from itertools import chain
from typing import Any

import numpy as np

from .arrays import unique
from .crypto.keys import derive

MAGIC = b"VDLINEMEMO1\n"
CTX_DIGEST = "vdedup 2026-12-06 line memo digest"
CTX_FILE = "vdedup 2026-12-06 line memo file"
HEAD = struct.Struct("<II")

# an entry, as columns: the line's digest (keyed BLAKE2b, 16 bytes) as two u64, the index of
# its (key, type) pair set, the kinds of its id, metadata, document and URI, and their byte
# ranges (start, end). Kinds: id 1 str (its UTF-8 bytes) 2 str (a JSON string literal) 3 int
# (its decimal digits); metadata 0 None 1 its canonical bytes; document and URI 0 None, 1 and
# 2 as the id
COLUMNS = (("d0", "<u8", 1), ("d1", "<u8", 1), ("pairs", "<u4", 1), ("kinds", "u1", 4), ("spans", "<u4", 8))
_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "null": type(None), "list": list,
          "dict": dict}
_NAMES = {t: n for n, t in _TYPES.items()}
_NULL = b"null"


def _table_of(d0: np.ndarray) -> np.ndarray:
    """An open-addressing table (linear probing, at most half full) of positions in `d0`,
    slot = the value's low bits (keyed digests: uniform); -1 marks a free slot."""
    size = 1 << max(4, (2 * len(d0) - 1).bit_length())
    table = np.full(size, -1, dtype=np.int32 if len(d0) < 1 << 31 else np.int64)
    todo = np.arange(len(d0))
    slot = (d0 & np.uint64(size - 1)).astype(np.int64)
    while len(todo):
        free = table[slot] < 0
        # of several entries wanting one free slot, the first takes it; the rest probe on
        cand, first = np.unique(slot[free], return_index=True)
        took = np.flatnonzero(free)[first]
        table[cand] = todo[took]
        left = np.ones(len(todo), dtype=bool)
        left[took] = False
        todo, slot = todo[left], (slot[left] + 1) & (size - 1)
    return table


def _repeats(d0: np.ndarray, d1: np.ndarray) -> list[int]:
    """The positions of digests (d0, d1) seen at an earlier position."""
    if len(d0) < 2:
        return []
    a0 = np.sort(d0)
    twice = unique(a0[1:][a0[1:] == a0[:-1]])        # first halves found more than once (few)
    if not len(twice):
        return []
    at = np.flatnonzero(np.isin(d0, twice))
    seen: set = set()
    drop = []
    for i, x in zip(at.tolist(), zip(d0[at].tolist(), d1[at].tolist())):
        if x in seen:
            drop.append(i)
        seen.add(x)
    return drop


def _empty() -> dict[str, np.ndarray]:
    return {name: np.zeros((0, w) if w > 1 else 0, dtype=dt) for name, dt, w in COLUMNS}


class LineMemo:
    """The memo of one export: `known(digests(lines))` looks lines up in the memo loaded from
    `path`; `keep` and `learn` note this run's lines; `save` writes them for the next run."""

    def __init__(self, root_key: bytes, path: str | None, fallback: str | None = None) -> None:
        """`fallback`: a memo to load when there is none at `path` (a partition of an export
        read whole before)."""
        self._hasher = hashlib.blake2b(key=derive(CTX_DIGEST, root_key), digest_size=16)
        self._fkey = derive(CTX_FILE, root_key)
        self.path = path
        self.old = _empty()
        self.old_pairs: list[frozenset] = []
        self._new: list[dict[str, np.ndarray]] = []
        self._pairs: dict[frozenset, int] = {}
        self._pair_keys: dict[tuple, int] = {}           # (keys, types) of a metadata dict -> index
        self._remap = np.zeros(0, dtype=np.int64)        # old pair set -> this run's, -1: not yet
        self._table: np.ndarray | None = None            # known()'s hash table of the old digests
        for where in (path, fallback):
            if not where or not os.path.exists(where):
                continue
            try:
                self._load(where)
            except Exception:             # damaged, another key: start afresh
                self.old = _empty()
                self.old_pairs = []
            break
        self._remap = np.full(len(self.old_pairs), -1, dtype=np.int64)

    # ---- the file -------------------------------------------------------------------------
    def _load(self, path: str) -> None:
        from .format.objects import open_local
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(MAGIC):
            return
        plain = open_local(self._fkey, MAGIC, data[len(MAGIC):])
        n, plen = HEAD.unpack_from(plain)
        pairs = [frozenset((k, _TYPES[t]) for k, t in p) for p in json.loads(plain[HEAD.size:HEAD.size + plen])]
        at = HEAD.size + plen
        cols = {}
        for name, dt, w in COLUMNS:
            arr = np.frombuffer(plain, dtype=dt, count=n * w, offset=at)
            at += arr.nbytes
            cols[name] = arr.reshape(n, w) if w > 1 else arr
        if at != len(plain) or (n and int(cols["pairs"].max()) >= len(pairs)):
            return
        self.old, self.old_pairs = cols, pairs

    def save(self) -> None:
        """Write the entries of the lines seen in this run (in line order, one per digest)."""
        if not self.path:
            return
        from .format.objects import seal_local
        cols = {name: np.concatenate([c[name] for c in self._new]) for name, _, _ in COLUMNS} \
            if self._new else _empty()
        drop = _repeats(cols["d0"], cols["d1"])
        if len(drop):               # identical lines: one entry, the first; the others in line order
            keep = np.ones(len(cols["d0"]), dtype=bool)
            keep[drop] = False
            cols = {k: v[keep] for k, v in cols.items()}
        table = sorted(self._pairs.items(), key=lambda kv: kv[1])
        pairs = json.dumps([sorted([k, _NAMES[t]] for k, t in p) for p, _ in table]).encode()
        plain = b"".join([HEAD.pack(len(cols["d0"]), len(pairs)), pairs] +
                         [np.ascontiguousarray(cols[name]).tobytes() for name, _, _ in COLUMNS])
        sealed = seal_local(self._fkey, MAGIC, plain)
        d = os.path.dirname(self.path)
        os.makedirs(d, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".memo-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + sealed)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    # ---- lines ------------------------------------------------------------------------------
    def digests(self, lines: list[bytes]) -> np.ndarray:
        """The keyed digests of lines, as rows of two u64."""
        h0 = self._hasher
        out = []
        for x in lines:
            h = h0.copy()
            h.update(x)
            out.append(h.digest())
        return np.frombuffer(b"".join(out), dtype="<u8").reshape(-1, 2)

    def known(self, d: np.ndarray) -> np.ndarray:
        """For each digest, the position of its entry in the old memo, or -1 (looked up in an
        open-addressing table over the digests' first halves, built on first use: a binary
        search of a million entries costs ~1 us a line in cache misses)."""
        out = np.full(len(d), -1, dtype=np.int64)
        d0, d1 = self.old["d0"], self.old["d1"]
        if not len(d0) or not len(d):
            return out
        if self._table is None:
            self._table = _table_of(d0)
        table = self._table
        mask = np.uint64(len(table) - 1)
        q0, q1 = d[:, 0], d[:, 1]
        todo = np.arange(len(d))
        slot = (q0 & mask).astype(np.int64)
        while len(todo):
            at = table[slot]
            filled = at >= 0
            hit = filled & (d0[at] == q0[todo]) & (d1[at] == q1[todo])
            out[todo[hit]] = at[hit]
            more = filled & ~hit                 # another entry in this slot: probe the next
            todo, slot = todo[more], (slot[more] + 1) & (len(table) - 1)
        return out

    def keep(self, d: np.ndarray, hits: np.ndarray) -> None:
        """Carry the old entries of the lines found (positions `hits` >= 0) into this run's memo."""
        found = hits[hits >= 0]
        if not len(found):
            return
        cols = {name: v[found] for name, v in self.old.items()}
        remap = self._remap
        used = cols["pairs"]
        for p in unique(used[remap[used] < 0]).tolist():
            remap[p] = self._pair_index(self.old_pairs[p])
        cols["pairs"] = remap[used].astype("<u4")
        self._new.append(cols)

    def learn(self, lines: list[bytes], d: np.ndarray, at: list[int], rids: list, metas: list,
              mraws: list[bytes], docs: list, uris: list, mpairs: set | None = None) -> None:
        """Entries for the lines at positions `at`, parsed now (their ids, metadata, metadata
        bytes, documents and URIs; `mpairs`: the (key, type) pairs of all those metadata); a
        line whose values are not ranges of its bytes gets none."""
        rest = self._learn_compact(lines, d, at, rids, metas, mraws, docs, uris, mpairs)
        if rest:
            self._learn_each(lines, d, [(at[j], rids[j], metas[j], mraws[j], docs[j], uris[j]) for j in rest])

    def _learn_compact(self, lines: list[bytes], d: np.ndarray, at: list[int], rids: list, metas: list,
                       mraws: list[bytes], docs: list, uris: list, mpairs: set | None) -> list[int]:
        """The lines written as {"id":<id>,"metadata":<its canonical bytes>} (what datagen
        and most compact writers give), found by rebuilding them a column at a time; returns
        the positions (in `at`) of the others."""
        everything = list(range(len(at)))
        if not at or docs.count(None) != len(docs) or uris.count(None) != len(uris):
            return everything
        id_types = set(map(type, rids))
        if id_types == {str}:
            try:
                texts = [r.encode("utf-8") for r in rids]
            except UnicodeEncodeError:
                return everything
            form, a0, gap, kind = b'{"id":"%s","metadata":%s}', 7, 13, 1
        elif id_types == {int}:
            texts = [b"%d" % r for r in rids]
            form, a0, gap, kind = b'{"id":%s,"metadata":%s}', 6, 12, 3
        else:
            return everything
        built = list(map(form.__mod__, zip(texts, mraws)))
        if len(at) == len(lines) and _joined_equal(built, lines):
            same = np.ones(len(built), dtype=bool)      # every line as rebuilt: one comparison
        else:
            mine = [lines[i].rstrip(b"\n") for i in at]
            same = np.fromiter(map(bytes.__eq__, built, mine), dtype=bool, count=len(built))
        if not same.any():
            return everything
        ok = same.nonzero()[0]
        chosen = list(map(metas.__getitem__, ok.tolist()))
        pidx = self._pair_indexes(chosen, mpairs)
        lt = np.array(list(map(len, texts)), dtype=np.int64)[ok]
        lm = np.array(list(map(len, mraws)), dtype=np.int64)[ok]
        spans = np.zeros((len(ok), 8), dtype="<u4")
        spans[:, 0] = a0
        spans[:, 1] = a0 + lt
        spans[:, 2] = a0 + lt + gap
        spans[:, 3] = a0 + lt + gap + lm
        kinds = np.zeros((len(ok), 4), dtype="u1")
        kinds[:, 0], kinds[:, 1] = kind, 1
        rows = np.array(at, dtype=np.int64)[ok]
        p = np.array(pidx, dtype=np.int64)
        good = p >= 0
        self._new.append({"d0": d[rows[good], 0], "d1": d[rows[good], 1], "pairs": p[good].astype("<u4"),
                          "kinds": kinds[good], "spans": spans[good]})
        return (~same).nonzero()[0].tolist()

    def _pair_indexes(self, metas: list, mpairs: set | None) -> list[int]:
        """The pair set index of each metadata value; `mpairs`: the pairs of a set of values
        these are among (or None)."""
        if mpairs is not None and set(map(type, metas)) == {dict}:
            sizes = set(map(len, metas))
            if len(sizes) == 1 and len({k for k, _ in mpairs}) == len(mpairs) == sizes.pop():
                # every value has every key, each key one type: all have the same pair set
                return [self._pair_index(frozenset(mpairs))] * len(metas)
        table = self._pair_keys
        if set(map(type, metas)) == {dict}:
            flat = list(map(type, chain.from_iterable(map(dict.values, metas))))
            keys, at = [], 0
            for k, size in zip(map(tuple, metas), map(len, metas)):
                keys.append((k, tuple(flat[at:at + size])))
                at += size
        else:
            keys = [(tuple(m), tuple(map(type, m.values()))) if type(m) is dict else () for m in metas]
        pidx = list(map(table.get, keys))
        for j, (key, pi) in enumerate(zip(keys, pidx)):
            if pi is None:
                pi = table[key] = self._pair_index(frozenset(zip(*key)) if key else _NONE)
                pidx[j] = pi
        return pidx

    def _learn_each(self, lines: list[bytes], d: np.ndarray, parsed: list[tuple]) -> None:
        """learn, line after line: each value found in the line's bytes."""
        rows, pairs_of, kinds, spans = [], [], [], []
        pair_index = self._pair_index
        for i, rid, meta, mraw, doc, uri in parsed:
            line = lines[i]
            got = _locate(line, rid)
            if got is None:
                continue
            ki, a, b = got
            if meta is not None:
                c = line.find(mraw)
                if c < 0:
                    continue
                km, e = 1, c + len(mraw)
                p = frozenset(zip(meta, map(type, meta.values()))) if type(meta) is dict else _NONE
            elif mraw == _NULL:
                km = c = e = 0
                p = _NONE
            else:
                continue
            kd = f = g = ku = h = m = 0
            if doc is not None:
                got = _locate(line, doc)
                if got is None:
                    continue
                kd, f, g = got
            if uri is not None:
                got = _locate(line, uri)
                if got is None:
                    continue
                ku, h, m = got
            pi = pair_index(p)
            if pi < 0:
                continue
            rows.append(i)
            pairs_of.append(pi)
            kinds += (ki, km, kd, ku)
            spans += (a, b, c, e, f, g, h, m)
        if rows:
            at = np.array(rows, dtype=np.int64)
            self._new.append({"d0": d[at, 0], "d1": d[at, 1], "pairs": np.array(pairs_of, dtype="<u4"),
                              "kinds": np.array(kinds, dtype="u1").reshape(-1, 4),
                              "spans": np.array(spans, dtype="<u4").reshape(-1, 8)})

    def _pair_index(self, pairs: frozenset) -> int:
        """The index of a pair set in this run's table; -1 for types the memo cannot name
        (JSON decodes to none of them)."""
        idx = self._pairs.get(pairs)
        if idx is None:
            if not all(t in _NAMES for _, t in pairs):
                return -1
            idx = self._pairs[pairs] = len(self._pairs)
        return idx


_NONE: frozenset = frozenset()


def _joined_equal(built: list[bytes], lines: list[bytes]) -> bool:
    """Whether each line is its rebuilt form followed by b"\\n" (the last line's b"\\n" may
    be missing), compared as two joined texts: the lines hold len(lines) newlines at most,
    so the texts can be equal only when no rebuilt form holds one, and then line by line."""
    text = b"".join(lines)
    joined = b"\n".join(built)
    return text == joined + b"\n" if text.endswith(b"\n") else text == joined


def _locate(line: bytes, v: Any) -> tuple[int, int, int] | None:
    """(kind, start, end) of a str or int value in a line's bytes, or None."""
    if type(v) is int:
        t = str(v).encode()
        a = line.find(t)
        return None if a < 0 else (3, a, a + len(t))
    if type(v) is not str:
        return None
    try:
        t = v.encode("utf-8")
    except UnicodeEncodeError:
        t = None
    if t is not None:
        a = line.find(t)
        if a >= 0:
            return 1, a, a + len(t)
    for ascii_only in (False, True):
        t = json.dumps(v, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
        a = line.find(t)
        if a >= 0:
            return 2, a, a + len(t)
    return None


def value(line: bytes, kind: int, a: int, b: int) -> Any:
    """A value from its kind and byte range in a line (see COLUMNS)."""
    if kind == 0:
        return None
    if kind == 1:
        return line[a:b].decode("utf-8")
    if kind == 3:
        return int(line[a:b])
    return json.loads(line[a:b].decode("utf-8", "surrogatepass"))
