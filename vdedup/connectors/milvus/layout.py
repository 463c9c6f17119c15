"""The neutral layout of a Milvus collection (connector layer; the SDK is imported only in
create_neutral).

Another provider's schema (anything without Milvus `fields` in extras) gets the neutral
layout: `id` (INT64 for int ids, else VARCHAR), one field per dense and sparse vector (the
unnamed ones are `vector` and `sparse`; names Milvus refuses or that clash are derived),
`metadata` JSON, `document`/`uri` VARCHAR when declared, and `_vdedup` JSON with what Milvus
cannot say itself (int ids in a VARCHAR key, absent or empty vectors, which Milvus cannot
store as null). A JSON marker in the collection description and in the collection property
`vdedup.layout` (milvus-lite drops descriptions) maps fields back to vector names, so
describe() and scan() read it back neutrally and a restore of that recreates it.
Namespaces are partitions: "" is `_default`; names Milvus refuses are hex-encoded.
"""
from __future__ import annotations

import contextlib
import json
import math
import re
from typing import Any

import numpy as np

from ...errors import SourceError, UsageError
from ...model import (CollectionSchema, IdType, MetadataField, Metric, Record, RecordBatch,
                      SparseField, SparseVector, VectorField)
from .schema import DEFAULT_PARTITION, DENSE_TYPES, Field, declared, field_json, json_safe
from .values import dense_value, sparse_value, vector_out

NEUTRAL_LAYOUT = "neutral"          # extras key and marker "layout" value
NEUTRAL_VERSION = 1
MARKER_PROPERTY = "vdedup.layout"   # the marker also goes here: milvus-lite drops descriptions
N_ID, N_META, N_DOC, N_URI, N_STATE = "id", "metadata", "document", "uri", "_vdedup"
N_FIXED = (N_ID, N_META, N_DOC, N_URI, N_STATE)
N_DENSE, N_SPARSE = "vector", "sparse"     # field names of the unnamed vectors
MAX_VARCHAR = 65535                 # bytes in a Milvus VARCHAR
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")    # Milvus field and partition names
NS_PREFIX = "_vdns_"                # a namespace Milvus refuses as a partition name: hex of UTF-8
DTYPE_FIELDS = {"float32": "FLOAT_VECTOR", "float16": "FLOAT16_VECTOR",
                "bfloat16": "BFLOAT16_VECTOR", "int8": "INT8_VECTOR", "binary": "BINARY_VECTOR"}
FLOAT_METRICS = {Metric.EUCLIDEAN: "L2", Metric.DOT: "IP", Metric.COSINE: "COSINE"}
BINARY_METRICS = {Metric.HAMMING: "HAMMING", Metric.JACCARD: "JACCARD"}
INT64_RANGE = (-2 ** 63, 2 ** 63 - 1)
DECIMAL_RE = re.compile(r"^-?[0-9]+$")
ID_CLASH = ("an int id and a str id with the same decimal text cannot both be kept in this "
            "collection's VARCHAR primary key")


def is_marker(value: Any) -> bool:
    return isinstance(value, dict) and value.get("vdedup") == NEUTRAL_VERSION \
        and value.get("layout") == NEUTRAL_LAYOUT


def read_marker(info: dict[str, Any]) -> dict[str, Any] | None:
    """The neutral-layout marker (in the collection description, and in a collection property
    where the description is not kept), or None: a native collection."""
    props = info.get("properties") or {}
    for text in (props.get(MARKER_PROPERTY) if isinstance(props, dict) else None,
                 info.get("description")):
        if isinstance(text, str) and text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if is_marker(value):
                return value
    return None


def partition_name(namespace: str) -> str:
    """The partition of a namespace in a neutral collection: "" is `_default`; a name Milvus
    refuses (or one that would read back as something else) is hex-encoded behind a prefix."""
    if namespace == "":
        return DEFAULT_PARTITION
    if NAME_RE.match(namespace) and namespace != DEFAULT_PARTITION \
            and not namespace.startswith(NS_PREFIX):
        return namespace
    encoded = NS_PREFIX + namespace.encode("utf-8").hex()
    if len(encoded) > 255:
        raise UsageError(f"namespace {namespace[:40]!r} cannot be a Milvus partition name: "
                         "Milvus allows 255 characters of letters, digits and underscores, and "
                         f"other names are hex-encoded ({(255 - len(NS_PREFIX)) // 2} bytes at most)")
    return encoded


def namespace_of(partition: str) -> str:
    if partition == DEFAULT_PARTITION:
        return ""
    if partition.startswith(NS_PREFIX):
        with contextlib.suppress(ValueError):
            return bytes.fromhex(partition[len(NS_PREFIX):]).decode("utf-8")
    return partition


