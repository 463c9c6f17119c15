"""Weaviate as the target of other providers' schemas (the neutral layout), through the real
translation plan: records backed up from Qdrant, Pinecone, Chroma and PostgreSQL are
translated, written, read back bit for bit, and translated back to their source provider.
Against the REST emulator in tests/emulators (see docs/providers/weaviate.md)."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, Iterator

import numpy as np
import pytest

from vdtest import require_module  # noqa: E402  (fails, not skips: tests/vdtest.py)
require_module("weaviate")

from vdtest import env_connector  # noqa: E402
from vdedup.connectors.weaviate import connector as wvconn  # noqa: E402
from vdedup.engine.translate import build_plan, check_plan  # noqa: E402
from vdedup.errors import SourceError, UsageError  # noqa: E402
from vdedup.model import (CollectionSchema, IdType, MetadataField, Metric, Record,  # noqa: E402
                          RecordBatch, SparseField, SparseVector, VectorField)
from emulators.weaviate_emulator import WeaviateEmulator  # noqa: E402
from vdtest import vdedup  # noqa: E402

KEY = "wv-foreign-key"
BATCH = 7          # records per write: properties appear over several writes


@pytest.fixture(scope="module")
def emu() -> Iterator[WeaviateEmulator]:
    with WeaviateEmulator(api_keys=[KEY]) as e:
        yield e


@pytest.fixture
def conn(emu, monkeypatch) -> Iterator[Any]:
    monkeypatch.setenv("WEAVIATE_API_KEY", KEY)
    monkeypatch.setattr(wvconn, "BACKOFF", 0.01)
    c = env_connector(f"weaviate://{emu.host}:{emu.port}")
    try:
        yield c
    finally:
        c.close()


# ------------------------------------------------------------------ sources


def f32(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def qdrant_source() -> tuple[CollectionSchema, dict[str, list[Record]]]:
    """Named vectors (one with a dash, one multi-vector), a named sparse vector, UUID and int
    ids, nested, null, int, float, bool, list and mixed metadata."""
    rng = np.random.default_rng(1)
    schema = CollectionSchema(
        provider="qdrant", name="items", id_type=IdType.INT,
        vectors=(VectorField("text-dense", 8, Metric.COSINE), VectorField("image", 4, Metric.DOT),
                 VectorField("colbert", 3, Metric.COSINE, multivector=True)),
        sparse=(SparseField("bm25", Metric.DOT, "idf"),),
        metadata_fields=(MetadataField("title", "str"), MetadataField("count", "int"),
                         MetadataField("score", "float"), MetadataField("ok", "bool"),
                         MetadataField("tags", "list"), MetadataField("info", "dict"),
                         MetadataField("maybe", "int", nullable=True),
                         MetadataField("Upper-Key", "str"), MetadataField("mix", "mixed:int,str")))
    recs = []
    for i in range(30):
        rid: Any = i * 11 if i % 3 else str(uuid.UUID(int=(i + 1) * 7919 << 64 | i))
        meta: dict[str, Any] = {
            "title": f"item {i} ü", "count": i - 10, "score": float(i) / 4, "ok": i % 2 == 0,
            "tags": [[], ["a", "b"], [1, 2], ["x", 1, None], [1.5, 2.0], [True]][i % 6],
            "info": {"src": f"s{i % 3}", "w": i / 3, "deep": {"n": i, "none": None}, "l": [1, "a"]},
            "maybe": None if i % 4 == 0 else i, "Upper-Key": "U", "mix": i if i % 2 else str(i),
            "Caps": "undeclared"}
        if i == 5:
            meta["count"] = 2 ** 60              # an int beyond 2^53
            meta["score"] = 3.0                  # a whole float
        if i == 7:
            meta = {}
        recs.append(Record(rid, {"text-dense": f32(rng, 8), "image": f32(rng, 4), "colbert": f32(rng, 2, 3)},
                           {"bm25": SparseVector(np.array([1, 5]), np.array([0.5, 1.5]))}, meta or None))
    return schema, {"": recs}


def pinecone_source() -> tuple[CollectionSchema, dict[str, list[Record]]]:
    """Namespaces "" and "ns_a" (and one no tenant may be called), an unnamed dot-product vector
    and an unnamed sparse vector, string ids, str/float/bool/list[str] metadata."""
    rng = np.random.default_rng(2)
    schema = CollectionSchema(
        provider="pinecone", name="docs-x", id_type=IdType.STRING,
        vectors=(VectorField("", 6, Metric.DOT),), sparse=(SparseField("", Metric.DOT),),
        metadata_fields=(MetadataField("cat", "str"), MetadataField("price", "float"),
                         MetadataField("flag", "bool"), MetadataField("tags", "list")),
        namespaces=("", "ns_a", "ns.b"))
    out: dict[str, list[Record]] = {}
    for k, ns in enumerate(schema.namespaces):
        out[ns] = [Record(f"doc-{k:03d}{i:03d}#chunk-{i % 5}", {"": f32(rng, 6)},
                          {"": SparseVector(np.array([i, i + 9]), np.array([0.25, 2.0]))},
                          {"cat": f"c{i % 3}", "price": float(i), "flag": i % 2 == 1,
                           "tags": [f"t{i % 4}", "z"]})
                   for i in range(12)]
    return schema, out


def chroma_source() -> tuple[CollectionSchema, dict[str, list[Record]]]:
    rng = np.random.default_rng(3)
    schema = CollectionSchema(
        provider="chroma", name="notes", id_type=IdType.STRING,
        vectors=(VectorField("", 5, Metric.EUCLIDEAN),),
        metadata_fields=(MetadataField("a", "str"), MetadataField("n", "int"),
                         MetadataField("x", "float"), MetadataField("b", "bool")),
        has_documents=True, has_uris=True)
    recs = [Record(f"id-{i}", {"": f32(rng, 5)}, {},
                   None if i % 5 == 0 else {"a": f"v{i}", "n": i, "x": i * 0.5, "b": i % 2 == 0},
                   f"document {i}", f"s3://bucket/{i}" if i % 2 else None)
            for i in range(20)]
    return schema, {"": recs}


def postgres_source() -> tuple[CollectionSchema, dict[str, list[Record]]]:
    """The unnamed vector beside a named one, nested values with nulls inside."""
    rng = np.random.default_rng(4)
    schema = CollectionSchema(
        provider="postgresql", name="rows", id_type=IdType.UUID,
        vectors=(VectorField("", 3, Metric.COSINE), VectorField("image", 2, Metric.EUCLIDEAN)),
        metadata_fields=(MetadataField("n", "int"), MetadataField("doc", "dict")))
    recs = [Record(str(uuid.UUID(int=i + 1)), {"": f32(rng, 3), "image": f32(rng, 2)}, {},
                   {"n": -i, "doc": {"k": [i, {"j": None}], "e": {}}})
            for i in range(10)]
    return schema, {"": recs}


# ------------------------------------------------------------------ comparing


def typed(v: Any) -> Any:
    """Values with their types made visible (1 != 1.0 != True), datetimes with their offset."""
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    if isinstance(v, dt.datetime):
        return ("datetime", v.isoformat())
    return (type(v).__name__, v)


def assert_same(a: Record, b: Record, where: str = "") -> None:
    assert (type(a.id), a.id) == (type(b.id), b.id), where
    assert sorted(a.vectors) == sorted(b.vectors), (where, a.id)
    for name, arr in a.vectors.items():
        got = np.asarray(b.vectors[name])
        assert (arr.dtype, arr.shape, arr.tobytes()) == (got.dtype, got.shape, got.tobytes()), (where, a.id, name)
    assert sorted(a.sparse) == sorted(b.sparse), (where, a.id)
    for name, sv in a.sparse.items():
        assert sv.indices.tobytes() == b.sparse[name].indices.tobytes(), (where, a.id, name)
        assert sv.values.tobytes() == b.sparse[name].values.tobytes(), (where, a.id, name)
    assert typed(a.metadata or {}) == typed(b.metadata or {}), (where, a.id, a.metadata, b.metadata)
    assert (a.metadata is None) == (b.metadata is None), (where, a.id)
    assert (a.document, a.uri) == (b.document, b.uri), (where, a.id)


def read_all(conn: Any, name: str, batch: int = 5) -> tuple[CollectionSchema, dict[str, dict[Any, Record]]]:
    schema = conn.describe(name)
    out: dict[str, dict[Any, Record]] = {}
    for ns in schema.namespaces:
        got: dict[Any, Record] = {}
        for b in conn.scan(name, ns, batch):
            assert b.namespace == ns
            got.update({r.id: r for r in b.records()})
        assert conn.count(name, ns) == len(got)
        out[ns] = got
    return schema, out


def write_all(conn: Any, name: str, ns: str, records: list[Record]) -> None:
    for a in range(0, len(records), BATCH):
        conn.write(name, RecordBatch.from_records(records[a:a + BATCH], ns))


def translate_in(conn: Any, schema: CollectionSchema, data: dict[str, list[Record]], name: str,
                 **options: Any) -> tuple[Any, dict[tuple[str, str], list[Record]]]:
    """What restore does: plan, create, write the transformed records per namespace."""
    plan = build_plan(schema, "weaviate", **options)
    check_plan(plan)
    written: dict[tuple[str, str], list[Record]] = {}
    for ns, recs in data.items():
        written[plan.target_location(name, ns)] = [plan.transform(r) for r in recs]
    targets = sorted({t for t, _ in written})
    assert targets == [name]
    target_schema = plan.target_schema.renamed(name)
    conn.create_collection(target_schema, name)
    for (tname, tns), recs in written.items():
        write_all(conn, tname, tns, recs)
    return plan, written


def check_round_trip(conn: Any, schema: CollectionSchema, data: dict[str, list[Record]], name: str,
                     **options: Any) -> tuple[CollectionSchema, dict[str, dict[Any, Record]]]:
    plan, written = translate_in(conn, schema, data, name, **options)
    back_schema, back = read_all(conn, name)
    # the neutral schema, as the plan declared it
    assert back_schema.provider == "weaviate" and back_schema.name == name
    assert back_schema.extras["layout"]["layout"] == "neutral"
    want_v = {(v.name, v.dim, v.metric, v.dtype, v.multivector) for v in plan.target_schema.vectors}
    assert {(v.name, v.dim, v.metric, v.dtype, v.multivector) for v in back_schema.vectors} == want_v
    assert back_schema.sparse == ()
    assert sorted(back_schema.namespaces) == sorted(ns for _, ns in written)
    assert back_schema.metadata_fields == plan.target_schema.metadata_fields
    # every record as written, bit for bit
    for (_, ns), recs in written.items():
        assert sorted(back[ns], key=str) == sorted((r.id for r in recs), key=str)
        for r in recs:
            assert_same(r, back[ns][r.id], f"{name}/{ns}")
    # and back to the source provider: the original records where the steps were lossless
    # (the plan back may name possible losses of the provider or of the declared field types,
    # e.g. Qdrant normalising cosine vectors: accepted here; the records must come back exact)
    plan_back = build_plan(back_schema, schema.provider, allow_lossy=True)
    check_plan(plan_back)
    dropped_sparse = options.get("drop_sparse", False)
    for ns, recs in data.items():
        tname, tns = plan.target_location(name, ns)
        assert plan_back.target_location(tname, tns) == (tname, ns)
        for r in recs:
            tid = plan.transform(r).id
            again = plan_back.transform(back[tns][tid])
            want = Record(r.id, r.vectors, {} if dropped_sparse else r.sparse, r.metadata, r.document, r.uri)
            assert_same(want, again, f"back to {schema.provider}")
    return back_schema, back


# ------------------------------------------------------------------ tests


def test_from_qdrant(conn, emu) -> None:
    schema, data = qdrant_source()
    back_schema, _ = check_round_trip(conn, schema, data, "FromQdrant", drop_sparse=True)
    cls = back_schema.extras["class"]
    # the vector names Weaviate cannot hold are mapped, and the mapping kept in the marker
    assert set(cls["vectorConfig"]) == {"image", "colbert", back_schema.extras["layout"]["vectors"]["text-dense"]}
    types = {json.loads(p["description"])["vdedup"]["key"]: p["dataType"][0]
             for p in cls["properties"] if p["name"] != "_vdedup"}
    # declared types at once, list types from the first value seen, nested objects as JSON text
    assert types["count"] == "int" and types["score"] == "number" and types["ok"] == "boolean"
    assert types["tags"] == "text[]" and types["info"] == "text" and types["Upper-Key"] == "text"
    assert types["mix"] == "text"        # its first value is the string "0"
    names = {json.loads(p["description"])["vdedup"]["key"]: p["name"]
             for p in cls["properties"] if p["name"] != "_vdedup"}
    assert names["Caps"] == "caps" and names["title"] == "title"     # the server's first letter


def test_from_pinecone_namespaces_and_identity(conn, emu, tmp_path, repo_path, capsys) -> None:
    schema, data = pinecone_source()
    back_schema, back = check_round_trip(conn, schema, data, "FromPinecone", drop_sparse=True)
    layout = back_schema.extras["layout"]
    assert layout["tenants"][""] == "_default" and "ns.b" in layout["tenants"]
    tenants = sorted(t["name"] for t in back_schema.extras["tenants"])
    assert "_default" in tenants and "ns_a" in tenants and "" not in tenants
    # identity: the neutral-layout schema restored into Weaviate again keeps the layout
    plan = build_plan(back_schema, "weaviate")
    assert plan.identity
    conn.create_collection(back_schema.renamed("PineconeCopy"), "PineconeCopy")
    for ns, recs in back.items():
        write_all(conn, "PineconeCopy", ns, list(recs.values()))
    copy_schema, copy = read_all(conn, "PineconeCopy")
    assert copy_schema.namespaces == back_schema.namespaces
    assert copy_schema.vectors == back_schema.vectors
    assert copy_schema.metadata_fields == back_schema.metadata_fields
    for ns, recs in back.items():
        assert sorted(copy[ns]) == sorted(recs)
        for rid, rec in recs.items():
            assert_same(rec, copy[ns][rid], f"copy/{ns}")
    # and through the engine: back up the translated class, restore it under a new name
    url = f"weaviate://{emu.host}:{emu.port}"
    assert vdedup("--repo", str(repo_path), "init") == 0
    capsys.readouterr()
    assert vdedup("--repo", str(repo_path), "backup", url, "--collection", "FromPinecone", "--json") == 0
    snap = json.loads(capsys.readouterr().out)["snapshot_id"]
    assert vdedup("--repo", str(repo_path), "restore", snap, "--target", url, "--as", "PineconeRestored") == 0
    restored_schema, restored = read_all(conn, "PineconeRestored")
    assert restored_schema.namespaces == back_schema.namespaces
    for ns, recs in back.items():
        assert sorted(restored[ns]) == sorted(recs)
        for rid, rec in recs.items():
            assert_same(rec, restored[ns][rid], f"restored/{ns}")


def test_from_chroma(conn) -> None:
    schema, data = chroma_source()
    back_schema, _ = check_round_trip(conn, schema, data, "FromChroma2")
    assert "vectorConfig" not in back_schema.extras["class"]     # one unnamed vector: the legacy one
    assert [v.name for v in back_schema.vectors] == [""]


def test_unnamed_beside_named(conn) -> None:
    schema, data = postgres_source()
    back_schema, back = check_round_trip(conn, schema, data, "FromPostgres")
    assert set(back_schema.extras["class"]["vectorConfig"]) == {"image", "vdedup_default"}
    assert [v.name for v in back_schema.vectors] == ["", "image"]


def test_datetimes(conn) -> None:
    """Datetimes (Weaviate's capabilities list them) come back as datetimes, with or without a
    time zone, also in a field whose property holds something else."""
    conn.create_collection(CollectionSchema(provider="other", name="t", vectors=(VectorField("", 2, Metric.DOT),),
                                            metadata_fields=(MetadataField("at", "datetime"),
                                                             MetadataField("m", "mixed:datetime,int"))), "Times")
    at = dt.datetime(2024, 5, 1, 12, 0, 7, 49, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30)))
    recs = [Record(str(uuid.UUID(int=i + 1)), {"": np.ones(2, dtype=np.float32)}, {},
                   {"at": at if i % 2 else at.replace(tzinfo=None), "m": i if i % 2 else at})
            for i in range(4)]
    write_all(conn, "Times", "", recs)
    _, back = read_all(conn, "Times")
    for r in recs:
        assert_same(r, back[""][r.id])


def test_awkward_names(conn) -> None:
    """Keys Weaviate refuses or folds as property names, vector names and namespaces it refuses
    as tenant names all come back as they were."""
    keys = ["", "a b", "_vdedup", "Title", "title", "id", "x" * 300, "ключ"]
    conn.create_collection(CollectionSchema(
        provider="other", name="n", vectors=(VectorField("", 2, Metric.DOT), VectorField("vdedup_default", 2, Metric.DOT),
                                             VectorField("a.b", 2, Metric.COSINE)),
        metadata_fields=tuple(MetadataField(k, "str") for k in keys[:4]),
        namespaces=("", "_default", "x" * 70)), "Awkward")
    for k, ns in enumerate(("", "_default", "x" * 70)):
        recs = [Record(str(uuid.UUID(int=k * 100 + i + 1)),
                       {n: np.full(2, i + k, dtype=np.float32) for n in ("", "vdedup_default", "a.b")}, {},
                       {key: f"{key[:5]}-{i}" for key in keys}) for i in range(3)]
        write_all(conn, "Awkward", ns, recs)
        schema, back = read_all(conn, "Awkward")
        for r in recs:
            assert_same(r, back[ns][r.id])
    assert sorted(schema.namespaces) == sorted(("", "_default", "x" * 70))
    assert [v.name for v in schema.vectors] == ["", "a.b", "vdedup_default"]


def test_refusals(conn) -> None:
    vec = {"": np.zeros((1, 3), dtype=np.float32)}
    with pytest.raises(UsageError, match="sparse"):
        conn.create_collection(CollectionSchema(provider="qdrant", name="s", vectors=(VectorField("", 3, Metric.DOT),),
                                                sparse=(SparseField("s"),)), "SparseRefused")
    conn.create_collection(CollectionSchema(provider="qdrant", name="r", vectors=(VectorField("", 3, Metric.DOT),),
                                            metadata_fields=(MetadataField("k", "int"),)), "Refusals")
    oid = str(uuid.uuid4())
    with pytest.raises(UsageError, match="bytes value cannot be stored"):
        conn.write("Refusals", RecordBatch(ids=[oid], dense=vec, metadata=[{"b": b"x"}]))
    with pytest.raises(UsageError, match="document"):
        conn.write("Refusals", RecordBatch(ids=[oid], dense=vec, documents=["d"]))
    with pytest.raises(SourceError, match="rejected 1 of 1") as err:    # against its declared type
        conn.write("Refusals", RecordBatch(ids=[oid], dense=vec, metadata=[{"k": "SECRET-value"}]))
    assert "SECRET" not in err.value.message
    assert conn.count("Refusals") == 0
