"""pgvector connector: collections from other providers (the neutral layout), against the real
PostgreSQL 18 + pgvector from scripts/servers.sh, through the real translation plan.

Each source is a schema and records as another provider's connector backs them up. They go
through build_plan(source, "pgvector") -> create_collection -> write(plan.transform(r)), are read
back with describe() + scan() and compared bit for bit with the transformed records (id and its
type, vector bytes and dtype, sparse indices and values, metadata values, value types and key
order, document, uri) and with the plan's target schema; then build_plan(read_back, source) and
transform back must give the original records. The read-back schema restored into pgvector
again (identity plan) must recreate the neutral layout.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import numpy as np
import pytest

from vdtest import require_module  # noqa: E402  (fails, not skips: tests/vdtest.py)
psycopg = require_module("psycopg")

from pg_fixtures import columns, connect, fresh_database, indexes, pg_settings, url  # noqa: E402

from vdedup.connectors import open_connector  # noqa: E402
from vdedup.engine.capabilities import capabilities  # noqa: E402
from vdedup.engine.translate import DOCUMENT, URI, build_plan, check_plan  # noqa: E402
from vdedup.errors import UsageError  # noqa: E402
from vdedup.model import (CollectionSchema, IdType, MetadataField, Metric, Record,  # noqa: E402
                          RecordBatch, SparseField, SparseVector, VectorField)
from foreign_check import assert_same_records, neutral, typed  # noqa: E402

PROVIDER = "pgvector"
N = 40


@pytest.fixture(scope="module")
def con():
    pg_settings()
    with fresh_database("vdedup_pgf") as name:
        c = open_connector(url(name))
        c.db = name
        try:
            yield c
        finally:
            c.close()


# ------------------------------------------------------------------ comparison


def read_back(con, name: str) -> tuple[CollectionSchema, list[Record]]:
    schema = con.describe(name)
    recs = [r for b in con.scan(name, "", batch_size=7) for r in b.records()]
    assert con.count(name) == len(recs)
    return schema, recs


# ------------------------------------------------------------------ sources


def f32(rng: np.random.Generator, dim: int) -> np.ndarray:
    return rng.standard_normal(dim).astype(np.float32)


def sparse(rng: np.random.Generator) -> SparseVector:
    k = int(rng.integers(1, 6))
    idx = np.sort(rng.choice(30000, size=k, replace=False))
    return SparseVector(idx, rng.standard_normal(k).astype(np.float32))


def qdrant_source() -> tuple[CollectionSchema, dict[str, list[Record]]]:
    schema = CollectionSchema(
        provider="qdrant", name="qd_points", id_type=IdType.UUID,
        vectors=(VectorField("text", 12, Metric.COSINE, "float32", index={"hnsw": {"m": 16}}),
                 VectorField("image", 6, Metric.EUCLIDEAN, "float16"),
                 VectorField("code", 5, Metric.MANHATTAN, "float32")),
        sparse=(SparseField("keywords", Metric.DOT),),
        metadata_fields=(MetadataField("city", "str", True), MetadataField("n", "int", True)),
        extras={"config": {"params": {"shard_number": 1}}})
    rng = np.random.default_rng(11)
    recs = []
    for i in range(N):
        rid: Any = str(uuid.UUID(int=int(rng.integers(0, 2**62)) * 7 + i)) if i % 3 else i * 1000
        if i == 3:
            rid = 2**64 - 1                      # Qdrant ids are unsigned 64-bit
        vec = {"text": f32(rng, 12), "image": rng.standard_normal(6).astype(np.float16)}
        if i % 4:
            vec["code"] = f32(rng, 5)
        meta = {"city": f"city {i} ü 😀", "n": i - 20, "score": float(rng.standard_normal()),
                "ok": i % 2 == 0, "none": None, "tags": ["a", 1, 2.5, None, True, {"x": [i]}],
                "nested": {"z": {"deep": [1.0, -0.0, 1e16, 2**70]}, "a": i}, "big": 2**63 + i}
        if i % 5 == 0:
            meta = None          # (translate.py turns an empty {} into None both ways)
        recs.append(Record(rid, vec, {"keywords": sparse(rng)} if i % 3 != 1 else {}, meta))
    return schema, {"": recs}


def pinecone_source() -> tuple[CollectionSchema, dict[str, list[Record]]]:
    schema = CollectionSchema(
        provider="pinecone", name="pc_index", id_type=IdType.STRING,
        vectors=(VectorField("", 8, Metric.DOT),), sparse=(SparseField("", Metric.DOT),),
        namespaces=("", "ns_a"), extras={"spec": {"serverless": {"cloud": "aws"}}})
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
                   f"document {i}\ttabs 'quotes' \"dq\" \\ backslash" if i % 4 else None,
                   f"s3://bucket/{i}" if i % 3 else None) for i in range(N)]
    return schema, {"": recs}


SOURCES = {"qdrant": qdrant_source, "pinecone": pinecone_source, "chroma": chroma_source}


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_foreign_source_round_trip_through_the_plan(con, source):
    schema, by_ns = SOURCES[source]()
    plan = build_plan(schema, PROVIDER)
    check_plan(plan)
    assert plan.lossless, plan.to_dict()
    written: dict[str, list[Record]] = {}
    tschemas: dict[str, CollectionSchema] = {}
    for ns, recs in by_ns.items():
        tname, tns = plan.target_location(schema.name, ns)
        assert tns == ""                                   # pgvector has no namespaces
        if tname not in tschemas:
            tschemas[tname] = plan.target_schema.renamed(tname)
            con.create_collection(tschemas[tname], tname)
        out = [plan.transform(r) for r in recs]
        for k in range(0, len(out), 9):                    # several batches, as a restore does
            con.write(tname, RecordBatch.from_records(out[k:k + 9], namespace=tns))
        written.setdefault(tname, []).extend(out)
        con.finish(tname)
    assert len(written) == len(by_ns)

    back_to_source: dict[str, list[Record]] = {}
    for tname, out in written.items():
        got_schema, got = read_back(con, tname)
        assert got_schema.provider == PROVIDER and got_schema.name == tname
        assert neutral(got_schema) == neutral(tschemas[tname])
        marker = got_schema.extras["neutral"]
        assert marker["layout"] == "neutral" and marker["translated_from"]["provider"] == source
        assert "columns" not in got_schema.extras
        assert_same_records(got, out)

        # back to the source provider: the original records, exactly
        fold = tname != schema.name
        back = build_plan(got_schema, source, fold_namespaces=fold, allow_lossy=True)
        check_plan(back)
        # steps that are not the pgvector side's: Qdrant's own rounding of cosine vectors (an
        # inexact step: the records handed to it are exact), and translate.py flagging the
        # document/uri carrier fields (nullable str) as "null values dropped" for a target with
        # first-class documents, although it moves them back out of the metadata
        lossy = [s.detail for s in back.steps if s.kind == "lossy"]
        assert all(d.startswith((f"{DOCUMENT}: null", f"{URI}: null")) for d in lossy), lossy
        assert all(s.part == "vectors" and "cosine index" in s.detail for s in back.inexact_steps)
        coll, ns = back.target_location(tname, "")
        assert coll == schema.name
        assert [v.name for v in back.target_schema.vectors] == [v.name for v in schema.vectors]
        assert [(s.name, s.metric) for s in back.target_schema.sparse] == \
            [(s.name, s.metric) for s in schema.sparse]
        assert back.target_schema.id_type == schema.id_type
        if capabilities(PROVIDER).documents:     # else documents travel in _vdedup_document
            assert back.target_schema.has_documents == schema.has_documents
        back_to_source[ns] = [back.transform(r) for r in got]
    assert sorted(back_to_source) == sorted(by_ns)
    for ns, recs in by_ns.items():
        assert_same_records(back_to_source[ns], recs)


def test_identity_restore_of_a_neutral_table_is_neutral_again(con):
    schema, by_ns = qdrant_source()
    plan = build_plan(schema, PROVIDER)
    check_plan(plan)
    con.create_collection(plan.target_schema.renamed("idem_src"), "idem_src")
    con.write("idem_src", RecordBatch.from_records([plan.transform(r) for r in by_ns[""]]))
    con.finish("idem_src")
    snap_schema, recs = read_back(con, "idem_src")
    # as a snapshot stores it: the schema through its dict form
    stored = CollectionSchema.from_dict(json.loads(json.dumps(snap_schema.to_dict())))
    again = build_plan(stored, PROVIDER)
    assert again.identity
    con.create_collection(again.target_schema.renamed("idem_copy"), "idem_copy")
    con.write("idem_copy", RecordBatch.from_records([again.transform(r) for r in recs]))
    con.finish("idem_copy")
    copy_schema, copy_recs = read_back(con, "idem_copy")
    assert neutral(copy_schema) == neutral(snap_schema)
    assert copy_schema.extras["neutral"] == snap_schema.extras["neutral"]
    assert_same_records(copy_recs, recs)
    with connect(con.db) as conn:
        assert columns(conn, "idem_copy") == columns(conn, "idem_src")
        assert indexes(conn, "idem_copy") == indexes(conn, "idem_src")
        assert [c[:2] for c in columns(conn, "idem_copy")] == [
            ("id", "text"), ("text", "vector(12)"), ("image", "halfvec(6)"), ("code", "vector(5)"),
            ("keywords", "sparsevec"), ("metadata", "json")]
        assert [i[:3] for i in indexes(conn, "idem_copy")] == [
            ("hnsw", ("halfvec_l2_ops",), ("image",)), ("hnsw", ("vector_cosine_ops",), ("text",)),
            ("hnsw", ("vector_l1_ops",), ("code",))]


def test_column_names_that_collide_or_are_too_long(con):
    """A schema given directly (another provider's, untranslated): every declared part is kept,
    vector names that PostgreSQL cannot use as columns get derived ones, mapped back."""
    long = "v" * 70 + "é"
    schema = CollectionSchema(
        provider="milvus", name="clash", id_type=IdType.INT,
        vectors=(VectorField("", 3, Metric.DOT), VectorField("embedding", 2, Metric.COSINE),
                 VectorField("metadata", 2, Metric.EUCLIDEAN), VectorField(long, 2, Metric.DOT),
                 VectorField(long + "2", 2, Metric.DOT),
                 VectorField("wide", 2001, Metric.COSINE),          # beyond HNSW's 2,000
                 VectorField("bits", 16, Metric.HAMMING, "binary")),
        sparse=(SparseField(""), SparseField("sparse", Metric.COSINE, index={"dim": 500}),
                SparseField("embedding")),
        has_documents=True, has_uris=True, options={"description": "from milvus"})
    rng = np.random.default_rng(5)
    recs = [Record(-2**63 + i if i == 1 else 2**63 - 1 - i, {
        "": f32(rng, 3), "embedding": f32(rng, 2), "metadata": f32(rng, 2), long: f32(rng, 2),
        long + "2": f32(rng, 2), "wide": f32(rng, 2001),
        "bits": rng.integers(0, 256, 2).astype(np.uint8)},
        {"": sparse(rng), "sparse": SparseVector([0, 499], [1.5, -2.0]),
         "embedding": sparse(rng)},
        {"document": "a key named like a column", "embedding": [1, 2], "id": "x"},
        f"doc {i}", None if i else "file:///x") for i in range(3)]
    con.create_collection(schema, "clash")
    con.write("clash", RecordBatch.from_records(recs))
    con.finish("clash")
    got_schema, got = read_back(con, "clash")
    assert neutral(got_schema) == neutral(schema)
    assert got_schema.options == schema.options
    assert got_schema.sparse[1].index["dim"] == 500
    assert_same_records(got, recs)
    with connect(con.db) as conn:
        names = [c[0] for c in columns(conn, "clash")]
        idx = indexes(conn, "clash")
    assert names[:4] == ["id", "embedding", "embedding_2", "metadata_2"]
    assert len(set(names)) == len(names) and all(len(n.encode()) <= 63 for n in names)
    assert not any("wide" in i[2] for i in idx)           # no index, metric from the marker
    assert got_schema.vector("wide").metric == Metric.COSINE
    assert got_schema.vector("bits").dtype == "binary"


def test_metadata_json_is_exact(con):
    """The `json` column keeps the text json.dumps wrote; jsonb would not (shown below)."""
    values = {"big_float": 1e16, "neg_zero": -0.0, "max": 1.7976931348623157e308,
              "tiny": 5e-324, "tenth": 0.1, "one": 1.0, "int": 1, "huge": 2**70,
              "neg": -2**63, "true": True, "false": False, "null": None, "empty_s": "",
              "nul": "a\x00b", "surrogate": "\ud800", "emoji": "😀 ü \n \" \\",
              "nested": {"b": 1, "a": [1.0, 1, "1", None, {}, []]}, "empty_d": {}, "empty_l": []}
    schema = CollectionSchema(provider="qdrant", name="j", id_type=IdType.INT,
                              vectors=(VectorField("", 2, Metric.DOT),))
    recs = [Record(1, {"": np.ones(2, np.float32)}, {}, values),
            Record(2, {"": np.ones(2, np.float32)}, {}, {}),
            Record(3, {"": np.ones(2, np.float32)}, {}, None)]
    con.create_collection(schema, "exact_json")
    con.write("exact_json", RecordBatch.from_records(recs))
    _, got = read_back(con, "exact_json")
    assert_same_records(got, recs)
    with connect(con.db) as conn:      # why not jsonb: numbers normalised, keys reordered
        row = conn.execute("SELECT %s::jsonb::text", (json.dumps({"b": 1e16, "a": -0.0}),)
                           ).fetchone()[0]
    assert row == '{"a": 0.0, "b": 10000000000000000}'


def test_refusals_are_one_line_usage_errors(con):
    schema = CollectionSchema(provider="weaviate", name="r", id_type=IdType.STRING,
                              vectors=(VectorField("", 2, Metric.COSINE),))
    con.create_collection(schema, "refuse_s")
    v = {"": np.ones(2, np.float32)}
    bad = [
        ([Record("a", v, {}, {"when": dt.datetime(2024, 1, 1)})], "datetime value"),
        ([Record("a", v, {}, {"x": float("nan")})], "NaN"),
        ([Record(5, v, {}, None)], "string ids"),
        ([Record("a", {"": np.ones((2, 2), np.float32)}, {}, None)], "multivector"),
        ([Record("a", {"other": np.ones(2, np.float32)}, {}, None)], "no vector column"),
        ([Record("a", v, {"": SparseVector([1], [1.0])}, None)], "no sparse vector column"),
    ]
    for recs, text in bad:
        with pytest.raises(UsageError, match=text) as e:
            con.write("refuse_s", RecordBatch.from_records(recs))
        assert "\n" not in str(e.value)
    mixed = CollectionSchema(provider="qdrant", name="m", id_type=IdType.UUID,
                             vectors=(VectorField("", 2, Metric.COSINE),))
    con.create_collection(mixed, "refuse_m")
    with pytest.raises(UsageError, match="decimal text"):
        con.write("refuse_m", RecordBatch.from_records([Record("42", v, {}, None)]))
    ints = CollectionSchema(provider="milvus", name="i", id_type=IdType.INT,
                            vectors=(VectorField("", 2, Metric.COSINE),))
    con.create_collection(ints, "refuse_i")
    with pytest.raises(UsageError, match="out of its range"):
        con.write("refuse_i", RecordBatch.from_records([Record(2**63, v, {}, None)]))
    with pytest.raises(UsageError, match="holds integer ids"):
        con.write("refuse_i", RecordBatch.from_records([Record("5", v, {}, None)]))
    for s, text in [(CollectionSchema(provider="milvus", name="b", vectors=(
            VectorField("", None, Metric.HAMMING, "binary"),)), "no known dimension"),
                    (CollectionSchema(provider="qdrant", name="mv", vectors=(
                        VectorField("", 4, Metric.COSINE, multivector=True),)), "multivector"),
                    (CollectionSchema(provider="pinecone", name="ns", namespaces=("", "a"),
                                      vectors=(VectorField("", 4, Metric.DOT),)), "namespaces"),
                    (CollectionSchema(provider="milvus", name="i8", vectors=(
                        VectorField("", 4, Metric.COSINE, "int8"),)), "no type")]:
        with pytest.raises(UsageError, match=text):
            con.create_collection(s, "refuse_ddl")
        assert not con.exists("refuse_ddl")
    assert con.count("refuse_s") == 0 and con.count("refuse_m") == 0
    assert con.count("refuse_i") == 0


def test_a_changed_neutral_table_is_read_as_a_plain_table(con):
    """Once a user adds a column the marker no longer describes the table: read it whole."""
    schema = CollectionSchema(provider="chroma", name="c", id_type=IdType.STRING,
                              vectors=(VectorField("", 2, Metric.COSINE),))
    con.create_collection(schema, "changed")
    con.write("changed", RecordBatch.from_records(
        [Record("a", {"": np.ones(2, np.float32)}, {}, {"k": 1})]))
    assert con.describe("changed").extras["neutral"]["layout"] == "neutral"
    with connect(con.db) as conn:
        conn.execute("ALTER TABLE changed ADD COLUMN note text DEFAULT 'n'")
    got_schema, got = read_back(con, "changed")
    assert "neutral" not in got_schema.extras and got_schema.extras["columns"]
    assert [v.name for v in got_schema.vectors] == ["embedding"]
    assert got[0].metadata == {"metadata": {"k": 1}, "note": "n"}


def test_datetimes_through_the_plan_are_never_stringified_silently(con):
    """JSON has no datetime: either the plan reports the conversion as a lossy step (when the
    capabilities say so) or the connector refuses the value; never a quiet ISO string."""
    schema = CollectionSchema(provider="weaviate", name="Events", id_type=IdType.UUID,
                              vectors=(VectorField("", 2, Metric.COSINE),),
                              metadata_fields=(MetadataField("when", "datetime"),))
    rec = Record(str(uuid.UUID(int=7)), {"": np.ones(2, np.float32)}, {},
                 {"when": dt.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=dt.timezone.utc)})
    plan = build_plan(schema, PROVIDER, allow_lossy=True)
    check_plan(plan)
    lossy = [s.detail for s in plan.steps if not s.lossless]
    con.create_collection(plan.target_schema.renamed("events"), "events")
    batch = RecordBatch.from_records([plan.transform(rec)])
    if "datetime" in capabilities(PROVIDER).metadata_types:
        assert not lossy
        with pytest.raises(UsageError, match="datetime value"):
            con.write("events", batch)
    else:
        assert any(d.startswith("when:") for d in lossy), lossy
        con.write("events", batch)
        _, got = read_back(con, "events")
        assert got[0].metadata == {"when": "2024-05-06T07:08:09.000010+00:00"}


def test_delete_by_mixed_ids(con):
    schema = CollectionSchema(provider="qdrant", name="d", id_type=IdType.UUID,
                              vectors=(VectorField("", 2, Metric.COSINE),))
    ids = [1, 2**64 - 1, str(uuid.UUID(int=3)), str(uuid.UUID(int=4))]
    con.create_collection(schema, "deletes")
    con.write("deletes", RecordBatch.from_records(
        [Record(i, {"": np.ones(2, np.float32)}) for i in ids]))
    con.delete("deletes", [2**64 - 1, str(uuid.UUID(int=3))])
    _, got = read_back(con, "deletes")
    assert sorted(map(typed, (r.id for r in got))) == sorted(map(typed, [1, ids[3]]))