def milvus_metric(ftype: str, metric: Metric) -> str:
    table = BINARY_METRICS if ftype == "BINARY_VECTOR" else FLOAT_METRICS
    if metric not in table:
        raise UsageError(f"Milvus has no {metric.value} metric for {ftype} fields "
                         f"(it has {', '.join(m.value for m in table)}): give --metric")
    return table[metric]


def field_names(names: list[str], used: set[str], unnamed: str) -> list[str]:
    """Milvus field names for vector names: the name itself where Milvus allows it and no
    other field has it, else one derived from it (the marker maps it back)."""
    out = []
    for name in names:
        base = name or unnamed
        if not NAME_RE.match(base):
            base = "v_" + re.sub(r"[^A-Za-z0-9_]", "_", base)[:200]
        cand, k = base, 2
        while cand in used:
            cand, k = f"{base}_{k}", k + 1
        used.add(cand)
        out.append(cand)
    return out


def neutral_plan(schema: CollectionSchema) -> dict[str, Any]:
    """The marker of a neutral collection for a schema: field name of each vector, its metric
    and type, declared metadata fields and namespaces. Deterministic, so a neutral collection
    read back and restored into Milvus again gets the same layout."""
    own = schema.extras.get(NEUTRAL_LAYOUT)
    for v in schema.vectors:
        label = v.name or "(default)"
        if v.multivector:
            raise UsageError(f"vector {label!r} is a multivector, which Milvus cannot hold")
        if v.dtype not in DTYPE_FIELDS:
            raise UsageError(f"vector {label!r}: Milvus has no {v.dtype} vector type")
        if v.dim is None or v.dim < 1:
            raise UsageError(f"vector {label!r} has no known dimension: Milvus needs one")
        if v.dtype == "binary" and v.dim % 8:
            raise UsageError(f"binary vector {label!r}: Milvus needs a dimension that is a "
                             "multiple of 8")
        if v.metric == Metric.UNKNOWN:
            raise UsageError(f"vector {label!r} has no known metric: Milvus needs one for its "
                             "index (give --metric)")
        milvus_metric(DTYPE_FIELDS[v.dtype], v.metric)
    for sp in schema.sparse:
        if sp.metric != Metric.DOT:
            raise UsageError(f"sparse vector {sp.name or '(default)'!r}: Milvus has only the "
                             f"dot (IP) metric for sparse vectors, not {sp.metric.value}")
    if len({v.name for v in schema.vectors}) != len(schema.vectors) or \
            len({s.name for s in schema.sparse}) != len(schema.sparse):
        raise UsageError("the schema names a vector twice")
    if len(set(schema.namespaces)) != len(schema.namespaces):
        raise UsageError("the schema names a namespace twice")
    for ns in schema.namespaces:
        partition_name(ns)
    used = set(N_FIXED)
    dense = field_names([v.name for v in schema.vectors], used, N_DENSE)
    sparse = field_names([s.name for s in schema.sparse], used, N_SPARSE)
    origin = own.get("translated_from") if is_marker(own) else None
    if origin is None:
        origin = schema.extras.get("translated_from") or \
            {"provider": schema.provider, "collection": schema.name}
    return {
        "vdedup": NEUTRAL_VERSION, "layout": NEUTRAL_LAYOUT, "id_type": schema.id_type.value,
        "vectors": [{"name": v.name, "field": f, "type": DTYPE_FIELDS[v.dtype], "dim": v.dim,
                     "metric": v.metric.value} for v, f in zip(schema.vectors, dense)],
        "sparse": [{"name": sp.name, "field": f, "metric": sp.metric.value,
                    "modifier": sp.modifier} for sp, f in zip(schema.sparse, sparse)],
        "metadata_fields": [[m.name, m.type, m.indexed, m.nullable]
                            for m in schema.metadata_fields],
        "namespaces": list(schema.namespaces), "documents": bool(schema.has_documents),
        "uris": bool(schema.has_uris), "options": json_safe(dict(schema.options)),
        "translated_from": json_safe(origin)}


