"""The PostgreSQL catalog as vdedup reads it: vector column types, what a table looks like
(columns, primary key, indexes, partitions, the neutral marker), the schema of a native table,
and the DDL that recreates one (connector layer; psycopg is used only through a connection).

A collection is a table ("t" in schema public, "s.t" elsewhere). The record id is the primary
key: one integer column -> int; one column of another type -> its text form; several columns
-> a JSON array of their text forms. The metric is read from the vector index's opclass; a
column without an index has no metric (Metric.UNKNOWN), never a guessed one.
"""
from __future__ import annotations

import re
from typing import Any, Callable, ContextManager

from ...errors import SourceError, UsageError
from ...model import CollectionSchema, IdType, MetadataField, Metric, SparseField, VectorField
from .layout import quote_ident as _qi
from .layout import read_marker

VECTOR_TYPES = ("vector", "halfvec", "sparsevec", "bit")
INT_TYPES = ("int2", "int4", "int8")
SEND = {"vector": "vector_send", "halfvec": "halfvec_send", "sparsevec": "sparsevec_send",
        "bit": "varbit_send"}

# opclass -> metric, for vector, halfvec, sparsevec and bit.
OPCLASS_METRIC = {}
for _prefix in ("vector", "halfvec", "sparsevec"):
    OPCLASS_METRIC.update({f"{_prefix}_l2_ops": Metric.EUCLIDEAN, f"{_prefix}_ip_ops": Metric.DOT,
                           f"{_prefix}_cosine_ops": Metric.COSINE,
                           f"{_prefix}_l1_ops": Metric.MANHATTAN})
OPCLASS_METRIC.update({"bit_hamming_ops": Metric.HAMMING, "bit_jaccard_ops": Metric.JACCARD})
VECTOR_AMS = ("hnsw", "ivfflat")
SPARSE_MAX_DIM = 1_000_000_000     # pgvector's limit, for a sparse field of unknown dimension

# Types whose psycopg values the repository stores exactly; any other is read as its text form
# (inet would be an ipaddress object, ranges Range objects, enums unknown...).
EXACT_TYPES = {"int2", "int4", "int8", "float4", "float8", "numeric", "text", "varchar", "bpchar",
               "name", "bool", "bytea", "timestamptz", "timestamp", "date", "time", "timetz",
               "interval", "uuid", "json", "jsonb"}
TEXT_TYPES = {"text", "varchar", "bpchar", "name"}
META_TYPES = {"int2": "int", "int4": "int", "int8": "int", "float4": "float", "float8": "float",
              "numeric": "decimal", "text": "str", "varchar": "str", "bpchar": "str",
              "bool": "bool", "bytea": "bytes", "timestamptz": "datetime", "timestamp": "datetime",
              "date": "date", "time": "time", "interval": "timedelta", "uuid": "uuid",
              "json": "json", "jsonb": "json"}




def split(collection: str) -> tuple[str, str]:
    """'s.t' -> (s, t); 't' -> ('public', t)."""
    if not isinstance(collection, str) or not collection:
        raise UsageError("a PostgreSQL table name is needed")
    schema, dot, table = collection.partition(".")
    return (schema, table) if dot else ("public", collection)


def qualified(collection: str) -> str:
    s, t = split(collection)
    return f"{_qi(s)}.{_qi(t)}"


def has_binary_loader(conn: Any, oid: int) -> bool:
    from psycopg.pq import Format

    return conn.adapters.get_loader(oid, Format.BINARY) is not None


def table_oid(conn: Any, collection: str) -> int | None:
    s, t = split(collection)
    row = conn.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (s, t)).fetchone()
    return None if row is None else int(row[0])


