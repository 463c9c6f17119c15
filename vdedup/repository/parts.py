"""Partitioned manifests: a namespace's manifest as key-range parts, each with its own base and
delta runs, compacted on its own (repository layer; docs/design.md §4.13, §5).

A namespace entry with the feature "parts" holds `parts`, a list of
    {"source": partition key, "lo": hex record key ("" = open below), "count", "base",
     "deltas": [layers], "age": backups since the base was written, ["ordered": false]}
A part covers the records of its source partition (model/partition.py: the piece of the
namespace one worker read) whose record key is at or after `lo` and before the next part's
`lo` of the same source. Parts of one source are listed in `lo` order; the state of a
source is its parts' states one after the other, and the namespace's state is the merge of
its sources' states (disjoint sets of records).

So a worker writes the parts of its source partition without coordinating with the others,
and the snapshot commit only names them. Compaction (merging a part's delta runs into a new
base: a two-level LSM, delta runs over a base) is per part and paced by the changes: every
part a backup brings delta rows to earns the source rewrite credit, those rows divided by
CHAIN_ROWS but at least the part's rows / LAYERS (`Tuning.earned`), counted in rows of
bases; the credit is kept on the source's first part (`credit`). Walking the parts in
order, a changed part gets a new base when the credit then covers its rows and it is at least
as due (delta rows per row against CHAIN_ROWS, or delta runs against LAYERS: `Tuning.due`)
as the parts were on average before the backup; its rows are taken from the credit. So what
compaction rewrites follows what the night changed (a quiet night rewrites little, a night
that changes nothing nothing), nights of about the same change cost about the same, parts
rewritten lately wait their turn, and every part's delta runs stay near CHAIN_ROWS times its
rows and LAYERS in number. A part is rewritten in any case (without taking from the
credit: these rewrites are rare, and the nights after them should not go without) when a
backup's delta has as many rows as the part (a new base then costs about what the delta run
would), or its delta runs would hold more than MAX_CHAIN_ROWS times its rows or number
MAX_LAYERS, or it grew past GROWN_FACTOR times the rows a part should hold and a segment. A source has about PARTS_PER_SOURCE parts (each of MIN_PART_ROWS
to PART_ROWS rows, `Tuning.rows_per_part`), small enough that a night's credit covers
several; a rewritten part holding more than SPLIT_FACTOR times that and a segment is split.

Entries written before parts existed (a single base and deltas) are read as one part of
the source "" (`parts_of`).
"""
from __future__ import annotations

import os
import struct
from bisect import bisect_left, bisect_right
from typing import Any, Callable, Iterable, Iterator

from ..errors import IntegrityError
from ..format.objects import BlobType
from . import manifest
from .columns import Cols
from .deltarun import apply_deltas
from .spool import TempRows

FEATURE = "parts"
PART_ROWS = 65_536             # rows per part at most when a base is cut into parts...
MIN_PART_ROWS = 1024           # ...and at least, about PARTS_PER_SOURCE parts per source between
PARTS_PER_SOURCE = 64
SPLIT_FACTOR = 2               # a part holding this many times the rows a part should have (and a
                               # segment) is split when it is rewritten...
GROWN_FACTOR = 4               # ...and rewritten when it grew past this many times (and a segment)
CHAIN_ROWS = 2.0               # a part a backup changes earns its delta rows / this in rows of bases to
LAYERS = 32                    # rewrite, at least its rows / LAYERS; a backup rewrites any part whose
MAX_CHAIN_ROWS = 4.0           # delta runs hold more than MAX_CHAIN_ROWS x its rows...
MAX_LAYERS = 64                # ...or number MAX_LAYERS
CREDIT_PARTS = 2               # credit is kept between -/+ the rows of this many of the largest parts
HOLD_ROWS = 4 * PART_ROWS      # a part compacted by a backup is rewritten from the rows it read, up to this


