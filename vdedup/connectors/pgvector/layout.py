"""The neutral layout of a PostgreSQL table (connector layer; depends only on model and errors).

A schema from another provider becomes a "neutral" table: `id` (bigint for integer ids, text
otherwise), one column per vector, `metadata json`, `document`, `uri`, with a JSON table
COMMENT (the marker) that keeps the neutral schema and says which column holds which vector.
This module builds that table (its DDL and marker), recognises it again (the marker is
trusted only while the table still has exactly the marker's columns), gives its schema back,
and holds the rules its rows follow: ids of a mixed id type kept as decimal text, metadata as
JSON text that json.loads turns back into values of the same types (`json`, not `jsonb`, so
the text is kept as written). Reading and writing its rows is the connector's (connector.py).
"""
from __future__ import annotations

import json
import re
from typing import Any

from ...errors import UsageError
from ...model import (CollectionSchema, IdType, MetadataField, Metric, RecordId, SparseField,
                     VectorField)

METRIC_OPS = {Metric.EUCLIDEAN: "l2_ops", Metric.DOT: "ip_ops", Metric.COSINE: "cosine_ops",
              Metric.MANHATTAN: "l1_ops"}    # metric -> opclass suffix for a neutral table's index
NEUTRAL_ID, NEUTRAL_META, NEUTRAL_DOC, NEUTRAL_URI = "id", "metadata", "document", "uri"
NEUTRAL_VECTOR = "embedding"       # column for a provider's unnamed vector ("")
NEUTRAL_SPARSE = "sparse"          # column for a provider's unnamed sparse vector ("")
NEUTRAL_LAYOUT = "neutral"         # the marker's layout name (the table COMMENT, JSON)
MARKER_VERSION = 1
OWN_PROVIDERS = ("pgvector", "postgresql", "postgres")
DTYPE_KIND = {"float32": "vector", "float16": "halfvec", "binary": "bit"}
INDEX_MAX_DIM = {"vector": 2000, "halfvec": 4000, "bit": 64000}   # pgvector's HNSW limits
NAME_BYTES = 63                    # PostgreSQL truncates longer identifiers


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, double-quoted (used by the connector's SQL too)."""
    return '"' + name.replace('"', '""') + '"'


def int_text(text: str) -> bool:
    """Whether `text` is an integer's canonical decimal form (as str(int) prints it)."""
    return bool(re.fullmatch(r"-?[1-9][0-9]*|0", text))


def neutral_id(marker: dict[str, Any], table: str, rid: RecordId) -> str:
    """The text key of a record in a neutral table with a text `id`. A uuid (or unknown) id
    type may mix ints and strings (Qdrant does): ints are kept as their decimal text and read
    back as ints, so a string id in that form would be ambiguous and is refused."""
    if isinstance(rid, bool) or not isinstance(rid, (int, str)):
        raise UsageError(f"a record id for table {table} is neither a string nor an integer")
    mixed = marker["id_type"] in (IdType.UUID.value, IdType.UNKNOWN.value)
    if isinstance(rid, int):
        if not mixed:
            raise UsageError(f"table {table} holds string ids: an integer id cannot be stored "
                             "without losing its type")
        return str(rid)
    if mixed and int_text(rid):
        raise UsageError(f"table {table} keeps integer ids as decimal text: a string id in "
                         "that form would come back as an integer")
    return rid


def neutral_ddl(schema: CollectionSchema, s: str, t: str) -> tuple[list[Any], list[str]]:
    """A table holding everything a schema from another provider declares, marked as such
    by a JSON table COMMENT (see _marker), so describe() and scan() read it back neutrally."""
    from psycopg import sql

    extra_ns = [ns for ns in schema.namespaces if ns]
    if extra_ns:
        raise UsageError(f"PostgreSQL tables have no namespaces (the schema has {extra_ns[0]!r}): "
                         "map each namespace to its own table")
    dense_cols, sparse_cols = _neutral_columns(schema)
    id_sql = "bigint" if schema.id_type == IdType.INT else "text"
    defs = [f"{quote_ident(NEUTRAL_ID)} {id_sql} PRIMARY KEY"]
    indexes = []
    table = f"{quote_ident(s)}.{quote_ident(t)}"
    for v in schema.vectors:
        label = v.name or "(default)"
        if v.multivector:
            raise UsageError(f"pgvector cannot store multivector {label!r}")
        kind = DTYPE_KIND.get(v.dtype)
        if kind is None:
            raise UsageError(f"pgvector has no type for {v.dtype} vectors ({label!r})")
        if kind == "bit" and not v.dim:
            raise UsageError(f"binary vector {label!r} has no known dimension: pgvector's "
                             "bit(n) needs one")
        col = dense_cols[v.name]
        defs.append(f"{quote_ident(col)} {kind}" + (f"({v.dim})" if v.dim else ""))
        if kind == "bit":
            ops = {Metric.HAMMING: "bit_hamming_ops",
                   Metric.JACCARD: "bit_jaccard_ops"}.get(v.metric)
        else:
            ops = f"{kind}_{METRIC_OPS[v.metric]}" if v.metric in METRIC_OPS else None
        # beyond HNSW's dimension limit the table has no index; the metric stays in the marker
        if ops and v.dim and v.dim <= INDEX_MAX_DIM[kind]:
            indexes.append(f"CREATE INDEX ON {table} USING hnsw ({quote_ident(col)} {ops})")
    for sp in schema.sparse:
        dim = _sparse_dim(sp)
        defs.append(f"{quote_ident(sparse_cols[sp.name])} sparsevec" + (f"({dim})" if dim else ""))
    defs.append(f"{quote_ident(NEUTRAL_META)} json")
    if schema.has_documents:
        defs.append(f"{quote_ident(NEUTRAL_DOC)} text")
    if schema.has_uris:
        defs.append(f"{quote_ident(NEUTRAL_URI)} text")
    marker = json.dumps(_marker(schema, dense_cols, sparse_cols), default=str,
                        separators=(",", ":"))
    comment = sql.SQL("COMMENT ON TABLE {} IS {}").format(sql.Identifier(s, t),
                                                         sql.Literal(marker))
    return [f"CREATE TABLE {table} ({', '.join(defs)})", comment], indexes


def _sparse_dim(sp: SparseField) -> int | None:
    dim = sp.index.get("dim") if isinstance(sp.index, dict) else None
    return dim if isinstance(dim, int) and not isinstance(dim, bool) and dim > 0 else None


def _ident(text: str, reserve: int = 0) -> str:
    """`text` cut to what PostgreSQL keeps of an identifier (63 bytes), on a character boundary."""
    raw = text.replace("\x00", "_").encode()
    limit = NAME_BYTES - reserve
    return text.replace("\x00", "_") if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore")


def _neutral_columns(schema: CollectionSchema) -> tuple[dict[str, str], dict[str, str]]:
    """Column names for the dense and sparse vectors of a neutral table: the vector's own name
    when PostgreSQL can keep it and no other column has it, else a derived one (the marker maps
    columns back to vector names). Deterministic, so a neutral table read back and restored
    again gets the same columns."""
    used = {NEUTRAL_ID, NEUTRAL_META, NEUTRAL_DOC, NEUTRAL_URI}

    def pick(name: str, default: str) -> str:
        base = _ident(name) if name else default
        col, k = base, 1
        while col in used:
            k += 1
            col = _ident(base, len(f"_{k}")) + f"_{k}"
        used.add(col)
        return col

    dense = {v.name: pick(v.name, NEUTRAL_VECTOR) for v in schema.vectors}
    sparse = {sp.name: pick(sp.name, NEUTRAL_SPARSE) for sp in schema.sparse}
    return dense, sparse


def _marker(schema: CollectionSchema, dense_cols: dict[str, str],
            sparse_cols: dict[str, str]) -> dict[str, Any]:
    """What a neutral table's COMMENT says: the neutral schema, and which column holds what."""
    marker: dict[str, Any] = {
        "vdedup": MARKER_VERSION, "layout": NEUTRAL_LAYOUT, "id_type": schema.id_type.value,
        "vectors": [{"name": v.name, "column": dense_cols[v.name], "dim": v.dim,
                     "metric": v.metric.value, "dtype": v.dtype} for v in schema.vectors],
        "sparse": [{"name": sp.name, "column": sparse_cols[sp.name], "dim": _sparse_dim(sp),
                    "metric": sp.metric.value, "modifier": sp.modifier} for sp in schema.sparse],
        "metadata_fields": [{"name": f.name, "type": f.type, "indexed": f.indexed,
                             "nullable": f.nullable} for f in schema.metadata_fields],
        "documents": schema.has_documents, "uris": schema.has_uris,
    }
    if schema.options:
        marker["options"] = schema.options
    origin = schema.extras.get("translated_from")
    if origin is None and isinstance(schema.extras.get(NEUTRAL_LAYOUT), dict):
        origin = schema.extras[NEUTRAL_LAYOUT].get("translated_from")
    if origin is None and schema.provider not in OWN_PROVIDERS:
        origin = {"provider": schema.provider, "collection": schema.name}
    if origin is not None:
        marker["translated_from"] = origin
    return marker


def is_marker(m: Any) -> bool:
    return isinstance(m, dict) and m.get("vdedup") == MARKER_VERSION \
        and m.get("layout") == NEUTRAL_LAYOUT


def read_marker(comment: str | None, layout: dict[str, Any]) -> dict[str, Any] | None:
    """The table's neutral marker when the table still has exactly the marker's layout; None
    (read as a plain table, every column as it is) when there is none or the table changed."""
    if not comment or not comment.lstrip().startswith("{"):
        return None
    try:
        m = json.loads(comment)
    except ValueError:
        return None
    if not is_marker(m):
        return None
    by = layout["by_name"]
    try:
        want = {NEUTRAL_ID: "int8" if m["id_type"] == IdType.INT.value else "text",
                NEUTRAL_META: "json"}
        IdType(m["id_type"])
        for v in m["vectors"]:
            VectorField(v["name"], v["dim"], Metric(v["metric"]), v["dtype"])
            want[v["column"]] = DTYPE_KIND[v["dtype"]]
        for sp in m["sparse"]:
            SparseField(sp["name"], Metric(sp["metric"]), sp["modifier"])
            want[sp["column"]] = "sparsevec"
        for f in m["metadata_fields"]:
            MetadataField(**f)
        if m["documents"]:
            want[NEUTRAL_DOC] = "text"
        if m["uris"]:
            want[NEUTRAL_URI] = "text"
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if layout["pk"] != [NEUTRAL_ID] or set(by) != set(want) or len(want) != (
            2 + len(m["vectors"]) + len(m["sparse"]) + bool(m["documents"]) + bool(m["uris"])):
        return None
    if any(by[c]["typname"] != typ or by[c]["generated"] for c, typ in want.items()):
        return None
    return m


def _column_index(layout: dict[str, Any], col: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {"column": col["name"], "type": col["type"]}
    idx = [i for i in layout["indexes"] if i["vector_column"] == col["name"]]
    if idx:
        info.update({"kind": idx[0]["am"], "opclass": idx[0]["opclasses"][0], **idx[0]["options"]})
    return info


def neutral_schema(collection: str, layout: dict[str, Any], provider: str) -> CollectionSchema:
    """The schema a neutral table was created from (the marker is authoritative for metrics:
    an index may be missing, e.g. not built yet or beyond HNSW's dimension limit)."""
    m = layout["neutral"]
    by = layout["by_name"]
    vectors = [VectorField(v["name"], v["dim"], Metric(v["metric"]), v["dtype"],
                           index=_column_index(layout, by[v["column"]])) for v in m["vectors"]]
    sparse = [SparseField(sp["name"], Metric(sp["metric"]), sp["modifier"],
                          index={**_column_index(layout, by[sp["column"]]), "dim": sp["dim"]})
              for sp in m["sparse"]]
    fields = [MetadataField(**f) for f in m["metadata_fields"]]
    extras = {NEUTRAL_LAYOUT: m, "schema": layout["schema"], "table": layout["table"],
              "extension_version": layout["extension_version"]}
    return CollectionSchema(provider=provider, name=collection, id_type=IdType(m["id_type"]),
                            vectors=tuple(vectors), sparse=tuple(sparse),
                            metadata_fields=tuple(fields), namespaces=("",),
                            has_documents=bool(m["documents"]), has_uris=bool(m["uris"]),
                            options=dict(m.get("options") or {}), extras=extras)


class _NotJson(TypeError):
    pass


def _refuse_json(v: Any) -> Any:
    raise _NotJson(type(v).__name__)


def exact_json(meta: dict[str, Any], collection: str) -> str:
    """Metadata as JSON text that json.loads turns back into equal values of the same types
    (floats keep a '.' or exponent, so they never come back as ints); anything else refused."""
    if not isinstance(meta, dict):
        raise UsageError(f"record metadata for table {collection} must be a mapping")
    try:
        return json.dumps(meta, allow_nan=False, default=_refuse_json)
    except _NotJson as e:
        raise UsageError(f"metadata for table {collection} holds a {e.args[0]} value: a table "
                         "from another provider keeps JSON values only (str, int, float, bool, "
                         "None, list, dict)") from None
    except TypeError:
        raise UsageError(f"metadata for table {collection} has a key that is not a string"
                         ) from None
    except ValueError:
        raise UsageError(f"metadata for table {collection} holds a NaN or infinite float, which "
                         "JSON cannot hold") from None
