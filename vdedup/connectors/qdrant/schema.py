"""Qdrant collection configurations as the model's schemas, and the CreateCollection body a
schema needs (connector layer; the SDK is imported only where a model is built).

The collection's configuration, payload indexes and aliases go verbatim into `schema.extras`
(pydantic `model_dump(mode="json")`); `create_body` turns them back into a CreateCollection
request, which the connector validates through the SDK's own model, so a restore into Qdrant
recreates them. Local mode ignores payload indexes, HNSW parameters and shard settings.
"""
from __future__ import annotations

from typing import Any

from ...errors import UsageError
from ...model import CollectionSchema, Metric, VectorField
from ..common import json_safe

DISTANCE_TO_METRIC = {"Cosine": Metric.COSINE, "Euclid": Metric.EUCLIDEAN, "Dot": Metric.DOT,
                      "Manhattan": Metric.MANHATTAN}


METRIC_TO_DISTANCE = {metric: name for name, metric in DISTANCE_TO_METRIC.items()}


DATATYPE_TO_DTYPE = {None: "float32", "float32": "float32", "float16": "float16", "uint8": "uint8"}


PAYLOAD_INDEX_TYPES = {"keyword": "str", "integer": "int", "float": "float", "bool": "bool",
                       "geo": "dict", "text": "str", "datetime": "datetime", "uuid": "str"}


def is_vector_params(value: Any) -> bool:
    return isinstance(value, dict) and "size" in value and "distance" in value


def vector_field(name: str, p: dict[str, Any]) -> VectorField:
    datatype = p.get("datatype")
    dtype = DATATYPE_TO_DTYPE.get(datatype)
    return VectorField(
        name=name, dim=p.get("size"),
        metric=DISTANCE_TO_METRIC.get(p.get("distance"), Metric.UNKNOWN),
        dtype=dtype or "float32",   # an unknown datatype is kept verbatim in index["datatype"]
        multivector=p.get("multivector_config") is not None,
        index={k: json_safe(p.get(k)) for k in
               ("datatype", "on_disk", "hnsw_config", "quantization_config", "multivector_config")},
    )


def create_body(schema: CollectionSchema) -> dict[str, Any]:
    """A CreateCollection request body: vectors from the neutral fields, the rest from extras."""
    own = schema.provider == "qdrant"
    config = (schema.extras.get("config") or {}) if own else {}
    params = config.get("params") or {}
    raw_vectors = params.get("vectors")
    raw_named = {"": raw_vectors} if is_vector_params(raw_vectors) else dict(raw_vectors or {})
    vectors: dict[str, Any] = {}
    for v in schema.vectors:
        distance = METRIC_TO_DISTANCE.get(v.metric)
        if distance is None:
            raise UsageError(f"metric {v.metric.value!r} of vector {v.name!r} cannot be represented "
                             "in Qdrant (Cosine, Euclid, Dot, Manhattan)")
        if v.dim is None:
            raise UsageError(f"the dimension of vector {v.name!r} is unknown: Qdrant needs one")
        original = dict(raw_named.get(v.name) or {}) if own else {}
        datatype = original.get("datatype") if own else None
        if not own:
            if v.dtype not in ("float32", "float16", "uint8"):
                raise UsageError(f"Qdrant cannot store {v.dtype} vectors exactly (vector {v.name!r})")
            datatype = None if v.dtype == "float32" else v.dtype
        p = {k: val for k, val in original.items() if val is not None}
        p.update(size=v.dim, distance=distance)
        if datatype is not None:
            p["datatype"] = datatype
        if v.multivector and p.get("multivector_config") is None:
            p["multivector_config"] = {"comparator": "max_sim"}
        vectors[v.name] = p
    if set(vectors) == {""}:
        body_vectors: Any = vectors[""]
    elif "" in vectors:
        raise UsageError("a Qdrant collection cannot mix the unnamed vector with named ones")
    else:
        body_vectors = vectors
    raw_sparse = params.get("sparse_vectors") or {}
    sparse: dict[str, Any] = {}
    for s in schema.sparse:
        if s.metric != Metric.DOT:
            raise UsageError(f"Qdrant sparse vectors use dot product, not {s.metric.value} "
                             f"(sparse vector {s.name!r})")
        p = {k: val for k, val in (raw_sparse.get(s.name) or {}).items() if val is not None}
        if s.modifier is not None:
            p["modifier"] = s.modifier
        sparse[s.name] = p
    body: dict[str, Any] = {"vectors": body_vectors}
    if sparse:
        body["sparse_vectors"] = sparse
    for key in ("shard_number", "sharding_method", "replication_factor",
                "write_consistency_factor", "on_disk_payload"):
        if params.get(key) is not None:
            body[key] = params[key]
    for src, dst in (("hnsw_config", "hnsw_config"), ("optimizer_config", "optimizers_config"),
                     ("wal_config", "wal_config"), ("quantization_config", "quantization_config"),
                     ("strict_mode_config", "strict_mode_config")):
        value = config.get(src)
        if isinstance(value, dict):
            value = {k: val for k, val in value.items() if val is not None}
        if value:
            body[dst] = value
    metadata = schema.options.get("metadata")
    if own and metadata:
        body["metadata"] = metadata
    return body


def payload_index(spec: Any) -> Any:
    from qdrant_client import models
    from pydantic import TypeAdapter

    if isinstance(spec, str):
        return models.PayloadSchemaType(spec)
    return TypeAdapter(models.PayloadSchemaParams).validate_python(spec)
