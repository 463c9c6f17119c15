"""PostgreSQL + pgvector connector (connector layer; depends only on model and errors).

    postgresql://USER@HOST:PORT/DB[?table=T|schema.T][&sslmode=...]     (aliases: postgres, pgvector)

The password never comes from the URL: libpq reads `PGPASSWORD` or `~/.pgpass` (`PGPASSFILE`)
itself. A collection is a table ("t" in schema public, "s.t" elsewhere); tables have one
namespace, "". Without `?table=` every table with a vector, halfvec, sparsevec or bit(n)
column is a collection (partitions are read through their parent).

Why the code looks the way it does (psycopg 3.3, PostgreSQL 18, pgvector 0.8.6):
- Vector columns are read as `vector_send(col)` / `halfvec_send` / `sparsevec_send` /
  `varbit_send`: pgvector's own binary wire format, exact by construction, parsed with numpy.
  Every other column comes in text mode through psycopg's loaders (int, Decimal, float,
  datetime, UUID, JSON, arrays...), so types psycopg does not know arrive as their text form.
- A scan is one `REPEATABLE READ, READ ONLY` transaction with a server-side cursor: one
  snapshot, bounded memory, and a sequential scan (faster than keyset pagination; see
  docs/providers/pgvector.md for the measurement).
- The record id is the primary key: one integer column -> int; one column of another type
  -> its text form; several columns -> a JSON array of their text forms. Restore hands those
  texts back to PostgreSQL, which parses them into the original types.
- Writes use COPY (text format). Vectors are written as text: a float32 or float16 value
  printed as the shortest repr of the equal float64 parses back (strtof) to the same value.
- Vector indexes are built after the data is loaded (`finish`, also run by `close`).
- A schema from another provider becomes a "neutral" table (`id`, one column per vector,
  `metadata json`, `document`, `uri`) whose JSON table COMMENT (the marker) says which column
  holds which vector: describe()/scan() read such a table back in the neutral form, and its
  schema restored here again makes the same layout. `json`, not `jsonb`: it keeps the text
  json.dumps wrote, so floats, ints and key order come back exactly (docs/providers/pgvector.md).
  The layout (DDL, marker, schema, id and JSON rules) is in pgvector_layout.py.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import decimal
import json
import re
import struct
import sys
import uuid
from typing import Any, ContextManager, Iterator

import numpy as np

from ..errors import CollectionNotFound, NotSupported, SourceError, UsageError, VdedupError
from ..model import (CollectionSchema, IdType, MetadataField, Metric, Record, RecordBatch,
                     RecordId, SparseField, SparseVector, VectorField)
from .common import refuse_secret_params, refuse_unknown_params, translated_errors
from .pgvector_layout import (NEUTRAL_DOC, NEUTRAL_ID, NEUTRAL_LAYOUT, NEUTRAL_META,
                              NEUTRAL_URI, NEUTRAL_VECTOR, OWN_PROVIDERS, exact_json, int_text,
                              is_marker, neutral_ddl, neutral_id, neutral_schema, read_marker)
from .pgvector_layout import quote_ident as _qi
from .url import SourceURL

DEFAULT_PORT = 5432
URL_QUERY_KEYS = {"table", "sslmode"}
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
DISTANCE_OPS = {Metric.EUCLIDEAN: "<->", Metric.DOT: "<#>", Metric.COSINE: "<=>", Metric.MANHATTAN: "<+>"}
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



def _split(collection: str) -> tuple[str, str]:
    """'s.t' -> (s, t); 't' -> ('public', t)."""
    if not isinstance(collection, str) or not collection:
        raise UsageError("a PostgreSQL table name is needed")
    schema, dot, table = collection.partition(".")
    return (schema, table) if dot else ("public", collection)


def _qualified(collection: str) -> str:
    s, t = _split(collection)
    return f"{_qi(s)}.{_qi(t)}"


class PgvectorConnector:
    """One PostgreSQL database with the pgvector extension."""

    provider = "pgvector"
    key_ordered_scan = False      # rows come in storage order, which updates reshuffle

    def __init__(self, conn: Any, where: str, table: str | None) -> None:
        self._conn = conn
        self._where = where            # "user@host:port/db": safe for messages
        self._table = table
        self._layouts: dict[str, dict[str, Any]] = {}
        self._fresh: set[str] = set()                     # created here: plain COPY, no upsert
        self._pending: dict[str, list[str]] = {}          # index DDL etc. to run after loading
        self._raw_dumpers: set[int] = set()               # vector type oids with a raw dumper

    # ----------------------------------------------------------------- opening

    @classmethod
    def from_url(cls, u: SourceURL) -> "PgvectorConnector":
        if u.password:
            raise UsageError("a password does not belong in a PostgreSQL URL: "
                             "set PGPASSWORD or use ~/.pgpass")
        refuse_secret_params(u, "PostgreSQL", "set PGPASSWORD or use ~/.pgpass")
        refuse_unknown_params(u, "PostgreSQL", URL_QUERY_KEYS)
        db = u.path.strip("/")
        if not db or "/" in db:
            raise UsageError("a PostgreSQL URL names one database: postgresql://USER@HOST:PORT/DB")
        port = u.port or DEFAULT_PORT
        user = u.username
        where = f"{user + '@' if user else ''}{u.host or 'localhost'}:{port}/{db}"
        params: dict[str, Any] = {"port": port, "dbname": db, "connect_timeout": 10,
                                  "application_name": "vdedup"}
        if u.host:                  # without one, libpq's default (PGHOST or the local socket)
            params["host"] = u.host
        if user:
            params["user"] = user
        if u.query.get("sslmode"):
            params["sslmode"] = u.query["sslmode"]
        import psycopg

        try:
            conn = psycopg.connect(autocommit=True, **params)
            conn.execute("SET TIME ZONE 'UTC'")
        except Exception as e:
            raise SourceError(f"cannot connect to PostgreSQL at {where}: {_detail(e)}") from e
        table = u.query.get("table") or None
        return cls(conn, where, table)

    def close(self) -> None:
        """Build the indexes still pending (unless an error is on its way), then disconnect."""
        conn = self._conn
        if conn is None:
            return
        try:
            if sys.exc_info()[0] is None:     # not while a failed restore unwinds
                for name in list(self._pending):
                    self.finish(name)
        finally:
            self._conn = None
            with contextlib.suppress(Exception):
                conn.close()

    # --------------------------------------------------------------- reading

    def list_collections(self) -> list[str]:
        if self._table:
            self._oid(self._table)            # CollectionNotFound when missing
            return [self._table]
        sql = """
            SELECT n.nspname, c.relname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                            AND (t.typname IN ('vector', 'halfvec', 'sparsevec')
                                 OR (t.typname = 'bit' AND a.atttypmod > 0)))
            ORDER BY 1, 2"""
        with self._errors("list tables"):
            rows = self._live().execute(sql).fetchall()
        return [t if s == "public" else f"{s}.{t}" for s, t in rows]

    @property
    def url_collection(self) -> str | None:
        """The table the URL names (?table=T; a restore writes there)."""
        return self._table

    def exists(self, collection: str) -> bool:
        try:
            self._oid(collection)
        except CollectionNotFound:
            return False
        return True

    def describe(self, collection: str) -> CollectionSchema:
        layout = self._layout(collection, refresh=True)
        if layout["neutral"]:
            return neutral_schema(collection, layout, self.provider)
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
        return CollectionSchema(provider=self.provider, name=collection, id_type=id_type,
                                vectors=tuple(vectors), sparse=tuple(sparse),
                                metadata_fields=tuple(meta), namespaces=("",), extras=extras)

    def count(self, collection: str, namespace: str = "") -> int:
        _no_namespace(namespace)
        self._oid(collection)
        with self._errors("count", collection):
            return int(self._live().execute(
                f"SELECT count(*) FROM {_qualified(collection)}").fetchone()[0])

    def scan(self, collection: str, namespace: str = "",
             batch_size: int = 1000) -> Iterator[RecordBatch]:
        _no_namespace(namespace)
        if batch_size < 1:
            raise UsageError("batch size must be at least 1")
        layout = self._layout(collection, refresh=True)
        if not layout["pk"]:
            raise SourceError(f"table {collection} has no primary key")
        pk = layout["pk"]
        cols = [c for c in layout["columns"] if c["name"] not in pk and not c["generated"]]
        exprs: list[str] = []
        marker = layout["neutral"]
        if marker:
            exprs, make = _neutral_select(marker, layout)
        else:
            if layout["id_encoding"] == "int":
                exprs.append(_qi(pk[0]))
            else:
                exprs += [f"{_qi(p)}::text" for p in pk]
            for c in cols:
                if c["vector"]:
                    exprs.append(f"{SEND[c['vector']]}({_qi(c['name'])})")
                elif c["binary"]:
                    exprs.append(_qi(c["name"]))
                else:                  # a type psycopg cannot load in binary: keep its text form
                    exprs.append(f"{_qi(c['name'])}::text")
        sql = f"SELECT {', '.join(exprs)} FROM {_qualified(collection)}"
        npk = len(pk)
        conn = self._live()
        with self._errors("scan", collection, data=True):
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                with conn.cursor(name="vdedup_scan", binary=True) as cur:
                    cur.itersize = batch_size
                    cur.execute(sql)
                    while True:
                        rows = cur.fetchmany(batch_size)
                        if not rows:
                            break
                        if marker:
                            yield RecordBatch.from_records([make(row) for row in rows])
                        else:
                            yield self._batch(rows, npk, layout["id_encoding"], cols)

    def _batch(self, rows: list[tuple], npk: int, encoding: str,
               cols: list[dict[str, Any]]) -> RecordBatch:
        records = []
        for row in rows:
            if encoding == "json":
                rid: RecordId = json.dumps(list(row[:npk]), ensure_ascii=False)
            else:
                rid = row[0]
            rec = Record(rid, metadata={})
            for c, v in zip(cols, row[npk:]):
                kind = c["vector"]
                if kind is None:
                    rec.metadata[c["name"]] = v
                elif v is None:
                    continue
                elif kind == "sparsevec":
                    rec.sparse[c["name"]] = _parse_sparse(v)
                else:
                    rec.vectors[c["name"]] = _parse_dense(kind, v)
            records.append(rec)
        return RecordBatch.from_records(records)

    def query(self, collection: str, namespace: str, vector: np.ndarray, k: int,
              vector_name: str = "") -> list[RecordId]:
        """The ids of the k nearest rows by the operator of the column's vector index (an
        index scan, as the database serves such a query)."""
        _no_namespace(namespace)
        layout = self._layout(collection, refresh=True)
        marker = layout["neutral"]
        column = vector_name if not marker else \
            next((v["column"] for v in marker["vectors"] if v["name"] == vector_name), vector_name)
        col = layout["by_name"].get(column)
        index = next((i for i in layout["indexes"] if i["vector_column"] == column), None)
        op = DISTANCE_OPS.get(OPCLASS_METRIC.get(index["opclasses"][0])) if index else None
        if col is None or col["vector"] not in ("vector", "halfvec") or op is None:
            raise NotSupported(f"table {collection}: no vector index on {column!r} to query")
        pk = layout["pk"]
        if marker:
            ids = _qi(NEUTRAL_ID)
        elif layout["id_encoding"] == "int":
            ids = _qi(pk[0])
        else:
            ids = ", ".join(f"{_qi(p)}::text" for p in pk)
        literal = "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"
        with self._errors("query", collection, data=True):
            rows = self._live().execute(
                f"SELECT {ids} FROM {_qualified(collection)} ORDER BY {_qi(column)} {op} "
                f"%s::{col['vector']} LIMIT %s", (literal, k)).fetchall()
        if marker:
            mixed = marker["id_type"] in (IdType.UUID.value, IdType.UNKNOWN.value)
            return [int(r[0]) if mixed and int_text(r[0]) else r[0] for r in rows]
        if layout["id_encoding"] == "json":
            return [json.dumps(list(r), ensure_ascii=False) for r in rows]
        return [r[0] for r in rows]

    # --------------------------------------------------------------- writing

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        s, t = _split(name)
        if self.exists(name):
            raise SourceError(f"table {name} already exists at {self._where}")
        self._ensure_extension()
        own = schema.provider in OWN_PROVIDERS
        if own and is_marker(schema.extras.get(NEUTRAL_LAYOUT)):
            ddl, indexes = neutral_ddl(schema, s, t)     # a neutral table read back: again one
        elif own and schema.extras.get("columns"):
            ddl, indexes = _pg_ddl(schema, s, t)
        else:
            ddl, indexes = neutral_ddl(schema, s, t)
        with self._errors("create table", name):
            with self._live().transaction():
                self._live().execute(f"CREATE SCHEMA IF NOT EXISTS {_qi(s)}")
                for statement in ddl:
                    self._live().execute(statement)
        self._fresh.add(name)
        self._pending[name] = indexes
        self._layouts.pop(name, None)

    def finish(self, collection: str) -> None:
        """Build the indexes of a table created by create_collection, after its data."""
        for ddl in self._pending.pop(collection, []):
            with self._errors("create index", collection):
                self._live().execute(ddl)

    def write(self, collection: str, batch: RecordBatch) -> None:
        _no_namespace(batch.namespace)
        if not len(batch):
            return
        layout = self._layout(collection)
        if not layout["pk"]:
            raise SourceError(f"table {collection} has no primary key")
        import psycopg

        names, rows = _rows(layout, batch, collection, binary=True)
        oids = self._binary_oids(layout, names)
        if oids is None:                  # a column only its text form can fill: text COPY
            names, rows = _rows(layout, batch, collection, binary=False)
        target = _qualified(collection)
        col_list = ", ".join(_qi(n) for n in names)
        conn = self._live()
        with self._errors("write", collection, data=True):
            if collection in self._fresh:          # a table created here: plain COPY
                try:
                    with conn.transaction():
                        self._copy(f"COPY {target} ({col_list}) FROM STDIN", rows, oids)
                    return
                except psycopg.errors.UniqueViolation:
                    pass                            # an id written before: replace it below
            with conn.transaction():
                conn.execute("CREATE TEMP TABLE vdedup_load (LIKE " + target +
                             " INCLUDING DEFAULTS) ON COMMIT DROP")
                self._copy(f"COPY vdedup_load ({col_list}) FROM STDIN", rows, oids)
                match = " AND ".join(f"t.{_qi(p)} = l.{_qi(p)}" for p in layout["pk"])
                conn.execute(f"DELETE FROM {target} t USING vdedup_load l WHERE {match}")
                conn.execute(f"INSERT INTO {target} ({col_list}) "
                             f"SELECT {col_list} FROM vdedup_load")

    def _copy(self, sql: str, rows: list[list[Any]], oids: list[int] | None) -> None:
        if oids is not None:
            sql += " (FORMAT BINARY)"
        with self._live().cursor() as cur, cur.copy(sql) as cp:
            if oids is not None:
                cp.set_types(oids)
            for row in rows:
                cp.write_row(row)

    def _binary_oids(self, layout: dict[str, Any], names: list[str]) -> list[int] | None:
        """Type oids for a binary COPY of these columns, or None when one needs text."""
        from psycopg.adapt import Dumper
        from psycopg.pq import Format

        adapters = self._live().adapters
        oids = []
        for name in names:
            col = layout["by_name"][name]
            if col["vector"]:
                if col["oid"] not in self._raw_dumpers:
                    # vectors arrive already in pgvector's binary recv format
                    dumper = type(f"_Raw{col['oid']}", (Dumper,), {
                        "format": Format.BINARY, "oid": col["oid"],
                        "dump": lambda self, obj: obj})
                    adapters.register_dumper(type(f"_RawMarker{col['oid']}", (), {}), dumper)
                    self._raw_dumpers.add(col["oid"])
            elif name in layout["pk"] and layout["id_encoding"] != "int":
                if col["typname"] not in TEXT_TYPES:
                    return None           # ids hold the key's text form
            elif not col["binary"]:
                return None
            elif not col["array"]:
                try:
                    adapters.get_dumper_by_oid(col["oid"], Format.BINARY)
                except Exception:
                    return None
            oids.append(col["oid"])
        return oids

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        _no_namespace(namespace)
        layout = self._layout(collection)
        pk = layout["pk"]
        if not pk:
            raise SourceError(f"table {collection} has no primary key")
        keys = [_pk_values(layout, rid) for rid in ids]
        match = " AND ".join(f"{_qi(p)} = %s::{layout['by_name'][p]['type']}" for p in pk)
        with self._errors("delete", collection, data=True), self._live().transaction():
            with self._live().cursor() as cur:
                cur.executemany(f"DELETE FROM {_qualified(collection)} WHERE {match}", keys)

    # --------------------------------------------------------------- catalog

    def _live(self) -> Any:
        if self._conn is None:
            raise SourceError(f"the PostgreSQL connection to {self._where} is closed")
        return self._conn

    def _oid(self, collection: str) -> int:
        s, t = _split(collection)
        with self._errors("look up table", collection):
            row = self._live().execute(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
                (s, t)).fetchone()
        if row is None:
            raise CollectionNotFound(f"table {collection} not found in {self._where}")
        return int(row[0])

    def _ensure_extension(self) -> None:
        conn = self._live()
        with self._errors("check the vector extension"):
            have = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        if have:
            return
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except Exception as e:
            raise SourceError(f"the pgvector extension is missing in {self._where} and cannot "
                              f"be created: {_detail(e)}",
                              hint="ask a superuser to run CREATE EXTENSION vector") from e

    def _layout(self, collection: str, refresh: bool = False) -> dict[str, Any]:
        if not refresh and collection in self._layouts:
            return self._layouts[collection]
        oid = self._oid(collection)
        conn = self._live()
        with self._errors("describe", collection):
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
                            and _has_binary_loader(conn, oid_)})
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
        layout = {"schema": _split(collection)[0], "table": _split(collection)[1],
                  "relkind": relkind, "columns": columns, "by_name": by_name, "pk": pk,
                  "indexes": indexes, "partitions": parts, "partition_by": partkey,
                  "id_encoding": encoding,
                  "extension_version": ver[0] if ver else None}
        layout["neutral"] = read_marker(comment, layout)
        self._layouts[collection] = layout
        return layout

    def _errors(self, action: str, collection: str | None = None,
                data: bool = False) -> ContextManager[None]:
        """Turn any psycopg exception into a one-line SourceError / CollectionNotFound."""
        return translated_errors(lambda e: self._translate(e, action, collection, data))

    def _translate(self, e: Exception, action: str, collection: str | None,
                   data: bool) -> VdedupError:
        import psycopg

        target = f" {collection}" if collection else ""
        if isinstance(e, psycopg.errors.UndefinedTable) and collection:
            self._layouts.pop(collection, None)
            return CollectionNotFound(f"table {collection} not found in {self._where}")
        if isinstance(e, psycopg.OperationalError) and self._conn is not None \
                and self._conn.closed:
            return SourceError(f"lost the connection to PostgreSQL at {self._where}: "
                               f"{_detail(e)}")
        return SourceError(f"PostgreSQL {action}{target} at {self._where} failed: "
                           f"{_detail(e, data)}")


# ------------------------------------------------------------------- functions


def _detail(e: BaseException, data: bool = False) -> str:
    """The first line of a server message; with data involved, no DETAIL (it echoes rows)."""
    diag = getattr(e, "diag", None)
    text = getattr(diag, "message_primary", None) if diag is not None else None
    text = (text or str(e)).strip().splitlines()
    line = (text[0].strip() if text else "") or type(e).__name__
    if data:
        line = re.sub(r'(value|key|row)\s*\(.*$', r"\1 (values withheld)", line)
        state = getattr(diag, "sqlstate", None) if diag is not None else None
        if state and state.startswith("22") and ":" in line:     # data exceptions quote input
            line = line.split(":", 1)[0] + ": (values withheld)"
    if len(line) > 240:
        line = line[:237] + "..."
    return line


def _has_binary_loader(conn: Any, oid: int) -> bool:
    from psycopg.pq import Format

    return conn.adapters.get_loader(oid, Format.BINARY) is not None


def _no_namespace(namespace: str) -> None:
    if namespace:
        raise UsageError(f"PostgreSQL tables have no namespaces (got {namespace!r}); "
                         "map each namespace to its own table")


def _parse_dense(kind: str, raw: bytes) -> np.ndarray:
    if kind == "vector":
        dim = int.from_bytes(raw[0:2], "big")
        return np.frombuffer(raw, dtype=">f4", count=dim, offset=4).astype(np.float32)
    if kind == "halfvec":
        dim = int.from_bytes(raw[0:2], "big")
        return np.frombuffer(raw, dtype=">f2", count=dim, offset=4).astype(np.float16)
    # bit: int32 length in bits, then the packed bytes (first bit = most significant)
    return np.frombuffer(raw, dtype=np.uint8, offset=4).copy()


def _parse_sparse(raw: bytes) -> SparseVector:
    nnz = int.from_bytes(raw[4:8], "big", signed=True)
    idx = np.frombuffer(raw, dtype=">i4", count=nnz, offset=12).astype(np.uint32)
    val = np.frombuffer(raw, dtype=">f4", count=nnz, offset=12 + 4 * nnz).astype(np.float32)
    return SparseVector(idx, val)


def _float_bin(kind: str, arr: np.ndarray) -> bytes:
    """vector_recv / halfvec_recv input: int16 dim, int16 unused, big-endian float4 / float2."""
    dtype = ">f2" if kind == "halfvec" else ">f4"
    return struct.pack(">hh", arr.shape[0], 0) + arr.astype(dtype).tobytes()


def _sparse_bin(sv: SparseVector, dim: int) -> bytes:
    """sparsevec_recv input: int32 dim, nnz, unused, then 0-based int32 indices, float4 values."""
    return (struct.pack(">iii", dim, len(sv.indices), 0) + sv.indices.astype(">i4").tobytes()
            + sv.values.astype(">f4").tobytes())


def _bit_bin(arr: np.ndarray, bits: int) -> bytes:
    """bit_recv input: int32 length in bits, then the packed bytes (pad bits zero)."""
    packed = np.packbits(np.unpackbits(np.asarray(arr, dtype=np.uint8))[:bits])
    return struct.pack(">i", bits) + packed.tobytes()


def _sorted_sparse(sv: SparseVector) -> SparseVector:
    if len(sv.indices) < 2 or bool(np.all(np.diff(sv.indices.astype(np.int64)) > 0)):
        return sv
    order = np.argsort(sv.indices, kind="stable")
    return SparseVector(sv.indices[order], sv.values[order])


def _float_text(arr: np.ndarray) -> str:
    # repr of the equal float64 is exact, and strtof turns it back into the same float32/16.
    return "[" + ",".join(map(repr, arr.astype(np.float64).tolist())) + "]"


def _sparse_text(sv: SparseVector, dim: int) -> str:
    body = ",".join(f"{i + 1}:{v!r}" for i, v in
                    zip(sv.indices.tolist(), sv.values.astype(np.float64).tolist()))
    return "{" + body + "}/" + str(dim)


def _bit_text(arr: np.ndarray, bits: int) -> str:
    return (np.unpackbits(np.asarray(arr, dtype=np.uint8))[:bits] + 48).tobytes().decode()


def _json_default(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (decimal.Decimal, uuid.UUID, _dt.timedelta)):
        return str(v)
    raise TypeError(f"cannot store a {type(v).__name__} in JSON")


def _pk_values(layout: dict[str, Any], rid: RecordId) -> list[Any]:
    pk = layout["pk"]
    marker = layout.get("neutral")
    if marker and marker["id_type"] != IdType.INT.value:
        return [neutral_id(marker, layout["table"], rid)]
    if marker and (isinstance(rid, bool) or not isinstance(rid, int)):
        raise UsageError(f"table {layout['table']} holds integer ids: a string id cannot be "
                         "stored without losing its type")
    if layout["id_encoding"] == "json" or (len(pk) > 1 and isinstance(rid, str)):
        try:
            vals = json.loads(rid) if isinstance(rid, str) else None
        except ValueError:
            vals = None
        if not isinstance(vals, list) or len(vals) != len(pk):
            raise UsageError(f"record ids of a table with a {len(pk)}-column primary key must "
                             f"be JSON arrays of {len(pk)} values")
        return [v if v is None or isinstance(v, str) else json.dumps(v) for v in vals]
    if layout["id_encoding"] == "int":
        try:
            value = int(rid)
        except (TypeError, ValueError):
            raise UsageError(f"table {layout['table']} has an integer primary key: "
                             "its record ids must be integers") from None
        bits = {"int2": 16, "int4": 32, "int8": 64}[layout["by_name"][pk[0]]["typname"]]
        if not -2 ** (bits - 1) <= value < 2 ** (bits - 1):
            raise UsageError(f"table {layout['table']} has a {bits}-bit integer primary key: "
                             f"a record id is out of its range")
        return [value]
    return [rid if isinstance(rid, str) else str(rid)]


def _rows(layout: dict[str, Any], batch: RecordBatch, collection: str, binary: bool
          ) -> tuple[list[str], list[list[Any]]]:
    """Column names and COPY rows for a batch, in the target table's layout (vectors in
    pgvector's binary recv format for a binary COPY, as text otherwise)."""
    from psycopg.types.json import Json, Jsonb

    pk = layout["pk"]
    by_name = layout["by_name"]
    marker = layout.get("neutral")
    writable = {c["name"] for c in layout["columns"]
                if c["name"] not in pk and not c["generated"]}
    recs = list(batch.records())
    keys = {k for r in recs if r.metadata for k in r.metadata}
    unknown = sorted(keys - writable)
    neutral = bool(marker) or bool(unknown) or (NEUTRAL_META in by_name and not keys)
    if unknown and by_name.get(NEUTRAL_META, {}).get("typname") not in ("json", "jsonb"):
        raise UsageError(f"table {collection} has no column {unknown[0]!r} for that metadata "
                         "field")
    vec_cols = {c["name"]: c for c in layout["columns"] if c["vector"]}
    # (dense or sparse, vector name, column): a dense and a sparse vector may share a name
    if marker:
        dense_map = {v["name"]: v["column"] for v in marker["vectors"]}
        sparse_map = {v["name"]: v["column"] for v in marker["sparse"]}
    else:
        dense_map = {n: n for n in vec_cols if vec_cols[n]["vector"] != "sparsevec"}
        sparse_map = {n: n for n in vec_cols if vec_cols[n]["vector"] == "sparsevec"}
        if NEUTRAL_VECTOR in dense_map:
            dense_map.setdefault("", NEUTRAL_VECTOR)
    targets: list[tuple[bool, str, str]] = []
    for sparse, names, cmap in ((False, {k for r in recs for k in r.vectors}, dense_map),
                                (True, {k for r in recs for k in r.sparse}, sparse_map)):
        for n in sorted(names):
            if n not in cmap:
                what = "sparse vector" if sparse else "vector"
                raise UsageError(f"table {collection} has no {what} column for {what} {n!r}")
            targets.append((sparse, n, cmap[n]))
    names = list(pk) + [col for _, _, col in targets]
    meta_cols = [NEUTRAL_META] if neutral else sorted(keys)
    names += meta_cols
    has_doc = NEUTRAL_DOC in writable and any(r.document is not None for r in recs)
    has_uri = NEUTRAL_URI in writable and any(r.uri is not None for r in recs)
    if any(r.document is not None for r in recs) and not has_doc:
        raise UsageError(f"table {collection} has no {NEUTRAL_DOC!r} column for documents")
    if any(r.uri is not None for r in recs) and not has_uri:
        raise UsageError(f"table {collection} has no {NEUTRAL_URI!r} column for uris")
    names += ([NEUTRAL_DOC] if has_doc else []) + ([NEUTRAL_URI] if has_uri else [])
    jsonish = {c["name"]: (Jsonb if c["typname"] == "jsonb" else Json)
               for c in layout["columns"] if c["typname"] in ("json", "jsonb")}
    dumps = lambda obj: json.dumps(obj, default=_json_default)  # noqa: E731
    verbatim = lambda text: text  # noqa: E731
    rows = []
    for r in recs:
        row: list[Any] = _pk_values(layout, r.id)
        for sparse, n, colname in targets:
            col = vec_cols[colname]
            if sparse:
                if n not in r.sparse:
                    row.append(None)
                    continue
                sv = _sorted_sparse(r.sparse[n])
                dim = col["dim"] or SPARSE_MAX_DIM
                row.append(_sparse_bin(sv, dim) if binary else _sparse_text(sv, dim))
            elif n in r.vectors:
                v = r.vectors[n]
                if v.ndim != 1:
                    raise UsageError(f"pgvector cannot store multivector {n!r}")
                if col["vector"] == "bit":
                    bits = col["dim"] or 8 * v.shape[0]
                    row.append(_bit_bin(v, bits) if binary else _bit_text(v, bits))
                else:
                    if v.dtype not in (np.float16, np.float32, np.float64):
                        raise UsageError(f"{v.dtype} vector {n!r} cannot be stored exactly in "
                                         f"a {col['vector']} column")
                    if not np.isfinite(v.astype(np.float32)).all():
                        raise UsageError("pgvector rejects NaN or infinite vector values")
                    row.append(_float_bin(col["vector"], v) if binary else _float_text(v))
            else:
                row.append(None)
        meta = r.metadata or {}
        if marker:
            # exact JSON text in a `json` column: None stays NULL, {} stays {}
            row.append(None if r.metadata is None
                       else Json(exact_json(r.metadata, collection), verbatim))
        elif neutral:
            row.append(jsonish[NEUTRAL_META](meta, dumps) if meta else None)
        else:
            for k in meta_cols:
                v = meta.get(k)
                if v is not None and k in jsonish:
                    v = jsonish[k](v, dumps)
                row.append(v)
        if has_doc:
            row.append(r.document)
        if has_uri:
            row.append(r.uri)
        rows.append(row)
    return names, rows


