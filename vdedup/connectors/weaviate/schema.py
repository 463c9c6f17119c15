"""Weaviate classes as the model's schemas, and the class a schema needs (connector layer;
imports no SDK).

The schema says nothing of vector dimensions: `dim` stays None and the engine fills it in from
the data. The class schema is kept verbatim in `extras["class"]` (vectorizer modules,
cross-references, index settings) and used as is for a restore into Weaviate; a schema from
another provider becomes a class in the neutral layout (layout.py).
"""
from __future__ import annotations

import copy
from typing import Any

from ...model import CollectionSchema, Metric, VectorField
from .layout import Layout, neutral_class

DISTANCE_TO_METRIC = {"cosine": Metric.COSINE, "dot": Metric.DOT, "l2-squared": Metric.EUCLIDEAN,
                      "manhattan": Metric.MANHATTAN, "hamming": Metric.HAMMING}


METRIC_TO_DISTANCE = {m: d for d, m in DISTANCE_TO_METRIC.items()}


TYPE_NAMES = {"text": "str", "string": "str", "uuid": "str", "date": "str", "blob": "str",
              "int": "int", "number": "float", "boolean": "bool", "object": "dict",
              "geoCoordinates": "dict", "phoneNumber": "dict"}


PRIMITIVE_TYPES = set(TYPE_NAMES) | {t + "[]" for t in TYPE_NAMES}


SERVER_COMPUTED = ("actualCount", "actualVirtualCount")


def multi_tenant(cls: dict[str, Any]) -> bool:
    return bool((cls.get("multiTenancyConfig") or {}).get("enabled"))


def vector_fields(cls: dict[str, Any]) -> tuple[VectorField, ...]:
    configs: dict[str, dict[str, Any]] = {}
    if cls.get("vectorConfig"):
        configs.update(cls["vectorConfig"])
    # The legacy unnamed vector exists when the class has a top-level vectorIndexConfig (a
    # named-vector class may still carry a top-level "vectorizer": "none").
    if "vectorIndexConfig" in cls:
        configs[""] = {"vectorizer": cls.get("vectorizer"),
                       "vectorIndexType": cls.get("vectorIndexType"),
                       "vectorIndexConfig": cls.get("vectorIndexConfig") or {}}
    out = []
    for name in sorted(configs):
        conf = configs[name]
        index_conf = conf.get("vectorIndexConfig") or {}
        distance = index_conf.get("distance")
        multi = bool((index_conf.get("multivector") or {}).get("enabled"))
        out.append(VectorField(
            name=name, dim=None, metric=DISTANCE_TO_METRIC.get(distance, Metric.UNKNOWN),
            dtype="float32", multivector=multi,
            index={"type": conf.get("vectorIndexType"), "distance": distance,
                   "vectorizer": conf.get("vectorizer")}))
    return tuple(out)


def property_types(cls: dict[str, Any]) -> dict[str, Any]:
    """name -> dataType (or, for objects, (dataType, nested types)) for value fixing."""
    def walk(props: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in props:
            base = p["dataType"][0]
            out[p["name"]] = (base, walk(p["nestedProperties"])) if p.get("nestedProperties") else base
        return out
    return walk(cls.get("properties") or [])


def class_for(schema: CollectionSchema, name: str) -> tuple[dict[str, Any], list[str]]:
    """The class definition to create, and the tenants to create in it."""
    original = schema.extras.get("class") if schema.provider == "weaviate" else None
    if isinstance(original, dict):
        body = copy.deepcopy(original)
        body["class"] = name
        for computed in SERVER_COMPUTED:      # the server works these out itself
            (body.get("shardingConfig") or {}).pop(computed, None)
        tenants = [t["name"] for t in schema.extras.get("tenants") or []]
        if not tenants and multi_tenant(body):
            layout = Layout.of(body)
            mapping = layout.tenants if layout is not None else {}
            tenants = [mapping.get(n, n) for n in schema.namespaces]
        return body, [t for t in tenants if t]
    return neutral_class(schema, name, METRIC_TO_DISTANCE)
