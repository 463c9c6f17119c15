"""Comparison helpers for the foreign-schema connector tests: records and neutral schemas
with every value's type (and dict key order) visible, so 1 != 1.0 and -0.0 != 0.0."""
from __future__ import annotations

from typing import Any

from vdedup.model import CollectionSchema, Record


def typed(v: Any) -> Any:
    """A value with its types and dict key order visible all the way down."""
    if isinstance(v, dict):
        return ("dict", [(k, typed(x)) for k, x in v.items()])
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [typed(x) for x in v])
    if isinstance(v, float):
        return ("float", v.hex())          # -0.0 != 0.0, bit for bit
    return (type(v).__name__, v)


def record_key(r: Record) -> tuple:
    return (
        typed(r.id),
        sorted((n, str(a.dtype), a.shape, a.tobytes()) for n, a in r.vectors.items()),
        sorted((n, s.indices.tobytes(), s.values.tobytes()) for n, s in r.sparse.items()),
        typed(r.metadata), typed(r.document), typed(r.uri),
    )


def assert_same_records(got: list[Record], want: list[Record]) -> None:
    g = {typed(r.id): record_key(r) for r in got}
    w = {typed(r.id): record_key(r) for r in want}
    assert len(g) == len(got) and len(w) == len(want), "duplicate ids"
    assert sorted(g) == sorted(w), "ids (or their types) differ"
    for k in w:
        assert g[k] == w[k], f"record {k} differs"


def neutral(schema: CollectionSchema) -> tuple:
    return (schema.id_type,
            [(v.name, v.dim, v.metric, v.dtype, v.multivector) for v in schema.vectors],
            [(s.name, s.metric, s.modifier) for s in schema.sparse],
            list(schema.metadata_fields), schema.namespaces, schema.has_documents,
            schema.has_uris)
