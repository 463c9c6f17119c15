"""Cross-provider translation: plans list every difference, refuse silent loss, and a
lossless plan's records come back exactly when translated back to the original provider."""
import datetime as dt
import itertools
import uuid

import numpy as np
import pytest

from vdedup.engine.capabilities import CAPABILITIES
from vdedup.engine.translate import ORIGINAL_ID, build_plan, check_plan
from vdedup.errors import TranslationRefused
from vdedup.format import values
from vdedup.model import (CollectionSchema, IdType, MetadataField, Metric, Record, SparseField, SparseVector,
                          VectorField)

PROVIDERS = sorted(CAPABILITIES)


def _schema(provider, id_type=IdType.STRING, metric=Metric.COSINE, sparse=False, namespaces=("",), docs=False):
    return CollectionSchema(provider=provider, name="items", id_type=id_type,
                            vectors=(VectorField("", 8, metric),),
                            sparse=(SparseField("", Metric.DOT),) if sparse else (),
                            metadata_fields=(MetadataField("source", "str"), MetadataField("page", "int")),
                            namespaces=namespaces, has_documents=docs)


def _record(rid, i):
    rng = np.random.default_rng(i)
    return Record(rid, {"": rng.standard_normal(8).astype(np.float32)}, {},
                  {"source": f"s{i}", "flag": i % 2 == 0, "title": "t"}, None, None)


def _same(a: Record, b: Record) -> bool:
    return (a.id == b.id and type(a.id) is type(b.id) and a.vectors.keys() == b.vectors.keys()
            and all(a.vectors[k].tobytes() == b.vectors[k].tobytes() for k in a.vectors)
            and values.same(values.canonical(a.metadata), values.canonical(b.metadata))
            and a.document == b.document and a.sparse == b.sparse)


@pytest.mark.parametrize("src,dst", list(itertools.product(PROVIDERS, PROVIDERS)))
def test_every_pair_round_trips_ids_vectors_and_metadata(src, dst):
    caps = CAPABILITIES[src]
    id_type = sorted(caps.id_types, key=lambda t: t.value)[0]
    make_id = {IdType.STRING: lambda i: f"doc-{i}#c", IdType.INT: lambda i: 1000 + i,
               IdType.UUID: lambda i: str(uuid.UUID(int=i + 1))}[id_type]
    schema = _schema(src, id_type, Metric.COSINE)
    there = build_plan(schema, dst, allow_lossy=True)
    check_plan(there)                                    # cosine + one vector: every target can
    back = build_plan(there.target_schema, src, allow_lossy=True)
    check_plan(back)
    for i in range(20):
        rec = _record(make_id(i), i)
        mid = there.transform(rec)
        assert type(mid.id).__name__ in ("str", "int")
        if src != dst:
            kind = {IdType.INT: int, IdType.STRING: str, IdType.UUID: str}
            assert any(isinstance(mid.id, kind[t]) for t in CAPABILITIES[dst].id_types)
        final = back.transform(mid)
        assert _same(rec, final), (src, dst, rec, mid, final)
        assert ORIGINAL_ID not in (final.metadata or {})


def test_unknown_or_missing_metric_is_refused_unless_given():
    plan = build_plan(_schema("postgresql", metric=Metric.UNKNOWN), "qdrant")
    with pytest.raises(TranslationRefused, match="--metric"):
        check_plan(plan)
    plan = build_plan(_schema("postgresql", metric=Metric.JACCARD), "chroma")
    assert any("jaccard" in e for e in plan.errors)
    plan = build_plan(_schema("postgresql", metric=Metric.UNKNOWN), "qdrant", metric=Metric.DOT)
    check_plan(plan)
    assert plan.target_schema.vectors[0].metric == Metric.DOT
    assert any(s.part == "metric" and s.accepted_by == "--metric" for s in plan.steps)


def test_metric_names_are_the_providers():
    plan = build_plan(_schema("chroma", metric=Metric.DOT), "pinecone")
    assert any("dotproduct" in s.detail for s in plan.steps)
    plan = build_plan(_schema("pinecone", metric=Metric.EUCLIDEAN), "qdrant")
    assert any("Euclid" in s.detail for s in plan.steps)