def _index_ddl(idx: dict[str, Any], s: str, t: str) -> str | None:
    """The original definition, re-targeted at the new table (the name is left to PostgreSQL)."""
    m = re.search(r" USING (\w+) (.*)$", idx["definition"], re.S)
    if not m:
        return None
    unique = "UNIQUE " if idx["unique"] else ""
    return f"CREATE {unique}INDEX ON {_qi(s)}.{_qi(t)} USING {m.group(1)} {m.group(2)}"


def _pg_ddl(schema: CollectionSchema, s: str, t: str) -> tuple[list[str], list[str]]:
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
               for d in [_index_ddl(i, s, t)] if d]
    for col in sequences:     # after loading: the next generated value follows the largest one
        indexes.append(f"SELECT setval(pg_get_serial_sequence({_literal(table)}, "
                       f"{_literal(col)}), m) FROM (SELECT max({_qi(col)}) AS m FROM {table}) x "
                       "WHERE m IS NOT NULL")
    return ddl, indexes


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _neutral_select(marker: dict[str, Any], layout: dict[str, Any]) -> tuple[list[str], Any]:
    """SELECT expressions for a neutral table and the function turning a row into a Record."""
    by = layout["by_name"]
    dense = [(v["name"], by[v["column"]]["vector"], v["column"]) for v in marker["vectors"]]
    sparse = [(sp["name"], sp["column"]) for sp in marker["sparse"]]
    exprs = [_qi(NEUTRAL_ID)]
    exprs += [f"{SEND[kind]}({_qi(col)})" for _, kind, col in dense]
    exprs += [f"sparsevec_send({_qi(col)})" for _, col in sparse]
    exprs.append(f"{_qi(NEUTRAL_META)}::text")      # parsed here: exact, and no global loads
    has_doc, has_uri = bool(marker["documents"]), bool(marker["uris"])
    exprs += ([_qi(NEUTRAL_DOC)] if has_doc else []) + ([_qi(NEUTRAL_URI)] if has_uri else [])
    nd, ns = len(dense), len(sparse)
    mixed = marker["id_type"] in (IdType.UUID.value, IdType.UNKNOWN.value)

    def make(row: tuple) -> Record:
        rid = row[0]
        rec = Record(int(rid) if mixed and int_text(rid) else rid)
        for (name, kind, _), raw in zip(dense, row[1:1 + nd]):
            if raw is not None:
                rec.vectors[name] = _parse_dense(kind, raw)
        for (name, _), raw in zip(sparse, row[1 + nd:1 + nd + ns]):
            if raw is not None:
                rec.sparse[name] = _parse_sparse(raw)
        k = 1 + nd + ns
        text = row[k]
        if text is not None:
            meta = json.loads(text)
            if not isinstance(meta, dict):
                raise SourceError("a row's metadata in a vdedup neutral table is not a JSON "
                                  "object")
            rec.metadata = meta
        k += 1
        if has_doc:
            rec.document = row[k]
            k += 1
        if has_uri:
            rec.uri = row[k]
        return rec

    return exprs, make
