"""Milvus schemas: its field types, what describe_collection says, and native collections
(connector layer; the SDK is imported only inside the functions that create collections).

A native collection (one Milvus made itself, not a neutral one: layout.py) maps onto the model
like this: the primary key (INT64 -> int, VARCHAR -> str) is the id; every dense vector field
is a named vector; SPARSE_FLOAT_VECTOR fields are sparse vectors; every scalar, JSON and ARRAY
field is a metadata key. The metric lives on the index, not the field: a vector field without
an index has Metric.UNKNOWN. Everything Milvus says of the collection (fields verbatim,
functions, indexes with their parameters, partitions, aliases, consistency level, shards,
properties) is kept in `extras`, so a restore recreates it (auto_id always off, so original
primary keys are kept; `extras["auto_id"]` says the source generated them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...model import (CollectionSchema, IdType, MetadataField, Metric, SparseField,
                      VectorField)
from ..common import json_safe as _common_json_safe

DEFAULT_PARTITION = "_default"
METRICS = {"L2": Metric.EUCLIDEAN, "IP": Metric.DOT, "COSINE": Metric.COSINE,
           "HAMMING": Metric.HAMMING, "JACCARD": Metric.JACCARD}
# Vector field type -> (neutral dtype, numpy dtype of one stored element)
DENSE_TYPES = {"FLOAT_VECTOR": ("float32", np.float32), "FLOAT16_VECTOR": ("float16", np.float16),
               "BFLOAT16_VECTOR": ("bfloat16", np.uint16), "INT8_VECTOR": ("int8", np.int8),
               "BINARY_VECTOR": ("binary", np.uint8)}
SPARSE_TYPE = "SPARSE_FLOAT_VECTOR"
PK_TYPES = {"INT64": IdType.INT, "VARCHAR": IdType.STRING}
SCALAR_KINDS = {"BOOL": "bool", "INT8": "int", "INT16": "int", "INT32": "int", "INT64": "int",
                "FLOAT": "float", "DOUBLE": "float", "VARCHAR": "str", "STRING": "str",
                "TEXT": "str", "GEOMETRY": "str", "JSON": "json", "ARRAY": "list",
                "TIMESTAMPTZ": "datetime"}
# describe_index keys that describe progress, not the index
INDEX_BOOKKEEPING = {"field_name", "index_name", "total_rows", "indexed_rows",
                     "pending_index_rows", "state", "index_type", "metric_type", "params"}


@dataclass(frozen=True)
class Field:
    """What write/scan need to know of one Milvus field."""
    name: str
    type: str
    dim: int | None
    nullable: bool
    primary: bool
    function_output: bool


def declared(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The collection's fields without the hidden dynamic field ($meta), which
    enable_dynamic_field recreates and whose keys are read and written as metadata keys."""
    return [f for f in info.get("fields", []) if not f.get("is_dynamic")]


def fields_of(info: dict[str, Any]) -> list[Field]:
    """The fields of a describe_collection answer, as write/scan use them."""
    out = []
    for raw in declared(info):
        f = field_json(raw)
        dim = f["params"].get("dim")
        out.append(Field(f["name"], f["type"], int(dim) if dim is not None else None,
                         bool(f.get("nullable")), bool(f.get("is_primary")),
                         bool(f.get("is_function_output"))))
    return out


def json_safe(value: Any) -> Any:
    """A JSON-safe copy of what pymilvus reports (protobuf repeated fields become lists)."""
    return _common_json_safe(value, _sequence_or_str)


def _sequence_or_str(value: Any) -> Any:
    if hasattr(value, "__len__") and hasattr(value, "__getitem__"):   # protobuf repeated fields
        return list(value)
    return str(value)


def default_value(dv: Any) -> Any:
    """A protobuf ValueField as {"kind": oneof name, "value": JSON-safe value}, or None."""
    if dv is None:
        return None
    if isinstance(dv, dict):
        return dv
    which = dv.WhichOneof("data") if hasattr(dv, "WhichOneof") else None
    if which is None:
        return None
    return {"kind": which, "value": json_safe(getattr(dv, which))}


def field_json(f: dict[str, Any]) -> dict[str, Any]:
    """One describe_collection field, JSON-safe, with type names instead of numbers."""
    from pymilvus import DataType

    out: dict[str, Any] = {}
    for k, v in f.items():
        if k in ("field_id",):
            continue
        if k in ("type", "element_type"):
            out[k] = DataType(int(v)).name
        elif k == "default_value":
            dv = default_value(v)
            if dv is not None:
                out[k] = dv
        else:
            out[k] = json_safe(v)
    out.setdefault("params", {})
    return out


def function_json(fn: dict[str, Any]) -> dict[str, Any]:
    out = {k: json_safe(v) for k, v in fn.items()
           if k not in ("id", "input_field_ids", "output_field_ids")}
    t = fn.get("type")
    out["type"] = getattr(t, "name", str(t))
    return out


