"""Chroma connector against real chromadb: embedded (PersistentClient) and `chroma run`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vdtest import require_module  # noqa: E402  (fails, not skips: tests/vdtest.py)
chromadb = require_module("chromadb")
from chromadb.config import Settings  # noqa: E402

from vdedup.connectors import Credentials, open_connector, parse_url  # noqa: E402
from vdedup.connectors.chroma.connector import ChromaConnector  # noqa: E402
from vdedup.connectors.chroma.schema import space_of as _space  # noqa: E402
from vdedup.errors import CollectionNotFound, SourceError, UsageError  # noqa: E402
from vdedup.model import CollectionSchema, Metric, RecordBatch, VectorField  # noqa: E402

DIM = 768
N_EMBEDDED = 2000
N_SERVER = 500
COSINE = "source-cosine"     # configured: cosine, ef_construction=200, collection metadata
PLAIN = "source-plain"       # no configuration: Chroma's default space, l2
EPS32 = float(np.finfo(np.float32).eps)


# ------------------------------------------------------------------ test data


def make_data(n: int, dim: int, seed: int) -> dict[str, Any]:
    """Records with every metadata type Chroma keeps, and gaps in metadata, documents, uris."""
    rng = np.random.default_rng(seed)
    ids = [f"rec-{i:05d}" for i in range(n)]
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    metadatas: list[dict[str, Any] | None] = []
    for i in range(n):
        if i % 7 == 0:
            metadatas.append(None)
            continue
        m: dict[str, Any] = {"s": f"text {i} ü 😀", "i": i - 1000,
                             "f": float(rng.standard_normal()), "whole": float(i), "b": i % 2 == 0}
        if i % 3 == 1:
            m.update(ls=["a", str(i)], li=[i, 2**40], lf=[0.1, 1 / 3], lb=[True, False])
        if i % 11 == 2:
            m["big"] = 2**62 + i
        metadatas.append(m)
    documents = [None if i % 5 == 0 else ("" if i == 1 else f"document {i} — ünïcode")
                 for i in range(n)]
    uris = [None if i % 3 == 0 else f"s3://bucket/{i}.txt" for i in range(n)]
    # Insert in a shuffled order so storage order differs from id order.
    order = rng.permutation(n)
    return {"ids": ids, "vectors": vectors, "metadatas": metadatas, "documents": documents,
            "uris": uris, "order": order}


def raw_client(path: Path) -> Any:
    # Same settings as the connector: Chroma shares one system per path and refuses a second
    # client with different settings in the same process.
    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


def seed(client: Any, name: str, data: dict[str, Any], **create: Any) -> None:
    col = client.create_collection(name=name, embedding_function=None, **create)
    step = client.get_max_batch_size()
    order = data["order"]
    for a in range(0, len(order), step):
        idx = order[a:a + step]
        col.add(ids=[data["ids"][i] for i in idx], embeddings=data["vectors"][idx],
                metadatas=[data["metadatas"][i] for i in idx],
                documents=[data["documents"][i] for i in idx],
                uris=[data["uris"][i] for i in idx])


def same(a: Any, b: Any, float_ulps: int = 0) -> bool:
    """Equal, and of the same type all the way down (1 is not 1.0, True is not 1).

    `float_ulps` allows float values that many units in the last place apart: Chroma may
    store a float metadata value one ulp off (test_float_metadata_moves_by_one_ulp_on_write).
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], float_ulps) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y, float_ulps) for x, y in zip(a, b))
    if isinstance(a, float) and a != b:
        ulps = abs(int(np.float64(a).view(np.int64)) - int(np.float64(b).view(np.int64)))
        return ulps <= float_ulps
    return a == b


Rows = dict[str, tuple]   # id -> (float32 vector, metadata, document, uri)


def expected_rows(data: dict[str, Any]) -> Rows:
    return {rid: (data["vectors"][i], data["metadatas"][i], data["documents"][i], data["uris"][i])
            for i, rid in enumerate(data["ids"])}


def raw_rows(col: Any) -> Rows:
    """What a plain chromadb client reads: the independent reference for the connector."""
    got = col.get(include=["embeddings", "metadatas", "documents", "uris"])
    assert got["embeddings"].dtype == np.float64     # trap: float32 data comes back as float64
    return {rid: (got["embeddings"][i].astype(np.float32), got["metadatas"][i],
                  got["documents"][i], got["uris"][i]) for i, rid in enumerate(got["ids"])}


