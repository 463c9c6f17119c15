"""Deterministic synthetic vector data for the benchmarks, written into embedded Chroma.

Every benchmark uses the same data, so results compare across tools and runs:

- record i has the id ``doc-{i // 8:06d}#chunk-{i % 8}`` (8 chunks per document);
- its vector is a 768-dim float32 (``--dim``) clustered embedding: the unit centroid of its
  document's topic (one of 200) plus gaussian noise, normalised to unit length;
- its metadata is ``{source: str, page: int, tags: [str, ...], updated_at: str}``; no documents.

Records are generated in fixed blocks of 1,000 from ``numpy.random.default_rng([seed, stream,
block])``, so any range of records is the same whatever the chunking, and the first 50,000
records of a 200,000-record set are the 50,000-record set. Vectors and metadata come from
separate streams, so metadata can be regenerated without the vectors.

Change sets (also deterministic from n and seed):
- ``nightly``: new vectors (random topic) for 1% of the records, 1% new records (indices n..),
  0.5% deleted (disjoint from the updated ones);
- ``touch``: ``updated_at`` set to a new value on 10% of the records alive after ``nightly``.

Each command also reports the "minimum" size of what it wrote: the zstandard level-3
compressed size of the raw float32 bytes, the ids (newline separated) and the JSON metadata
(one compact, key-sorted object per line) of the records written, as three streams whose
compressed sizes are summed. Deleted ids are not counted.

Command line (each prints one JSON object on stdout):

    python benchmarks/datagen.py populate --dir D --n N [--dim 768] [--seed 0]
    python benchmarks/datagen.py nightly  --dir D --n N [--seed 0]
    python benchmarks/datagen.py touch    --dir D --n N [--seed 0]
    python benchmarks/datagen.py scan     --dir D [--batch 1000]
    python benchmarks/datagen.py compare  --source D1 --target D2 [--sample 1000] [--seed 0]

``populate`` appends records [count, N) to the collection, so a directory can be grown from
50,000 to 200,000 records. Chroma is always opened with ``embedding_function=None`` and
written in batches of at most ``client.get_max_batch_size()``. At most one chunk (default
5,000 records) is held in memory.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import zstandard

COLLECTION = "docs"
DEFAULT_DIM = 768
DEFAULT_SEED = 0
N_TOPICS = 200
CHUNKS_PER_DOC = 8
BLOCK = 1000                    # records per RNG block (a multiple of CHUNKS_PER_DOC)
CHUNK = 5000                    # records generated and written at a time
NOISE = 0.6                     # norm of the noise added to a topic centroid (before normalising)
ZSTD_LEVEL = 3

# RNG streams
S_CENTROIDS, S_VECTORS, S_META, S_NEW_VECTORS, S_PLAN, S_TOUCH, S_SAMPLE = range(7)

SOURCES = ("s3://corpus/handbooks", "s3://corpus/contracts", "s3://corpus/support-tickets",
           "https://wiki.example.com/eng", "https://wiki.example.com/sales", "gdrive://research",
           "s3://corpus/10-k", "confluence://platform", "s3://corpus/papers", "sharepoint://legal",
           "s3://corpus/release-notes", "gdrive://marketing")
TAGS = ("finance", "legal", "engineering", "support", "product", "security", "hr", "sales",
        "research", "ops", "billing", "api", "onboarding", "compliance", "design", "data",
        "infra", "mobile", "web", "ml", "policy", "pricing", "roadmap", "incident")
EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
NIGHT = dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.timezone.utc)   # when `touch` runs

UPDATE_FRACTION = 0.01
ADD_FRACTION = 0.01
DELETE_FRACTION = 0.005
TOUCH_FRACTION = 0.10

assert BLOCK % CHUNKS_PER_DOC == 0


# ------------------------------------------------------------------ generation (no I/O)

def record_id(i: int) -> str:
    return f"doc-{i // CHUNKS_PER_DOC:06d}#chunk-{i % CHUNKS_PER_DOC}"


def centroids(seed: int, dim: int) -> np.ndarray:
    rng = np.random.default_rng([seed, S_CENTROIDS])
    c = rng.standard_normal((N_TOPICS, dim), dtype=np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _clustered(rng: np.random.Generator, topics: np.ndarray, cents: np.ndarray) -> np.ndarray:
    dim = cents.shape[1]
    noise = rng.standard_normal((len(topics), dim), dtype=np.float32) * np.float32(NOISE / np.sqrt(dim))
    v = cents[topics] + noise
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32, copy=False)


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _block_vectors(seed: int, b: int, cents: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng([seed, S_VECTORS, b])
    topics = np.repeat(rng.integers(0, N_TOPICS, BLOCK // CHUNKS_PER_DOC), CHUNKS_PER_DOC)
    return _clustered(rng, topics, cents)


def _block_metadata(seed: int, b: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng([seed, S_META, b])
    docs = BLOCK // CHUNKS_PER_DOC
    src = rng.integers(0, len(SOURCES), docs)
    updated = rng.integers(0, 600 * 86400, docs)
    ntags = rng.integers(1, 4, BLOCK)
    tag_ix = rng.integers(0, len(TAGS), (BLOCK, 3))
    page0 = rng.integers(1, 40, docs)
    out = []
    for j in range(BLOCK):
        d = j // CHUNKS_PER_DOC
        doc = b * docs + d
        out.append({
            "source": f"{SOURCES[src[d]]}/doc-{doc:06d}.pdf",
            "page": int(page0[d] + (j % CHUNKS_PER_DOC) // 2),
            "tags": [TAGS[t] for t in dict.fromkeys(tag_ix[j, :ntags[j]].tolist())],
            "updated_at": _iso(EPOCH + dt.timedelta(seconds=int(updated[d]))),
        })
    return out


def metadata_for(seed: int, indices: np.ndarray) -> list[dict[str, Any]]:
    """Metadata of arbitrary records (blocks regenerated as needed, one at a time)."""
    out: list[dict[str, Any]] = [None] * len(indices)  # type: ignore[list-item]
    order = np.argsort(indices, kind="stable")
    cur_b, cur = -1, []
    for pos in order:
        i = int(indices[pos])
        b = i // BLOCK
        if b != cur_b:
            cur_b, cur = b, _block_metadata(seed, b)
        out[pos] = cur[i % BLOCK]
    return out


@dataclass
class Chunk:
    ids: list[str]
    vectors: np.ndarray
    metadatas: list[dict[str, Any]]


def generate(seed: int, dim: int, start: int, stop: int, cents: np.ndarray | None = None) -> Chunk:
    """Records [start, stop), identical whatever range they are generated in."""
    cents = centroids(seed, dim) if cents is None else cents
    ids: list[str] = []
    vecs: list[np.ndarray] = []
    metas: list[dict[str, Any]] = []
    b = start // BLOCK
    while b * BLOCK < stop:
        lo, hi = max(start, b * BLOCK), min(stop, (b + 1) * BLOCK)
        vecs.append(_block_vectors(seed, b, cents)[lo - b * BLOCK:hi - b * BLOCK])
        metas.extend(_block_metadata(seed, b)[lo - b * BLOCK:hi - b * BLOCK])
        ids.extend(record_id(i) for i in range(lo, hi))
        b += 1
    vectors = np.concatenate(vecs) if vecs else np.zeros((0, dim), dtype=np.float32)
    return Chunk(ids, vectors, metas)


def chunks(seed: int, dim: int, start: int, stop: int, size: int = CHUNK) -> Iterator[Chunk]:
    cents = centroids(seed, dim)
    for a in range(start, stop, size):
        yield generate(seed, dim, a, min(stop, a + size), cents)


@dataclass
class Plan:
    """The nightly change set for n records."""
    updated: np.ndarray          # record indices whose vector changes
    deleted: np.ndarray          # record indices deleted
    added: np.ndarray            # new record indices (n, n+1, ...)
    touched: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def plan(n: int, seed: int) -> Plan:
    rng = np.random.default_rng([seed, S_PLAN, n])
    n_upd, n_del, n_add = round(n * UPDATE_FRACTION), round(n * DELETE_FRACTION), round(n * ADD_FRACTION)
    picked = rng.choice(n, size=n_upd + n_del, replace=False)
    p = Plan(np.sort(picked[:n_upd]), np.sort(picked[n_upd:]), np.arange(n, n + n_add, dtype=np.int64))
    alive = np.concatenate([np.setdiff1d(np.arange(n, dtype=np.int64), p.deleted), p.added])
    trng = np.random.default_rng([seed, S_TOUCH, n])
    p.touched = np.sort(trng.choice(alive, size=round(len(alive) * TOUCH_FRACTION), replace=False))
    return p


class Minimum:
    """Zstd level-3 size of vectors, ids and JSON metadata, as three streams."""

    def __init__(self) -> None:
        self._streams = {k: zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
                         for k in ("vectors", "ids", "metadata")}
        self.compressed = {k: 0 for k in self._streams}
        self.raw = {k: 0 for k in self._streams}

    def _feed(self, key: str, data: bytes) -> None:
        self.raw[key] += len(data)
        self.compressed[key] += len(self._streams[key].compress(data))

    def add(self, ids: list[str], vectors: np.ndarray | None, metadatas: list[dict[str, Any]]) -> None:
        if vectors is not None:
            self._feed("vectors", np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        self._feed("ids", "".join(i + "\n" for i in ids).encode())
        self._feed("metadata", "".join(json.dumps(m, sort_keys=True, separators=(",", ":")) + "\n"
                                       for m in metadatas).encode())

    def finish(self) -> dict[str, Any]:
        for k, s in self._streams.items():
            self.compressed[k] += len(s.flush())
        return {"minimum_bytes": sum(self.compressed.values()), "raw_bytes": sum(self.raw.values()),
                "minimum_parts": dict(self.compressed), "raw_parts": dict(self.raw)}


# ------------------------------------------------------------------ Chroma I/O

def open_client(path: str):
    import chromadb
    from chromadb.config import Settings
    return chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))


def open_collection(client, create: bool = False):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if create:
            return client.get_or_create_collection(COLLECTION, embedding_function=None)
        return client.get_collection(COLLECTION, embedding_function=None)


def _batches(n: int, size: int) -> Iterator[slice]:
    for a in range(0, n, size):
        yield slice(a, min(n, a + size))


def populate(path: str, n: int, dim: int = DEFAULT_DIM, seed: int = DEFAULT_SEED,
             chunk: int = CHUNK) -> dict[str, Any]:
    """Grow the collection to the first n records (it must hold the first `count` already)."""
    started = time.monotonic()
    client = open_client(path)
    col = open_collection(client, create=True)
    have = col.count()
    if have > n:
        raise SystemExit(f"{path} already holds {have} records, more than {n}")
    step = client.get_max_batch_size()
    minimum = Minimum()
    for ch in chunks(seed, dim, have, n, chunk):
        minimum.add(ch.ids, ch.vectors, ch.metadatas)
        for s in _batches(len(ch.ids), step):
            col.add(ids=ch.ids[s], embeddings=ch.vectors[s], metadatas=ch.metadatas[s])
    return {"records_before": have, "records": col.count(), "records_added": n - have, "dim": dim,
            "seconds": round(time.monotonic() - started, 3), **minimum.finish()}


def nightly(path: str, n: int, dim: int = DEFAULT_DIM, seed: int = DEFAULT_SEED,
            chunk: int = CHUNK) -> dict[str, Any]:
    """Update 1% of the vectors, add 1% new records, delete 0.5%."""
    started = time.monotonic()
    client = open_client(path)
    col = open_collection(client)
    step = min(client.get_max_batch_size(), chunk)
    p = plan(n, seed)
    cents = centroids(seed, dim)
    minimum = Minimum()
    for c, s in enumerate(_batches(len(p.updated), step)):
        idx = p.updated[s]
        rng = np.random.default_rng([seed, S_NEW_VECTORS, n, c])
        vecs = _clustered(rng, rng.integers(0, N_TOPICS, len(idx)), cents)
        ids = [record_id(int(i)) for i in idx]
        minimum.add(ids, vecs, metadata_for(seed, idx))
        col.update(ids=ids, embeddings=vecs)
    for ch in chunks(seed, dim, int(p.added[0]) if len(p.added) else n, n + len(p.added), step):
        minimum.add(ch.ids, ch.vectors, ch.metadatas)
        col.add(ids=ch.ids, embeddings=ch.vectors, metadatas=ch.metadatas)
    for s in _batches(len(p.deleted), step):
        col.delete(ids=[record_id(int(i)) for i in p.deleted[s]])
    return {"updated": len(p.updated), "added": len(p.added), "deleted": len(p.deleted),
            "records": col.count(), "seconds": round(time.monotonic() - started, 3), **minimum.finish()}


def touch(path: str, n: int, seed: int = DEFAULT_SEED, chunk: int = CHUNK, rnd: int = 1) -> dict[str, Any]:
    """Set updated_at to a new value (a time during one night) on 10% of the live records; each
    round `rnd` draws new times for the same records, so repeated rounds are each a change."""
    started = time.monotonic()
    client = open_client(path)
    col = open_collection(client)
    step = min(client.get_max_batch_size(), chunk)
    p = plan(n, seed)
    rng = np.random.default_rng([seed, S_TOUCH, n, rnd])
    seconds = rng.integers(0, 3600, len(p.touched))
    minimum = Minimum()
    for s in _batches(len(p.touched), step):
        idx = p.touched[s]
        metas = metadata_for(seed, idx)
        for m, sec in zip(metas, seconds[s]):
            m["updated_at"] = _iso(NIGHT + dt.timedelta(seconds=int(sec)))
        ids = [record_id(int(i)) for i in idx]
        minimum.add(ids, None, metas)
        col.update(ids=ids, metadatas=metas)
    return {"touched": len(p.touched), "records": col.count(),
            "seconds": round(time.monotonic() - started, 3), **minimum.finish()}


def _all_ids(col, page: int = 50_000) -> list[str]:
    ids: list[str] = []
    while True:
        got = col.get(include=[], limit=page, offset=len(ids))["ids"]
        ids.extend(got)
        if len(got) < page:
            return ids


def scan(path: str, batch: int = 1000, pages: int = 10) -> dict[str, Any]:
    """Read every record the way a backup does (id pages, then full rows by id), keep nothing:
    the memory and time Chroma itself needs for a full read."""
    started = time.monotonic()
    col = open_collection(open_client(path))
    include = ["embeddings", "metadatas", "documents", "uris"]
    offset = seen = 0
    while True:
        ids = col.get(include=[], limit=batch * pages, offset=offset)["ids"]
        offset += len(ids)
        for s in _batches(len(ids), batch):
            got = col.get(ids=ids[s], include=include)
            seen += len(np.asarray(got["embeddings"], dtype=np.float32))
        if len(ids) < batch * pages:
            break
    return {"records": seen, "seconds": round(time.monotonic() - started, 3)}


def _canon(m: Any) -> str:
    # json keeps int vs float vs bool apart ("1", "1.0", "true"); key order is not data
    return json.dumps(m, sort_keys=True)


def compare(source: str, target: str, sample: int = 1000, seed: int = DEFAULT_SEED,
            collection: str = COLLECTION) -> dict[str, Any]:
    """Compare `sample` random records of the source with the target, bit for bit."""
    started = time.monotonic()
    src_client, dst_client = open_client(source), open_client(target)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        src = src_client.get_collection(COLLECTION, embedding_function=None)
        dst = dst_client.get_collection(collection, embedding_function=None)
    ids = _all_ids(src)
    rng = np.random.default_rng([seed, S_SAMPLE])
    pick = [ids[int(i)] for i in np.sort(rng.choice(len(ids), size=min(sample, len(ids)), replace=False))]
    include = ["embeddings", "metadatas", "documents", "uris"]
    identical, mismatches = 0, []
    for s in _batches(len(pick), 500):
        want = pick[s]
        a, b = src.get(ids=want, include=include), dst.get(ids=want, include=include)
        ra = {rid: k for k, rid in enumerate(a["ids"])}
        rb = {rid: k for k, rid in enumerate(b["ids"])}
        for rid in want:
            if rid not in rb:
                mismatches.append({"id": rid, "what": "missing in target"})
                continue
            i, j = ra[rid], rb[rid]
            va = np.asarray(a["embeddings"][i]).astype(np.float32)
            vb = np.asarray(b["embeddings"][j]).astype(np.float32)
            what = []
            if va.tobytes() != vb.tobytes():
                what.append("vector")
            if _canon(a["metadatas"][i]) != _canon(b["metadatas"][j]):
                what.append("metadata")
            if (a.get("documents") or [None] * len(a["ids"]))[i] != (b.get("documents") or [None] * len(b["ids"]))[j]:
                what.append("document")
            if (a.get("uris") or [None] * len(a["ids"]))[i] != (b.get("uris") or [None] * len(b["ids"]))[j]:
                what.append("uri")
            if what:
                mismatches.append({"id": rid, "what": ",".join(what)})
            else:
                identical += 1
    src_conf = (src.configuration_json or {}).get("hnsw") or {}
    dst_conf = (dst.configuration_json or {}).get("hnsw") or {}
    return {"sampled": len(pick), "identical": identical, "mismatches": mismatches[:20],
            "source_count": src.count(), "target_count": dst.count(),
            "source_space": src_conf.get("space"), "target_space": dst_conf.get("space"),
            "seconds": round(time.monotonic() - started, 3)}


# ------------------------------------------------------------------ naive export, without Chroma

def write_export(d: Path, n: int, dim: int, seed: int, night: bool = False) -> dict[str, Any]:
    """The naive export (vectors.npy + records.jsonl, sorted by id, as `peers.py export` writes
    it from Chroma) of records 0..n (after one nightly change set when `night`), straight from
    the generator: large N without populating Chroma. Ids sort in generation order."""
    d.mkdir(parents=True, exist_ok=True)
    ch_plan = plan(n, seed) if night else None
    deleted = set(ch_plan.deleted.tolist()) if ch_plan else set()
    updated = set(ch_plan.updated.tolist()) if ch_plan else set()
    total = n - len(deleted) + (len(ch_plan.added) if ch_plan else 0)
    vec = np.lib.format.open_memmap(d / "vectors.npy.partial", mode="w+", dtype="<f4", shape=(total, dim))
    row = 0
    cents = centroids(seed, dim)
    stop = n + (len(ch_plan.added) if ch_plan else 0)
    with open(d / "records.jsonl.partial", "w") as jl:
        for a in range(0, stop, CHUNK):
            ch = generate(seed, dim, a, min(stop, a + CHUNK), cents)
            keep = [k for k in range(len(ch.ids)) if a + k not in deleted]
            vecs = ch.vectors
            if updated:
                fresh = [k for k in keep if a + k in updated]
                if fresh:
                    rng = np.random.default_rng([seed, S_NEW_VECTORS, a])
                    topics = rng.integers(0, N_TOPICS, len(fresh))
                    vecs = vecs.copy()
                    vecs[fresh] = _clustered(rng, topics, cents)
            vec[row:row + len(keep)] = vecs[keep]
            row += len(keep)
            jl.write("".join(json.dumps({"id": ch.ids[k], "metadata": ch.metadatas[k]}, sort_keys=True,
                                        separators=(",", ":")) + "\n" for k in keep))
    vec.flush()
    del vec
    for f in ("vectors.npy", "records.jsonl"):
        os.replace(d / (f + ".partial"), d / f)
    return {"records": total, "bytes": sum((d / f).stat().st_size for f in ("vectors.npy", "records.jsonl"))}



# ------------------------------------------------------------------ command line

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("populate", "nightly", "touch"):
        p = sub.add_parser(name)
        p.add_argument("--dir", required=True, help="Chroma persist directory")
        p.add_argument("--n", type=int, required=True, help="number of (initial) records")
        p.add_argument("--dim", type=int, default=DEFAULT_DIM)
        p.add_argument("--seed", type=int, default=DEFAULT_SEED)
        p.add_argument("--chunk", type=int, default=CHUNK, help="records generated at a time")
        if name == "touch":
            p.add_argument("--round", type=int, default=1, help="which round of new updated_at values")
    p = sub.add_parser("export", help="write the naive export of records 0..N straight from the generator")
    p.add_argument("--out", required=True, help="directory for vectors.npy + records.jsonl")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--dim", type=int, default=DEFAULT_DIM)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--night", action="store_true", help="after one nightly change set (plan())")
    p = sub.add_parser("scan", help="read every record like a backup does (baseline)")
    p.add_argument("--dir", required=True)
    p.add_argument("--batch", type=int, default=1000)
    p = sub.add_parser("compare")
    p.add_argument("--source", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--collection", default=COLLECTION, help="collection name in the target")
    p.add_argument("--sample", type=int, default=1000)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    a = ap.parse_args(argv)
    if a.cmd == "populate":
        res = populate(a.dir, a.n, a.dim, a.seed, a.chunk)
    elif a.cmd == "nightly":
        res = nightly(a.dir, a.n, a.dim, a.seed, a.chunk)
    elif a.cmd == "touch":
        res = touch(a.dir, a.n, a.seed, a.chunk, a.round)
    elif a.cmd == "export":
        res = write_export(Path(a.out), a.n, a.dim, a.seed, night=a.night)
    elif a.cmd == "scan":
        res = scan(a.dir, a.batch)
    else:
        res = compare(a.source, a.target, a.sample, a.seed, a.collection)
    json.dump(res, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
