"""Manifests in the repository: writing bases and deltas, reading a namespace's state
(repository layer). See format/manifest.py for the encoding.

A namespace entry in a snapshot:
    {"name", "count", "base": segment-list blob id, "deltas": [{"chunks": [ids], "rows": n}],
     "logical_bytes"}
The state is the base with each delta applied in order. A new snapshot appends one delta
(only the rows that changed) or, when the chain gets long or heavy, writes a new base whose
unchanged segments deduplicate against the old one.
"""
from __future__ import annotations

import struct
from itertools import accumulate
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..errors import IntegrityError
from ..format import manifest as mf
from ..format.objects import BlobType
from .columns import Cols, Cursor, diff_run, strictly_increasing
from .deltarun import DeltaRun, LayerFeed, apply_deltas, apply_feed
from .hashing import digests_inline
from .rows import Unsorted
from .spool import TempRows

SEGMENT_AVG_MASK = 1023        # about 1,024 rows per segment
SEGMENT_MAX = 8192
DELTA_CHUNK = 4096
MAX_DELTAS = 16                # a new base after this many deltas...
MAX_DELTA_FRACTION = 0.25      # ...or when the deltas hold more rows than this share of the base


# ---- reading ------------------------------------------------------------------------------

def tree(repo, blob_id: bytes | str, decode):
    """Load a TREE blob (verified against its id) and decode it; failures are integrity errors."""
    raw_id = bytes.fromhex(blob_id) if isinstance(blob_id, str) else blob_id
    data = repo.load_blob(raw_id, BlobType.TREE)
    try:
        return decode(data)
    except (ValueError, TypeError, IndexError, KeyError, struct.error) as e:
        raise IntegrityError(f"manifest blob {raw_id.hex()[:16]} cannot be decoded: {e}") from None


def iter_base(repo, base_hex: str) -> Iterator[mf.Row]:
    for seg_id, _ in tree(repo, base_hex, mf.decode_segment_list):
        yield from tree(repo, seg_id, mf.decode_segment)


def iter_delta_layer(repo, layer: dict[str, Any]) -> Iterator[mf.Row]:
    for chunk in layer["chunks"]:
        yield from tree(repo, chunk, mf.decode_delta)


def iter_state_cols(repo, entry: dict[str, Any]) -> Iterator[Cols]:
    """The rows of a namespace at snapshot time as runs (a base segment each, with the delta
    layers, merged in layer order per key, applied where they touch a record), sorted by
    record key. A partitioned entry (parts.py) is read part by part."""
    if "parts" in entry:
        from .parts import iter_state_cols as partitioned
        yield from partitioned(repo, entry)
        return
    base = (Cols.of(*tree(repo, seg_id, mf.decode_segment_cols))
            for seg_id, _ in tree(repo, entry["base"], mf.decode_segment_list))
    if not entry["deltas"]:
        yield from base
        return
    feed = LayerFeed([(tree(repo, chunk, DeltaRun.decode) for chunk in layer["chunks"]) for layer in entry["deltas"]])
    try:
        yield from apply_feed(base, feed)
    except ValueError as e:            # a delta that does not fit its base (mf.apply), or undecodable
        raise IntegrityError(f"manifest of namespace {entry['name']!r}: {e}") from None


def iter_state(repo, entry: dict[str, Any]) -> Iterator[mf.Row]:
    """Every row of a namespace at snapshot time, sorted by record key."""
    for chunk in iter_state_cols(repo, entry):
        yield from chunk.rows()


# ---- writing ------------------------------------------------------------------------------

def sorted_runs(runs: Iterable[Cols]) -> Iterator[Cols]:
    """Pass runs through, raising Unsorted at the first row not after the one before it."""
    last = b""
    for run in runs:
        if not strictly_increasing(run.keys, last):
            raise Unsorted(run.keys[0])
        if len(run):
            last = run.keys[-1]
        yield run


KEY_HASH_LEN = 4        # bytes of keyed BLAKE3 of a record key that choose segment boundaries


def key_hash_input(keys: list[bytes]) -> tuple[bytes, list[int]]:
    """The record keys as one message buffer and its offsets, for the boundary hashes
    (keyed BLAKE3 of each key, cut to KEY_HASH_LEN bytes: docs/design.md §5)."""
    return b"".join(keys), list(accumulate(map(len, keys), initial=0))


def write_base(repo, packer, runs: Iterable[Cols], hold_dir: str | None = None) -> tuple[str, int]:
    """Write runs of rows (sorted) as segments and a segment list; returns (list blob id, count).
    With `hold_dir`, the blobs go to a private file there and reach the packer only once
    every row has arrived, so an exception while reading the rows (Unsorted) leaves nothing
    behind in the repository."""
    from .parts import HeldPacker
    out: list[tuple[str, int]] = []
    held = HeldPacker(repo, hold_dir) if hold_dir is not None else None
    try:
        write_base_parts(repo, held or packer, runs, None, lambda base, n, lo: out.append((base, n)))
        if held is not None:
            held.release(packer)
    finally:
        if held is not None:
            held.close()
    return out[0]