def index_info(desc: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """index_type, metric_type and params of one index, whatever shape the server answers."""
    desc = dict(desc or {})
    params = desc.get("params")
    params = dict(params) if isinstance(params, dict) else {}
    for k, v in desc.items():
        if k not in INDEX_BOOKKEEPING:
            params[k] = v            # Milvus 2.4+ flattens index params into the answer
    return {"index_name": desc.get("index_name") or name,
            "field_name": desc.get("field_name") or "",
            "index_type": desc.get("index_type") or "",
            "metric_type": desc.get("metric_type") or "",
            "params": json_safe(params)}


def all_aliases(client: Any) -> list[str]:
    try:
        return list(client.list_aliases().get("aliases") or [])
    except Exception:
        return []


def native_schema(provider: str, db: str, collection: str, info: dict[str, Any],
                  indexes: list[dict[str, Any]], aliases: list[str], load_state: str,
                  partitions: list[str]) -> CollectionSchema:
    """The model's schema of a native collection, with everything Milvus says in extras."""
    fields = [field_json(f) for f in declared(info)]
    by_field = {ix["field_name"]: ix for ix in indexes if ix.get("field_name")}
    vectors, sparse, meta = [], [], []
    id_type = IdType.UNKNOWN
    for f in fields:
        t = f["type"]
        ix = by_field.get(f["name"])
        index = {k: ix[k] for k in ("index_type", "metric_type", "params")} if ix else {}
        metric = METRICS.get(str(ix.get("metric_type", "")).upper(), Metric.UNKNOWN) if ix \
            else Metric.UNKNOWN
        if f.get("is_primary"):
            id_type = PK_TYPES.get(t, IdType.UNKNOWN)
        elif f.get("is_function_output"):
            continue        # computed by a function (e.g. BM25): in extras, never in records
        elif t in DENSE_TYPES:
            dim = f["params"].get("dim")
            vectors.append(VectorField(name=f["name"], dim=None if dim is None else int(dim),
                                       metric=metric, dtype=DENSE_TYPES[t][0], index=index))
        elif t == SPARSE_TYPE:
            sparse.append(SparseField(name=f["name"], metric=metric, index=index))
        else:
            meta.append(MetadataField(name=f["name"], type=SCALAR_KINDS.get(t, "unknown"),
                                      indexed=ix is not None, nullable=bool(f.get("nullable"))))
    partition_key = any(f.get("is_partition_key") for f in fields)
    extras = {
        "database": db,
        "fields": fields,
        "auto_id": bool(info.get("auto_id")),
        "enable_dynamic_field": bool(info.get("enable_dynamic_field")),
        "description": info.get("description") or "",
        "consistency_level": info.get("consistency_level_name")
        or str(info.get("consistency_level", "")),
        "num_shards": info.get("num_shards"),
        "num_partitions": info.get("num_partitions"),
        "partition_key": partition_key,
        "partitions": partitions,
        "properties": json_safe(info.get("properties") or {}),
        "functions": [function_json(fn) for fn in info.get("functions") or []],
        "indexes": indexes,
        "aliases": aliases,
        "load_state": load_state,
    }
    return CollectionSchema(
        provider=provider, name=collection, id_type=id_type, vectors=tuple(vectors),
        sparse=tuple(sparse), metadata_fields=tuple(meta),
        namespaces=("",) if partition_key else tuple(partitions),
        options={}, extras=extras)


def field_kwargs(f: dict[str, Any], DataType: Any) -> dict[str, Any]:
    """add_field keyword arguments that recreate a field as described (auto_id always off)."""
    kw: dict[str, Any] = dict(f.get("params") or {})
    kw["description"] = f.get("description") or ""
    for key in ("is_primary", "is_partition_key", "is_clustering_key", "nullable"):
        if f.get(key):
            kw[key] = True
    if f.get("is_primary"):
        kw["auto_id"] = False
    if f.get("element_type"):
        kw["element_type"] = DataType[f["element_type"]]
    dv = f.get("default_value")
    if isinstance(dv, dict) and "value" in dv:
        value = dv["value"]
        kw["default_value"] = value
    return kw


def create_native(client: Any, schema: CollectionSchema, name: str) -> None:
    """Create a collection as a Milvus schema describes it: fields, functions, partitions,
    indexes and aliases (an alias already on another collection is left where it is)."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    ex = schema.extras
    ms = MilvusClient.create_schema(
        auto_id=False, enable_dynamic_field=bool(ex.get("enable_dynamic_field")),
        description=ex.get("description") or "")
    for f in ex["fields"]:
        ms.add_field(f["name"], DataType[f["type"]], **field_kwargs(f, DataType))
    for fn in ex.get("functions") or []:
        ms.add_function(Function(fn["name"], FunctionType[fn["type"]],
                                 input_field_names=fn["input_field_names"],
                                 output_field_names=fn["output_field_names"],
                                 description=fn.get("description") or "",
                                 params=fn.get("params") or None))
    kwargs: dict[str, Any] = {}
    if ex.get("consistency_level"):
        kwargs["consistency_level"] = ex["consistency_level"]
    if ex.get("num_shards"):
        kwargs["num_shards"] = int(ex["num_shards"])
    if ex.get("partition_key") and ex.get("num_partitions"):
        kwargs["num_partitions"] = int(ex["num_partitions"])
    if ex.get("properties"):
        kwargs["properties"] = ex["properties"]
    client.create_collection(name, schema=ms, **kwargs)
    if not ex.get("partition_key"):
        wanted = set(ex.get("partitions") or []) | set(schema.namespaces)
        for p in sorted(wanted - {"", DEFAULT_PARTITION}):
            client.create_partition(name, p)
    indexes = ex.get("indexes") or []
    if indexes:
        params = client.prepare_index_params()
        for ix in indexes:
            extra = {"metric_type": ix["metric_type"]} if ix.get("metric_type") and \
                ix["metric_type"] != "NONE" else {}
            params.add_index(ix["field_name"], index_type=ix.get("index_type") or "",
                             index_name=ix.get("index_name") or "",
                             params=dict(ix.get("params") or {}), **extra)
        client.create_index(name, params)
    existing = set(all_aliases(client))
    for alias in ex.get("aliases") or []:
        if alias not in existing:      # never move an alias away from another collection
            client.create_alias(name, alias)
    indexed = {ix["field_name"] for ix in indexes}
    vector_fields = {f["name"] for f in ex["fields"]
                     if f["type"] in DENSE_TYPES or f["type"] == SPARSE_TYPE}
    if vector_fields <= indexed:
        client.load_collection(name)
