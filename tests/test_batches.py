"""The batch-at-a-time data path gives exactly what the record-at-a-time definitions give.

Each fast path (runs of rows merged with dict look-ups and slices, segments cut per run,
a block of equal payloads encoded as one array, a batch's metadata bytes in one encoder
pass, index locations per pack) is compared on random data with a plain, row-by-row
statement of the rule it implements (docs/design.md §4-§5), written out here."""
from __future__ import annotations

import itertools
import random
import time

import numpy as np
import pytest
from blake3 import blake3

from vdedup.backend import LocalBackend
from vdedup.format import block, manifest as mf, pack as packfmt
from vdedup.format.objects import BlobType
from vdedup.format.values import meta_bytes, meta_bytes_many
from vdedup.format.vectors import dense_batch_rows, split_payload
from vdedup.repository import Repository
from vdedup.repository import manifest as rm
from vdedup.repository.columns import Cols, Cursor, diff_run
from vdedup.repository.deltarun import DeltaRun, LayerFeed, apply_deltas, apply_feed
from vdedup.repository.packer import Packer

# ---- reference definitions, one row at a time ------------------------------------------


def ref_diff(prev: list[mf.Row], cur: list[mf.Row]) -> list[mf.Row]:
    """§5 Deltas: merge-walk in key order; only in prev -> DELETE, only in cur -> FULL,
    in both and different -> PATCH (mf.diff)."""
    out, i, j = [], 0, 0
    while i < len(prev) or j < len(cur):
        if j == len(cur) or (i < len(prev) and prev[i].key < cur[j].key):
            out.append(mf.Row(prev[i].id, op=mf.OP_DELETE, flags=0))
            i += 1
        elif i == len(prev) or cur[j].key < prev[i].key:
            out.append(cur[j])
            j += 1
        else:
            d = mf.diff(prev[i], cur[j])
            if d is not None:
                out.append(d)
            i, j = i + 1, j + 1
    return out


def ref_apply(rows: list[mf.Row], delta: list[mf.Row]) -> list[mf.Row]:
    """§5 Reading a namespace: per key, the base row (or absent), then every delta row in order."""
    state = {r.key: r for r in rows}
    for d in delta:
        new = mf.apply(state.get(d.key), d)
        if new is None:
            state.pop(d.key, None)
        else:
            state[d.key] = new
    return [state[k] for k in sorted(state)]


def ref_segment_sizes(keys: list[bytes], id_key: bytes, mask: int, limit: int) -> list[int]:
    """§5 Base: cut after a row whose keyed hash has its low bits zero, or at `limit` rows."""
    sizes, n = [], 0
    for k in keys:
        n += 1
        if int.from_bytes(blake3(k, key=id_key).digest(4), "big") & mask == 0 or n >= limit:
            sizes.append(n)
            n = 0
    if n or not sizes:
        sizes.append(n)
    return sizes


# ---- random rows --------------------------------------------------------------------------

def _full(rid, vref, meta, doc, uri) -> mf.Row:
    """A row as backup makes it: metadata held as its canonical bytes."""
    return mf.Row(rid, vref, None, doc, uri, mraw=meta_bytes(meta))


def _row(rng: random.Random, i: int, version: int = 0) -> mf.Row:
    meta = None if i % 9 == 0 else {"k": i, "v": version, "tags": [f"t{i % 3}"], "f": i / 3}
    doc = None if i % 5 == 0 else f"doc {i} {version if i % 7 == 0 else ''}"
    return _full(i if i % 2 else f"id-{i:05d}", blake3(f"{i}/{version}".encode()).digest(), meta, doc,
                 f"u{i}" if i % 4 == 0 else None)


_NEW_IDS = itertools.count(10)


def _state(rng: random.Random, n: int) -> list[mf.Row]:
    return sorted((_row(rng, i) for i in rng.sample(range(3 * n), n)), key=lambda r: r.key)