def write_base_parts(repo, packer, runs: Iterable[Cols], cut_rows: int | None,
                     on_part: Callable[[str, int, bytes | None], None]) -> None:
    """Write runs of rows (sorted) as segments and segment lists: one list per part, a part
    ending at the first segment cut after it holds `cut_rows` rows (None: one part).
    on_part(list blob id, rows, first record key or None when empty) is called per part.

    A segment is cut after a row whose key's keyed hash has its low bits zero, or when it
    holds SEGMENT_MAX rows (docs/design.md §5), so parts end where segments do and the
    same rows always give the same parts."""
    id_key = repo.master.id_key
    segments: list[tuple[bytes, int]] = []
    buf = Cols.empty()
    part_rows = 0
    part_lo: list[bytes | None] = [None]
    parts = 0

    def end_part() -> None:
        nonlocal segments, part_rows, parts
        list_id, _ = packer.add(BlobType.TREE, mf.encode_segment_list(segments))
        on_part(list_id.hex(), part_rows, part_lo[0])
        segments, part_rows, parts = [], 0, parts + 1
        part_lo[0] = None

    def cut() -> None:
        nonlocal buf, part_rows
        data = mf.encode_segment_cols(buf.ids, buf.vrefs, buf.mraws, buf.docs, buf.uris)
        seg_id, _ = packer.add(BlobType.TREE, data)
        segments.append((seg_id, len(buf)))
        if part_lo[0] is None and len(buf):
            part_lo[0] = buf.keys[0]
        part_rows += len(buf)
        buf = Cols.empty()
        if cut_rows is not None and part_rows >= cut_rows:
            end_part()

    def fill(run: Cols, pos: int, end: int) -> int:
        """Move rows pos..end-1 of run into the buffer, cutting whenever it reaches
        SEGMENT_MAX rows; returns end."""
        while len(buf) + (end - pos) >= SEGMENT_MAX:
            take = SEGMENT_MAX - len(buf)
            buf.extend(run.slice(pos, pos + take))
            cut()
            pos += take
        buf.extend(run.slice(pos, end))
        return end

    for run in runs:
        if not len(run):
            continue
        hashes = run.key_hashes.result() if run.key_hashes is not None else \
            digests_inline(id_key, *key_hash_input(run.keys), b"", KEY_HASH_LEN)
        boundary = np.flatnonzero((np.frombuffer(hashes, dtype=">u4") & SEGMENT_AVG_MASK) == 0).tolist()
        pos = 0
        for b in boundary:          # cut after row b, unless the size limit just cut there
            pos = fill(run, pos, b + 1)
            if len(buf):
                cut()
        fill(run, pos, len(run))
    if len(buf) or (not segments and not parts):
        cut()
    if segments:
        end_part()


def diff_into(prev: Iterator[Cols], tmp: TempRows, cur: Iterable[Cols],
              seen: Callable[[list[bytes]], None] | None = None) -> dict[str, int]:
    """Merge the previous state and the new rows (both runs sorted by key), a run at a time,
    spooling delta rows into tmp; `seen` gets the vector ids of the previous rows each run
    is compared with."""
    stats = {"added": 0, "changed": 0, "deleted": 0, "unchanged": 0}
    cursor = Cursor(prev)
    with tmp.env.begin(write=True) as txn:
        for run in cur:
            if not len(run):
                continue
            before = cursor.upto(run.last_key())
            if seen is not None:
                seen(before.vrefs)
            for d in diff_run(before, run, stats):
                tmp.put_delta(d, txn)
        for d in diff_run(cursor.upto(None), Cols.empty(), stats):
            tmp.put_delta(d, txn)
    return stats


def write_delta(packer, rows: Iterator[mf.Row]) -> dict[str, Any]:
    chunks: list[str] = []
    buf: list[mf.Row] = []
    n = 0
    for row in rows:
        buf.append(row)
        n += 1
        if len(buf) >= DELTA_CHUNK:
            chunks.append(packer.add(BlobType.TREE, mf.encode_delta(buf))[0].hex())
            buf = []
    if buf:
        chunks.append(packer.add(BlobType.TREE, mf.encode_delta(buf))[0].hex())
    return {"chunks": chunks, "rows": n}


def write_namespace(repo, packer, name: str, tmp: TempRows, prev: dict[str, Any] | None,
                    logical_bytes: int, runs: Iterator[Cols] | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """The new namespace entry for the new rows, given the previous entry (or None).

    The rows are those spooled in tmp, or `runs` when given: runs in record-key order (see
    sorted_runs), read once as they stream, so nothing but the delta is spooled; if they
    raise, nothing has been added to the packer yet."""
    if prev is None:
        if runs is None:
            base, count = write_base(repo, packer, tmp.iter_cols())
        else:
            base, count = write_base(repo, packer, runs, hold_dir=tmp.dir)
        return ({"name": name, "count": count, "base": base, "deltas": [], "logical_bytes": logical_bytes},
                {"added": count, "changed": 0, "deleted": 0, "unchanged": 0})
    stats = diff_into(iter_state_cols(repo, prev), tmp, tmp.iter_cols() if runs is None else runs)
    count = stats["added"] + stats["changed"] + stats["unchanged"]
    n_delta = tmp.count(tmp.delta)
    deltas = list(prev["deltas"])
    chain_rows = sum(d["rows"] for d in deltas) + n_delta
    entry = {"name": name, "count": count, "logical_bytes": logical_bytes}
    if n_delta == 0:
        entry.update(base=prev["base"], deltas=deltas)
    elif len(deltas) + 1 > MAX_DELTAS or chain_rows > MAX_DELTA_FRACTION * max(count, 1):
        new_runs = tmp.iter_cols() if runs is None else apply_deltas(iter_state_cols(repo, prev), tmp.iter_delta())
        base, _ = write_base(repo, packer, new_runs)
        entry.update(base=base, deltas=[])
    else:
        entry.update(base=prev["base"], deltas=deltas + [write_delta(packer, tmp.iter_delta())])
    return entry, stats
