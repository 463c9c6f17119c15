"""Qdrant connector against qdrant-client: local mode (`qdrant+local://`) and the `qdrant://`
REST path through a loopback REST front for local mode (tests/connectors/qdrant_rest_bridge.py).

No Qdrant server binary runs on these machines; both paths use qdrant-client's local-mode
engine, the second through the real REST client (httpx, API-key header, HTTP errors).
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from vdtest import require_module  # noqa: E402  (fails, not skips: tests/vdtest.py)
require_module("qdrant_client")
from qdrant_client import QdrantClient, models  # noqa: E402

from qdrant_rest_bridge import RestBridge  # noqa: E402
from vdedup.connectors import open_connector  # noqa: E402
from vdedup.errors import CollectionNotFound, SourceError, UsageError  # noqa: E402
from vdedup.model import (CollectionSchema, IdType, Metric, RecordBatch,  # noqa: E402
                          VectorField)
from vdtest import repo_bytes, vdedup  # noqa: E402

N_DOCS = 2500
N_UUIDS = 300
EPS32 = float(np.finfo(np.float32).eps)
TEXT_DIM, IMG_DIM, COLBERT_DIM, PLAIN_DIM = 48, 12, 8, 16
VOCAB = 5000


# ------------------------------------------------------------------ test data


def payload(i: int, rng: np.random.Generator) -> dict[str, Any]:
    """Every JSON type Qdrant keeps: str, int, float, bool, null, lists, nested objects."""
    if i % 17 == 0:
        return {}
    p: dict[str, Any] = {"title": f"doc {i} — ünïcode 😀", "page": i - 1500,
                         "score": float(rng.standard_normal()), "whole": float(i), "ok": i % 2 == 0,
                         "none": None, "tags": [f"t{i % 3}", f"t{i % 5}"],
                         "mixed": [1, 2.5, "x", True, None, {"deep": [i]}],
                         "meta": {"author": {"name": f"a{i % 9}", "id": i}, "rank": i / 3}}
    if i % 11 == 3:
        p["big"] = 2**62 + i
        p["neg0"] = -0.0
    return p


def doc_point(i: int, rng: np.random.Generator, pid: Any = None) -> models.PointStruct:
    vector: dict[str, Any] = {"text": rng.standard_normal(TEXT_DIM).astype(np.float32).tolist()}
    if i % 10 != 0:
        # float16-representable values, as a real server would hand back for datatype float16
        vector["img"] = rng.standard_normal(IMG_DIM).astype(np.float16).astype(np.float32).tolist()
    if i % 3 == 0:
        rows = 2 + i % 3
        vector["colbert"] = rng.standard_normal((rows, COLBERT_DIM)).astype(np.float32).tolist()
    if i % 2 == 0:
        k = 3 + i % 20
        idx = rng.choice(VOCAB, size=k, replace=False)
        vector["bm25"] = models.SparseVector(indices=idx.tolist(),
                                             values=rng.random(k).astype(np.float32).tolist())
    return models.PointStruct(id=i if pid is None else pid, vector=vector, payload=payload(i, rng))


def uuid_point(i: int, rng: np.random.Generator) -> models.PointStruct:
    pid = str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | i, version=4)).upper()
    return models.PointStruct(id=pid, vector=rng.standard_normal(PLAIN_DIM).astype(np.float32).tolist(),
                              payload=payload(i, rng))


def create_docs(client: QdrantClient, name: str = "docs") -> None:
    client.create_collection(
        name,
        vectors_config={
            "text": models.VectorParams(size=TEXT_DIM, distance=models.Distance.COSINE),
            "img": models.VectorParams(size=IMG_DIM, distance=models.Distance.EUCLID,
                                       datatype=models.Datatype.FLOAT16, on_disk=True),
            "colbert": models.VectorParams(
                size=COLBERT_DIM, distance=models.Distance.DOT,
                multivector_config=models.MultiVectorConfig(
                    comparator=models.MultiVectorComparator.MAX_SIM)),
        },
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
        hnsw_config=models.HnswConfigDiff(m=24, ef_construct=120),
        on_disk_payload=True)


def seed(client: QdrantClient, n_docs: int = N_DOCS, n_uuids: int = N_UUIDS) -> None:
    rng = np.random.default_rng(1)
    create_docs(client)
    points = [doc_point(i, rng) for i in range(n_docs)]
    order = rng.permutation(n_docs)            # storage order differs from id order
    for a in range(0, n_docs, 500):
        client.upsert("docs", [points[j] for j in order[a:a + 500]], wait=True)
    client.create_collection("uuids", vectors_config=models.VectorParams(
        size=PLAIN_DIM, distance=models.Distance.MANHATTAN))
    client.upsert("uuids", [uuid_point(i, rng) for i in range(n_uuids)], wait=True)
    client.update_collection_aliases(change_aliases_operations=[
        models.CreateAliasOperation(create_alias=models.CreateAlias(
            collection_name="docs", alias_name="docs-live"))])


def change(client: QdrantClient) -> dict[str, int]:
    """One night of changes: 30 new vectors, 20 payload-only edits, 40 inserts, 15 deletes."""
    rng = np.random.default_rng(2)
    updated = [doc_point(i, rng) for i in range(100, 130)]
    client.upsert("docs", updated, wait=True)
    client.set_payload("docs", payload={"edited": True, "page": 7.5}, points=list(range(200, 220)),
                       wait=True)
    client.upsert("docs", [doc_point(i, rng) for i in range(N_DOCS, N_DOCS + 40)], wait=True)
    client.delete("docs", points_selector=models.PointIdsList(points=list(range(500, 515))),
                  wait=True)
    return {"changed": 30 + 20, "added": 40, "deleted": 15}


# ------------------------------------------------------------- reading back


def typed(v: Any) -> Any:
    """A value with its types made visible, so 1 == 1.0, True == 1 and 0.0 == -0.0 differ."""
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    if isinstance(v, float):
        return ("float", np.float64(v).tobytes())
    return (type(v).__name__, v)


def read_all(client: QdrantClient, name: str) -> dict[Any, tuple]:
    """Every point as a plain client reads it: id -> (vectors as float32 bytes, sparse, payload)."""
    out: dict[Any, tuple] = {}
    offset = None
    while True:
        points, offset = client.scroll(name, limit=700, offset=offset, with_payload=True,
                                       with_vectors=True)
        for p in points:
            raw = p.vector if isinstance(p.vector, dict) else {"": p.vector}
            dense, sparse = {}, {}
            for k, v in raw.items():
                if isinstance(v, models.SparseVector):
                    sparse[k] = (np.asarray(v.indices, np.uint32).tobytes(),
                                 np.asarray(v.values, np.float32).tobytes())
                else:
                    arr = np.asarray(v, np.float32)
                    dense[k] = (arr.shape, arr.tobytes())
            assert p.id not in out
            out[p.id] = (dense, sparse, typed(p.payload))
        if offset is None:
            return out


def assert_same_points(got: dict, want: dict, what: str, renormalised: str | None = None) -> None:
    """Same ids; vectors, sparse vectors and payloads (with types) bit for bit.

    `renormalised` names a Cosine vector that the target normalised again on write: a unit
    float32 vector normalised once more moves by an ulp or two (test_..._bit_for_bit[rest]),
    so it is compared to 4 float32 epsilons instead (and must still be a unit vector).
    """
    assert sorted(got, key=str) == sorted(want, key=str), f"{what}: point ids differ"
    for pid, (dense, sparse, pl) in want.items():
        g_dense, g_sparse, g_pl = got[pid]
        if renormalised in dense:
            (shape, raw), (g_shape, g_raw) = dense[renormalised], g_dense[renormalised]
            w, g = np.frombuffer(raw, np.float32), np.frombuffer(g_raw, np.float32)
            assert g_shape == shape and np.abs(g - w).max() <= 4 * EPS32, f"{what}: {pid}"
            assert abs(float(np.linalg.norm(g)) - 1) < 1e-5
            dense = {k: v for k, v in dense.items() if k != renormalised}
            g_dense = {k: v for k, v in g_dense.items() if k != renormalised}
        assert g_dense == dense, f"{what}: vectors of point {pid} differ"
        assert g_sparse == sparse, f"{what}: sparse vectors of point {pid} differ"
        assert g_pl == pl, f"{what}: payload of point {pid} differs"


def config_of(client: QdrantClient, name: str) -> dict[str, Any]:
    params = client.get_collection(name).config.params
    vectors = params.vectors if isinstance(params.vectors, dict) else {"": params.vectors}
    return {
        "vectors": {k: (v.size, v.distance, v.datatype, v.multivector_config)
                    for k, v in vectors.items()},
        "sparse": {k: v.modifier for k, v in (params.sparse_vectors or {}).items()},
    }


# ---------------------------------------------------------------- fixtures


class Target:
    """One Qdrant instance as the CLI sees it (url) and as a plain client sees it.

    `restored(i)` is where restore number i goes: the same server for `qdrant://`, a
    separate directory for local mode (every local-mode client loads every collection of
    its directory when it opens, so keeping restores apart keeps the test fast).
    """

    def __init__(self, url: str, open_client: Any, restored: Any = None) -> None:
        self.url = url
        self._open = open_client
        self._restored = restored

    def restored(self, i: int) -> "Target":
        return self if self._restored is None else self._restored(i)

    @contextlib.contextmanager
    def client(self) -> Iterator[QdrantClient]:
        # Local mode locks its directory to one client: always close before the CLI runs.
        client = self._open()
        try:
            yield client
        finally:
            client.close()


def local_target(path: Path) -> Target:
    return Target(f"qdrant+local://{path}", lambda: QdrantClient(path=str(path)),
                  lambda i: local_target(path.parent / f"{path.name}-restored-{i}"))


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for local-mode storage, on tmpfs when there is one.

    Local mode commits (and so fsyncs) SQLite once per point: about 6 ms a point on this
    machine's disk, 2 ms on tmpfs. The code path is the same; only the disk differs.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="vdedup-qdrant-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["local", "rest"])
def target(request, fast_dir: Path) -> Iterator[Target]:
    if request.param == "local":
        yield local_target(fast_dir / "qdrant")
        return
    with RestBridge() as bridge:
        yield Target(bridge.url, lambda: QdrantClient(url=f"http://127.0.0.1:{bridge.port}",
                                                      check_compatibility=False))


@pytest.fixture
def local_path(fast_dir: Path) -> Path:
    return fast_dir / "qdrant-local"


def _json_out(capsys, *args: Any) -> Any:
    capsys.readouterr()
    code = vdedup(*args)
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


# ------------------------------------------------------------------ end to end


def test_backup_change_backup_restore_every_snapshot_bit_for_bit(target: Target, repo_path: Path,
                                                                 capsys) -> None:
    with target.client() as client:
        seed(client)
    # Read what the source returns to a fresh client, as vdedup does: local mode hands back
    # Cosine vectors normalised to the client that wrote them, but as written to a client
    # that reopens the directory (it persists the points as given).
    with target.client() as client:
        states = [{c: read_all(client, c) for c in ("docs", "uuids")}]
        source_config = config_of(client, "docs")
    assert len(states[0]["docs"]) == N_DOCS and len(states[0]["uuids"]) == N_UUIDS
    assert all(isinstance(k, str) and k == k.lower() for k in states[0]["uuids"])

    assert vdedup("--repo", repo_path, "init") == 0
    first = _json_out(capsys, "--repo", repo_path, "backup", target.url, "--json")
    assert first["records"] == first["added"] == N_DOCS + N_UUIDS
    size1 = repo_bytes(repo_path)

    with target.client() as client:
        want = change(client)
    with target.client() as client:
        states.append({c: read_all(client, c) for c in ("docs", "uuids")})
    second = _json_out(capsys, "--repo", repo_path, "backup", target.url, "--json")
    added_bytes = repo_bytes(repo_path) - size1
    assert second["parent"] == first["snapshot_id"]
    assert (second["changed"], second["added"], second["deleted"]) == (
        want["changed"], want["added"], want["deleted"])
    assert second["records"] == N_DOCS + N_UUIDS + 40 - 15
    assert second["unchanged"] == N_DOCS + N_UUIDS - 15 - 50
    # Only the 70 points with new vectors store vectors; the 20 payload edits store none.
    assert second["vector_blobs_new"] == 30 + 40
    text_bytes = 70 * TEXT_DIM * 4
    assert text_bytes < added_bytes < 70 * (TEXT_DIM * 4 + IMG_DIM * 2 + 4 * COLBERT_DIM * 4
                                            + 22 * 8 + 200) + 24_000, added_bytes

    ls = _json_out(capsys, "--repo", repo_path, "ls", "latest", "--json")
    docs = next(c for c in (ls if isinstance(ls, list) else ls["collections"])
                if c["name"] == "docs")
    schema = CollectionSchema.from_dict(docs["schema"])
    assert schema.id_type == IdType.INT and schema.namespaces == ("",)
    assert {v.name: (v.dim, v.metric, v.dtype, v.multivector) for v in schema.vectors} == {
        "text": (TEXT_DIM, Metric.COSINE, "float32", False),
        "img": (IMG_DIM, Metric.EUCLIDEAN, "float16", False),
        "colbert": (COLBERT_DIM, Metric.DOT, "float32", True)}
    assert [(s.name, s.modifier) for s in schema.sparse] == [("bm25", "idf")]
    assert schema.extras["aliases"] == ["docs-live"]
    assert schema.extras["config"]["params"]["vectors"]["img"]["on_disk"] is True

    snaps = _json_out(capsys, "--repo", repo_path, "snapshots", "--json")
    assert [s["id"] for s in snaps] == [first["snapshot_id"], second["snapshot_id"]]
    # "uuids" did not change between the snapshots: restoring it from the last one suffices.
    restores = [(0, "docs"), (1, "docs"), (1, "uuids")]
    for i, coll in restores:
        assert vdedup("--repo", repo_path, "restore", snaps[i]["id"][:10], "--target",
                      target.restored(i).url, "--collection", coll, "--as", f"{coll}-s{i}") == 0
    # Through the REST front the engine is one long-lived local-mode client, which normalises
    # Cosine vectors on every write, so the already-normalised "text" vectors are normalised
    # again (as a real server does). Reopened local mode returns them as written.
    renormalised = "text" if target.url.startswith("qdrant://") else None
    for i, coll in restores:
        with target.restored(i).client() as client:
            assert_same_points(read_all(client, f"{coll}-s{i}"), states[i][coll], f"{coll}-s{i}",
                               renormalised)
            if coll == "docs":
                assert config_of(client, f"docs-s{i}") == source_config
            else:
                assert config_of(client, "uuids-s1")["vectors"][""][:2] == (
                    PLAIN_DIM, models.Distance.MANHATTAN)
            aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
        # A restore never moves an alias that exists; into a fresh directory it recreates it.
        if target.restored(i) is target:
            assert aliases == {"docs-live": "docs"}
        elif coll == "docs":
            assert aliases == {"docs-live": f"docs-s{i}"}


def test_restore_into_a_fresh_instance_recreates_aliases_and_config(fast_dir: Path,
                                                                    repo_path: Path) -> None:
    src = fast_dir / "src"
    with contextlib.closing(QdrantClient(path=str(src))) as client:
        seed(client, n_docs=300, n_uuids=10)
    with contextlib.closing(QdrantClient(path=str(src))) as client:
        want = read_all(client, "docs")
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"qdrant+local://{src}", "--collection",
                  "docs") == 0
    with RestBridge() as bridge:
        assert vdedup("--repo", repo_path, "restore", "latest", "--target", bridge.url) == 0
        with contextlib.closing(QdrantClient(url=f"http://127.0.0.1:{bridge.port}",
                                             check_compatibility=False)) as client:
            got = read_all(client, "docs")
            aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
            info = client.get_collection("docs")
    # From local mode (vectors as written) into REST (local mode normalises Cosine on write):
    # every vector but the Cosine one bit for bit; the Cosine one normalised.
    for pid, (dense, sparse, pl) in want.items():
        g_dense, g_sparse, g_pl = got[pid]
        assert g_sparse == sparse and g_pl == pl
        for name, (shape, raw) in dense.items():
            if name != "text":
                assert g_dense[name] == (shape, raw)
            else:
                v = np.frombuffer(raw, np.float32)
                g = np.frombuffer(g_dense[name][1], np.float32)
                assert np.abs(g - v / np.linalg.norm(v)).max() < 1e-6
    assert aliases == {"docs-live": "docs"}
    assert info.config.params.vectors["img"].on_disk is True
    assert info.config.params.sparse_vectors["bm25"].modifier == models.Modifier.IDF


# ------------------------------------------------------------- the connector


def test_scan_types_ids_and_float16(local_path: Path) -> None:
    rng = np.random.default_rng(5)
    with contextlib.closing(QdrantClient(path=str(local_path))) as client:
        create_docs(client, "mini")
        points = [doc_point(i, rng) for i in range(6)]
        # Local mode keeps float32 values whatever the datatype says: not float16-exact here.
        points[1].vector["img"] = [0.1] * IMG_DIM
        client.upsert("mini", points, wait=True)
        client.create_collection("ids", vectors_config=models.VectorParams(
            size=2, distance=models.Distance.DOT))
        client.upsert("ids", [models.PointStruct(id="A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
                                                 vector=[1.0, 2.0])], wait=True)
    conn = open_connector(f"qdrant+local://{local_path}?collection=mini")
    try:
        assert conn.list_collections() == ["mini"]
        batches = list(conn.scan("mini", batch_size=4))
        ids_schema = conn.describe("ids")
        (ids_batch,) = conn.scan("ids")
    finally:
        conn.close()
    assert [len(b) for b in batches] == [4, 2]
    recs = {r.id: r for b in batches for r in b.records()}
    assert sorted(recs) == list(range(6))
    assert recs[2].vectors["img"].dtype == np.float16            # exact: stored narrow
    assert recs[1].vectors["img"].dtype == np.float32            # not exact: kept float32
    assert recs[1].vectors["img"].tobytes() == np.full(IMG_DIM, 0.1, np.float32).tobytes()
    assert recs[0].vectors["colbert"].shape == (2, COLBERT_DIM)
    assert "img" not in recs[0].vectors and "bm25" not in recs[1].sparse
    assert recs[0].sparse["bm25"].indices.tolist() == sorted(recs[0].sparse["bm25"].indices.tolist())
    assert recs[3].metadata["big"] == 2**62 + 3 and type(recs[3].metadata["whole"]) is float
    assert ids_schema.id_type == IdType.UUID and ids_schema.vectors[0].name == ""
    assert ids_batch.ids == ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]
    assert ids_batch.dense[""].tobytes() == np.array([[1, 2]], np.float32).tobytes()


def test_create_from_a_foreign_schema_and_write_rules(local_path: Path) -> None:
    schema = CollectionSchema(provider="chroma", name="x", id_type=IdType.STRING,
                              vectors=(VectorField("", 3, Metric.EUCLIDEAN),),
                              extras={"config": {"hnsw_config": {"m": 999}}})
    conn = open_connector(f"qdrant+local://{local_path}")
    try:
        conn.create_collection(schema, "from-chroma")
        with pytest.raises(SourceError, match="already exists"):
            conn.create_collection(schema, "from-chroma")
        v = np.arange(6, dtype=np.float32).reshape(2, 3)
        with pytest.raises(UsageError, match="UUIDs"):
            conn.write("from-chroma", RecordBatch(ids=["doc-1", "doc-2"], dense={"": v}))
        with pytest.raises(UsageError, match="'when'"):
            conn.write("from-chroma", RecordBatch(ids=[1, 2], dense={"": v}, metadata=[
                {"when": datetime.date(2026, 1, 1)}, None]))
        with pytest.raises(UsageError, match="namespaces"):
            conn.write("from-chroma", RecordBatch(ids=[1, 2], dense={"": v}, namespace="ns"))
        conn.write("from-chroma", RecordBatch(ids=[1, 2], dense={"": v},
                                              metadata=[{"k": [1, None]}, None]))
        got = {r.id: r for b in conn.scan("from-chroma") for r in b.records()}
        conn.delete("from-chroma", [2])
        assert conn.count("from-chroma") == 1
        described = conn.describe("from-chroma")
        for bad, match in ((Metric.UNKNOWN, "cannot be represented"),
                           (Metric.HAMMING, "cannot be represented")):
            with pytest.raises(UsageError, match=match):
                conn.create_collection(CollectionSchema(
                    provider="x", name="y", vectors=(VectorField("", 3, bad),)), "bad")
        with pytest.raises(UsageError, match="dimension"):
            conn.create_collection(CollectionSchema(
                provider="x", name="y", vectors=(VectorField("", None, Metric.DOT),)), "bad")
        assert not conn.exists("bad")
    finally:
        conn.close()
    assert got[1].vectors[""].tobytes() == v[0].tobytes() and got[1].metadata == {"k": [1, None]}
    assert got[2].metadata == {}                      # Qdrant has no "no payload": it is {}
    assert described.vectors == (VectorField("", 3, Metric.EUCLIDEAN, index=described.vectors[0].index),)
    assert described.extras["config"]["hnsw_config"]["m"] != 999   # foreign extras ignored


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant")
def test_create_collection_sends_what_a_server_keeps() -> None:
    """Settings local mode ignores (payload indexes, HNSW, optimizers) still reach the API."""
    with RestBridge() as bridge:
        with contextlib.closing(QdrantClient(url=f"http://127.0.0.1:{bridge.port}",
                                             check_compatibility=False)) as client:
            create_docs(client, "src")
        conn = open_connector(bridge.url)
        try:
            schema = conn.describe("src").to_dict()
            # As a server reports them (local mode keeps neither):
            schema["extras"]["payload_schema"] = {
                "title": {"data_type": "keyword", "params": None, "points": 10},
                "page": {"data_type": "integer", "points": 10,
                         "params": {"type": "integer", "lookup": True, "range": True}}}
            schema["extras"]["config"]["hnsw_config"]["m"] = 24
            schema["extras"]["config"]["optimizer_config"]["indexing_threshold"] = 5000
            conn.create_collection(CollectionSchema.from_dict(schema), "copy")
        finally:
            conn.close()
        sent = [(m, p, b) for m, p, b in bridge.bridge.requests if p.startswith("/collections/copy")]
    create = next(b for m, p, b in sent if (m, p) == ("PUT", "/collections/copy"))
    assert create["hnsw_config"]["m"] == 24
    assert create["optimizers_config"]["indexing_threshold"] == 5000
    assert create["vectors"]["img"]["datatype"] == "float16"
    assert create["vectors"]["img"]["on_disk"] is True
    assert create["vectors"]["colbert"]["multivector_config"] == {"comparator": "max_sim"}
    assert create["sparse_vectors"] == {"bm25": {"modifier": "idf"}}
    indexes = {b["field_name"]: b["field_schema"] for m, p, b in sent
               if (m, p) == ("PUT", "/collections/copy/index")}
    assert indexes == {"title": "keyword",
                       "page": {"type": "integer", "lookup": True, "range": True}}


# ---------------------------------------------------------------------- errors


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_bad_input_gives_one_line_errors_and_exit_codes(tmp_path: Path, repo_path: Path,
                                                        closed_port: int, capsys,
                                                        monkeypatch) -> None:
    assert vdedup("--repo", repo_path, "init") == 0
    monkeypatch.setenv("QDRANT_API_KEY", "key-SECRET-1")

    def run(*args: Any) -> tuple[int, str]:
        capsys.readouterr()
        code = vdedup("--repo", repo_path, *args)
        out = capsys.readouterr()
        assert "SECRET" not in out.out + out.err and "Traceback" not in out.err
        return code, out.err.strip()

    code, err = run("backup", f"qdrant://127.0.0.1:{closed_port}")
    assert code == 15 and f"cannot reach Qdrant at 127.0.0.1:{closed_port}" in err
    assert len(err.splitlines()) == 1

    for url in (f"qdrant://127.0.0.1:{closed_port}?api_key=SECRET-2",
                f"qdrant://me:SECRET-3@127.0.0.1:{closed_port}",
                f"qdrant://127.0.0.1:{closed_port}?bogus=1",
                "qdrant+local://relative/path", f"qdrant+local://{tmp_path}?https=1"):
        assert run("backup", url)[0] == 2, url

    with RestBridge(api_key="key-SECRET-1") as bridge:
        with contextlib.closing(QdrantClient(url=f"http://127.0.0.1:{bridge.port}",
                                             api_key="key-SECRET-1", https=False,
                                             check_compatibility=False)) as client:
            client.create_collection("c", vectors_config=models.VectorParams(
                size=2, distance=models.Distance.DOT))
            client.upsert("c", [models.PointStruct(id=1, vector=[1.0, 2.0])], wait=True)
        code, err = run("backup", bridge.url, "--collection", "missing")
        assert code == 15 and "'missing' not found" in err
        code, err = run("backup", f"{bridge.url}/missing")
        assert code == 15 and "'missing' not found" in err
        assert run("backup", f"{bridge.url}/c")[0] == 0
        monkeypatch.setenv("QDRANT_API_KEY", "key-SECRET-wrong")
        code, err = run("backup", f"{bridge.url}/c")
        assert code == 15 and "refused" in err and "QDRANT_API_KEY" in err
        monkeypatch.delenv("QDRANT_API_KEY")
        assert run("backup", bridge.url)[0] == 15

    path = tmp_path / "locked"
    with contextlib.closing(QdrantClient(path=str(path))) as holder:
        holder.create_collection("c", vectors_config=models.VectorParams(
            size=2, distance=models.Distance.DOT))
        code, err = run("backup", f"qdrant+local://{path}")
        assert code == 15 and "already accessed" in err
    code, err = run("backup", f"qdrant+local://{path}", "--collection", "nope")
    assert code == 15 and "'nope' not found" in err


def test_connector_errors_are_wrapped(local_path: Path) -> None:
    conn = open_connector(f"qdrant+local://{local_path}")
    try:
        assert not conn.exists("nope")
        for call in (lambda: conn.describe("nope"), lambda: conn.count("nope"),
                     lambda: list(conn.scan("nope"))):
            with pytest.raises(CollectionNotFound, match="'nope'"):
                call()
        with pytest.raises(UsageError, match="namespaces"):
            conn.count("nope", "ns")
    finally:
        conn.close()
    with pytest.raises(SourceError, match="closed"):
        conn.list_collections()
