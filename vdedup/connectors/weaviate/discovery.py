"""Dimensions for discovery, which a Weaviate schema does not hold (connector layer).

A class defined outside vdedup names its vectors and their distance, never their length: the
length is learnt from one stored object (one `GET /v1/objects?limit=1&include=vector`, in the
first tenant that has one, a few tenants at most). A class vdedup created records them in its
marker (layout.py) and needs no read.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ...errors import VdedupError
from ...model import DiscoveredIndex
from .layout import Layout
from .schema import vector_fields

TENANTS_TRIED = 3

# (class definition, tenant or "") -> one object with its vectors, or None when there is none
FetchOne = Callable[[dict[str, Any], str], "dict[str, Any] | None"]


def one_object(rest: Callable[..., Any]) -> FetchOne:
    """FetchOne over the connector's REST call (`rest(action, collection, method, path, ...)`)."""
    def fetch(cls: dict[str, Any], tenant: str) -> dict[str, Any] | None:
        if Layout.of(cls) is not None:
            return None                   # vdedup's own classes: the dims are in the marker
        params: dict[str, Any] = {"class": cls["class"], "limit": 1, "include": "vector"}
        if tenant:
            params["tenant"] = tenant
        objects = (rest("read one object of", cls["class"], "GET", "/objects", params=params) or {}).get("objects")
        return objects[0] if objects else None
    return fetch


def vector_length(value: Any) -> int | None:
    """The length of a vector as REST returns it; of each token's vector for a multivector."""
    if isinstance(value, list) and value:
        return len(value[0]) if isinstance(value[0], list) else len(value)
    return None


def with_dims(d: DiscoveredIndex, cls: dict[str, Any], fetch_one: FetchOne) -> DiscoveredIndex:
    """`d` with `dims` read from one object, when the schema leaves them unknown."""
    fields = vector_fields(cls)
    if d.dims is not None or d.problem is not None or not d.count or not fields:
        return d
    first = fields[0].name                   # the one DiscoveredIndex.of reports
    for tenant in list(d.namespaces)[:TENANTS_TRIED] or [""]:
        try:
            obj = fetch_one(cls, tenant)
        except VdedupError:                  # e.g. an inactive tenant: dims stay unknown
            continue
        if obj is None:
            continue
        value = obj.get("vector") if first == "" else (obj.get("vectors") or {}).get(first)
        dims = vector_length(value)
        return dataclasses.replace(d, dims=dims) if dims else d
    return d