def check_json(value: Any, depth: int = 0) -> None:
    """Refuse metadata a Milvus JSON field would not give back exactly (one-line errors,
    without the values)."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
            raise UsageError("a metadata integer is outside the 64-bit range, which Milvus JSON "
                             "fields cannot hold")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError("a metadata float is NaN or infinite, which Milvus JSON fields "
                             "cannot hold")
        return
    if depth > 64:
        raise UsageError("metadata is nested too deeply for a Milvus JSON field")
    if isinstance(value, list):
        for x in value:
            check_json(x, depth + 1)
        return
    if isinstance(value, dict):
        for k, x in value.items():
            if not isinstance(k, str):
                raise UsageError("metadata keys must be strings in a Milvus JSON field")
            check_json(x, depth + 1)
        return
    raise UsageError(f"metadata values of type {type(value).__name__} cannot be stored in a "
                     "Milvus JSON field (a cross-provider restore converts them first)")


def text_field(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"a record's {what} is not a string")
    if len(value.encode("utf-8")) > MAX_VARCHAR:
        raise UsageError(f"a record's {what} is longer than {MAX_VARCHAR} bytes, the most a "
                         "Milvus VARCHAR field holds")
    return value


def placeholder(ftype: str, dim: int) -> Any:
    """What an absent dense vector is stored as (Milvus vector fields cannot be null)."""
    zeros = {"FLOAT_VECTOR": np.float32, "FLOAT16_VECTOR": np.float16,
             "BFLOAT16_VECTOR": np.uint16, "INT8_VECTOR": np.int8, "BINARY_VECTOR": np.uint8}
    return vector_out(np.zeros(dim, dtype=zeros[ftype]), ftype, "")


SPARSE_PLACEHOLDER = {0: 1.0}       # Milvus refuses empty and null sparse vectors


def neutral_rows(batch: RecordBatch, fields: list[Field],
                  marker: dict[str, Any]) -> list[dict[str, Any]]:
    by_name = {f.name: f for f in fields}
    pk = by_name[N_ID]
    dense = [(v["name"], by_name[v["field"]]) for v in marker["vectors"]]
    sparse = [(sp["name"], by_name[sp["field"]]) for sp in marker["sparse"]]
    if batch.multi:
        raise UsageError("Milvus vector fields hold one vector per record, not multivectors")
    for name in batch.dense:
        if name not in {n for n, _ in dense}:
            raise UsageError(f"the target collection has no vector {name!r}")
    for name in batch.sparse:
        if name not in {n for n, _ in sparse}:
            raise UsageError(f"the target collection has no sparse vector {name!r}")
    out: list[dict[str, Any]] = []
    for rec in batch.records():
        state: dict[str, Any] = {}
        rid = rec.id
        if isinstance(rid, bool) or not isinstance(rid, (int, str)):
            raise UsageError("record ids must be integers or strings")
        if pk.type == "INT64":
            if not isinstance(rid, int) or not INT64_RANGE[0] <= rid <= INT64_RANGE[1]:
                raise UsageError("the target collection has an INT64 primary key: ids must be "
                                 "integers in the 64-bit range")
        elif isinstance(rid, int):
            rid, state["int_id"] = str(rid), True
        else:
            text_field(rid, "id")
        row: dict[str, Any] = {N_ID: rid}
        absent: list[str] = []
        for name, f in dense:
            vec = rec.vectors.get(name)
            if vec is None:
                absent.append(f.name)
                row[f.name] = placeholder(f.type, int(f.dim or 0))
                continue
            if vec.ndim != 1 or vec.shape[0] != f.dim:
                raise UsageError(f"vector {name or '(default)'!r} has {vec.shape[-1]} dimensions, "
                                 f"the Milvus field {f.dim}")
            row[f.name] = vector_out(vec, f.type, name)
        empty: list[str] = []
        for name, f in sparse:
            sv = rec.sparse.get(name)
            if sv is None or not len(sv.indices):
                (absent if sv is None else empty).append(f.name)
                row[f.name] = dict(SPARSE_PLACEHOLDER)
                continue
            if not (np.isfinite(sv.values).all() and (sv.values >= 0).all()
                    and (sv.values > 0).any()):
                raise UsageError(f"sparse vector {name or '(default)'!r}: Milvus holds only finite, "
                                 "non-negative sparse values with at least one above zero")
            values = dict(zip(sv.indices.tolist(), sv.values.tolist()))
            if len(values) != len(sv.indices):
                raise UsageError(f"sparse vector {name or '(default)'!r} repeats an index")
            row[f.name] = values
        meta = rec.metadata
        if meta is not None:
            if not isinstance(meta, dict):
                raise UsageError("record metadata must be a dict")
            check_json(meta)
        row[N_META] = meta
        for field, value, what in ((N_DOC, rec.document, "document"), (N_URI, rec.uri, "uri")):
            if field in by_name:
                row[field] = text_field(value, what)
            elif value is not None:
                raise UsageError(f"the target collection has no {what} field")
        if absent:
            state["absent"] = absent
        if empty:
            state["empty"] = empty
        row[N_STATE] = state or None
        out.append(row)
    return out


def neutral_batch(rows: list[dict[str, Any]], fields: list[Field], marker: dict[str, Any],
                   namespace: str) -> RecordBatch:
    by_name = {f.name: f for f in fields}
    pk = by_name[N_ID]
    recs = []
    for r in rows:
        state = r.get(N_STATE) or {}
        skip = set(state.get("absent") or ())
        empty = set(state.get("empty") or ())
        rid = r[N_ID]
        rid = int(rid) if pk.type == "INT64" or state.get("int_id") else str(rid)
        vectors = {}
        for v in marker["vectors"]:
            f = by_name[v["field"]]
            if f.name not in skip:
                vectors[v["name"]] = dense_value(r[f.name], f.type, f.dim)
        sparse = {}
        for sp in marker["sparse"]:
            field = sp["field"]
            if field in empty:
                sparse[sp["name"]] = SparseVector(np.zeros(0, np.uint32), np.zeros(0, np.float32))
            elif field not in skip and r.get(field) is not None:
                sparse[sp["name"]] = sparse_value(r[field])
        recs.append(Record(rid, vectors, sparse, r.get(N_META), r.get(N_DOC), r.get(N_URI)))
    return RecordBatch.from_records(recs, namespace=namespace)


def neutral_schema(provider: str, db: str, collection: str, where: str, info: dict[str, Any],
                   marker: dict[str, Any], partitions: list[str]) -> CollectionSchema:
    """The neutral schema a neutral collection was made from, read back from its marker."""
    fields = {f["name"]: field_json(f) for f in declared(info)}
    vectors = []
    for v in marker["vectors"]:
        f = fields.get(v["field"])
        if f is None or f["type"] not in DENSE_TYPES:
            raise SourceError(f"Milvus collection {collection!r} at {where} has lost "
                              f"the vector field {v['field']!r} its vdedup marker names")
        vectors.append(VectorField(v["name"], int(f["params"]["dim"]), Metric(v["metric"]),
                                   DENSE_TYPES[f["type"]][0]))
    sparse = [SparseField(sp["name"], Metric(sp["metric"]), sp.get("modifier"))
              for sp in marker["sparse"]]
    meta = [MetadataField(m[0], m[1], m[2], m[3]) for m in marker["metadata_fields"]]
    present = [namespace_of(p) for p in partitions]
    declared_ns = [ns for ns in marker["namespaces"] if ns in present]
    namespaces = declared_ns + sorted(ns for ns in present if ns not in declared_ns and ns)
    return CollectionSchema(
        provider=provider, name=collection, id_type=IdType(marker["id_type"]),
        vectors=tuple(vectors), sparse=tuple(sparse), metadata_fields=tuple(meta),
        namespaces=tuple(namespaces) or ("",), has_documents=bool(marker["documents"]),
        has_uris=bool(marker["uris"]), options=dict(marker.get("options") or {}),
        extras={NEUTRAL_LAYOUT: marker, "database": db})


def create_neutral(client: Any, schema: CollectionSchema, name: str,
                   marker: dict[str, Any]) -> None:
    """Create the neutral collection a marker (neutral_plan) describes, with its partitions
    and indexes, and load it."""
    from pymilvus import DataType, MilvusClient

    partitions = [partition_name(ns) for ns in schema.namespaces]
    text = json.dumps(marker, separators=(",", ":"))
    ms = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                    description=text)
    if marker["id_type"] == IdType.INT.value:
        ms.add_field(N_ID, DataType.INT64, is_primary=True, auto_id=False)
    else:
        ms.add_field(N_ID, DataType.VARCHAR, is_primary=True, auto_id=False,
                     max_length=MAX_VARCHAR)
    for v in marker["vectors"]:
        ms.add_field(v["field"], DataType[v["type"]], dim=int(v["dim"]))
    for sp in marker["sparse"]:
        ms.add_field(sp["field"], DataType.SPARSE_FLOAT_VECTOR)
    ms.add_field(N_META, DataType.JSON, nullable=True)
    if marker["documents"]:
        ms.add_field(N_DOC, DataType.VARCHAR, max_length=MAX_VARCHAR, nullable=True)
    if marker["uris"]:
        ms.add_field(N_URI, DataType.VARCHAR, max_length=MAX_VARCHAR, nullable=True)
    ms.add_field(N_STATE, DataType.JSON, nullable=True)
    client.create_collection(name, schema=ms, properties={MARKER_PROPERTY: text})
    for p in sorted(set(partitions) - {DEFAULT_PARTITION}):
        client.create_partition(name, p)
    if marker["vectors"] or marker["sparse"]:
        params = client.prepare_index_params()
        for v in marker["vectors"]:
            params.add_index(v["field"], index_type="AUTOINDEX",
                             metric_type=milvus_metric(v["type"], Metric(v["metric"])))
        for sp in marker["sparse"]:
            params.add_index(sp["field"], index_type="SPARSE_INVERTED_INDEX",
                             metric_type="IP")
        client.create_index(name, params)
        client.load_collection(name)