def test_sparse_and_extra_vectors_are_never_dropped_silently():
    schema = _schema("qdrant", IdType.INT, sparse=True)
    schema = CollectionSchema.from_dict({**schema.to_dict(), "vectors": [
        VectorField("a", 8, Metric.COSINE).__dict__, VectorField("b", 4, Metric.DOT).__dict__]})
    plan = build_plan(schema, "chroma")
    assert any("--vector" in e for e in plan.errors) and any("sparse" in e for e in plan.errors)
    plan = build_plan(schema, "chroma", vector="a", drop_sparse=True, allow_lossy=True)   # cosine: lossy
    check_plan(plan)
    assert not plan.lossless and {s.part for s in plan.steps if not s.lossless} >= {"vectors", "sparse"}
    rec = Record(7, {"a": np.ones(8, np.float32), "b": np.ones(4, np.float32)},
                 {"": SparseVector([1, 2], [0.5, 0.5])}, {"k": 1}, None, None)
    out = plan.transform(rec)
    assert list(out.vectors) == [""] and out.sparse == {} and out.metadata[ORIGINAL_ID] == "int:7"
    assert build_plan(schema, "pinecone", vector="b", allow_lossy=True).errors == []   # pinecone keeps sparse


def test_lossy_metadata_steps_are_listed():
    schema = CollectionSchema.from_dict({**_schema("qdrant", IdType.INT).to_dict(), "metadata_fields": [
        {"name": "nested", "type": "dict"}, {"name": "n", "type": "int"},
        {"name": "maybe", "type": "str", "nullable": True}, {"name": "when", "type": "datetime"}]})
    plan = build_plan(schema, "pinecone")
    lossy = " | ".join(s.detail for s in plan.steps if not s.lossless)
    assert "nested" in lossy and "integers" in lossy and "null" in lossy and "when" in lossy
    rec = Record(1, {"": np.ones(8, np.float32)}, {}, {"nested": {"a": [1, 2]}, "n": 3, "maybe": None,
                                                        "when": dt.datetime(2026, 1, 1)}, None, None)
    out = plan.transform(rec)
    assert out.metadata["nested"] == '{"a": [1, 2]}' and out.metadata["n"] == 3.0
    assert "maybe" not in out.metadata and out.metadata["when"] == "2026-01-01T00:00:00"


def test_namespaces_map_to_collections_where_there_are_none():
    plan = build_plan(_schema("pinecone", namespaces=("", "eu", "us")), "chroma")
    assert plan.namespace_as_collection
    assert plan.target_location("items", "eu") == ("items__eu", "")
    assert plan.target_location("items", "") == ("items", "")
    plan = build_plan(_schema("pinecone", namespaces=("", "eu")), "milvus")
    assert plan.target_location("items", "eu") == ("items", "eu")
    assert any("partitions" in s.detail for s in plan.steps)


def test_documents_move_into_metadata_and_back():
    there = build_plan(_schema("chroma", docs=True), "pinecone")
    rec = Record("a", {"": np.ones(8, np.float32)}, {}, {"x": "y"}, "the text", None)
    mid = there.transform(rec)
    assert mid.document is None and mid.metadata["_vdedup_document"] == "the text"
    back = build_plan(there.target_schema, "chroma").transform(mid)
    assert back.document == "the text" and back.metadata == {"x": "y"}


def test_float16_is_widened_exactly_and_binary_refused():
    schema = CollectionSchema.from_dict({**_schema("milvus", IdType.INT).to_dict(), "vectors": [
        VectorField("h", 4, Metric.COSINE, "float16").__dict__]})
    plan = build_plan(schema, "chroma")
    with pytest.raises(TranslationRefused, match="--allow-lossy"):     # read back as float32
        check_plan(plan)
    plan = build_plan(schema, "chroma", allow_lossy=True)
    check_plan(plan)
    half = np.array([0.1, -2.5, 3e-5, 65504], np.float16)
    out = plan.transform(Record(1, {"h": half}, {}, None, None, None))
    assert out.vectors[""].dtype == np.float32 and (out.vectors[""].astype(np.float16) == half).all()
    schema = CollectionSchema.from_dict({**_schema("milvus", IdType.INT).to_dict(), "vectors": [
        VectorField("b", 64, Metric.HAMMING, "binary").__dict__]})
    assert build_plan(schema, "chroma").errors


def test_lossy_steps_are_refused_unless_accepted():
    schema = _schema("qdrant", IdType.INT)                       # page: int
    plan = build_plan(schema, "pinecone")
    with pytest.raises(TranslationRefused, match="--allow-lossy") as e:
        check_plan(plan)
    assert "integers" in str(e.value)
    plan = build_plan(schema, "pinecone", allow_lossy=True)
    check_plan(plan)
    assert [s.accepted_by for s in plan.steps if not s.lossless] == ["--allow-lossy"]
    # a loss the user asked for by an option needs nothing more
    named = CollectionSchema.from_dict({**_schema("milvus", IdType.INT).to_dict(), "metadata_fields": [],
                                        "vectors": [VectorField("a", 8, Metric.EUCLIDEAN).__dict__,
                                                    VectorField("b", 4, Metric.DOT).__dict__]})
    plan = build_plan(named, "chroma", vector="a")
    check_plan(plan)
    assert {s.accepted_by for s in plan.steps if not s.lossless} == {"--vector"}