def _changed(rng: random.Random, prev: list[mf.Row]) -> list[mf.Row]:
    out = []
    for r in prev:
        x = rng.random()
        if x < 0.05:
            continue                                            # deleted
        if x < 0.15:
            vref, meta, doc, uri = r.vref, r.meta, r.doc, r.uri
            what = rng.randrange(5)
            if what == 0:
                vref = blake3(vref).digest()
            elif what == 1:
                meta = {**(meta or {}), "v": 7, "added": [1]}
                meta.pop("f", None)
            elif what == 2:
                meta = None if meta is not None else {"new": 1}
            elif what == 3:
                doc = None if doc else "now a document"
            else:
                uri = "changed"
            out.append(_full(r.id, vref, meta, doc, uri))
        else:
            out.append(r)
    first = next(_NEW_IDS) * 100_000                        # new records: ids no earlier layer used
    extra = [_row(rng, first + i) for i in range(rng.randrange(len(prev) // 10 + 2))]
    return sorted(out + extra, key=lambda r: r.key)


def _runs(rows: list[mf.Row], rng: random.Random) -> list[Cols]:
    out, i = [], 0
    while i < len(rows):
        n = rng.choice([1, 3, 50, 200, 1000])
        out.append(Cols.from_rows(rows[i:i + n]))
        i += n
    return out


def _same_rows(a: list[mf.Row], b: list[mf.Row]) -> None:
    assert [(r.key, r.op, r.flags) for r in a] == [(r.key, r.op, r.flags) for r in b]
    assert a == b                    # ids, vector ids, metadata bytes, documents, uris


@pytest.mark.parametrize("seed", range(6))
def test_runs_diff_like_the_row_by_row_merge(seed):
    rng = random.Random(seed)
    prev = _state(rng, rng.choice([0, 5, 700, 3000]))
    cur = _changed(rng, prev)
    stats = {"added": 0, "changed": 0, "deleted": 0, "unchanged": 0}
    cursor = Cursor(iter(_runs(prev, rng)))
    got: list[mf.Row] = []
    for run in _runs(cur, rng):
        got += diff_run(cursor.upto(run.last_key()), run, stats)
    got += diff_run(cursor.upto(None), Cols.empty(), stats)
    want = ref_diff(prev, cur)
    _same_rows(got, want)
    assert stats["added"] + stats["changed"] + stats["unchanged"] == len(cur)
    assert stats["deleted"] == sum(1 for r in want if r.op == mf.OP_DELETE)
    assert stats["changed"] == sum(1 for r in want if r.op == mf.OP_PATCH)


@pytest.mark.parametrize("seed", range(6))
def test_deltas_apply_to_runs_like_row_by_row(seed):
    rng = random.Random(seed)
    base = _state(rng, rng.choice([0, 40, 2500]))
    layers, state = [], base
    for _ in range(rng.randrange(1, 4)):                       # several layers: keys repeat across them
        nxt = _changed(rng, state)
        layers.append(ref_diff(state, nxt))
        state = nxt
    merged = sorted(((r.key, n, r) for n, layer in enumerate(layers) for r in layer), key=lambda t: t[:2])
    delta = [t[2] for t in merged]
    got = [r for run in apply_deltas(_runs(base, rng), iter(delta)) for r in run.rows()]
    _same_rows(got, ref_apply(base, delta))
    _same_rows(got, state)


@pytest.mark.parametrize("seed", range(8))
def test_delta_layers_apply_one_after_the_other_like_row_by_row(seed):
    """Reading a manifest applies its delta layers to each base run one layer at a time,
    column by column (metadata patches in one batch): the same rows as mf.apply row by row,
    with metadata the JSON form holds and metadata only the typed encoding holds."""
    rng = random.Random(seed)
    base = _state(rng, rng.choice([0, 40, 2500]))
    for k in range(0, len(base), 97):          # typed-only metadata values in some records
        r = base[k]
        base[k] = _full(r.id, r.vref, {"b": b"\x00", "k": k, "f": float("nan")}, r.doc, r.uri)
    layers, state = [], base
    for _ in range(rng.randrange(1, 6)):
        nxt = _changed(rng, state)
        layers.append(ref_diff(state, nxt))
        state = nxt

    def chunks(layer):
        i = 0
        while i < len(layer):
            n = rng.choice([1, 7, 100, 4096])
            yield DeltaRun.decode(mf.encode_delta(layer[i:i + n]))
            i += n
    feed = LayerFeed([chunks(layer) for layer in layers])
    got = [r for run in apply_feed(_runs(base, rng), feed) for r in run.rows()]
    _same_rows(got, state)
    merged = sorted(((r.key, n, r) for n, layer in enumerate(layers) for r in layer), key=lambda t: t[:2])
    _same_rows(got, ref_apply(base, [t[2] for t in merged]))


@pytest.mark.parametrize("mask, limit", [(rm.SEGMENT_AVG_MASK, rm.SEGMENT_MAX), (7, 5), (3, 1), (63, 40)])
def test_segments_are_cut_where_the_row_by_row_rule_cuts(repo_path, monkeypatch, mask, limit):
    monkeypatch.setattr(rm, "SEGMENT_AVG_MASK", mask)
    monkeypatch.setattr(rm, "SEGMENT_MAX", limit)
    repo, _ = Repository.init(LocalBackend(str(repo_path)), "pw")
    rng = random.Random(mask)
    rows = _state(rng, 3000)
    packer = Packer(repo)
    list_id, count = rm.write_base(repo, packer, iter(_runs(rows, rng)))
    packer.flush()
    segments = mf.decode_segment_list(repo.load_blob(bytes.fromhex(list_id), BlobType.TREE))
    assert count == len(rows)
    assert [n for _, n in segments] == ref_segment_sizes([r.key for r in rows], repo.master.id_key, mask, limit)
    back = [r for seg_id, _ in segments for r in mf.decode_segment(repo.load_blob(seg_id, BlobType.TREE))]
    assert back == rows
    repo.close()


def test_record_keys_of_a_column():
    ids = ["a", "é", "x" * 300, "\ud800", ""]
    assert mf.record_keys(ids) == [mf.record_key(i) for i in ids]
    ints = [0, -1, 2 ** 63, -(2 ** 63)]
    assert mf.record_keys(ints) == [mf.record_key(i) for i in ints]


# ---- blocks, metadata, index -------------------------------------------------------------

@pytest.mark.parametrize("dim, dtype", [(768, np.float32), (33, np.float16), (5, np.float64), (7, np.uint8),
                                        (3, np.int8)])
def test_a_block_of_equal_payloads_encodes_like_blob_by_blob(dim, dtype):
    arr = (np.random.default_rng(dim).standard_normal((300, dim)) * 50).astype(dtype)
    buf, width = dense_batch_rows({"v": arr, "w": arr[:, :2]})
    rows = np.frombuffer(buf, dtype=np.uint8).reshape(-1, width)
    blobs = [r.tobytes() for r in rows]
    itemsize, head = split_payload(blobs[0])
    encoded = block.encode_rows_block(rows, head, itemsize)
    assert encoded == block.encode_block(blobs, vector_payloads=True)
    assert block.decode_block(encoded) == blobs
    # the rows given as several arrays (a block filled from several batches), empty ones too
    pieces = [rows[:1], rows[1:1], rows[1:120], rows[120:299], rows[299:]]
    assert block.encode_rows_block(pieces, head, itemsize) == encoded


@pytest.mark.parametrize("head", [0, 3, 4, 13, 20])
def test_a_block_of_rows_in_pieces_encodes_like_blob_by_blob_whatever_the_head_length(head):
    """Bodies of 4-byte elements are rotated in place when the heads keep them aligned, through
    a copy otherwise; either way the bytes of encode_block."""
    import struct
    import zstandard
    rows = np.random.default_rng(head).integers(0, 256, (301, head + 4 * 45), dtype=np.uint8)
    lane = block.shuffle(rows[:, head:].tobytes(), 4)
    # the codec's plaintext as the spec lays it out (format/block.py, docs/design.md)
    table = b"".join(struct.pack(">IIB", head, 4 * 45, 4) for _ in rows)
    want = struct.pack(">I", len(rows)) + table + rows[:, :head].tobytes() + struct.pack(">Q", 0) + \
        struct.pack(">Q", 0) + struct.pack(">Q", len(lane)) + lane + struct.pack(">Q", 0)
    got = block.encode_rows_block([rows[:77], rows[77:]], head, 4)
    assert got[0] == block.CODEC_LANES and zstandard.ZstdDecompressor().decompress(got[1:]) == want
    assert got == block.encode_rows_block(rows, head, 4)
    assert (block.decode_block_rows(got) == rows).all()


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_shuffle_is_the_byte_transpose_of_the_spec(k):
    data = np.random.default_rng(k).bytes(k * 1000)
    src = data
    if k == 4:                 # §4.4: rotate each little-endian 32-bit word left by one bit first
        w = np.frombuffer(data, dtype="<u4")
        src = ((w << np.uint32(1)) | (w >> np.uint32(31))).astype("<u4").tobytes()
    n = len(data) // k
    want = bytes(src[i * k + j] for j in range(k) for i in range(n))
    assert block.shuffle(data, k) == want
    assert block.unshuffle(want, k) == data


METAS = [
    [{"a": 1, "b": [1, "x", None, True], "c": 1.5}, None, {"z": "é\n\u2028\ud800"}, {}],
    [{"a": {"b": 1}}, {"a": [1, {"x": 1}]}],
    [{"a": float("nan")}, {"a": 1}],
    [{"a": np.float32(1.5)}],
    [{"a": (1, 2)}, {"a": [[1, 2]]}],
    ["plain", 3, 2.5, None, True],
    [{"a": -0.0, "b": 1e300, "c": 2 ** 70}],
    [{"b": 1, "a": 2}, {"a": 2, "b": 1}],
]


@pytest.mark.parametrize("values", METAS)
def test_metadata_bytes_of_a_batch_are_each_values_bytes(values):
    assert meta_bytes_many(values) == [meta_bytes(v) for v in values]


def test_index_locations_per_pack_match_blob_locations():
    rng = np.random.default_rng(0)
    blocks = [packfmt.BlockInfo(n, 37 + 1000 * n, 990, 1 + n % 2,
                                tuple((rng.bytes(32), int(rng.integers(1, 5000))) for _ in range(n + 3)))
              for n in range(4)]
    pid = rng.bytes(32)
    assert packfmt.location_bytes(pid, blocks) == [(i, loc.to_bytes()) for i, loc in packfmt.locations(pid, blocks)]


# ---- reading back ------------------------------------------------------------------------

def _batch(ids: list, vectors: np.ndarray, version: int):
    from vdedup.model import RecordBatch
    return RecordBatch(ids=list(ids), dense={"": vectors},
                       metadata=[{"i": i, "v": version} if i % 3 else None for i in range(len(ids))],
                       documents=[f"d{i}" for i in range(len(ids))])


@pytest.mark.parametrize("early_bytes", [0, 40_000, "default"])
@pytest.mark.parametrize("plan", ["look-ups", "walk"])
@pytest.mark.parametrize("workers", [1, 3])
def test_restore_reads_vectors_spread_over_many_packs(repo_path, monkeypatch, workers, plan, early_bytes):
    """Nights that each change every fifth record put the newest vectors of neighbouring
    records in different blocks; with a window of one recent block most rows are set aside
    and read in location order. Every record must come back exactly, whatever the path
    (with workers: threads, and content ids from hash worker processes; the plan made by a
    look-up per row, or by one walk over the index in stretches of 64 entries; blocks read
    while the plan is made: only the `ahead` first, or as many as EARLY_BYTES allows (some
    or all of them), the walk finding them by looking up one row in EARLY_STRIDE, so that
    some blocks the stream needs first are not among them)."""
    from vdedup.repository import packer as packer_mod, reader, writer as writer_mod
    if early_bytes != "default":
        monkeypatch.setattr(reader, "EARLY_BYTES", early_bytes)
    if early_bytes == 40_000:
        monkeypatch.setattr(reader, "EARLY_STRIDE", 64)         # misses blocks of the first rows
    if plan == "walk":
        monkeypatch.setattr(reader, "JOIN_MIN_ROWS", 1)
        monkeypatch.setattr(reader, "JOIN_CHUNK", 64)
    walked = []
    joined = reader._joined_plan
    monkeypatch.setattr(reader, "_joined_plan", lambda *a: walked.append(1) or joined(*a))
    monkeypatch.setattr(packer_mod, "BLOCK_TARGET", 4096)          # many small blocks
    monkeypatch.setattr(reader, "RECENT_BLOCKS", 1)
    monkeypatch.setattr(reader, "HASH_AFTER", 0)                   # hash worker processes from the start
    monkeypatch.setattr(writer_mod, "HASH_AFTER", 0)
    seen_aside = []
    set_aside = reader._set_aside
    monkeypatch.setattr(reader, "_set_aside", lambda b: seen_aside.append(set_aside(b)) or seen_aside[-1])
    early = []                      # blocks read while the plan was made (with workers)
    prefetch = reader._BlockReader.prefetch
    monkeypatch.setattr(reader._BlockReader, "prefetch",
                        lambda self, b: (n := len(self._early), prefetch(self, b),
                                         early.append((b, len(self._early) > n)))[1])
    repo, _ = Repository.init(LocalBackend(str(repo_path)), "pw")
    rng = np.random.default_rng(5)
    ids = [f"r{i:05d}" for i in range(1500)]
    vectors = rng.standard_normal((1500, 24)).astype(np.float32)
    prev = None
    for night in range(4):
        if night:
            changed = np.arange(night, 1500, 5)
            vectors[changed] = rng.standard_normal((len(changed), 24)).astype(np.float32)
        writer = repo.writer(workers=workers)
        runs = [writer.store_batch(_batch(ids[a:a + 500], vectors[a:a + 500], night)) for a in range(0, 1500, 500)]
        entry, _ = writer.write_namespace("", prev, iter(runs), ordered=True)
        snap = repo.new_snapshot("test://spread", "files", [], None)
        snap.collections.append({"name": "c", "schema": {}, "count": entry["count"], "namespaces": [entry]})
        writer.commit(snap)
        prev = entry
    got = {}
    for b in repo.read_namespace(prev, batch_size=128, workers=workers):
        for rec in b.records():
            got[rec.id] = rec
    assert seen_aside and seen_aside[-1].sum() > 100              # the set-aside path ran
    assert walked == ([1] if plan == "walk" else [])
    started = [b for b, read in early if read]
    ahead = 2 * workers + 1 if workers > 1 else 0
    if early_bytes == 0 and plan == "walk":   # numbered in id order, started in the order the stream needs them
        assert len(set(started)) == len(started) == ahead
    elif early_bytes == 0:
        assert started == list(range(ahead))
    else:
        assert len(set(started)) == len(started)
        assert len(started) > ahead if workers > 1 else not started
    assert sorted(got) == ids
    for i, rid in enumerate(ids):
        assert got[rid].vectors[""].tobytes() == vectors[i].tobytes()
        assert got[rid].metadata == ({"i": i % 500, "v": 3} if (i % 500) % 3 else None)
        assert got[rid].document == f"d{i % 500}"
    repo.close()


def test_hash_workers_give_the_digests_the_caller_would(monkeypatch):
    from vdedup.repository import hashing
    monkeypatch.setattr(hashing, "SLOT", 1 << 16)                  # jobs split across the slot
    key = bytes(range(32))
    rng = np.random.default_rng(3)
    sizes = rng.integers(0, 9000, 400)
    data = rng.bytes(int(sizes.sum()))
    offsets = [0] + np.cumsum(sizes).tolist()
    want = hashing.digests_inline(key, data, offsets, b"\x01")
    assert want == b"".join(blake3(b"\x01" + data[a:b], key=key).digest() for a, b in zip(offsets, offsets[1:]))
    workers = hashing.HashWorkers(key, 2)
    try:
        assert len(workers) == 2
        assert not _shared_files(), "the children's shared-memory files are unlinked once they are started"
        assert workers.digests(data, offsets, b"\x01") == want
        assert workers.digests(data, offsets, b"", 4) == hashing.digests_inline(key, data, offsets, b"", 4)
        for w in workers._all:                                      # a worker that dies: the caller hashes
            w.proc.kill()
            w.proc.wait()
        assert workers.digests(data, offsets, b"\x01") == want
    finally:
        workers.close()
    assert not _hash_children()


@pytest.mark.parametrize("wrong", [False, True])
def test_a_restore_verifies_blocks_hashed_while_the_next_are_read(repo_path, monkeypatch, wrong):
    """Once the plan is made, a block's content ids are computed by a hash worker while the
    thread that read it reads on: every vector still comes back exact, and a content id
    that does not match stops the read."""
    import threading
    from vdedup.errors import IntegrityError
    from vdedup.repository import hashing, packer as packer_mod, parallel, reader
    monkeypatch.setattr(packer_mod, "BLOCK_TARGET", 4096)          # many small blocks
    monkeypatch.setattr(reader, "HASH_AFTER", 0)
    monkeypatch.setattr(reader, "EARLY_BYTES", 0)                  # most blocks read after the plan
    init = parallel.Workers.__init__

    def ready_at_once(self, *a, **k):                             # the hash workers ready before the plan
        init(self, *a, **k)
        if self._starter is not None:
            self._starter.join()
    monkeypatch.setattr(parallel.Workers, "__init__", ready_at_once)
    threads = []
    digests = hashing.HashWorkers.digests

    def spy(self, data, offsets, prefix=b"", dlen=32):
        name = threading.current_thread().name
        threads.append(name)
        out = digests(self, data, offsets, prefix, dlen)
        if wrong and name.startswith("vdedup-hash") and threads.count(name) == 1:
            return out[:-1] + bytes([out[-1] ^ 1])                  # one id of a block hashed aside
        return out
    monkeypatch.setattr(hashing.HashWorkers, "digests", spy)
    repo, _ = Repository.init(LocalBackend(str(repo_path)), "pw")
    ids = [f"r{i:05d}" for i in range(1500)]
    vectors = np.random.default_rng(6).standard_normal((1500, 24)).astype(np.float32)
    writer = repo.writer(workers=1)
    runs = [writer.store_batch(_batch(ids[a:a + 500], vectors[a:a + 500], 0)) for a in range(0, 1500, 500)]
    entry, _ = writer.write_namespace("", None, iter(runs), ordered=True)
    snap = repo.new_snapshot("test://later", "files", [], None)
    snap.collections.append({"name": "c", "schema": {}, "count": entry["count"], "namespaces": [entry]})
    writer.commit(snap)
    got = {}
    if wrong:
        with pytest.raises(IntegrityError, match="does not match its content id"):
            for b in repo.read_namespace(entry, batch_size=128, workers=2):
                pass
    else:
        for b in repo.read_namespace(entry, batch_size=128, workers=2):
            for rec in b.records():
                got[rec.id] = rec.vectors[""].tobytes()
        assert got == {rid: vectors[i].tobytes() for i, rid in enumerate(ids)}
    assert any(t.startswith("vdedup-hash") for t in threads)       # hashed aside, not by the reading threads
    repo.close()


def _hash_children() -> list[int]:
    """Running (not zombie) child processes of this one that are hash workers."""
    import os
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        if int(ppid) == os.getpid() and state != "Z" and b"vdedup.hashworker" in cmd:
            out.append(int(pid))
    return out


def _shared_files() -> list[str]:
    import glob
    import os
    return glob.glob(f"/dev/shm/vdedup-hash-{os.getpid()}-*") + glob.glob(f"/tmp/vdedup-hash-{os.getpid()}-*")


@pytest.mark.parametrize("wait", [0.0, 2.0])
def test_restore_workers_start_their_hash_processes_aside_and_stop_them(wait):
    """Workers start the hash processes on a thread (blocks read meanwhile are hashed by the
    thread that read them); closed before or after they are ready, none is left running."""
    import time
    from types import SimpleNamespace
    from vdedup.repository.parallel import Workers
    key = bytes(range(32))
    repo = SimpleNamespace(master=SimpleNamespace(id_key=key))
    rows = np.random.default_rng(4).integers(0, 256, (300, 1000), dtype=np.uint8)
    want = b"".join(blake3(b"\x02" + r.tobytes(), key=key).digest() for r in rows)
    pool = Workers(repo, 2)
    assert pool.content_id_rows(2, rows).tobytes() == want          # ready or not
    time.sleep(wait)
    if wait:
        assert pool._hashers is not None and len(pool._hashers) == 2
        assert pool.content_id_rows(2, rows).tobytes() == want
    pool.close()
    assert not _hash_children()
    assert not _shared_files()


@pytest.mark.parametrize("workers, max_entries", [(1, 1 << 20), (3, 1 << 20), (3, 500)])
def test_blobs_stored_earlier_in_a_session_are_not_stored_again(repo_path, monkeypatch, workers, max_entries):
    """Index files written during a session reach the index cache only when it flushes (or
    holds max_entries): until then the session itself must know what it stored."""
    from vdedup.model import RecordBatch
    from vdedup.repository import packer as packer_mod
    monkeypatch.setenv("VDEDUP_PACK_SIZE", "1")                    # a pack (and index file) per MiB
    monkeypatch.setattr(packer_mod, "MAX_ENTRIES", max_entries)
    repo, _ = Repository.init(LocalBackend(str(repo_path)), "pw")
    vectors = np.random.default_rng(9).standard_normal((20000, 256)).astype(np.float32)
    writer = repo.writer(workers=workers)
    first = []
    for a in range(0, 20000, 1000):                                 # ~10 packs, most indexed on the way
        first.append(writer.store_batch(RecordBatch(ids=[f"a{i}" for i in range(a, a + 1000)],
                                                    dense={"": vectors[a:a + 1000]})))
    assert sum(b.new_blobs for b in first) == 20000
    deadline = time.monotonic() + 30
    while len(list((repo_path / "index").iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)                                            # the saver indexes packs beside us
    assert len(list((repo_path / "index").iterdir())) >= 2
    again = writer.store_batch(RecordBatch(ids=[f"b{i}" for i in range(20000)], dense={"": vectors}))
    assert again.new_blobs == 0
    assert again.vrefs.tobytes() == b"".join(b.vrefs.tobytes() for b in first)
    writer.flush()
    writer.close()
    assert repo.index.count() == 20000
    assert all(repo.index.contains_many([again.vrefs[i].tobytes() for i in range(20000)]))
    repo.close()


def _one_snapshot(repo_path, n: int, dim: int, seed: int):
    """A new repository holding one snapshot of n records r0000.. (random dim-d vectors):
    (the open repository, the namespace entry)."""
    repo, _ = Repository.init(LocalBackend(str(repo_path)), "pw")
    rng = np.random.default_rng(seed)
    ids = [f"r{i:04d}" for i in range(n)]
    writer = repo.writer(workers=1)
    runs = [writer.store_batch(_batch(ids, rng.standard_normal((n, dim)).astype(np.float32), 0))]
    entry, _ = writer.write_namespace("", None, iter(runs), ordered=True)
    snap = repo.new_snapshot("test://one", "files", [], None)
    snap.collections.append({"name": "c", "schema": {}, "count": entry["count"], "namespaces": [entry]})
    writer.commit(snap)
    return repo, entry


@pytest.mark.parametrize("workers", [1, 2])
def test_a_row_whose_index_entry_points_at_another_blob_is_refused_before_it_is_returned(repo_path, workers):
    """Two vector blobs of one block whose index entries are swapped: the rows read from
    the block (one array per block) no longer match their content ids, and reading stops
    with an IntegrityError naming the blob; a position past the block's end likewise."""
    from vdedup.errors import IntegrityError
    from vdedup.format.pack import BlobLocation
    repo, entry = _one_snapshot(repo_path, 300, 16, 9)
    assert sum(len(b) for b in repo.read_namespace(entry, workers=workers)) == 300
    vrefs = [r.vref for r in repo.namespace_rows(entry)]
    a, b = vrefs[10], vrefs[11]
    la, lb = repo.index.get(a), repo.index.get(b)
    assert (la.pack, la.block) == (lb.pack, lb.block)
    with repo.index.env.begin(write=True) as txn:
        txn.put(a, lb.to_bytes(), db=repo.index.blobs)
        txn.put(b, la.to_bytes(), db=repo.index.blobs)
    with pytest.raises(IntegrityError, match="does not match its content id"):
        for _ in repo.read_namespace(entry, workers=workers):
            pass
    past = BlobLocation(la.pack, la.block, la.offset, la.length, 100_000, la.raw_length, la.blob_type)
    with repo.index.env.begin(write=True) as txn:
        txn.put(a, past.to_bytes(), db=repo.index.blobs)
    with pytest.raises(IntegrityError, match="not where the index says"):
        for _ in repo.read_namespace(entry, workers=workers):
            pass
    repo.close()


def test_the_index_walk_locates_every_id_it_holds_and_no_other(tmp_path):
    """IndexCache.locate_sorted: ids in the index, ids between, before and after its entries,
    repeated ids; stretches of 5 entries, the map released every 2: each id's location is
    the one a look-up gives, each absent id is marked absent."""
    from vdedup.repository.index_cache import IndexCache, LOC_LEN
    rng = np.random.default_rng(11)
    ic = IndexCache(str(tmp_path / "ic"))
    head = rng.bytes(8)                       # ids that share their first 8 bytes (matched as integers)
    twins = {head + rng.bytes(24) for _ in range(12)}
    stored = sorted({rng.bytes(32) for _ in range(300)} | {b"\x00" * 31 + b"\x07", b"\x10" + b"\x00" * 31} | twins)
    ic.add_entries([(k, rng.bytes(LOC_LEN)) for k in stored])
    absent = [b"\x00" * 32, b"\xff" * 32, b"\x10" + b"\x00" * 30 + b"\x01"] + [rng.bytes(32) for _ in range(40)] + \
        [head + rng.bytes(24) for _ in range(6)] + [stored[7][:8] + rng.bytes(24)]
    wanted = sorted(stored[::3] + stored[5:9] + sorted(twins)[::2] + absent)          # some twice
    keys = np.frombuffer(b"".join(wanted), dtype="S32")
    seen = 0
    for i, j, pos, locs in ic.locate_sorted(keys, chunk=5, release_every=2):
        assert i == seen and j > i and len(pos) == j - i
        for k, p in zip(range(i, j), pos.tolist()):
            want = ic.get_many([wanted[k]])[0]
            if want is None:
                assert p == -1, wanted[k].hex()
            else:
                assert p >= 0 and locs[p].tobytes() == bytes(want)
        seen = j
    assert seen == len(wanted)
    ic.close()


def test_the_walked_plan_orders_ids_and_tells_blocks_apart_as_integers_exactly():
    """reader._id_order sorts 32-byte ids as numpy sorts them as strings (ids sharing their
    first 8 bytes, equal ids); reader._distinct_blocks groups locations by block as
    np.unique of the 36 bytes does (packs sharing their first 8 bytes, one block number in
    several packs)."""
    from vdedup.repository.reader import _distinct_blocks, _id_order
    rng = np.random.default_rng(5)
    for shared in (False, True):
        ids = [rng.bytes(32) for _ in range(500)]
        ids += ids[:40]                                           # equal ids: several records, one vector
        if shared:
            ids += [ids[3][:8] + rng.bytes(24) for _ in range(5)]
        rows = np.frombuffer(b"".join(ids), dtype=np.uint8).reshape(len(ids), 32)
        keys = np.frombuffer(b"".join(ids), dtype="S32")
        order = _id_order(rows, keys)
        assert keys[order].tolist() == keys[np.argsort(keys, kind="stable")].tolist()
        packs = [rng.bytes(32) for _ in range(6)]
        if shared:
            packs.append(packs[0][:8] + rng.bytes(24))
        loc = np.zeros((3000, 57), dtype=np.uint8)
        p = rng.integers(0, len(packs), 3000)
        loc[:, :32] = np.frombuffer(b"".join(packs), dtype=np.uint8).reshape(-1, 32)[p]
        loc[:, 32:36] = rng.integers(0, 9, 3000).astype(">u4").view(np.uint8).reshape(-1, 4)
        loc[:, 36:] = rng.integers(0, 256, (3000, 21), dtype=np.uint8)
        first, inverse = _distinct_blocks(loc)
        want = np.unique(np.ascontiguousarray(loc[:, :36]).view("S36").reshape(-1))
        assert len(first) == len(want)
        assert (loc[first[inverse], :36] == loc[:, :36]).all()           # each row: its own block
        assert len({loc[f, :36].tobytes() for f in first.tolist()}) == len(first)


def test_a_row_missing_from_the_index_stops_the_walked_plan(repo_path, monkeypatch):
    from vdedup.errors import IntegrityError
    from vdedup.repository import reader
    monkeypatch.setattr(reader, "JOIN_MIN_ROWS", 1)
    monkeypatch.setattr(reader, "JOIN_CHUNK", 16)
    repo, entry = _one_snapshot(repo_path, 200, 8, 4)
    assert sum(len(b) for b in repo.read_namespace(entry, workers=2)) == 200
    gone = sorted(r.vref for r in repo.namespace_rows(entry))[120]
    with repo.index.env.begin(write=True) as txn:
        txn.delete(gone, db=repo.index.blobs)
    with pytest.raises(IntegrityError, match=f"vector blob {gone.hex()[:16]} is not in the index"):
        for _ in repo.read_namespace(entry, workers=2):
            pass
    repo.close()


def test_a_first_backup_looks_up_only_what_it_drained_into_the_cache(repo_path, monkeypatch):
    """A session that began with an empty index cache skips the cache look-ups of ids it
    cannot hold (a filter of the ids it drained there): everything stored earlier in the
    session is still known (stored once), with far fewer look-ups; once another writer has
    added to the cache, every id is looked up again, and what that writer stored is known."""
    from vdedup.model import RecordBatch
    from vdedup.repository import packer as packer_mod
    from vdedup.repository.hashing import digests_inline
    from vdedup.repository.payloads import encode_batch
    monkeypatch.setenv("VDEDUP_PACK_SIZE", "1")
    monkeypatch.setattr(packer_mod, "MAX_ENTRIES", 500)
    repo, _ = Repository.init(LocalBackend(str(repo_path)), "pw")
    looked = []
    get_many = repo.index.get_many
    monkeypatch.setattr(repo.index, "get_many", lambda ids: looked.append(len(ids)) or get_many(ids))
    vectors = np.random.default_rng(12).standard_normal((12000, 256)).astype(np.float32)
    writer = repo.writer(workers=1)
    first = [writer.store_batch(RecordBatch(ids=[f"a{i}" for i in range(a, a + 1000)], dense={"": vectors[a:a + 1000]}))
             for a in range(0, 12000, 1000)]
    assert sum(b.new_blobs for b in first) == 12000
    assert writer._packer._drained_n > 5000                        # most went to the cache on the way
    looked.clear()
    fresh = np.random.default_rng(14).standard_normal((6000, 256)).astype(np.float32)
    mixed = np.concatenate([vectors[:6000], fresh])                 # 6000 stored before, 6000 new
    again = writer.store_batch(RecordBatch(ids=[f"b{i}" for i in range(12000)], dense={"": mixed}))
    assert again.new_blobs == 6000
    assert 0 < sum(looked) < 6600, sum(looked)     # the drained ones and a few others, not all 12000
    # another writer's entry in the cache: look-ups of every id again, and its blob is known
    extra = np.random.default_rng(13).standard_normal((1, 256)).astype(np.float32)
    enc = encode_batch(RecordBatch(ids=["x"], dense={"": extra}))
    foreign = digests_inline(repo.master.id_key, enc.data, enc.offsets, enc.prefix)
    some_loc = get_many([again.vrefs[0].tobytes()])[0]
    repo.index.add_entries([(foreign, bytes(some_loc))])
    looked.clear()
    got = writer.store_batch(RecordBatch(ids=["x"], dense={"": extra}))
    assert got.new_blobs == 0 and sum(looked) == 1
    writer.flush()
    writer.close()
    repo.close()


def test_vector_rows_stored_from_a_batch_without_copying_it_come_back_bit_exact(repo_path):
    """Payloads given as a shared prefix and the batch's own rows (LazyRows) are stored by
    reference to those rows (Rows with a prefix) and encoded with blocks that also hold rows
    built whole; every payload reads back exactly, whether all rows of a batch are new or
    only some."""
    from vdedup.format.vectors import dense_batch_split, encode_payload
    from vdedup.repository.packer import LazyRows, Rows
    repo, _ = Repository.init(LocalBackend(str(repo_path)), "pw")
    packer = Packer(repo)
    rng = np.random.default_rng(11)
    stored: dict[bytes, bytes] = {}
    for k in range(6):
        arr = rng.standard_normal((700, 96)).astype(np.float32)
        payloads = [encode_payload({"": r}, {}) for r in arr]
        ids = [repo.content_id(BlobType.VECTORS, p) for p in payloads]
        if k % 3 == 2:                 # rows built whole (a head inside the array)
            itemsize, head = split_payload(payloads[0])
            rows = Rows(np.stack([np.frombuffer(p, np.uint8) for p in payloads]), head, itemsize)
        else:
            prefix, body = dense_batch_split({"": arr})
            rows = LazyRows(prefix, body, split_payload(prefix)[0])
        known = [k == 1 and i % 3 == 0 for i in range(len(ids))]     # some stored for certain: not stored
        packer.add_rows(BlobType.VECTORS, ids, rows, known)
        stored.update((i, p) for i, p, kn in zip(ids, payloads, known) if not kn)
    packer.flush()
    assert len(stored) == 6 * 700 - len(range(0, 700, 3))
    for blob_id, payload in stored.items():
        assert repo.load_blob(blob_id, BlobType.VECTORS) == payload
