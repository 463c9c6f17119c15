"""Chroma collection settings <-> the neutral schema (connector layer): the distance space and
the metric, the index configuration (HNSW or SPANN) a new collection takes over, and what a
Chroma collection can hold (one unnamed dense vector). See connector.py for the why.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UsageError
from ...model import CollectionSchema, IdType, Metric, VectorField
from ..common import json_safe

SPACE_TO_METRIC = {"l2": Metric.EUCLIDEAN, "cosine": Metric.COSINE, "ip": Metric.DOT}
METRIC_TO_SPACE = {metric: space for space, metric in SPACE_TO_METRIC.items()}
DEFAULT_SPACE = "l2"   # Chroma's documented default; recorded as such, never assumed silently

# Index parameters a new collection may take over from a Chroma source.
HNSW_PARAMS = ("ef_construction", "ef_search", "max_neighbors", "resize_factor", "sync_threshold")
SPANN_PARAMS = ("search_nprobe", "write_nprobe", "ef_construction", "ef_search", "max_neighbors",
                "reassign_neighbor_count", "split_threshold", "merge_threshold")

def configuration_of(col: Any) -> dict[str, Any]:
    conf = getattr(col, "configuration_json", None)
    if conf is None:
        conf = getattr(col, "configuration", None)
    return dict(conf or {})


def chroma_json(value: Any) -> Any:
    """A JSON-serialisable copy; SDK objects (embedding functions) become their type name."""
    return json_safe(value, _scalar_or_type_name)


def _scalar_or_type_name(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def space_of(configuration: dict[str, Any], metadata: dict[str, Any] | None) -> tuple[str, str]:
    """The distance space and where it was found: configuration first, then legacy metadata."""
    for kind in ("hnsw", "spann"):
        space = (configuration.get(kind) or {}).get("space")
        if space:
            return str(space), f"configuration.{kind}.space"
    if metadata and metadata.get("hnsw:space"):
        return str(metadata["hnsw:space"]), "metadata.hnsw:space"
    return DEFAULT_SPACE, "default"


def single_vector(schema: CollectionSchema) -> VectorField:
    if schema.sparse:
        names = ", ".join(repr(s.name) for s in schema.sparse)
        raise UsageError(f"Chroma cannot store sparse vectors ({names})")
    if len(schema.vectors) != 1:
        names = ", ".join(repr(v.name) for v in schema.vectors) or "none"
        raise UsageError(
            f"a Chroma collection holds exactly one dense vector (schema has: {names})")
    vector = schema.vectors[0]
    if vector.multivector:
        raise UsageError(f"Chroma cannot store multivectors (vector {vector.name!r})")
    if vector.name != "":
        raise UsageError(f"Chroma's vector is unnamed: map vector {vector.name!r} to '' first")
    return vector


def configuration_for(schema: CollectionSchema, vector: VectorField) -> dict[str, Any]:
    space = METRIC_TO_SPACE.get(vector.metric)
    if space is None:
        raise UsageError(f"metric {vector.metric.value!r} cannot be represented in Chroma "
                         "(it supports cosine, euclidean (l2) and dot (ip))")
    original = schema.extras.get("configuration") if schema.provider == "chroma" else None
    original = original if isinstance(original, dict) else {}
    hnsw = original.get("hnsw") or {}
    spann = original.get("spann") or {}
    if spann and not hnsw:
        params = {k: spann[k] for k in SPANN_PARAMS if spann.get(k) is not None}
        return {"spann": {"space": space, **params}}
    params = {k: hnsw[k] for k in HNSW_PARAMS if hnsw.get(k) is not None}
    return {"hnsw": {"space": space, **params}}


def schema_of(provider: str, collection: str, configuration: dict[str, Any],
              metadata: dict[str, Any] | None, dim: int | None,
              index_schema: Any) -> CollectionSchema:
    """The schema of a collection from its configuration, metadata and (from its first record,
    if any) dimension; the configuration is kept verbatim for a restore into Chroma."""
    space, source = space_of(configuration, metadata)
    hnsw = configuration.get("hnsw") or {}
    spann = configuration.get("spann") or {}
    if hnsw:
        index = {"type": "hnsw", **hnsw}
    elif spann:
        index = {"type": "spann", **spann}
    else:
        index = {}
    vector = VectorField(name="", dim=dim, metric=SPACE_TO_METRIC.get(space, Metric.UNKNOWN),
                         dtype="float32", index=index)
    return CollectionSchema(
        provider=provider, name=collection, id_type=IdType.STRING, vectors=(vector,),
        namespaces=("",), has_documents=True, has_uris=True,
        options={"metadata": metadata},
        extras={"configuration": configuration, "space": space, "space_source": source,
                "index_schema": index_schema},
    )
