"""PostgreSQL + pgvector connector (connector layer; depends only on model and errors).

    postgresql://USER@HOST:PORT/DB[?table=T|schema.T][&sslmode=...&sslrootcert=...]  (aliases: postgres, pgvector)

A host other than this machine is reached with `sslmode=verify-full` unless the URL names
another sslmode (`tls_params`); a local socket or loopback host keeps libpq's default.

The password is the secret of the credentials the connector is opened with (at the command
line `PGPASSWORD` holds it), never the URL. It is always passed to libpq explicitly, so libpq
never falls back to a `PGPASSWORD` of the process environment; without one, libpq's password
file (`~/.pgpass`, `PGPASSFILE`) is still consulted, as psql does. A collection is a table ("t" in schema public, "s.t" elsewhere); tables have one
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
  The layout (DDL, marker, schema, id and JSON rules) is in layout.py.

The modules beside this one: catalog.py (what the catalog says of a table, native schemas and
DDL), values.py (rows <-> records), layout.py (the neutral layout).
"""
from __future__ import annotations

import contextlib
import re
import sys
from typing import Any, ContextManager, Iterator

from ...errors import CollectionNotFound, SourceError, UsageError, VdedupError
from ...model import CollectionSchema, Partition, RecordBatch, RecordId
from ...model.partition import stride_ranges, whole
from ..common import (is_loopback, refuse_credentials, refuse_namespace, refuse_secret_params,
                      refuse_unknown_params, translated_errors)
from ..credentials import NO_CREDENTIALS, Credentials
from ..base import ConnectorBase
from ..url import SourceURL
from .descriptor import DESCRIPTOR
from .catalog import (TEXT_TYPES, qualified, read_layout, split, table_ddl, table_oid,
                      table_schema)
from .layout import NEUTRAL_LAYOUT, OWN_PROVIDERS, is_marker, neutral_ddl, neutral_schema
from .layout import quote_ident as _qi
from .values import copy_rows, native_batch, native_select, nearest_select, neutral_select, pk_values

DEFAULT_PORT = 5432
URL_QUERY_KEYS = {"table", "sslmode", "sslrootcert"}
SSLMODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
NO_NAMESPACES = ("PostgreSQL tables have no namespaces (got {namespace!r}); "
                 "map each namespace to its own table")