def scan_all(conn: ChromaConnector, name: str, batch_size: int) -> Rows:
    """Every record through the connector, checking batch shape on the way."""
    out: Rows = {}
    for batch in conn.scan(name, batch_size=batch_size):
        assert 0 < len(batch) <= batch_size
        vec = batch.dense[""]
        assert vec.dtype == np.float32 and vec.shape[0] == len(batch)
        assert "" not in batch.dense_present
        for i, rec in enumerate(batch.records()):
            assert rec.id not in out, f"id {rec.id} scanned twice"
            assert rec.vectors[""].tobytes() == vec[i].tobytes()
            out[rec.id] = (rec.vectors[""], rec.metadata, rec.document, rec.uri)
    return out


def assert_rows(got: Rows, want: Rows, cosine: bool = False, float_ulps: int = 0) -> None:
    """Same ids; vectors bit for bit; metadata equal with the same types; documents; uris.

    Two chromadb 1.5.9 traps need the keyword arguments (see the canary tests):
    `cosine`: a cosine collection hands its vectors back a few ulps off, so they are compared
    to 8 float32 ulps of their norm; `float_ulps`: every write may move a float metadata
    value by one ulp.
    """
    assert sorted(got) == sorted(want)
    for rid, (w_vec, w_meta, w_doc, w_uri) in want.items():
        vec, meta, doc, uri = got[rid]
        assert vec.dtype == np.float32 and vec.shape == w_vec.shape
        if cosine:
            bound = 8 * EPS32 * np.linalg.norm(w_vec)
            assert np.abs(vec - w_vec).max() <= bound, f"vector of {rid}"
        else:
            assert vec.tobytes() == w_vec.tobytes(), f"vector of {rid} differs"
        assert same(meta, w_meta, float_ulps), f"metadata of {rid}: {meta!r} != {w_meta!r}"
        assert same(doc, w_doc), f"document of {rid} differs"
        assert same(uri, w_uri), f"uri of {rid} differs"


