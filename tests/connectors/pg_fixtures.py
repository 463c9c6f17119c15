"""PostgreSQL helpers for the pgvector tests: the server from scripts/servers.sh, a fresh
database per test module, and a bit-exact reader of tables (vectors in pgvector's binary
send format, every other column with its Python type)."""
from __future__ import annotations

import contextlib
import os
import uuid
from typing import Any, Iterator

import pytest

ENV = ("VDEDUP_TEST_PG_HOST", "VDEDUP_TEST_PG_PORT", "VDEDUP_TEST_PG_USER")
SEND = {"vector": "vector_send", "halfvec": "halfvec_send", "sparsevec": "sparsevec_send",
        "bit": "varbit_send"}


def pg_settings() -> dict[str, str]:
    missing = [k for k in ENV if not os.environ.get(k)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not set: start the servers with "
                    "'bash scripts/servers.sh start' and source its env file", pytrace=False)
    return {k: os.environ[k] for k in ENV}


def connect(db: str = "postgres", **kw: Any):
    import psycopg

    s = pg_settings()
    conn = psycopg.connect(host=s["VDEDUP_TEST_PG_HOST"], port=int(s["VDEDUP_TEST_PG_PORT"]),
                           user=kw.pop("user", s["VDEDUP_TEST_PG_USER"]), dbname=db,
                           autocommit=True, **kw)
    conn.execute("SET TIME ZONE 'UTC'")
    return conn


def url(db: str, table: str | None = None, user: str | None = None) -> str:
    s = pg_settings()
    u = user or s["VDEDUP_TEST_PG_USER"]
    base = f"postgresql://{u}@{s['VDEDUP_TEST_PG_HOST']}:{s['VDEDUP_TEST_PG_PORT']}/{db}"
    return base + (f"?table={table}" if table else "")


@contextlib.contextmanager
def fresh_database(prefix: str = "vdedup_test") -> Iterator[str]:
    """A new database with the vector extension, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with connect() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with connect(name) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        yield name
    finally:
        with connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def columns(conn, table: str) -> list[tuple[str, str, bool]]:
    """(name, SQL type, NOT NULL) of every column, in order."""
    return [tuple(r) for r in conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (table,)).fetchall()]


def primary_key(conn, table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) "
        "WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.o", (table,)).fetchall()]


def indexes(conn, table: str) -> list[tuple]:
    """(access method, opclasses, columns, reloptions, unique) of every non-primary index."""
    rows = conn.execute("""
        SELECT am.amname,
               ARRAY(SELECT o.opcname FROM unnest(i.indclass::oid[]) WITH ORDINALITY u(oid, n)
                     JOIN pg_opclass o ON o.oid = u.oid ORDER BY u.n),
               ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o),
               coalesce(ic.reloptions, '{}'), i.indisunique
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
        WHERE i.indrelid = %s::regclass AND NOT i.indisprimary""", (table,)).fetchall()
    return sorted((r[0], tuple(r[1]), tuple(r[2]), tuple(sorted(r[3])), r[4]) for r in rows)


def read_table(conn, table: str) -> dict[tuple, dict[str, Any]]:
    """Every row: primary key values -> {column: value}, vectors as their exact binary form."""
    types = dict(conn.execute(
        "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (table,)).fetchall())
    names = [c[0] for c in columns(conn, table)]
    exprs = [f'{SEND[types[n]]}("{n}")' if types[n] in SEND else f'"{n}"' for n in names]
    pk = primary_key(conn, table)
    out = {}
    for row in conn.execute(f"SELECT {', '.join(exprs)} FROM {table}").fetchall():
        rec = dict(zip(names, row))
        out[tuple(rec[p] for p in pk)] = rec
    return out


def typed(v: Any) -> Any:
    """A value with its types visible all the way down (1 != 1.0, True != 1)."""
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [typed(x) for x in v]
    return (type(v).__name__, v)


def assert_same_tables(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b), "primary keys differ"
    for key in a:
        assert typed(a[key]) == typed(b[key]), f"row {key} differs"