class PgvectorConnector(ConnectorBase):
    """One PostgreSQL database with the pgvector extension."""

    provider = "pgvector"
    descriptor = DESCRIPTOR
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
    def from_url(cls, u: SourceURL, credentials: Credentials = NO_CREDENTIALS) -> "PgvectorConnector":
        refuse_credentials(u, "PostgreSQL", "set PGPASSWORD or use ~/.pgpass", user_allowed=True)
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
        # "" (not absent) when there is no secret: libpq then skips PGPASSWORD, not ~/.pgpass
        params["password"] = credentials.secret or ""
        params.update(tls_params(u))
        import psycopg

        try:
            conn = psycopg.connect(autocommit=True, **params)
            conn.execute("SET TIME ZONE 'UTC'")
        except Exception as e:
            refused = "authentication failed" in str(e) or getattr(e, "sqlstate", None) in ("28P01", "28000")
            said = f" (the password from {credentials.origin})" if refused and credentials.present else ""
            raise SourceError(f"cannot connect to PostgreSQL at {where}: {_detail(e)}{said}") from e
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

    @property
    def url_collection(self) -> str | None:
        """The table the URL names (?table=T; a restore writes there)."""
        return self._table

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
        return table_schema(self.provider, collection, layout)

    def count(self, collection: str, namespace: str = "") -> int:
        refuse_namespace(namespace, NO_NAMESPACES)
        self._oid(collection)
        with self._errors("count", collection):
            return int(self._live().execute(
                f"SELECT count(*) FROM {qualified(collection)}").fetchone()[0])

    def partitions(self, collection: str, namespace: str = "", target_size: int = 100_000) -> list[Partition]:
        """Primary-key ranges of about target_size rows for a table with a single integer
        primary key (bounds at multiples of a power-of-two stride); the whole table else."""
        refuse_namespace(namespace, NO_NAMESPACES)
        layout = self._layout(collection, refresh=True)
        if layout["id_encoding"] != "int" or len(layout["pk"]) != 1:
            return [whole(namespace)]
        col = _qi(layout["pk"][0])
        with self._errors("count", collection):
            lo, hi, n = self._live().execute(
                f"SELECT min({col}), max({col}), count(*) FROM {qualified(collection)}").fetchone()
        if not n:
            return [whole(namespace, 0)]
        return stride_ranges(int(lo), int(hi), int(n), target_size, "pk", namespace)

    def scan_partition(self, collection: str, partition: Partition, batch_size: int = 1000) -> Iterator[RecordBatch]:
        lo, hi = partition.spec.get("lo"), partition.spec.get("hi")
        if not partition.key or (lo is None and hi is None):
            return self.scan(collection, partition.namespace, batch_size)
        return self.scan(collection, partition.namespace, batch_size, (lo, hi))

    def scan(self, collection: str, namespace: str = "",
             batch_size: int = 1000, pk_range: tuple[int | None, int | None] | None = None) -> Iterator[RecordBatch]:
        """`pk_range`: only the rows whose (single, integer) primary key is in [lo, hi)."""
        refuse_namespace(namespace, NO_NAMESPACES)
        if batch_size < 1:
            raise UsageError("batch size must be at least 1")
        layout = self._layout(collection, refresh=True)
        if not layout["pk"]:
            raise SourceError(f"table {collection} has no primary key")
        pk = layout["pk"]
        cols = [c for c in layout["columns"] if c["name"] not in pk and not c["generated"]]
        marker = layout["neutral"]
        if marker:
            exprs, make = neutral_select(marker, layout)
        else:
            exprs = native_select(layout, cols)
        sql = f"SELECT {', '.join(exprs)} FROM {qualified(collection)}"
        args: list[int] = []
        if pk_range is not None:
            conds = []
            for op, bound in ((">=", pk_range[0]), ("<", pk_range[1])):
                if bound is not None:
                    conds.append(f"{_qi(pk[0])} {op} %s")
                    args.append(int(bound))
            sql += " WHERE " + " AND ".join(conds)
        npk = len(pk)
        conn = self._live()
        with self._errors("scan", collection, data=True):
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                with conn.cursor(name="vdedup_scan", binary=True) as cur:
                    cur.itersize = batch_size
                    cur.execute(sql, args or None)
                    while True:
                        rows = cur.fetchmany(batch_size)
                        if not rows:
                            break
                        if marker:
                            yield RecordBatch.from_records([make(row) for row in rows])
                        else:
                            yield native_batch(rows, npk, layout["id_encoding"], cols)


    def query(self, collection: str, namespace: str, vector: Any, k: int,
              vector_name: str = "") -> list[RecordId]:
        """The ids of the k nearest rows through the vector column's index (values.nearest_select)."""
        refuse_namespace(namespace, NO_NAMESPACES)
        sql, params, make = nearest_select(self._layout(collection, refresh=True), collection, vector, k,
                                           vector_name)
        with self._errors("query", collection, data=True):
            return [make(row) for row in self._live().execute(sql, params).fetchall()]

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        s, t = split(name)
        if self.exists(name):
            raise SourceError(f"table {name} already exists at {self._where}")
        self._ensure_extension()
        own = schema.provider in OWN_PROVIDERS
        if own and is_marker(schema.extras.get(NEUTRAL_LAYOUT)):
            ddl, indexes = neutral_ddl(schema, s, t)     # a neutral table read back: again one
        elif own and schema.extras.get("columns"):
            ddl, indexes = table_ddl(schema, s, t)
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
        refuse_namespace(batch.namespace, NO_NAMESPACES)
        if not len(batch):
            return
        layout = self._layout(collection)
        if not layout["pk"]:
            raise SourceError(f"table {collection} has no primary key")
        import psycopg

        names, rows = copy_rows(layout, batch, collection, binary=True)
        oids = self._binary_oids(layout, names)
        if oids is None:                  # a column only its text form can fill: text COPY
            names, rows = copy_rows(layout, batch, collection, binary=False)
        target = qualified(collection)
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
        refuse_namespace(namespace, NO_NAMESPACES)
        layout = self._layout(collection)
        pk = layout["pk"]
        if not pk:
            raise SourceError(f"table {collection} has no primary key")
        keys = [pk_values(layout, rid) for rid in ids]
        match = " AND ".join(f"{_qi(p)} = %s::{layout['by_name'][p]['type']}" for p in pk)
        with self._errors("delete", collection, data=True), self._live().transaction():
            with self._live().cursor() as cur:
                cur.executemany(f"DELETE FROM {qualified(collection)} WHERE {match}", keys)

    # --------------------------------------------------------------- catalog

    def _live(self) -> Any:
        if self._conn is None:
            raise SourceError(f"the PostgreSQL connection to {self._where} is closed")
        return self._conn

    def _oid(self, collection: str) -> int:
        with self._errors("look up table", collection):
            oid = table_oid(self._live(), collection)
        if oid is None:
            raise CollectionNotFound(f"table {collection} not found in {self._where}")
        return oid


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
        layout = read_layout(self._live(), collection, oid,
                             lambda: self._errors("describe", collection))
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


def tls_params(u: SourceURL) -> dict[str, str]:
    """libpq's TLS settings: what the URL says (sslmode, sslrootcert); otherwise, for a host
    that is not this machine, `verify-full` (encrypted, and the server's certificate checked
    against the host name), not libpq's own `prefer`, which falls back to clear text and
    checks no certificate. A local socket or a loopback host keeps libpq's default."""
    out: dict[str, str] = {}
    mode = u.query.get("sslmode")
    if mode is not None and mode not in SSLMODES:
        raise UsageError(f"unknown sslmode {mode!r} (one of {', '.join(sorted(SSLMODES))})")
    if u.query.get("sslrootcert"):
        out["sslrootcert"] = u.query["sslrootcert"]
    if mode:
        out["sslmode"] = mode
    elif u.host and not u.host.startswith("/") and not is_loopback(u.host):
        out["sslmode"] = "verify-full"
    return out


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