class Tuning:
    """The constants above, as one value a test or simulation may scale down."""

    def __init__(self, part_rows: int = PART_ROWS, min_part_rows: int = MIN_PART_ROWS,
                 parts_per_source: int = PARTS_PER_SOURCE, chain_rows: float = CHAIN_ROWS,
                 layers: int = LAYERS, max_chain_rows: float = MAX_CHAIN_ROWS, max_layers: int = MAX_LAYERS):
        self.part_rows, self.parts_per_source = part_rows, parts_per_source
        self.min_part_rows = min(min_part_rows, part_rows)
        self.chain_rows, self.layers = chain_rows, layers
        self.max_chain_rows, self.max_layers = max_chain_rows, max_layers

    def earned(self, part: dict[str, Any], delta_rows: int) -> float:
        """The credit a backup earns by bringing delta_rows to a part."""
        return max(delta_rows / self.chain_rows, part["count"] / self.layers) if delta_rows else 0.0

    def due(self, part: dict[str, Any], delta_rows: int = 0) -> float:
        """How due a part is for a new base (with delta_rows more in a new delta run): its
        delta rows per row against chain_rows, or its delta runs against layers, whichever
        is further along."""
        runs = len(part["deltas"]) + (1 if delta_rows else 0)
        return max((chain_rows(part) + delta_rows) / (self.chain_rows * max(part["count"], 1)), runs / self.layers)

    def rows_per_part(self, total: int | None) -> int:
        """The rows a part of a source of `total` rows should hold: about parts_per_source
        parts, each between min_part_rows and part_rows (None: part_rows)."""
        if total is None:
            return self.part_rows
        return max(self.min_part_rows, min(self.part_rows, total // self.parts_per_source))


DEFAULT = Tuning()


# ---- reading ------------------------------------------------------------------------------

def is_partitioned(entry: dict[str, Any]) -> bool:
    return "parts" in entry


def parts_of(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a namespace entry (a pre-parts entry: one part of source "")."""
    if is_partitioned(entry):
        return entry["parts"]
    part = {"source": "", "lo": "", "count": entry["count"], "base": entry["base"], "deltas": entry["deltas"],
            "age": len(entry["deltas"])}
    if entry.get("ordered") is False:
        part["ordered"] = False
    return [part]


def sources_of(entry: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The parts of each source, in the order the entry lists them."""
    out: dict[str, list[dict[str, Any]]] = {}
    for p in parts_of(entry):
        out.setdefault(p["source"], []).append(p)
    return out


def sub_entry(entry: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
    """An entry holding only some of `entry`'s parts (a restore task reads one such share;
    parts of one source stay in their order, so its state stays sorted)."""
    mine = [p for p in parts_of(entry) if any(p is q or p == q for q in parts)]
    if len(mine) != len(parts):
        raise ValueError("sub_entry: parts that are not the entry's")
    return {"name": entry["name"], "count": sum(p["count"] for p in mine), "features": [FEATURE], "parts": mine,
            "logical_bytes": 0}


def iter_part_cols(repo, part: dict[str, Any], name: str = "") -> Iterator[Cols]:
    return manifest.iter_state_cols(repo, {"name": name, "base": part["base"], "deltas": part["deltas"]})


def iter_source_cols(repo, parts: list[dict[str, Any]], name: str = "") -> Iterator[Cols]:
    for p in parts:
        yield from iter_part_cols(repo, p, name)


def iter_state_cols(repo, entry: dict[str, Any]) -> Iterator[Cols]:
    """The rows of a namespace at snapshot time as runs sorted by record key."""
    streams = [iter_source_cols(repo, parts, entry["name"]) for parts in sources_of(entry).values()]
    if len(streams) == 1:
        yield from streams[0]
    else:
        yield from merge_cols(streams, entry["name"])


def merge_cols(streams: list[Iterator[Cols]], name: str = "") -> Iterator[Cols]:
    """Merge sorted streams of runs holding disjoint keys into one sorted stream. Whole
    stretches are taken at once, so sources over disjoint key ranges merge at slice cost."""
    heads: list[Cols] = []
    its: list[Iterator[Cols]] = []
    for s in streams:
        first = _next_nonempty(s)
        if first is not None:
            heads.append(first)
            its.append(s)
    while heads:
        if len(heads) == 1:
            yield heads[0]
            yield from (c for c in its[0] if len(c))
            return
        i = min(range(len(heads)), key=lambda k: heads[k].keys[0])
        bound = min(heads[k].keys[0] for k in range(len(heads)) if k != i)
        run = heads[i]
        n = bisect_right(run.keys, bound)
        if n and run.keys[n - 1] == bound:
            raise IntegrityError(f"manifest of namespace {name!r}: a record is in two partitions")
        yield run.slice(0, n) if n < len(run) else run
        if n < len(run):
            heads[i] = run.slice(n)
        else:
            nxt = _next_nonempty(its[i])
            if nxt is None:
                del heads[i], its[i]
            else:
                heads[i] = nxt


def _next_nonempty(it: Iterator[Cols]) -> Cols | None:
    for c in it:
        if len(c):
            return c
    return None


def blob_parts(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """("base", segment list id) and ("chunk", delta blob id) of every part (reachable.py)."""
    return [x for p in parts_of(entry) for x in
            [("base", p["base"])] + [("chunk", c) for layer in p["deltas"] for c in layer["chunks"]]]


def same_manifest(x: dict[str, Any], y: dict[str, Any]) -> bool:
    """Whether two entries name exactly the same manifest blobs (diff's shortcut)."""
    def sig(e):
        return [(p["source"], p["lo"], p["base"], [d["chunks"] for d in p["deltas"]]) for p in parts_of(e)]
    return sig(x) == sig(y)


# ---- writing ------------------------------------------------------------------------------

def chain_rows(part: dict[str, Any]) -> int:
    return sum(d["rows"] for d in part["deltas"])


def too_big(count: int, per_part: int, factor: int = SPLIT_FACTOR) -> bool:
    """Whether a part of `count` rows is split when its base is written: it holds more than
    factor x per_part rows and a segment of the most rows (parts end at segment cuts)."""
    return count > factor * per_part + manifest.SEGMENT_MAX


def forced(part: dict[str, Any], delta_rows: int, count: int, per_part: int, tuning: Tuning) -> bool:
    """Whether a changed part is rewritten whatever the credit: this backup's delta has as
    many rows as the part (a new base costs about what the delta run would), it grew past
    GROWN_FACTOR x per_part rows (it is then split), or one more delta run would give it
    more than max_chain_rows x its rows of delta rows, or max_layers runs."""
    return (delta_rows >= max(count, 1) or too_big(count, per_part, GROWN_FACTOR)
            or len(part["deltas"]) + 1 >= tuning.max_layers
            or chain_rows(part) + delta_rows > tuning.max_chain_rows * max(count, part["count"], 1))


class HeldPacker:
    """A packer stand-in that keeps the blobs in a private file until `release`, so that a
    write interrupted by Unsorted leaves nothing in the repository."""

    def __init__(self, repo, directory: str):
        self.repo = repo
        self._f = open(os.path.join(directory, "held"), "w+b")
        os.chmod(self._f.name, 0o600)

    def add(self, blob_type: BlobType, data: bytes, blob_id: bytes | None = None) -> tuple[bytes, bool]:
        blob_id = blob_id or self.repo.content_id(blob_type, data)
        self._f.write(struct.pack(">BI", int(blob_type), len(data)) + blob_id)
        self._f.write(data)
        return blob_id, True

    def release(self, packer) -> None:
        self._f.seek(0)
        while head := self._f.read(37):
            t, n = struct.unpack(">BI", head[:5])
            packer.add(BlobType(t), self._f.read(n), head[5:])
        self.close()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
            os.unlink(self._f.name)


def write_bases(repo, packer, runs: Iterable[Cols], source: str, first_lo: str,
                cut_rows: int | None) -> list[dict[str, Any]]:
    """Write sorted runs as parts of `source`, age 0 (a new part starts at a segment
    boundary once the current one holds `cut_rows` rows; None: one part). The first part's
    lo is `first_lo`."""
    parts: list[dict[str, Any]] = []

    def on_part(base: str, count: int, lo: bytes | None) -> None:
        parts.append({"source": source, "lo": first_lo if not parts else lo.hex(),   # type: ignore[union-attr]
                      "count": count, "base": base, "deltas": [], "age": 0})

    manifest.write_base_parts(repo, packer, runs, cut_rows, on_part)
    return parts


class _Splitter:
    """Sorted runs handed out by key range, one range after the other."""

    def __init__(self, runs: Iterable[Cols]):
        self._runs = iter(runs)
        self._buf: Cols | None = None

    def below(self, hi: bytes | None) -> Iterator[Cols]:
        """The rows with key < hi (every remaining row when hi is None)."""
        while True:
            run = self._buf if self._buf is not None else next(self._runs, None)
            self._buf = None
            if run is None:
                return
            if not len(run):
                continue
            if hi is None or run.keys[-1] < hi:
                yield run
                continue
            n = bisect_left(run.keys, hi)
            if n:
                yield run.slice(0, n)
            self._buf = run.slice(n)
            return


def write_source(repo, packer, tmp_dir: str, source: str, prev_parts: list[dict[str, Any]],
                 runs: Iterable[Cols], tuning: Tuning = DEFAULT, expected_rows: int | None = None,
                 seen: Callable[[list[bytes]], None] | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The new parts of one source for its rows (sorted runs), given its previous parts
    (maybe none), and the counts (added, changed, deleted, unchanged). `expected_rows`:
    about how many rows a source without previous parts has (to size its parts). `seen`
    is given the content ids of the previous rows as the merge reads them (a run at a time)."""
    if not prev_parts:
        parts = write_bases(repo, packer, runs, source, "", tuning.rows_per_part(expected_rows))
        n = sum(p["count"] for p in parts)
        return parts, {"added": n, "changed": 0, "deleted": 0, "unchanged": 0}
    prev_parts = sorted(prev_parts, key=lambda p: p["lo"])
    stats = {"added": 0, "changed": 0, "deleted": 0, "unchanged": 0}
    split = _Splitter(runs)
    credit = float(prev_parts[0].get("credit", 0))
    # a changed part is rewritten when the credit covers it and it is at least as due as the
    # parts were on average before this backup (so parts rewritten lately wait their turn)
    bar = sum(map(tuning.due, prev_parts)) / len(prev_parts)
    per_part = tuning.rows_per_part(sum(p["count"] for p in prev_parts))
    out: list[dict[str, Any]] = []
    with TempRows(tmp_dir) as tmp:
        for i, prev in enumerate(prev_parts):
            prev = {k: v for k, v in prev.items() if k != "credit"}
            hi = bytes.fromhex(prev_parts[i + 1]["lo"]) if i + 1 < len(prev_parts) else None
            if i:
                tmp.clear_delta()
            # the part's new rows are kept (they are its new state, should it be rewritten)
            # unless it is too big to hold: its base is then written from the old one
            held: list[Cols] | None = [] if prev["count"] <= HOLD_ROWS else None
            st = manifest.diff_into(iter_part_cols(repo, prev), tmp, _kept(split.below(hi), held), seen)
            for k, v in st.items():
                stats[k] += v
            count = st["added"] + st["changed"] + st["unchanged"]
            n_delta = tmp.count(tmp.delta)
            credit += tuning.earned(prev, n_delta)
            age = prev.get("age", len(prev["deltas"])) + 1
            keep = {k: v for k, v in prev.items() if k in ("ordered",)}
            if n_delta == 0:
                # an unchanged part is never rewritten (its chain does not grow), so a run in
                # which nothing changed stores nothing but its snapshot
                out.append({**prev, "age": age})
                continue
            must = forced(prev, n_delta, count, per_part, tuning)
            paid = not must and credit >= prev["count"] and tuning.due(prev, n_delta) >= bar
            if must or paid:
                if held is not None and sum(map(len, held)) == count:
                    new_runs: Iterable[Cols] = held
                else:
                    new_runs = apply_deltas(iter_part_cols(repo, prev), tmp.iter_delta())
                if paid:
                    credit -= prev["count"]
                cut = per_part if too_big(count, per_part) else None
                for p in write_bases(repo, packer, new_runs, source, prev["lo"], cut):
                    out.append({**p, **keep})
            else:
                layer = manifest.write_delta(packer, tmp.iter_delta())
                out.append({**prev, "count": count, "deltas": list(prev["deltas"]) + [layer], "age": age})
    cap = CREDIT_PARTS * max(per_part, max(p["count"] for p in out))
    out[0]["credit"] = round(min(cap, credit))
    return out, stats


def _kept(runs: Iterable[Cols], into: list[Cols] | None) -> Iterator[Cols]:
    for run in runs:
        if into is not None:
            into.append(run)
        yield run


def entry_of(name: str, pieces: list[tuple[list[dict[str, Any]], int]]) -> dict[str, Any]:
    """A namespace entry naming the parts of each source (pieces: (parts, logical bytes))."""
    parts = [p for ps, _ in pieces for p in ps]
    return {"name": name, "count": sum(p["count"] for p in parts), "logical_bytes": sum(lb for _, lb in pieces),
            "features": [FEATURE], "parts": parts}