def test_pinecone_sparse_needs_a_dotproduct_index():
    schema = _schema("qdrant", IdType.INT, metric=Metric.COSINE, sparse=True)
    plan = build_plan(schema, "pinecone", allow_lossy=True)
    assert any("dotproduct" in e for e in plan.errors)
    plan = build_plan(schema, "pinecone", metric=Metric.DOT, allow_lossy=True)
    check_plan(plan)
    named = CollectionSchema.from_dict({**schema.to_dict(), "sparse": [
        SparseField("s1").__dict__, SparseField("s2").__dict__]})
    assert any("1 sparse vector" in e for e in build_plan(named, "pinecone", metric=Metric.DOT).errors)


def test_uuid_ids_are_kept_where_strings_are():
    schema = _schema("weaviate", IdType.UUID)
    plan = build_plan(schema, "milvus")
    assert not any(s.part == "ids" for s in plan.steps)
    rid = str(uuid.uuid4())
    out = plan.transform(Record(rid, {"": np.ones(8, np.float32)}, {}, {"source": "x"}, None, None))
    assert out.id == rid and ORIGINAL_ID not in out.metadata


def test_fold_namespaces_reverses_namespace_collections():
    there = build_plan(_schema("pinecone", namespaces=("", "eu")), "chroma")
    name, _ = there.target_location("items", "eu")
    back_schema = CollectionSchema.from_dict({**there.target_schema.to_dict(), "name": name})
    assert build_plan(back_schema, "pinecone").target_location(name, "") == ("items__eu", "")
    folded = build_plan(back_schema, "pinecone", fold_namespaces=True)
    assert folded.target_location(name, "") == ("items", "eu")
    assert folded.target_schema.name == "items" and folded.target_schema.namespaces == ("eu",)
    assert any("--fold-namespaces" in s.detail and s.lossless for s in folded.steps)
    plain = build_plan(there.target_schema, "pinecone", fold_namespaces=True)     # "items": the default
    assert plain.target_location("items", "") == ("items", "")


def test_inexact_targets_are_listed():
    schema = CollectionSchema.from_dict({**_schema("milvus", IdType.INT).to_dict(), "metadata_fields": [
        {"name": "score", "type": "float"}]})
    lossy = [s.detail for s in build_plan(schema, "chroma").steps if not s.lossless]
    assert any("cosine" in d for d in lossy) and any(d.startswith("score:") for d in lossy)
    assert not [s for s in build_plan(schema, "weaviate").steps if not s.lossless]


def test_the_targets_own_rounding_is_inexact_not_lossy_and_exact_refuses_it():
    """Cosine normalisation and float rounding by the target go ahead without an option (and
    with a bound); --exact refuses them, also for a restore into the same provider."""
    schema = CollectionSchema.from_dict({**_schema("pinecone").to_dict(), "metadata_fields": [
        {"name": "score", "type": "float"}]})
    plan = build_plan(schema, "qdrant")
    check_plan(plan)
    (step,) = plan.inexact_steps
    assert step.part == "vectors" and step.bound and not step.accepted_by and plan.fidelity == "inexact"
    assert plan.to_dict()["steps"][[s.inexact for s in plan.steps].index(True)]["kind"] == "inexact"
    chroma = build_plan(schema, "chroma")
    check_plan(chroma)                                   # no --allow-lossy needed any more
    assert {s.field for s in chroma.inexact_steps} == {"", "score"}
    for target in ("qdrant", "chroma"):
        with pytest.raises(TranslationRefused, match="--exact"):
            check_plan(build_plan(schema, target, exact=True))
    check_plan(build_plan(schema, "milvus", exact=True))          # nothing inexact there
    same = build_plan(CollectionSchema.from_dict({**schema.to_dict(), "provider": "qdrant"}), "qdrant")
    assert same.identity and [s.part for s in same.inexact_steps] == ["vectors"]
    with pytest.raises(TranslationRefused, match="--exact"):
        check_plan(build_plan(CollectionSchema.from_dict({**schema.to_dict(), "provider": "qdrant"}), "qdrant",
                              exact=True))
    # a lossy step still needs its option, inexact ones or not
    assert any("--allow-lossy" in e for e in build_plan(_schema("qdrant", IdType.INT), "pinecone").errors)
