"""Milvus connector: collections from other providers (the neutral layout), against the
milvus-lite server from scripts/servers.sh (VDEDUP_TEST_MILVUS_URI), through the real
translation plan.

Each source is a schema and records as another provider's connector backs them up. They go
through build_plan(source, "milvus") -> create_collection -> write(plan.transform(r)) per
namespace, are read back with describe() + scan() and compared bit for bit with the transformed
records (id and its type, vector bytes and dtype, sparse indices and values, metadata values,
value types and key order, document, uri) and with the plan's target schema; then
build_plan(read_back, source) and transform back must give the original records. The read-back
schema restored into Milvus again (identity plan) must recreate the neutral layout. The
collections' fields, indexes and partitions are checked with a plain pymilvus client.
"""
from __future__ import annotations

import json
import os
import uuid
from typing import Any

import numpy as np
import pytest

from vdtest import require_module  # noqa: E402  (fails, not skips: tests/vdtest.py)
pymilvus = require_module("pymilvus")
from pymilvus import MilvusClient  # noqa: E402

from vdedup.connectors import open_connector  # noqa: E402
from vdedup.engine.capabilities import capabilities  # noqa: E402
from vdedup.engine.translate import DOCUMENT, URI, build_plan, check_plan  # noqa: E402
from vdedup.errors import UsageError  # noqa: E402
from vdedup.model import (CollectionSchema, IdType, MetadataField, Metric, Record,  # noqa: E402
                          RecordBatch, SparseField, SparseVector, VectorField)
from foreign_check import assert_same_records, neutral  # noqa: E402

PROVIDER = "milvus"
N = 30


@pytest.fixture(scope="module")
def http_uri() -> str:
    uri = os.environ.get("VDEDUP_TEST_MILVUS_URI")
    if not uri:
        pytest.fail("VDEDUP_TEST_MILVUS_URI is not set: start the servers with "
                    "`bash scripts/servers.sh start` and source its env file")
    return uri


@pytest.fixture(scope="module")
def raw(http_uri: str):
    client = MilvusClient(uri=http_uri)
    yield client
    client.close()


@pytest.fixture(scope="module")
def con(http_uri: str, raw):
    db = f"vdf_{uuid.uuid4().hex[:8]}"
    raw.create_database(db)
    c = open_connector(f"milvus://{http_uri.split('://', 1)[1]}/{db}")
    c.db = db
    try:
        yield c
    finally:
        c.close()
        raw.use_database(db)
        for name in raw.list_collections():
            raw.drop_collection(name)
        raw.use_database("default")
        raw.drop_database(db)


def layout(raw, db: str, name: str) -> tuple:
    """Fields (name, type, dim), indexes (field, metric) and partitions, as pymilvus sees them."""
    raw.use_database(db)
    try:
        info = raw.describe_collection(name)
        fields = [(f["name"], f["type"].name, f["params"].get("dim")) for f in info["fields"]]
        idx = sorted((raw.describe_index(name, n)["field_name"],
                      raw.describe_index(name, n)["metric_type"]) for n in raw.list_indexes(name))
        return fields, idx, sorted(raw.list_partitions(name))
    finally:
        raw.use_database("default")


# ------------------------------------------------------------------ comparison


def read_back(con, name: str, namespaces: tuple[str, ...] | None = None
              ) -> tuple[CollectionSchema, dict[str, list[Record]]]:
    schema = con.describe(name)
    out = {}
    for ns in namespaces or schema.namespaces:
        recs = [r for b in con.scan(name, ns, batch_size=7) for r in b.records()]
        assert con.count(name, ns) == len(recs)
        out[ns] = recs
    return schema, out


# ------------------------------------------------------------------ sources


def f32(rng: np.random.Generator, dim: int) -> np.ndarray:
    return rng.standard_normal(dim).astype(np.float32)


def sparse(rng: np.random.Generator) -> SparseVector:
    k = int(rng.integers(1, 6))
    idx = np.sort(rng.choice(30000, size=k, replace=False))
    # Milvus holds only non-negative sparse values (refused otherwise: see test_refusals_at_write)
    return SparseVector(idx, np.abs(rng.standard_normal(k)).astype(np.float32) + np.float32(1e-3))


