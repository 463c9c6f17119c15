"""Pinecone indexes as the model's schemas, and the index a schema needs (connector layer;
imports no SDK).

Only indexes whose schema is the classic vector one (fields `_values` and/or `_sparse_values`)
are served by the vectors API; document indexes with named fields are refused. The dense
vector is recorded as `""`, the sparse one also as `""` (in `sparse`). A pod-based index is
refused rather than half backed up: Pinecone's list API is serverless-only.
"""
from __future__ import annotations

from typing import Any

from ...errors import SourceError, UsageError
from ...model import CollectionSchema, Metric
from ..common import json_safe as common_json_safe

API_VERSION = "2026-07"


DENSE_FIELD = "_values"


SPARSE_FIELD = "_sparse_values"


DEFAULT_NAMESPACE_ALIAS = "__default__"


METRIC_FROM = {"cosine": Metric.COSINE, "euclidean": Metric.EUCLIDEAN, "dotproduct": Metric.DOT}


METRIC_TO = {m: name for name, m in METRIC_FROM.items()}


DEFAULT_DEPLOYMENT = {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}


def index_info(model: Any) -> dict[str, Any]:
    return json_safe(model.to_dict())


def refuse_pod(collection: str, info: dict[str, Any]) -> None:
    if (info.get("deployment") or {}).get("deployment_type") == "pod":
        raise SourceError(f"pod-based index {collection} cannot be listed; Pinecone's list API is "
                          "serverless-only (back it up after moving it to a serverless index)")


def vector_index_only(collection: str, fields: dict[str, Any]) -> None:
    other = sorted(set(fields) - {DENSE_FIELD, SPARSE_FIELD})
    if other or not fields:
        raise SourceError(f"Pinecone index {collection!r} is a document index (schema fields "
                          f"{', '.join(other) or 'none'}); only vector indexes are supported")


def spec_of(info: dict[str, Any]) -> dict[str, Any] | None:
    spec = info.get("spec")
    if isinstance(spec, dict):
        spec = {k: v for k, v in spec.items() if v is not None}
        for inner in spec.values():
            if isinstance(inner, dict):
                inner.pop("schema", None)
                inner.pop("read_capacity", None)
    return spec or None


def ns_name(name: str) -> str:
    return "" if name == DEFAULT_NAMESPACE_ALIAS else name


def json_safe(value: Any) -> Any:
    """A JSON-serialisable copy; SDK models become their to_dict(), anything else its str()."""
    return common_json_safe(value, lambda v: v.to_dict() if hasattr(v, "to_dict") else str(v))


def fields_for(schema: CollectionSchema) -> dict[str, Any]:
    """The 2026-07 schema fields of a vector index that holds what `schema` describes."""
    if len(schema.vectors) > 1 or len(schema.sparse) > 1:
        raise UsageError("a Pinecone index holds at most one dense and one sparse vector "
                         f"(schema has {len(schema.vectors)} dense, {len(schema.sparse)} sparse)")
    fields: dict[str, Any] = {}
    if schema.vectors:
        v = schema.vectors[0]
        if v.multivector:
            raise UsageError(f"Pinecone cannot store multivectors (vector {v.name!r})")
        if v.dtype != "float32":
            raise UsageError(f"Pinecone stores float32 vectors, not {v.dtype} (vector {v.name!r})")
        if v.dim is None:
            raise UsageError(f"the dimension of vector {v.name!r} is unknown: Pinecone needs one")
        metric = METRIC_TO.get(v.metric)
        if metric is None:
            raise UsageError(f"metric {v.metric.value!r} cannot be represented in Pinecone "
                             "(it supports cosine, euclidean and dotproduct)")
        if schema.sparse and metric != "dotproduct":
            raise UsageError("Pinecone keeps sparse values beside dense ones only in a dotproduct "
                             f"index (the dense metric is {v.metric.value})")
        fields[DENSE_FIELD] = {"type": "dense_vector", "dimension": int(v.dim), "metric": metric}
    if schema.sparse:
        fields[SPARSE_FIELD] = {"type": "sparse_vector"}
    if not fields:
        raise UsageError("a Pinecone index needs a dense or a sparse vector; the schema has neither")
    return fields


def deployment_for(original: dict[str, Any] | None) -> dict[str, Any]:
    if original and original.get("deployment_type") == "managed" \
            and original.get("cloud") and original.get("region"):
        return {"deployment_type": "managed", "cloud": original["cloud"],
                "region": original["region"]}
    return dict(DEFAULT_DEPLOYMENT)
