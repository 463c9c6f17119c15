"""Discovery (`Connector.discover`, engine.discovery.discover, `vdedup sources`) against every
connector's test server or emulator: each collection the credentials reach, with its record
count, dimensions, metric and namespaces, compared with what the test wrote through the
provider's own client; wrong credentials and bad URLs are one-line errors with exit codes."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vdedup.engine.discovery import discover
from vdedup.errors import SourceError, UsageError
from vdedup.model import DiscoveredIndex
from vdtest import require_module, vdedup, vdedup_proc


def by_name(found: list[DiscoveredIndex]) -> dict[str, DiscoveredIndex]:
    names = [d.name for d in found]
    assert len(set(names)) == len(names), names
    return {d.name: d for d in found}


def entry(found: list[DiscoveredIndex], name: str) -> tuple:
    d = by_name(found)[name]
    return (d.count, d.dims, d.metric, d.namespaces, d.problem)


def sources_json(capsys, *args: str) -> dict[str, Any]:
    capsys.readouterr()
    code = vdedup("sources", *args, "--json")
    got = capsys.readouterr()
    assert code == 0, got.err
    return json.loads(got.out)


def rows(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


# ------------------------------------------------------------------ files


def test_files_export(tmp_path, capsys):
    d = tmp_path / "export"
    d.mkdir()
    np.save(d / "vectors.npy", rows(37, 12, 0))
    (d / "records.jsonl").write_text("".join(json.dumps({"id": f"r{i}"}) + "\n" for i in range(37)))
    url = f"files://{d}?collection=docs&metric=euclidean"
    assert discover(url) == [DiscoveredIndex("files", "docs", 37, 12, "euclidean", ("",))]
    got = sources_json(capsys, url)
    assert got["url"] == url and got["indexes"] == [
        {"provider": "files", "name": "docs", "count": 37, "dims": 12, "metric": "euclidean",
         "namespaces": [""], "problem": None}]


# ------------------------------------------------------------------ chroma


def chroma_seed(client: Any) -> None:
    a = client.create_collection("cos-docs", embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
    a.add(ids=[f"a{i}" for i in range(40)], embeddings=rows(40, 8, 1))
    b = client.create_collection("plain-docs", embedding_function=None)       # Chroma's default: l2
    b.add(ids=[f"b{i}" for i in range(25)], embeddings=rows(25, 5, 2))
    client.create_collection("empty-docs", embedding_function=None)


CHROMA_EXPECTED = {"cos-docs": (40, 8, "cosine", ("",), None),
                   "plain-docs": (25, 5, "euclidean", ("",), None),
                   "empty-docs": (0, None, "euclidean", ("",), None)}


def test_chroma_embedded(chroma_dir: Path, tmp_path: Path, capsys):
    chromadb = require_module("chromadb")
    from chromadb.config import Settings
    client = chromadb.PersistentClient(path=str(chroma_dir), settings=Settings(anonymized_telemetry=False))
    chroma_seed(client)
    found = discover(f"chroma://{chroma_dir}")
    assert {d.name: entry(found, d.name) for d in found} == CHROMA_EXPECTED
    # a directory that does not exist is empty, and is not created by looking
    missing = tmp_path / "no-such-dir"
    assert discover(f"chroma://{missing}") == [] and not missing.exists()
    capsys.readouterr()
    assert vdedup("sources", f"chroma://{missing}") == 0
    assert "no collections found" in capsys.readouterr().err and not missing.exists()


def test_chroma_server(chroma_server, capsys):
    chromadb = require_module("chromadb")
    client = chromadb.HttpClient(host=chroma_server.host, port=chroma_server.port)
    chroma_seed(client)
    found = discover(chroma_server.url)
    assert {d.name: entry(found, d.name) for d in found} == CHROMA_EXPECTED
    # the table for people: names, counts, dimensions, metrics
    capsys.readouterr()
    assert vdedup("sources", chroma_server.url) == 0
    got = capsys.readouterr()
    lines = {ln.split()[0]: ln.split() for ln in got.out.splitlines()[1:] if ln.strip()}
    assert lines["cos-docs"][1:4] == ["40", "8", "cosine"]
    assert lines["empty-docs"][1:4] == ["0", "-", "euclidean"]
    assert "3 collection(s)" in got.err and "65 records" in got.err


# ------------------------------------------------------------------ pgvector


def test_pgvector_tables_with_a_vector_column(capsys):
    require_module("psycopg")
    from pg_fixtures import connect, fresh_database, url
    with fresh_database("vdedup_disc") as db:
        with connect(db) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, emb vector(8), note text)")
            conn.execute("CREATE INDEX ON items USING hnsw (emb vector_cosine_ops)")
            conn.execute("INSERT INTO items SELECT g, array_fill(g::real, ARRAY[8])::vector, 'x' "
                         "FROM generate_series(1, 23) g")
            conn.execute("CREATE SCHEMA other")
            conn.execute("CREATE TABLE other.halves (k text PRIMARY KEY, h halfvec(4))")
            conn.execute("INSERT INTO other.halves VALUES ('a', '[1,2,3,4]'), ('b', NULL)")
            conn.execute("CREATE TABLE loose (emb vector(3))")                  # no primary key
            conn.execute("INSERT INTO loose VALUES ('[1,2,3]')")
            conn.execute("CREATE TABLE plain (id int PRIMARY KEY, t text)")     # no vector column
        found = discover(url(db))
        assert [d.name for d in found] == ["other.halves", "items", "loose"]    # by schema; not "plain"
        assert entry(found, "items") == (23, 8, "cosine", ("",), None)
        assert entry(found, "other.halves") == (2, 4, None, ("",), None)        # no index: no metric
        loose = by_name(found)["loose"]
        assert loose.count is None and "no primary key" in loose.problem
        got = sources_json(capsys, url(db))
        assert {i["name"] for i in got["indexes"]} == {"items", "loose", "other.halves"}
        # a wrong password: one line, exit 15 (the server trusts local users, so a role that
        # does not exist stands for wrong credentials)
        r = vdedup_proc("sources", url(db, user="nobody_here"))
        assert r.returncode == 15 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) <= 2


# ------------------------------------------------------------------ milvus


def test_milvus_collections_and_partitions():
    require_module("pymilvus")
    uri = os.environ.get("VDEDUP_TEST_MILVUS_URI")
    if not uri:
        pytest.fail("VDEDUP_TEST_MILVUS_URI is not set: start the servers with `bash scripts/servers.sh start`")
    from pymilvus import DataType, MilvusClient
    client = MilvusClient(uri=uri)
    one, two = f"disc_a_{uuid.uuid4().hex[:8]}", f"disc_b_{uuid.uuid4().hex[:8]}"
    try:
        s = MilvusClient.create_schema(auto_id=False)
        s.add_field("pk", DataType.INT64, is_primary=True)
        s.add_field("v", DataType.FLOAT_VECTOR, dim=16)
        idx = client.prepare_index_params()
        idx.add_index("v", index_type="AUTOINDEX", metric_type="IP")
        client.create_collection(one, schema=s, index_params=idx)
        client.create_partition(one, "archive")
        vecs = rows(30, 16, 3)
        client.insert(one, [{"pk": i, "v": vecs[i].tolist()} for i in range(20)])
        client.insert(one, [{"pk": i, "v": vecs[i].tolist()} for i in range(20, 30)], partition_name="archive")
        s2 = MilvusClient.create_schema(auto_id=False)
        s2.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
        s2.add_field("v", DataType.FLOAT_VECTOR, dim=4)
        idx2 = client.prepare_index_params()
        idx2.add_index("v", index_type="AUTOINDEX", metric_type="L2")
        client.create_collection(two, schema=s2, index_params=idx2)
        client.insert(two, [{"pk": f"k{i}", "v": [float(i)] * 4} for i in range(7)])
        for name in (one, two):
            client.flush(name)
        found = discover("milvus://" + uri.split("://", 1)[1])
        a, b = by_name(found)[one], by_name(found)[two]
        assert (a.count, a.dims, a.metric, a.problem) == (30, 16, "dot", None)
        assert a.namespaces == ("_default", "archive")          # a native collection's partitions
        assert (b.count, b.dims, b.metric, b.namespaces, b.problem) == (7, 4, "euclidean", ("_default",), None)
    finally:
        for name in (one, two):
            client.drop_collection(name)
        client.close()


# ------------------------------------------------------------------ qdrant


def qdrant_seed(client: Any) -> None:
    from qdrant_client import models
    client.create_collection("docs", vectors_config={
        "text": models.VectorParams(size=6, distance=models.Distance.COSINE),
        "img": models.VectorParams(size=3, distance=models.Distance.EUCLID)})
    v6, v3 = rows(12, 6, 4), rows(12, 3, 5)
    client.upsert("docs", [models.PointStruct(id=i, vector={"text": v6[i].tolist(), "img": v3[i].tolist()})
                           for i in range(12)], wait=True)
    client.create_collection("plain", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))
    client.upsert("plain", [models.PointStruct(id=i, vector=[float(i)] * 4) for i in range(1, 6)], wait=True)


def test_qdrant_local(tmp_path):
    require_module("qdrant_client")
    from qdrant_client import QdrantClient
    path = tmp_path / "qdrant"
    client = QdrantClient(path=str(path))
    try:
        qdrant_seed(client)
    finally:
        client.close()
    found = discover(f"qdrant+local://{path}")
    # the first vector by name ("img") gives dims and metric
    assert entry(found, "docs") == (12, 3, "euclidean", ("",), None)
    assert entry(found, "plain") == (5, 4, "dot", ("",), None)


def test_qdrant_server_with_an_api_key():
    require_module("qdrant_client")
    from qdrant_rest_bridge import RestBridge        # the connector's real REST client talks to it
    with RestBridge(api_key="qd-key-0123456789") as bridge:
        qdrant_seed(bridge.bridge.client)
        found = discover(bridge.url, "qd-key-0123456789")
        assert sorted(d.name for d in found) == ["docs", "plain"]
        assert entry(found, "plain") == (5, 4, "dot", ("",), None)
        with pytest.raises(SourceError):
            discover(bridge.url, "wrong-key-0123456789")
        r = vdedup_proc("sources", bridge.url, env={**os.environ, "QDRANT_API_KEY": "wrong-key-0123456789"})
        assert r.returncode == 15 and "Traceback" not in r.stderr and "wrong-key" not in r.stderr, r.stderr


# ------------------------------------------------------------------ pinecone


PC_KEY = "pc-discovery-key-0123456789abcdef"


@pytest.fixture
def pinecone_emu(monkeypatch):
    require_module("pinecone")
    from emulators.pinecone_emulator import PineconeEmulator
    with PineconeEmulator(PC_KEY) as emu:
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", emu.url)
        monkeypatch.delenv("PINECONE_API_KEY", raising=False)
        yield emu


def pinecone_seed(emu: Any) -> None:
    """Three indexes: dense cosine in three namespaces, dense euclidean, sparse only; and a
    document index (named fields), which cannot be backed up."""
    import pinecone
    client = pinecone.Pinecone(api_key=PC_KEY, host=emu.url)
    deployment = {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}

    def create(name: str, fields: dict) -> Any:
        model = client.indexes.create(name=name, schema={"fields": fields}, deployment=deployment, timeout=-1)
        return client.index(host=model.host)

    a = create("alpha", {"_values": {"type": "dense_vector", "dimension": 8, "metric": "cosine"}})
    v = rows(30, 8, 6)
    for ns, (lo, hi) in {"": (0, 5), "red": (5, 17), "blue": (17, 30)}.items():
        a.upsert(vectors=[{"id": f"{ns}{i}", "values": v[i].tolist()} for i in range(lo, hi)], namespace=ns)
    b = create("beta", {"_values": {"type": "dense_vector", "dimension": 3, "metric": "euclidean"}})
    b.upsert(vectors=[{"id": f"b{i}", "values": [float(i), 1.0, 2.0]} for i in range(9)])
    c = create("gamma", {"_sparse_values": {"type": "sparse_vector"}})
    c.upsert(vectors=[{"id": f"c{i}", "sparse_values": {"indices": [i, i + 5], "values": [0.5, 1.5]}}
                      for i in range(4)])
    emu.settle()


def test_pinecone_counts_every_namespace(pinecone_emu, capsys, monkeypatch):
    pinecone_seed(pinecone_emu)
    pinecone_emu.requests.clear()
    found = discover("pinecone://", PC_KEY)
    # one list of the indexes, then one describe_index_stats per index: nothing per namespace
    assert sorted(pinecone_emu.requests) == [("GET", "/indexes")] + [("POST", "/describe_index_stats")] * 3
    assert [d.name for d in found] == ["alpha", "beta", "gamma"]
    assert entry(found, "alpha") == (30, 8, "cosine", ("", "blue", "red"), None)
    assert entry(found, "beta") == (9, 3, "euclidean", ("",), None)
    assert entry(found, "gamma") == (4, None, "dot", ("",), None)
    # the same as the default discover() computes from describe and count, in fewer calls
    from vdedup.connectors import Credentials, open_connector
    from vdedup.connectors.base import ConnectorBase
    with open_connector("pinecone://", Credentials(PC_KEY, "test")) as conn:
        assert ConnectorBase.discover(conn) == found
    # one index named by the URL
    assert discover("pinecone://beta", PC_KEY) == [found[1]]
    # the CLI: the key from PINECONE_API_KEY
    monkeypatch.setenv("PINECONE_API_KEY", PC_KEY)
    got = sources_json(capsys, "pinecone://")
    assert [(i["name"], i["count"], i["namespaces"]) for i in got["indexes"]] == \
        [("alpha", 30, ["", "blue", "red"]), ("beta", 9, [""]), ("gamma", 4, [""])]
    assert vdedup("sources", "pinecone://") == 0
    table = capsys.readouterr().out
    assert "3: (default), blue, red" in table and PC_KEY not in table


def test_pinecone_wrong_key_and_bad_urls(pinecone_emu, monkeypatch):
    with pytest.raises(SourceError) as e:
        discover("pinecone://", "pc-wrong-key-000000000000000")
    assert "wrong-key" not in e.value.message
    env = {**os.environ, "PINECONE_API_KEY": "pc-wrong-key-000000000000000"}
    r = vdedup_proc("sources", "pinecone://", env=env)
    assert r.returncode == 15 and "Traceback" not in r.stderr and "wrong-key" not in r.stdout + r.stderr
    assert r.stderr.startswith("vdedup: error:") and len(r.stderr.strip().splitlines()) <= 2, r.stderr
    for bad, code in (("nosuch://x", 2), ("pinecone://Bad_Name", 2), ("not a url", 2)):
        r = vdedup_proc("sources", bad, env=env)
        assert r.returncode == code and "Traceback" not in r.stderr, (bad, r.stderr)
    r = vdedup_proc("sources", env=env)
    assert r.returncode == 2
    with pytest.raises(UsageError):
        discover("pinecone://", None)          # Pinecone needs a key


# ------------------------------------------------------------------ weaviate


def test_weaviate_classes_and_tenants(monkeypatch):
    require_module("weaviate")
    from test_weaviate import KEY, N_NOTES, PER_TENANT, TENANTS, seed
    from vdedup.connectors.weaviate import connector as wvconn
    from emulators.weaviate_emulator import WeaviateEmulator
    monkeypatch.setattr(wvconn, "BACKOFF", 0.01)
    with WeaviateEmulator(api_keys=[KEY]) as emu:
        seed(emu)
        url = f"weaviate://{emu.host}:{emu.port}"
        found = discover(url, KEY)
        assert [d.name for d in found] == ["Doc", "Note"]
        assert entry(found, "Doc") == (PER_TENANT * len(TENANTS), 24, "cosine", TENANTS, None)
        assert entry(found, "Note") == (N_NOTES, 16, "euclidean", ("",), None)
        with pytest.raises(SourceError):
            discover(url, "wrong-key-xyz")
        r = vdedup_proc("sources", url, env={**os.environ, "WEAVIATE_API_KEY": "wrong-key-xyz"})
        assert r.returncode == 15 and "Traceback" not in r.stderr and "wrong-key" not in r.stderr, r.stderr