def qdrant_source() -> tuple[CollectionSchema, dict[str, list[Record]]]:
    # float32 only: milvus-lite 3.2.2 refuses FLOAT16/BFLOAT16/BINARY vector fields
    schema = CollectionSchema(
        provider="qdrant", name="qd_points", id_type=IdType.UUID,
        vectors=(VectorField("text", 12, Metric.COSINE, "float32", index={"hnsw": {"m": 16}}),
                 VectorField("image", 6, Metric.EUCLIDEAN, "float32"),
                 VectorField("code", 5, Metric.DOT, "float32")),
        sparse=(SparseField("keywords", Metric.DOT),),
        metadata_fields=(MetadataField("city", "str", True), MetadataField("n", "int", True)),
        extras={"config": {"params": {"shard_number": 1}}})
    rng = np.random.default_rng(11)
    recs = []
    for i in range(N):
        rid: Any = str(uuid.UUID(int=int(rng.integers(0, 2**62)) * 7 + i)) if i % 3 else i * 1000
        if i == 3:
            rid = 2**64 - 1                      # Qdrant ids are unsigned 64-bit
        vec = {"text": f32(rng, 12), "image": f32(rng, 6)}
        if i % 4:
            vec["code"] = f32(rng, 5)
        meta = {"city": f"city {i} ü 😀", "n": i - 20, "score": float(rng.standard_normal()),
                "ok": i % 2 == 0, "none": None, "tags": ["a", 1, 2.5, None, True, {"x": [i]}],
                "nested": {"z": {"deep": [1.0, -0.0, 1e16, 2**63 - 1]}, "a": i, "e": {}},
                "year": 1990.0, "low": -2**63, "empty": []}
        if i % 5 == 0:
            meta = None          # (translate.py turns an empty {} into None both ways)
        recs.append(Record(rid, vec, {"keywords": sparse(rng)} if i % 3 != 1 else {}, meta))
    return schema, {"": recs}


