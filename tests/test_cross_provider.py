"""Cross-provider restore, 6 x 6, end to end through the CLI.

A rich collection of each provider (tests/cross_sources.py: namespaces, sparse and named
vectors, each provider's id and metadata types) is backed up; its snapshot is restored into
every provider (real PostgreSQL, Milvus, Chroma and Qdrant engines; Pinecone and Weaviate
emulators); that copy is backed up and restored back into a new collection of the original
provider. The options each translation needs are taken from the plan's own errors (a dry run
first), so every refusal is one the plan explains. Then the round trip is compared record by
record with the original: bit for bit wherever both plans said lossless, every difference
must be named by a lossy step of one of the two plans, or lie within the bound of an inexact
one (the target engine's own rounding, which goes ahead without an option).

Records are read through vdedup's own connectors, so they compare provider-neutrally.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from cross_sources import PC_KEY, PROVIDERS, SHORT, SOURCES, WV_KEY, Places
from vdedup.engine.translate import DIRECTION_BOUND, FLOAT_BOUND
from vdtest import env_connector
from vdedup.format import values
from vdtest import vdedup


def _records(url: str, name: str) -> dict:
    conn = env_connector(url)
    try:
        out = {}
        for ns in conn.describe(name).namespaces:
            for batch in conn.scan(name, ns, 500):
                for r in batch.records():
                    out[(ns, r.id)] = r
        return out
    finally:
        conn.close()


def _schema(url: str, name: str):
    conn = env_connector(url)
    try:
        return conn.describe(name)
    finally:
        conn.close()


def _json(capsys, *args):
    capsys.readouterr()
    code = vdedup(*args)
    captured = capsys.readouterr()
    assert code == 0, (args, code, captured.err[-3000:])
    return json.loads(captured.out)


class World:
    def __init__(self, tmp, places: Places) -> None:
        self.repo = str(tmp / "repo")
        self.places = places
        self.sources: dict = {}

    def source(self, provider: str, capsys):
        if provider not in self.sources:
            if not self.sources:
                assert vdedup("--repo", self.repo, "init") == 0
            url, name = SOURCES[provider](self.places)
            snap = _json(capsys, "--repo", self.repo, "backup", url, "--collection", name, "--json")["snapshot_id"]
            self.sources[provider] = (url, name, snap, _records(url, name), _schema(url, name))
        return self.sources[provider]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from vdedup.connectors.pinecone import connector as pc_connector
    from emulators.pinecone_emulator import PineconeEmulator
    from emulators.weaviate_emulator import WeaviateEmulator
    mp = pytest.MonkeyPatch()
    with PineconeEmulator(PC_KEY) as pc, WeaviateEmulator(api_keys=[WV_KEY]) as wv:
        mp.setenv("PINECONE_API_KEY", PC_KEY)
        mp.setenv("PINECONE_CONTROLLER_HOST", pc.url)
        mp.setenv("WEAVIATE_API_KEY", WV_KEY)
        mp.setattr(pc_connector, "POLL_INTERVAL", 0.05)
        tmp = tmp_path_factory.mktemp("matrix")
        try:
            yield World(tmp, Places(tmp, pc.url, wv))
        finally:
            mp.undo()


def _options(capsys, repo: str, snap: str, url: str, base: list[str]) -> tuple[list[str], list[dict]]:
    """The options the plan asks for (from its errors, by a dry run), and the plan."""
    opts: list[str] = []
    for _ in range(4):
        out = _json(capsys, "--repo", repo, "restore", snap, "--target", url, *base, *opts, "--dry-run", "--json")
        errors = " | ".join(e for t in out["translation"] for e in t["errors"])
        if not errors:
            return opts, out["translation"]
        before = list(opts)
        m = re.search(r"\(([^)]*)\): choose one with --vector", errors)
        if m and "--vector" not in opts:
            opts += ["--vector", sorted(n.strip() for n in m.group(1).split(","))[0]]
        if "--drop-sparse" in errors and "--drop-sparse" not in opts:
            opts.append("--drop-sparse")
        if "dotproduct" in errors and "--metric" not in opts:
            opts += ["--metric", "dot"]
        if "--allow-lossy" in errors and "--allow-lossy" not in opts:
            opts.append("--allow-lossy")
        assert opts != before, f"the plan refuses with no option to accept it: {errors}"
    raise AssertionError(f"no options satisfy the plan: {errors}")


def _same(a, b) -> bool:
    return values.dumps(a, canonical=True) == values.dumps(b, canonical=True)


def _same_vector(a, b, inexact_vectors: bool) -> bool:
    """Bit for bit; or, after an inexact step, the same direction within its bound."""
    if not inexact_vectors or a.shape != b.shape:
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float(np.abs(a64 / np.linalg.norm(a64) - b64 / np.linalg.norm(b64)).max()) <= DIRECTION_BOUND


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= FLOAT_BOUND * max(abs(a), abs(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return _same(a, b)


def _compare(original: dict, back: dict, lossy: list[dict], inexact: list[dict], vector: str | None) -> None:
    parts = {s["part"] for s in lossy}
    rounded = any(s["part"] == "vectors" for s in inexact)
    assert sorted(back, key=repr) == sorted(original, key=repr)       # namespaces and original ids
    for key, o in original.items():
        b = back[key]
        assert type(b.id) is type(o.id), key
        if not parts & {"vectors", "metric"}:
            assert sorted(b.vectors) == sorted(o.vectors), key
            for n, v in o.vectors.items():
                assert _same_vector(v, b.vectors[n], rounded), (key, n)
        elif vector is not None:
            (got,) = b.vectors.values()                             # the one vector kept
            assert _same_vector(o.vectors[vector].astype(np.float32), got, rounded), key
        if "sparse" not in parts:
            assert b.sparse == o.sparse, key
        om, bm = o.metadata or {}, b.metadata or {}
        for k in set(om) | set(bm):
            if k in om and k in bm and _same(om[k], bm[k]):
                continue
            if k in om and k in bm and any(s["part"] == "metadata" and s["field"] == k for s in inexact) \
                    and _close(om[k], bm[k]):
                continue
            assert any(s["part"] == "metadata" and s["detail"].startswith(f"{k}:") for s in lossy), \
                f"{key}: metadata {k!r} changed from {om.get(k)!r} to {bm.get(k)!r} and no step says so"
        assert b.document == o.document and b.uri == o.uri, key


@pytest.mark.parametrize("dst", PROVIDERS)
@pytest.mark.parametrize("src", PROVIDERS)
def test_restore_into_every_provider_and_back(src, dst, world, capsys):
    url, name, snap, original, schema = world.source(src, capsys)
    repo, places = world.repo, world.places

    # there
    there_url = places.location(dst)
    there_name = places.name(dst, f"f{SHORT[src]}{SHORT[dst]}")
    fwd_opts, fwd_plan = _options(capsys, repo, snap, there_url, ["--as", there_name])
    out = _json(capsys, "--repo", repo, "restore", snap, "--target", there_url, "--as", there_name,
                *fwd_opts, "--json")
    assert sum(out["collections"].values()) == len(original)
    assert (fwd_plan == []) == (src == dst)                          # same provider: no translation

    # and back, into a new collection of the source's provider
    collections = [x for t in sorted(out["collections"]) for x in ("--collection", t)]
    there_snap = _json(capsys, "--repo", repo, "backup", there_url, *collections, "--json")["snapshot_id"]
    back_url = places.location(src)
    back_name = places.name(src, f"b{SHORT[src]}{SHORT[dst]}")
    base = ["--as", back_name, "--fold-namespaces"]
    back_opts, back_plan = _options(capsys, repo, there_snap, back_url, base)
    _json(capsys, "--repo", repo, "restore", there_snap, "--target", back_url, *base, *back_opts, "--json")

    steps = [s for plan in fwd_plan + back_plan for s in plan["steps"]]
    lossy = [s for s in steps if s["kind"] == "lossy"]
    inexact = [s for s in steps if s["kind"] == "inexact"]
    for s in lossy:
        assert s["accepted_by"], s                                    # no loss without consent
    for s in inexact:
        assert not s["accepted_by"] and s["bound"], s                 # the target's rounding: no option
    vector = fwd_opts[fwd_opts.index("--vector") + 1] if "--vector" in fwd_opts else None
    _compare(original, _records(back_url, back_name), lossy, inexact, vector)
    if not lossy:                                                     # the schema comes back too
        got = _schema(back_url, back_name)
        want = {v.name: v for v in schema.vectors}
        assert sorted(v.name for v in got.vectors) == sorted(want)
        for v in got.vectors:              # a provider that does not declare dims: the backup found them
            assert (v.metric, v.dtype) == (want[v.name].metric, want[v.name].dtype), v.name
            assert want[v.name].dim in (None, v.dim), v.name
        assert sorted(s.name for s in got.sparse) == sorted(s.name for s in schema.sparse)