def read_layout(conn: Any, collection: str, oid: int,
                errors: Callable[[], ContextManager[None]]) -> dict[str, Any]:
    """What the catalog says of a table: columns, primary key, indexes, partitions, the id
    encoding and, for a neutral table, its marker. `errors` wraps the queries."""
    with errors():
        relkind = conn.execute("SELECT relkind FROM pg_class WHERE oid = %s",
                               (oid,)).fetchone()[0]
        cols = conn.execute("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname, a.atttypmod,
                   a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity,
                   a.attgenerated, t.typcategory, et.typname, a.atttypid::int
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A'
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum""", (oid,)).fetchall()
        pk = [r[0] for r in conn.execute("""
            SELECT a.attname FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = %s AND i.indisprimary ORDER BY k.ord""", (oid,)).fetchall()]
        idx_rows = conn.execute("""
            SELECT ic.relname, am.amname, pg_get_indexdef(i.indexrelid), i.indisprimary,
                   i.indisunique, con.conname, ic.reloptions,
                   ARRAY(SELECT o.opcname FROM unnest(i.indclass::oid[]) WITH ORDINALITY
                         u(oid, ord) JOIN pg_opclass o ON o.oid = u.oid ORDER BY u.ord),
                   ARRAY(SELECT coalesce(a.attname, '') FROM unnest(i.indkey::int2[])
                         WITH ORDINALITY k(attnum, ord) LEFT JOIN pg_attribute a
                         ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
            JOIN pg_am am ON am.oid = ic.relam
            LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid
                 AND con.conrelid = i.indrelid
            WHERE i.indrelid = %s ORDER BY ic.relname""", (oid,)).fetchall()
        parts = [{"schema": r[0], "name": r[1], "bound": r[2]} for r in conn.execute("""
            SELECT n.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits h
            JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE h.inhparent = %s ORDER BY 1, 2""", (oid,)).fetchall()]
        partkey = conn.execute("SELECT pg_get_partkeydef(%s)", (oid,)).fetchone()[0]
        ver = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                           ).fetchone()
        comment = conn.execute("SELECT obj_description(%s::oid, 'pg_class')",
                               (oid,)).fetchone()[0]
    columns = []
    for name, typ, typname, typmod, notnull, default, ident, gen, cat, elem, oid_ in cols:
        vector = typname if typname in VECTOR_TYPES else None
        if typname == "bit" and typmod <= 0:
            vector = None            # unconstrained bit: plain metadata (a '0101' string)
        columns.append({"name": name, "type": typ, "typname": typname,
                        "dim": typmod if vector and typmod > 0 else None,
                        "not_null": bool(notnull), "default": default,
                        "identity": ident or None, "generated": gen or None,
                        "vector": vector, "array": cat == "A", "elem": elem,
                        "oid": oid_,
                        "binary": (elem if cat == "A" else typname) in EXACT_TYPES
                        and has_binary_loader(conn, oid_)})
    by_name = {c["name"]: c for c in columns}
    indexes = []
    for name, am, definition, primary, unique, conname, relopts, opcs, keys in idx_rows:
        opts: dict[str, Any] = {}
        for o in relopts or []:
            k, _, v = o.partition("=")
            opts[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
        vcol = None
        if am in VECTOR_AMS or any(o in OPCLASS_METRIC for o in opcs):
            vcol = keys[0] if keys and keys[0] in by_name else None
        indexes.append({"name": name, "am": am, "definition": definition,
                        "primary": bool(primary), "unique": bool(unique),
                        "constraint": conname, "opclasses": list(opcs),
                        "columns": list(keys), "options": opts, "vector_column": vcol})
    if len(pk) == 1 and by_name[pk[0]]["typname"] in INT_TYPES:
        encoding = "int"
    elif len(pk) == 1:
        encoding = "text"
    else:
        encoding = "json"
    layout = {"schema": split(collection)[0], "table": split(collection)[1],
              "relkind": relkind, "columns": columns, "by_name": by_name, "pk": pk,
              "indexes": indexes, "partitions": parts, "partition_by": partkey,
              "id_encoding": encoding,
              "extension_version": ver[0] if ver else None}
    layout["neutral"] = read_marker(comment, layout)
    return layout


def table_schema(provider: str, collection: str, layout: dict[str, Any]) -> CollectionSchema:
    """The model's schema of a native table (not a neutral one), everything else in extras."""
    if not layout["pk"]:
        raise SourceError(f"table {collection} has no primary key: vdedup needs one to "
                          "identify records", hint="add a primary key to the table")
    vectors: list[VectorField] = []
    sparse: list[SparseField] = []
    meta: list[MetadataField] = []
    for col in layout["columns"]:
        kind = col["vector"]
        if col["name"] in layout["pk"]:
            continue
        if kind is None:
            if not col["generated"]:
                meta.append(MetadataField(col["name"], META_TYPES.get(
                    col["typname"], "list" if col["array"] else "unknown"),
                    nullable=not col["not_null"]))
            continue
        idx = [i for i in layout["indexes"] if i["vector_column"] == col["name"]]
        info: dict[str, Any] = {"type": col["type"]}
        metric = Metric.UNKNOWN
        if idx:
            first = idx[0]
            metric = OPCLASS_METRIC.get(first["opclasses"][0], Metric.UNKNOWN)
            info.update({"kind": first["am"], "opclass": first["opclasses"][0],
                         **first["options"]})
        dim = col["dim"]
        if kind == "sparsevec":
            sparse.append(SparseField(col["name"], metric=metric,
                                      index={**info, "dim": dim}))
        else:
            dtype = {"vector": "float32", "halfvec": "float16", "bit": "binary"}[kind]
            vectors.append(VectorField(col["name"], dim, metric, dtype, index=info))
    pk_types = [layout["by_name"][p]["typname"] for p in layout["pk"]]
    if len(pk_types) == 1 and pk_types[0] in INT_TYPES:
        id_type = IdType.INT
    else:
        id_type = IdType.STRING
    extras = {
        "schema": layout["schema"], "table": layout["table"], "relkind": layout["relkind"],
        "partitions": layout["partitions"], "partition_by": layout["partition_by"],
        "primary_key": [{"name": p, "type": layout["by_name"][p]["type"]} for p in layout["pk"]],
        "id_encoding": layout["id_encoding"],
        "columns": [{k: c[k] for k in ("name", "type", "not_null", "default", "identity",
                                      "generated")} for c in layout["columns"]],
        "indexes": [{k: i[k] for k in ("name", "am", "definition", "primary", "unique",
                                      "constraint", "opclasses", "columns", "options")}
                    for i in layout["indexes"]],
        "extension_version": layout["extension_version"],
    }
    return CollectionSchema(provider=provider, name=collection, id_type=id_type,
                            vectors=tuple(vectors), sparse=tuple(sparse),
                            metadata_fields=tuple(meta), namespaces=("",), extras=extras)


def index_ddl(idx: dict[str, Any], s: str, t: str) -> str | None:
    """The original definition, re-targeted at the new table (the name is left to PostgreSQL)."""
    m = re.search(r" USING (\w+) (.*)$", idx["definition"], re.S)
    if not m:
        return None
    unique = "UNIQUE " if idx["unique"] else ""
    return f"CREATE {unique}INDEX ON {_qi(s)}.{_qi(t)} USING {m.group(1)} {m.group(2)}"


def table_ddl(schema: CollectionSchema, s: str, t: str) -> tuple[list[str], list[str]]:
    ex = schema.extras
    defs = []
    sequences: list[str] = []
    for c in ex["columns"]:
        d = f"{_qi(c['name'])} {c['type']}"
        if c.get("generated") == "s" and c.get("default"):
            d += f" GENERATED ALWAYS AS ({c['default']}) STORED"
        elif c.get("identity") or "nextval(" in (c.get("default") or ""):
            # identity and serial columns: numbered by an identity the loaded values move past
            d += " GENERATED BY DEFAULT AS IDENTITY"
            sequences.append(c["name"])
        elif c.get("default"):
            d += f" DEFAULT {c['default']}"
        if c.get("not_null"):
            d += " NOT NULL"
        defs.append(d)
    pk = [p["name"] for p in ex["primary_key"]]
    defs.append(f"PRIMARY KEY ({', '.join(_qi(p) for p in pk)})")
    table = f"{_qi(s)}.{_qi(t)}"
    ddl = [f"CREATE TABLE {table} ({', '.join(defs)})"]
    if ex.get("partition_by"):
        ddl[0] += f" PARTITION BY {ex['partition_by']}"
        source = ex.get("table", "")
        for part in ex.get("partitions") or []:
            if not isinstance(part, dict) or not part.get("bound"):
                continue
            # the partition's name with the source table's name replaced by the new one
            pname = part["name"]
            pname = t + pname[len(source):] if source and pname.startswith(source) \
                else f"{t}_{pname}"
            ddl.append(f"CREATE TABLE {_qi(s)}.{_qi(pname)} PARTITION OF {table} {part['bound']}")
    indexes = [d for i in ex.get("indexes", []) if not i.get("primary")
               for d in [index_ddl(i, s, t)] if d]
    for col in sequences:     # after loading: the next generated value follows the largest one
        indexes.append(f"SELECT setval(pg_get_serial_sequence({literal(table)}, "
                       f"{literal(col)}), m) FROM (SELECT max({_qi(col)}) AS m FROM {table}) x "
                       "WHERE m IS NOT NULL")
    return ddl, indexes


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