def pinecone_source() -> tuple[CollectionSchema, dict[str, list[Record]]]:
    schema = CollectionSchema(
        provider="pinecone", name="pc_index", id_type=IdType.STRING,
        vectors=(VectorField("", 8, Metric.DOT),), sparse=(SparseField("", Metric.DOT),),
        namespaces=("", "ns_a", "ns-b é"), extras={"spec": {"serverless": {"cloud": "aws"}}})
    rng = np.random.default_rng(12)
    out = {}
    for ns in schema.namespaces:
        recs = []
        for i in range(N // 2):
            meta = {"genre": f"g{i % 3}", "year": float(1990 + i), "rating": float(rng.random()),
                    "fresh": bool(i % 2), "tags": [f"t{i}", "x,y", ""]}
            recs.append(Record(f"doc-{i:06d}#chunk-{i % 4}{ns}", {"": f32(rng, 8)},
                               {"": sparse(rng)} if i % 3 else {}, meta if i % 6 else None))
        out[ns] = recs
    return schema, out


def chroma_source() -> tuple[CollectionSchema, dict[str, list[Record]]]:
    schema = CollectionSchema(
        provider="chroma", name="ch_docs", id_type=IdType.STRING,
        vectors=(VectorField("", 10, Metric.EUCLIDEAN),), has_documents=True, has_uris=True,
        extras={"configuration": {"hnsw": {"space": "l2"}}})
    rng = np.random.default_rng(13)
    recs = [Record(f"id{i}", {"": f32(rng, 10)}, {},
                   {"source": "web", "page": i, "weight": 0.5 + i, "draft": i % 2 == 1}
                   if i % 7 else None,
                   f"document {i}\ttabs 'quotes' \"dq\" \\ backslash ü" if i % 4 else None,
                   f"s3://bucket/{i}" if i % 3 else None) for i in range(N)]
    return schema, {"": recs}


SOURCES = {"qdrant": qdrant_source, "pinecone": pinecone_source, "chroma": chroma_source}


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_foreign_source_round_trip_through_the_plan(con, raw, source):
    schema, by_ns = SOURCES[source]()
    plan = build_plan(schema, PROVIDER)
    check_plan(plan)
    assert plan.lossless, plan.to_dict()
    written: dict[tuple[str, str], list[Record]] = {}
    created = set()
    for ns, recs in by_ns.items():
        tname, tns = plan.target_location(schema.name, ns)
        assert tns == ns                                   # namespaces are partitions
        if tname not in created:
            con.create_collection(plan.target_schema.renamed(tname), tname)
            created.add(tname)
        out = [plan.transform(r) for r in recs]
        for k in range(0, len(out), 9):                    # several batches, as a restore does
            con.write(tname, RecordBatch.from_records(out[k:k + 9], namespace=tns))
        written[(tname, tns)] = out
    assert created == {schema.name}

    got_schema, got = read_back(con, schema.name)
    assert got_schema.provider == PROVIDER and got_schema.name == schema.name
    assert neutral(got_schema) == neutral(plan.target_schema)
    marker = got_schema.extras["neutral"]
    assert marker["layout"] == "neutral" and marker["translated_from"]["provider"] == source
    assert "fields" not in got_schema.extras
    assert sorted(got) == sorted(ns for _, ns in written)
    for (_, ns), out in written.items():
        assert_same_records(got[ns], out)

    # back to the source provider: the original records, exactly
    back = build_plan(got_schema, source, allow_lossy=True)
    check_plan(back)
    # steps that are not the Milvus side's: Qdrant's own rounding of cosine vectors (an
    # inexact step: the records handed to it are exact), and translate.py flagging the
    # document/uri carrier fields (nullable str) as "null values dropped" for a target with
    # first-class documents, although it moves them back out of the metadata
    lossy = [s.detail for s in back.steps if s.kind == "lossy"]
    assert all(d.startswith((f"{DOCUMENT}: null", f"{URI}: null")) for d in lossy), lossy
    assert all(s.part == "vectors" and "cosine index" in s.detail for s in back.inexact_steps)
    assert [v.name for v in back.target_schema.vectors] == [v.name for v in schema.vectors]
    assert [(v.dim, v.metric) for v in back.target_schema.vectors] == \
        [(v.dim, v.metric) for v in schema.vectors]
    assert [(s.name, s.metric) for s in back.target_schema.sparse] == \
        [(s.name, s.metric) for s in schema.sparse]
    assert back.target_schema.id_type == schema.id_type
    assert back.target_schema.has_documents == schema.has_documents
    for ns, recs in by_ns.items():
        coll, tns = back.target_location(schema.name, ns)
        assert (coll, tns) == (schema.name, ns)
        assert_same_records([back.transform(r) for r in got[ns]], recs)


def test_layout_as_milvus_sees_it(con, raw):
    """The pinecone collection above: unnamed vectors got field names, "" is `_default`, a
    namespace Milvus refuses as a partition name is hex-encoded, every vector is indexed."""
    schema, _ = pinecone_source()
    if not con.exists(schema.name):
        test_foreign_source_round_trip_through_the_plan(con, raw, "pinecone")
    fields, idx, parts = layout(raw, con.db, schema.name)
    assert fields == [("id", "VARCHAR", None), ("vector", "FLOAT_VECTOR", 8),
                      ("sparse", "SPARSE_FLOAT_VECTOR", None), ("metadata", "JSON", None),
                      ("_vdedup", "JSON", None)]
    assert idx == [("sparse", "IP"), ("vector", "IP")]
    assert parts == ["_default", "_vdns_" + "ns-b é".encode().hex(), "ns_a"]


def test_identity_restore_of_a_neutral_collection_is_neutral_again(con, raw):
    schema, by_ns = qdrant_source()
    plan = build_plan(schema, PROVIDER)
    check_plan(plan)
    con.create_collection(plan.target_schema.renamed("idem_src"), "idem_src")
    con.write("idem_src", RecordBatch.from_records([plan.transform(r) for r in by_ns[""]]))
    snap_schema, recs = read_back(con, "idem_src")
    # as a snapshot stores it: the schema through its dict form
    stored = CollectionSchema.from_dict(json.loads(json.dumps(snap_schema.to_dict())))
    again = build_plan(stored, PROVIDER)
    assert again.identity
    con.create_collection(again.target_schema.renamed("idem_copy"), "idem_copy")
    for ns, rs in recs.items():
        con.write("idem_copy", RecordBatch.from_records([again.transform(r) for r in rs], ns))
    copy_schema, copy_recs = read_back(con, "idem_copy")
    assert neutral(copy_schema) == neutral(snap_schema)
    assert copy_schema.extras["neutral"] == snap_schema.extras["neutral"]
    assert_same_records(copy_recs[""], recs[""])
    assert layout(raw, con.db, "idem_copy") == layout(raw, con.db, "idem_src")
    fields, idx, parts = layout(raw, con.db, "idem_copy")
    assert fields == [("id", "VARCHAR", None), ("text", "FLOAT_VECTOR", 12),
                      ("image", "FLOAT_VECTOR", 6), ("code", "FLOAT_VECTOR", 5),
                      ("keywords", "SPARSE_FLOAT_VECTOR", None), ("metadata", "JSON", None),
                      ("_vdedup", "JSON", None)]
    assert idx == [("code", "IP"), ("image", "L2"), ("keywords", "IP"), ("text", "COSINE")]
    assert parts == ["_default"]


def test_names_ids_documents_and_absent_vectors(con, raw):
    """A schema given directly (another provider's, untranslated): vector names Milvus cannot
    use as field names, or that clash, get derived ones mapped back; int and str ids in one
    VARCHAR key keep their types; absent and empty vectors, documents and uris come back."""
    odd = "bad name-é"
    schema = CollectionSchema(
        provider="postgresql", name="clash", id_type=IdType.UNKNOWN,
        vectors=(VectorField("", 3, Metric.DOT), VectorField("vector", 2, Metric.COSINE),
                 VectorField("metadata", 2, Metric.EUCLIDEAN), VectorField(odd, 2, Metric.DOT)),
        sparse=(SparseField(""), SparseField("id")),
        metadata_fields=(MetadataField("k", "json", False, True),),
        namespaces=("", "_default", "x" * 255), has_documents=True, has_uris=True,
        options={"description": "from pg"})
    rng = np.random.default_rng(5)
    recs = {}
    for n, ns in enumerate(schema.namespaces):
        recs[ns] = [Record(
            [i, str(i), f"s{i}", 2**63 - 1 - i, -2**63 + i][i % 5] if n == 0 else f"{n}-{i}",
            {k: f32(rng, d) for k, d in (("", 3), ("vector", 2), ("metadata", 2), (odd, 2))
             if (i + len(k)) % 3},
            {k: sv for k, sv in (("", sparse(rng)), ("id", SparseVector([], [])))
             if (i + len(k)) % 2},
            {"document": "a key named like a field", "id": [1, {"b": None}]} if i % 2 else {},
            ("doc ü " * 1000 if i == 4 else f"doc {i}") if i % 3 else None,
            None if i % 2 else f"file:///x/{i}") for i in range(10)]
    con.create_collection(schema, "clash")
    for ns, rs in recs.items():
        con.write("clash", RecordBatch.from_records(rs, ns))
    got_schema, got = read_back(con, "clash")
    assert neutral(got_schema) == neutral(schema)
    assert got_schema.options == schema.options
    for ns, rs in recs.items():
        assert_same_records(got[ns], rs)
    fields, _, parts = layout(raw, con.db, "clash")
    assert [f[0] for f in fields] == ["id", "vector", "vector_2", "metadata_2", "v_bad_name__",
                                      "sparse", "id_2", "metadata", "document", "uri", "_vdedup"]
    assert parts[:2] == ["_default", "_vdns_" + b"_default".hex()]


@pytest.mark.parametrize("change, message", [
    (dict(vectors=(VectorField("", 3, Metric.MANHATTAN),)), "no manhattan metric"),
    (dict(vectors=(VectorField("", 3, Metric.UNKNOWN),)), "no known metric"),
    (dict(vectors=(VectorField("", 3, Metric.HAMMING),)), "no hamming metric"),
    (dict(vectors=(VectorField("", 3, Metric.DOT, "float64"),)), "no float64 vector type"),
    (dict(vectors=(VectorField("", 3, Metric.DOT, multivector=True),)), "multivector"),
    (dict(vectors=(VectorField("", None, Metric.DOT),)), "no known dimension"),
    (dict(sparse=(SparseField("", Metric.COSINE),)), r"only the dot \(IP\) metric"),
    (dict(namespaces=("", "é" * 200)), "cannot be a Milvus partition name"),
])
def test_refusals_at_create(con, change, message):
    base = dict(provider="qdrant", name="refused", id_type=IdType.INT,
                vectors=(VectorField("", 3, Metric.DOT),))
    with pytest.raises(UsageError, match=message) as e:
        con.create_collection(CollectionSchema(**{**base, **change}), "refused")
    assert "\n" not in str(e.value)
    assert not con.exists("refused")


@pytest.mark.parametrize("record, message", [
    (Record(1, {"": np.ones(3, np.float32)}, {}, {"big": 2**64}), "outside the 64-bit range"),
    (Record(1, {"": np.ones(3, np.float32)}, {}, {"x": [float("nan")]}), "NaN or infinite"),
    (Record(1, {"": np.ones(3, np.float32)}, {}, {"t": b"bytes"}), "type bytes"),
    (Record("a", {"": np.ones(3, np.float32)}), "INT64 primary key"),
    (Record(2**63, {"": np.ones(3, np.float32)}), "INT64 primary key"),
    (Record(1, {"": np.ones(4, np.float32)}), "has 4 dimensions"),
    (Record(1, {"other": np.ones(3, np.float32)}), "no vector 'other'"),
    (Record(1, {"": np.ones(3, np.float32)}, document="d"), "no document field"),
    (Record(1, {"": np.ones(3, np.float32)}, {"": SparseVector([1, 2], [0.5, -1.0])}),
     "non-negative sparse values"),
    (Record(1, {"": np.ones(3, np.float32)}, {"": SparseVector([1], [0.0])}),
     "non-negative sparse values"),
])
def test_refusals_at_write(con, record, message):
    if not con.exists("refused_w"):
        con.create_collection(CollectionSchema(
            provider="pinecone", name="refused_w", id_type=IdType.INT,
            vectors=(VectorField("", 3, Metric.DOT),), sparse=(SparseField(""),)), "refused_w")
    with pytest.raises(UsageError, match=message) as e:
        con.write("refused_w", RecordBatch.from_records([record]))
    assert "\n" not in str(e.value) and "bytes'" not in str(e.value)
    assert con.count("refused_w") == 0


def test_int_and_str_ids_with_the_same_text_are_refused(con):
    """Int ids are decimal text in a VARCHAR key: 5 and "5" would be one Milvus entity."""
    con.create_collection(CollectionSchema(provider="pgvector", name="kinds",
                                           id_type=IdType.UNKNOWN,
                                           vectors=(VectorField("", 2, Metric.DOT),)), "kinds")
    v = {"": np.ones(2, np.float32)}
    con.write("kinds", RecordBatch.from_records([Record(5, v), Record("6", v), Record("x5", v)]))
    con.write("kinds", RecordBatch.from_records([Record(5, v, {}, {"again": True})]))   # upsert
    for batch in ([Record("5", v)], [Record(6, v)], [Record(7, v), Record("7", v)]):
        with pytest.raises(UsageError, match="same decimal text"):
            con.write("kinds", RecordBatch.from_records(batch))
    got = sorted(((type(r.id).__name__, str(r.id)), r.metadata)
                 for b in con.scan("kinds", "") for r in b.records())
    assert got == [(("int", "5"), {"again": True}), (("str", "6"), None), (("str", "x5"), None)]


def test_capabilities_claim_what_the_layout_holds():
    caps = capabilities(PROVIDER)
    assert caps.nested_metadata and caps.null_metadata and "int" in caps.metadata_types
    assert caps.namespace_kind == "partition"