def float_drift(got: Rows, want: Rows) -> int:
    """How many records' metadata differ at all (only float ulps may, after assert_rows)."""
    return sum(not same(got[rid][1], want[rid][1]) for rid in want)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A persist dir with 2,000 records (768-dim) in COSINE and the same records in PLAIN."""
    path = tmp_path_factory.mktemp("chroma-embedded")
    data = make_data(N_EMBEDDED, DIM, seed=1)
    client = raw_client(path)
    try:
        seed(client, COSINE, data, metadata={"team": "search", "version": 3},
             configuration={"hnsw": {"space": "cosine", "ef_construction": 200}})
        seed(client, PLAIN, data)
    finally:
        client.close()
    return path, data


# ------------------------------------------------------------------- embedded


def test_importing_connectors_does_not_import_chromadb() -> None:
    code = ("import sys, vdedup.connectors, vdedup.connectors.chroma.connector; "
            "sys.exit(1 if 'chromadb' in sys.modules else 0)")
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root,
                          env={"PYTHONPATH": str(root)}).returncode == 0


def test_scan_returns_every_record_bit_for_bit(embedded) -> None:
    path, data = embedded
    conn = open_connector(f"chroma://{path}")
    client = raw_client(path)
    try:
        assert isinstance(conn, ChromaConnector)
        assert sorted(conn.list_collections()) == sorted([COSINE, PLAIN])
        assert conn.count(PLAIN) == conn.count(COSINE) == N_EMBEDDED
        for name, batch_size in ((PLAIN, 97), (COSINE, 250)):
            scanned = scan_all(conn, name, batch_size)
            raw = raw_rows(client.get_collection(name, embedding_function=None))
            # Trap: a record with a document but no metadata reads back as {}, not None.
            assert any(raw[rid][1] == {} for rid in raw)
            raw = {rid: (v, m or None, d, u) for rid, (v, m, d, u) in raw.items()}
            # Bit for bit against what Chroma holds, cosine vectors and floats included ...
            assert_rows(scanned, raw)
            # ... and against what was written, within Chroma's own rounding.
            assert_rows(scanned, expected_rows(data), cosine=name == COSINE, float_ulps=1)
    finally:
        client.close()
        conn.close()


def test_float_metadata_moves_by_one_ulp_on_write(embedded) -> None:
    """chromadb 1.5.9 trap: float metadata is not stored bit for bit (about 1 in 8 values
    comes back one ulp off). If this fails, Chroma is exact now: drop the float_ulps slack."""
    path, data = embedded
    client = raw_client(path)
    try:
        raw = raw_rows(client.get_collection(PLAIN, embedding_function=None))
    finally:
        client.close()
    raw = {rid: (v, m or None, d, u) for rid, (v, m, d, u) in raw.items()}
    assert float_drift(raw, expected_rows(data)) > 0


def test_cosine_vectors_come_back_rounded(tmp_path: Path) -> None:
    """chromadb 1.5.9 trap: a cosine collection returns its vectors a few ulps off.

    If this starts failing, Chroma returns them exactly: make the cosine checks bit-exact.
    """
    vec = np.random.default_rng(3).standard_normal((5, 16)).astype(np.float32)
    client = raw_client(tmp_path)
    try:
        got = {}
        for space in ("cosine", "l2", "ip"):
            col = client.create_collection(name=f"space-{space}", embedding_function=None,
                                           configuration={"hnsw": {"space": space}})
            col.add(ids=[str(i) for i in range(5)], embeddings=vec)
            res = col.get(ids=[str(i) for i in range(5)], include=["embeddings"])
            assert res["embeddings"].dtype == np.float64     # another trap: float64 back
            order = np.argsort([int(i) for i in res["ids"]])
            got[space] = res["embeddings"][order].astype(np.float32)
    finally:
        client.close()
    assert got["l2"].tobytes() == vec.tobytes() and got["ip"].tobytes() == vec.tobytes()
    assert got["cosine"].tobytes() != vec.tobytes()
    assert np.abs(got["cosine"] - vec).max() <= 8 * EPS32 * np.linalg.norm(vec, axis=1).max()


def test_fetch_keeps_the_requested_id_order(embedded) -> None:
    # Chroma's get(ids=...) answers in storage order; the connector must realign rows.
    path, data = embedded
    conn = open_connector(f"chroma://{path}")
    try:
        wanted = ["rec-00010", "rec-01999", "rec-00003", "rec-00500"]
        col = conn._collection(PLAIN)
        assert col.get(ids=wanted, include=[])["ids"] != wanted   # the trap is real
        batch = conn._fetch(col, PLAIN, wanted)
        assert batch.ids == wanted
        for i, rid in enumerate(wanted):
            k = data["ids"].index(rid)
            assert batch.dense[""][i].tobytes() == data["vectors"][k].tobytes()
            assert same(batch.metadata[i], data["metadatas"][k], float_ulps=1)
            assert batch.documents[i] == data["documents"][k] and batch.uris[i] == data["uris"][k]
    finally:
        conn.close()


def test_describe_cosine_and_default_collections(embedded) -> None:
    path, _ = embedded
    conn = ChromaConnector.from_url(parse_url(f"chroma://{path}"))
    try:
        schema = conn.describe(COSINE)
        plain = conn.describe(PLAIN)
    finally:
        conn.close()
    assert schema.provider == "chroma" and schema.name == COSINE
    assert schema.namespaces == ("",) and schema.has_documents and schema.has_uris
    (vf,) = schema.vectors
    assert (vf.name, vf.dim, vf.metric, vf.dtype) == ("", DIM, Metric.COSINE, "float32")
    assert vf.index["type"] == "hnsw" and vf.index["ef_construction"] == 200
    assert schema.options == {"metadata": {"team": "search", "version": 3}}
    assert schema.extras["space"] == "cosine"
    assert schema.extras["configuration"]["hnsw"]["ef_construction"] == 200
    text = json.dumps(schema.to_dict())
    assert CollectionSchema.from_dict(json.loads(text)) == schema
    # No configuration at all: Chroma's default space is l2, never cosine.
    assert (plain.vectors[0].metric, plain.vectors[0].dim) == (Metric.EUCLIDEAN, DIM)
    assert plain.extras["space"] == "l2" and plain.vectors[0].index["ef_construction"] == 100
    assert plain.options == {"metadata": None}


def test_describe_small_l2_ip_legacy_and_empty(chroma_dir: Path) -> None:
    client = raw_client(chroma_dir)
    vec = np.ones((2, 5), np.float32)
    try:
        ip_conf = {"hnsw": {"space": "ip", "max_neighbors": 32}}
        for name, create in (("plain-l2", {}),
                             ("inner-product", {"configuration": ip_conf, "metadata": {"k": "v"}}),
                             ("legacy-ip", {"metadata": {"hnsw:space": "ip"}}),
                             ("empty-one", {"configuration": {"hnsw": {"space": "cosine"}}})):
            col = client.create_collection(name=name, embedding_function=None, **create)
            if name != "empty-one":
                col.add(ids=["a", "b"], embeddings=vec)
    finally:
        client.close()
    conn = open_connector(f"chroma://{chroma_dir}")
    try:
        plain, ip, legacy, empty = (conn.describe(n) for n in
                                    ("plain-l2", "inner-product", "legacy-ip", "empty-one"))
    finally:
        conn.close()
    assert plain.vectors[0].metric == Metric.EUCLIDEAN and plain.extras["space"] == "l2"
    assert plain.vectors[0].dim == 5 and plain.options == {"metadata": None}
    assert ip.vectors[0].metric == Metric.DOT and ip.vectors[0].index["max_neighbors"] == 32
    assert ip.options == {"metadata": {"k": "v"}}
    assert legacy.vectors[0].metric == Metric.DOT
    assert legacy.options == {"metadata": {"hnsw:space": "ip"}}
    assert empty.vectors[0].dim is None and empty.vectors[0].metric == Metric.COSINE
    for s in (plain, ip, legacy, empty):
        json.dumps(s.to_dict())


def test_space_falls_back_to_legacy_metadata_then_chroma_default() -> None:
    spann = {"hnsw": None, "spann": {"space": "cosine"}}
    assert _space(spann, None) == ("cosine", "configuration.spann.space")
    assert _space({"hnsw": None}, {"hnsw:space": "ip"}) == ("ip", "metadata.hnsw:space")
    assert _space({}, {"other": 1}) == ("l2", "default")


@pytest.mark.parametrize("source", [PLAIN, COSINE])
def test_round_trip_into_new_collection(embedded, source: str) -> None:
    path, data = embedded
    target = f"copy-of-{source}"
    conn = open_connector(f"chroma://{path}")
    try:
        schema = conn.describe(source)
        conn.create_collection(schema, target)
        for batch in conn.scan(source, batch_size=700):
            conn.write(target, batch)
        assert conn.count(target) == N_EMBEDDED
        original = scan_all(conn, source, batch_size=1000)
        copied = scan_all(conn, target, batch_size=500)
        copy = conn.describe(target)
    finally:
        conn.close()
    cosine = source == COSINE
    # l2: vectors bit for bit. Both: floats may move one more ulp, cosine vectors a few ulps.
    assert_rows(copied, original, cosine=cosine, float_ulps=1)
    assert_rows(copied, expected_rows(data), cosine=cosine, float_ulps=2)
    assert copy.vectors == schema.vectors
    assert copy.options == schema.options
    assert copy.extras["space"] == schema.extras["space"]
    assert copy.extras["configuration"]["hnsw"] == schema.extras["configuration"]["hnsw"]
    # Seen by a plain client too, not only through the connector.
    client = raw_client(path)
    try:
        conf = client.get_collection(target, embedding_function=None).configuration_json
    finally:
        client.close()
    want = ("cosine", 200) if cosine else ("l2", 100)
    assert (conf["hnsw"]["space"], conf["hnsw"]["ef_construction"]) == want


def test_create_from_foreign_schema_sets_the_space(chroma_dir: Path) -> None:
    schema = CollectionSchema(provider="qdrant", name="x",
                              vectors=(VectorField(name="", dim=4, metric=Metric.DOT),),
                              extras={"configuration": {"hnsw": {"ef_construction": 999}}})
    conn = open_connector(f"chroma://{chroma_dir}")
    try:
        conn.create_collection(schema, "from-qdrant")
        got = conn.describe("from-qdrant")
    finally:
        conn.close()
    assert got.vectors[0].metric == Metric.DOT
    assert got.extras["configuration"]["hnsw"]["ef_construction"] == 100   # foreign extras ignored


# ----------------------------------------------------------------- write rules


def test_write_replaces_existing_records(chroma_dir: Path) -> None:
    conn = open_connector(f"chroma://{chroma_dir}")
    try:
        schema = CollectionSchema(provider="chroma", name="t",
                                  vectors=(VectorField("", 3, Metric.EUCLIDEAN),))
        conn.create_collection(schema, "replace-me")
        v = np.arange(9, dtype=np.float32).reshape(3, 3)
        conn.write("replace-me", RecordBatch(
            ids=["a", "b", "c"], dense={"": v},
            metadata=[{"x": 1, "y": 2}, {"keep": True}, None],
            documents=["doc a", None, "doc c"], uris=["u-a", None, None]))
        # Upsert into existing ids: "a" loses key y, its document and uri; "d" is new; {} = none.
        conn.write("replace-me", RecordBatch(
            ids=["a", "d"], dense={"": v[:2] + 100},
            metadata=[{"x": 3}, {}], documents=None, uris=None))
        got = {r.id: r for b in conn.scan("replace-me", batch_size=10) for r in b.records()}
        assert conn.count("replace-me") == 4
        conn.delete("replace-me", ["c"])
        assert conn.count("replace-me") == 3 and conn.exists("replace-me")
    finally:
        conn.close()
    assert same(got["a"].metadata, {"x": 3})
    assert got["a"].document is None and got["a"].uri is None
    assert got["a"].vectors[""].tobytes() == (v[0] + 100).tobytes()
    assert same(got["b"].metadata, {"keep": True}) and got["b"].document is None
    assert got["c"].metadata is None and got["c"].document == "doc c"
    assert got["d"].metadata is None


def test_write_refuses_what_chroma_cannot_hold(chroma_dir: Path) -> None:
    conn = open_connector(f"chroma://{chroma_dir}")
    schema = CollectionSchema(provider="chroma", name="t",
                              vectors=(VectorField("", 2, Metric.COSINE),))
    try:
        conn.create_collection(schema, "strict")
        v = np.ones((2, 2), np.float32)
        with pytest.raises(UsageError, match="embedding for every record"):
            conn.write("strict", RecordBatch(ids=["a", "b"], dense={"": v},
                                             dense_present={"": np.array([True, False])}))
        with pytest.raises(UsageError, match="strings"):
            conn.write("strict", RecordBatch(ids=[1, 2], dense={"": v}))
        with pytest.raises(UsageError, match="cannot be stored exactly"):
            conn.write("strict", RecordBatch(ids=["a", "b"], dense={"": np.full((2, 2), 0.1)}))
        with pytest.raises(UsageError, match="namespaces"):
            conn.write("strict", RecordBatch(ids=["a", "b"], dense={"": v}, namespace="ns"))
        assert conn.count("strict") == 0
        # An SDK rejection is wrapped, one line, without the offending values.
        nested = [{"k": {"nested": "SECRET"}}, None]
        with pytest.raises(SourceError) as err:
            conn.write("strict", RecordBatch(ids=["a", "b"], dense={"": v}, metadata=nested))
        assert "SECRET" not in err.value.message and "\n" not in err.value.message
        # Vectors of another dtype are fine when float32 holds them exactly.
        half = np.array([[0.5, -0.25]], np.float16)
        conn.write("strict", RecordBatch(ids=["h"], dense={"": half}))
        (batch,) = conn.scan("strict")
        assert batch.dense[""].tobytes() == half.astype(np.float32).tobytes()
    finally:
        conn.close()


# ---------------------------------------------------------------------- errors


def test_errors_are_wrapped(chroma_dir: Path, closed_port: int, monkeypatch) -> None:
    conn = open_connector(f"chroma://{chroma_dir}")
    schema = CollectionSchema(provider="chroma", name="t",
                              vectors=(VectorField("", 2, Metric.COSINE),))
    try:
        assert not conn.exists("no-such-collection")
        for call in (lambda: conn.describe("no-such-collection"),
                     lambda: conn.count("no-such-collection"),
                     lambda: list(conn.scan("no-such-collection"))):
            with pytest.raises(CollectionNotFound, match="no-such-collection"):
                call()
        for bad in ("ab", "-starts-with-dash", "x" * 513, "has space"):
            with pytest.raises(UsageError, match="invalid Chroma collection name"):
                conn.create_collection(schema, bad)
        unknown = CollectionSchema(provider="x", name="t",
                                   vectors=(VectorField("", 2, Metric.UNKNOWN),))
        with pytest.raises(UsageError, match="cannot be represented in Chroma"):
            conn.create_collection(unknown, "unknown-metric")
        named = CollectionSchema(provider="x", name="t",
                                 vectors=(VectorField("text", 2, Metric.COSINE),))
        with pytest.raises(UsageError, match="unnamed"):
            conn.create_collection(named, "named-vector")
        conn.create_collection(schema, "twice")
        with pytest.raises(SourceError, match="already exists"):
            conn.create_collection(schema, "twice")
        assert sorted(conn.list_collections()) == ["twice"]
    finally:
        conn.close()

    with pytest.raises(SourceError) as err:
        open_connector(f"chroma://127.0.0.1:{closed_port}", Credentials("tok-SECRET-123", "CHROMA_API_KEY"))
    msg = err.value.message
    assert msg.startswith(f"cannot reach Chroma at 127.0.0.1:{closed_port}: ")
    assert "\n" not in msg and "SECRET" not in msg
    assert not isinstance(err.value, CollectionNotFound)

    for url in ("chroma://user:pw-SECRET@127.0.0.1:1", "chroma://127.0.0.1:1?token=SECRET",
                "chroma://host-with-a-path:8000/some/path", "chroma://127.0.0.1:1?bogus=1"):
        with pytest.raises(UsageError) as uerr:
            open_connector(url)
        assert "SECRET" not in uerr.value.message


# ---------------------------------------------------------------------- server


def test_server_round_trip(chroma_server) -> None:
    data = make_data(N_SERVER, 64, seed=2)
    client = chromadb.HttpClient(host=chroma_server.host, port=chroma_server.port)
    seed(client, "server-src", data, metadata={"owner": "tests"},
         configuration={"hnsw": {"space": "ip", "ef_construction": 150}})
    conn = open_connector(f"{chroma_server.url}?tenant=default_tenant&database=default_database")
    try:
        assert "server-src" in conn.list_collections()
        schema = conn.describe("server-src")
        assert schema.vectors[0].metric == Metric.DOT and schema.vectors[0].dim == 64
        source = scan_all(conn, "server-src", batch_size=64)
        conn.create_collection(schema, "server-copy")
        for batch in conn.scan("server-src", batch_size=128):
            conn.write("server-copy", batch)
        copied = scan_all(conn, "server-copy", batch_size=200)
        copy = conn.describe("server-copy")
        with pytest.raises(CollectionNotFound):
            conn.count("not-on-server")
    finally:
        conn.close()
    # Against a plain client's read: bit for bit. Against the written data and between
    # source and copy: vectors (ip), ids, strings, ints, bools exact; floats within one ulp
    # per write (the server also parses JSON floats, with the same one-ulp slack).
    raw = {rid: (v, m or None, d, u) for rid, (v, m, d, u) in
           raw_rows(client.get_collection("server-src", embedding_function=None)).items()}
    assert_rows(source, raw)
    assert_rows(source, expected_rows(data), float_ulps=1)
    assert_rows(copied, source, float_ulps=1)
    assert_rows(copied, expected_rows(data), float_ulps=2)
    assert copy.options == {"metadata": {"owner": "tests"}}
    assert copy.extras["configuration"]["hnsw"] == schema.extras["configuration"]["hnsw"]
    conf = client.get_collection("server-copy", embedding_function=None).configuration_json
    assert (conf["hnsw"]["space"], conf["hnsw"]["ef_construction"]) == ("ip", 150)


def test_server_unknown_database_is_a_source_error(chroma_server) -> None:
    with pytest.raises(SourceError) as err:
        open_connector(f"{chroma_server.url}?database=no-such-db")
    assert not isinstance(err.value, CollectionNotFound)
    assert err.value.message.startswith(f"cannot open Chroma at 127.0.0.1:{chroma_server.port}: ")
    assert "no-such-db" in err.value.message and "\n" not in err.value.message


def test_server_gone_mid_scan_is_a_source_error(own_chroma_server) -> None:
    client = chromadb.HttpClient(host=own_chroma_server.host, port=own_chroma_server.port)
    data = make_data(50, 8, seed=4)
    seed(client, "short-lived", data)
    conn = open_connector(own_chroma_server.url)
    try:
        batches = conn.scan("short-lived", batch_size=10)
        assert len(next(batches)) == 10
        own_chroma_server.stop()
        with pytest.raises(SourceError) as err:
            next(batches)
        with pytest.raises(SourceError) as err2:
            conn.count("short-lived")
    finally:
        conn.close()
    where = f"cannot reach Chroma at 127.0.0.1:{own_chroma_server.port}: "
    for e in (err.value, err2.value):
        assert e.message.startswith(where) and "\n" not in e.message
        assert not isinstance(e, CollectionNotFound)
