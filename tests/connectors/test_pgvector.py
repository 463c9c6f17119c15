"""pgvector connector against the real PostgreSQL 18 + pgvector from scripts/servers.sh.

Every test module gets its own database. Round trips go through the real CLI and compare
each restored table with the source, row by row and bit for bit (vectors in pgvector's
binary send format, every other value with its Python type), plus column types and indexes.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any

import numpy as np
import pytest

from vdtest import require_module  # noqa: E402  (fails, not skips: tests/vdtest.py)
psycopg = require_module("psycopg")
from psycopg import sql  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from pg_fixtures import (assert_same_tables, columns, connect, fresh_database,  # noqa: E402
                         indexes, pg_settings, read_table, url)
from vdtest import repo_bytes, vdedup, vdedup_proc  # noqa: E402

from vdedup.connectors import open_connector  # noqa: E402
from vdedup.errors import CollectionNotFound, SourceError, UsageError  # noqa: E402
from vdedup.model import CollectionSchema, IdType, Metric  # noqa: E402

N_ITEMS = 3000
ITEMS_DDL = """
CREATE TABLE items (
    id text PRIMARY KEY, emb vector(64), h halfvec(16), sp sparsevec(1000), b bit(64),
    i int, big bigint NOT NULL, num numeric(12, 2), r real, dbl double precision, t text,
    ok bool, j jsonb, ts timestamptz, d date, u uuid, tags text[] DEFAULT '{}')"""
ITEMS_INDEXES = [
    "CREATE INDEX items_emb_hnsw ON items USING hnsw (emb vector_cosine_ops) "
    "WITH (m = 12, ef_construction = 40)",
    "CREATE INDEX items_h_ivf ON items USING ivfflat (h halfvec_l2_ops) WITH (lists = 10)",
    "CREATE INDEX items_b_hnsw ON items USING hnsw (b bit_hamming_ops)",
    "CREATE INDEX items_i ON items (i)",
]


# ------------------------------------------------------------------ test data


def vec_text(a: np.ndarray) -> str:
    return "[" + ",".join(repr(float(x)) for x in a) + "]"


def item_row(i: int, rng: np.random.Generator) -> list[Any]:
    emb = None if i % 13 == 0 else vec_text(rng.standard_normal(64).astype(np.float32))
    h = None if i % 7 == 0 else vec_text(rng.standard_normal(16).astype(np.float16))
    sp = None
    if i % 5:
        nnz = int(rng.integers(0, 20))
        idx = np.sort(rng.choice(1000, nnz, replace=False))
        vals = rng.standard_normal(nnz).astype(np.float32)
        vals[vals == 0] = 1.0
        sp = "{" + ",".join(f"{k + 1}:{float(v)!r}" for k, v in zip(idx, vals)) + "}/1000"
    b = None if i % 11 == 0 else "".join(rng.choice(["0", "1"], 64))
    meta_null = i % 17 == 0
    return [
        f"item-{i:05d}", emb, h, sp, b,
        None if meta_null else i - 1500,
        2**40 + i,
        None if meta_null else decimal.Decimal(f"{i}.{i % 100:02d}"),
        None if meta_null else float(np.float32(rng.standard_normal())),
        None if meta_null else float(rng.standard_normal()),
        None if meta_null else f"text {i} ü 😀 \t tab",
        None if meta_null else i % 2 == 0,
        None if meta_null else Jsonb({"n": i, "nested": {"list": [1, "x", None, 2.5, True],
                                                          "deep": {"k": f"v{i}"}}}),
        None if meta_null else dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        + dt.timedelta(seconds=i * 3601, microseconds=i),
        None if meta_null else dt.date(2020, 1, 1) + dt.timedelta(days=i),
        None if meta_null else uuid.UUID(int=i * 7919 + 1),
        None if meta_null else [f"t{i % 3}", f"t{i % 5}", "with,comma", 'q"uote'],
    ]


def copy_rows(conn, table: str, rows: list[list[Any]], cols: str = "") -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} {cols} FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


@pytest.fixture(scope="module")
def db():
    pg_settings()
    with fresh_database("vdedup_pgv") as name:
        with connect(name) as conn:
            conn.execute(ITEMS_DDL)
            rng = np.random.default_rng(7)
            copy_rows(conn, "items", [item_row(i, rng) for i in range(N_ITEMS)])
            for ddl in ITEMS_INDEXES:
                conn.execute(ddl)
            conn.execute("CREATE TYPE mood AS ENUM ('happy', 'sad')")
            conn.execute("CREATE TABLE pairs (tenant text, n int, emb vector(8), note text, "
                         "seq bigserial, addr inet, m mood, span int4range, moods mood[], "
                         "PRIMARY KEY (tenant, n))")
            copy_rows(conn, "pairs", [[f"tenant-{k % 3}", k, vec_text(
                rng.standard_normal(8).astype(np.float32)), f"note {k}", f"10.0.{k}.1/24",
                ("happy", "sad")[k % 2], f"[{k},{k + 10})", "{sad,happy}"] for k in range(200)],
                "(tenant, n, emb, note, addr, m, span, moods)")
            conn.execute("CREATE SCHEMA app")
            conn.execute("CREATE TABLE app.events (id bigint PRIMARY KEY, emb vector(8), "
                         "sp sparsevec(50), payload jsonb)")
            copy_rows(conn, "app.events", [
                [2**62 + k, vec_text(rng.standard_normal(8).astype(np.float32)),
                 "{%d:%r}/50" % (k % 50 + 1, float(np.float32(k / 3 + 0.1))),
                 Jsonb([k, {"a": None}])] for k in range(200)])
            conn.execute("CREATE INDEX ON app.events USING hnsw (sp sparsevec_ip_ops)")
            conn.execute("CREATE TABLE plain (id int PRIMARY KEY, t text)")   # no vector column
            conn.execute("CREATE TABLE parted (id int, region text, emb halfvec(4), "
                         "PRIMARY KEY (id, region)) PARTITION BY LIST (region)")
            conn.execute("CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu')")
            conn.execute("CREATE TABLE parted_rest PARTITION OF parted DEFAULT")
            conn.execute("CREATE INDEX ON parted USING hnsw (emb halfvec_l1_ops)")
            copy_rows(conn, "parted", [[k, ("eu", "us", "jp")[k % 3], vec_text(
                rng.standard_normal(4).astype(np.float16))] for k in range(90)])
        yield name


def _json_out(capsys, *args: Any) -> dict:
    capsys.readouterr()
    code = vdedup(*args)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


# ------------------------------------------------------------------ schema and types


def test_describe_reads_types_dims_indexes_and_metrics(db):
    con = open_connector(url(db))
    try:
        assert con.list_collections() == ["app.events", "items", "pairs", "parted"]
        parted = con.describe("parted")
        assert parted.extras["partition_by"] == "LIST (region)"
        assert [p["name"] for p in parted.extras["partitions"]] == ["parted_eu", "parted_rest"]
        assert parted.vectors[0].metric == Metric.MANHATTAN and con.count("parted") == 90
        s = con.describe("items")
        assert s.id_type == IdType.STRING and s.namespaces == ("",)
        v = {f.name: f for f in s.vectors}
        assert (v["emb"].dim, v["emb"].dtype, v["emb"].metric) == (64, "float32", Metric.COSINE)
        assert v["emb"].index["m"] == 12 and v["emb"].index["ef_construction"] == 40
        assert v["emb"].index["kind"] == "hnsw"
        assert (v["h"].dim, v["h"].dtype, v["h"].metric) == (16, "float16", Metric.EUCLIDEAN)
        assert v["h"].index["lists"] == 10 and v["h"].index["kind"] == "ivfflat"
        assert (v["b"].dim, v["b"].dtype, v["b"].metric) == (64, "binary", Metric.HAMMING)
        (sp,) = s.sparse
        assert sp.name == "sp" and sp.index["dim"] == 1000 and sp.metric == Metric.UNKNOWN
        types = {c["name"]: c["type"] for c in s.extras["columns"]}
        assert types["num"] == "numeric(12,2)" and types["tags"] == "text[]"
        assert types["ts"] == "timestamp with time zone"
        assert s.extras["primary_key"] == [{"name": "id", "type": "text"}]
        assert CollectionSchema.from_dict(json.loads(json.dumps(s.to_dict()))) == s
        assert con.describe("pairs").extras["id_encoding"] == "json"
        events = con.describe("app.events")
        assert events.id_type == IdType.INT and events.sparse[0].metric == Metric.DOT

        batch = next(con.scan("items", batch_size=50))
        rec = next(r for r in batch.records() if r.id == "item-00001")
        assert set(rec.vectors) == {"emb", "h", "b"} and set(rec.sparse) == {"sp"}
        assert rec.vectors["emb"].dtype == np.float32 and rec.vectors["h"].dtype == np.float16
        assert rec.vectors["b"].dtype == np.uint8 and rec.vectors["b"].shape == (8,)
        m = rec.metadata
        assert {k: type(m[k]) for k in ("i", "big", "num", "r", "dbl", "t", "ok", "j", "ts",
                                        "d", "u", "tags")} == {
            "i": int, "big": int, "num": decimal.Decimal, "r": float, "dbl": float, "t": str,
            "ok": bool, "j": dict, "ts": dt.datetime, "d": dt.date, "u": uuid.UUID, "tags": list}
        none = next(r for b in con.scan("items") for r in b.records() if r.id == "item-00000")
        assert none.vectors == {} and none.sparse == {}      # NULL vectors are absent
        assert con.count("items") == N_ITEMS
        with pytest.raises(CollectionNotFound):
            con.describe("nope")
    finally:
        con.close()


# ------------------------------------------------------------------ nightly round trip


def test_backup_change_backup_restore_each_snapshot_bit_for_bit(db, tmp_path, capsys):
    repo = tmp_path / "repo"
    assert vdedup("--repo", repo, "init") == 0
    src = connect(db)
    state1 = read_table(src, "items")
    first = _json_out(capsys, "--repo", repo, "backup", url(db, "items"), "--json")
    assert first["records"] == N_ITEMS and first["added"] == N_ITEMS
    size1 = repo_bytes(repo)

    # change: vectors of 30 rows, metadata only of 40 rows, 20 inserts, 10 deletes
    rng = np.random.default_rng(99)
    vec_ids = [f"item-{i:05d}" for i in range(1, 400, 13 + 0) if i % 13][:30]
    meta_ids = [f"item-{i:05d}" for i in range(1000, 1400, 10)][:40]
    del_ids = [f"item-{i:05d}" for i in range(2000, 2100, 10)]
    with src.transaction():
        for rid in vec_ids:
            src.execute("UPDATE items SET emb = %s WHERE id = %s",
                        (vec_text(rng.standard_normal(64).astype(np.float32)), rid))
        src.execute("UPDATE items SET t = coalesce(t, '') || ' edited', "
                    "j = jsonb_set(coalesce(j, '{}'), '{edited}', 'true') WHERE id = ANY(%s)",
                    (meta_ids,))
        copy_rows(src, "items", [item_row(i, rng) for i in range(N_ITEMS, N_ITEMS + 20)])
        src.execute("DELETE FROM items WHERE id = ANY(%s)", (del_ids,))
    state2 = read_table(src, "items")

    second = _json_out(capsys, "--repo", repo, "backup", url(db, "items"), "--json")
    assert second["records"] == N_ITEMS + 20 - 10
    assert (second["added"], second["changed"], second["deleted"]) == (20, 70, 10)
    assert second["unchanged"] == N_ITEMS - 80
    assert second["vector_blobs_new"] == 30 + 20          # only the rows whose vectors changed
    grown = repo_bytes(repo) - size1      # also counts files beside the data (locks, logs)
    assert 0 < second["bytes_added"] <= grown < size1 * 0.05, (second["bytes_added"], grown, size1)
    # 50 vector payloads of ~600 bytes, 70 changed metadata rows, manifests: far below 64 KiB
    assert second["bytes_added"] < 64 * 1024

    snaps = _json_out(capsys, "--repo", repo, "snapshots", "--json")
    ids = [s["id"] for s in (snaps if isinstance(snaps, list) else snaps["snapshots"])]
    assert len(ids) == 2
    for n, (snap, state) in enumerate(zip(ids, (state1, state2)), 1):
        target = f"items_restored_{n}"
        assert vdedup("--repo", repo, "restore", snap[:12], "--target", url(db),
                      "--as", target) == 0
        assert_same_tables(state, read_table(src, target))
        assert columns(src, target) == columns(src, "items")
        assert indexes(src, target) == indexes(src, "items")
        default = src.execute("SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d "
                              "WHERE d.adrelid = %s::regclass", (target,)).fetchone()
        assert default == ("'{}'::text[]",)

    # --overwrite replaces the records the snapshot holds and leaves others alone
    src.execute("UPDATE items_restored_1 SET t = 'changed', emb = NULL WHERE id = 'item-00001'")
    src.execute("INSERT INTO items_restored_1 (id, big) VALUES ('extra', 1)")
    assert vdedup("--repo", repo, "restore", ids[0][:12], "--target", url(db),
                  "--as", "items_restored_1", "--overwrite") == 0
    after = read_table(src, "items_restored_1")
    assert after.pop(("extra",))["big"] == 1
    assert_same_tables(state1, after)
    src.execute("DROP TABLE items_restored_1, items_restored_2")
    src.close()


def test_all_tables_composite_and_bigint_keys_schema_qualified(db, tmp_path, capsys):
    repo = tmp_path / "repo"
    assert vdedup("--repo", repo, "init") == 0
    out = _json_out(capsys, "--repo", repo, "backup", url(db), "--json")
    got = out["collections"]
    assert {"app.events", "items", "pairs", "parted"} <= set(got) and "plain" not in got
    assert not {"parted_eu", "parted_rest"} & set(got)
    assert (got["app.events"], got["pairs"], got["parted"]) == (200, 200, 90)
    src = connect(db)
    for name, target in (("pairs", "pairs_r"), ("app.events", "app.events_r"),
                         ("parted", "parted_r")):
        assert vdedup("--repo", repo, "restore", "latest", "--target", url(db),
                      "--collection", name, "--as", target) == 0
        assert_same_tables(read_table(src, name), read_table(src, target))
        assert columns(src, target) == columns(src, name)
        assert indexes(src, target) == indexes(src, name)
    assert src.execute("SELECT min(id) FROM app.events_r").fetchone()[0] == 2**62
    con = open_connector(url(db))
    rec = next(next(con.scan("pairs", batch_size=5)).records())
    con.close()
    assert {k: type(rec.metadata[k]) for k in ("addr", "m", "span", "moods", "seq")} == {
        "addr": str, "m": str, "span": str, "moods": str, "seq": int}   # text forms, exact
    parts = src.execute("SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits h "
                        "JOIN pg_class c ON c.oid = h.inhrelid "
                        "WHERE h.inhparent = 'parted_r'::regclass ORDER BY 1").fetchall()
    assert parts == [("parted_r_eu", "FOR VALUES IN ('eu')"), ("parted_r_rest", "DEFAULT")]
    assert src.execute("SELECT count(*) FROM parted_r_eu").fetchone()[0] == 30
    # the serial column keeps numbering after the restored rows
    seq = src.execute("INSERT INTO pairs_r (tenant, n) VALUES ('new', 1) RETURNING seq")
    assert seq.fetchone()[0] == 201
    src.close()


# ------------------------------------------------------------------ bad input


@pytest.fixture(scope="module")
def bad_db():
    with fresh_database("vdedup_pgv_bad") as name:
        with connect(name) as conn:
            conn.execute("CREATE TABLE nopk (id int, emb vector(3))")
            conn.execute("INSERT INTO nopk VALUES (1, '[1,2,3]')")
            conn.execute("CREATE TABLE tiny (id int PRIMARY KEY, emb vector(3))")
            conn.execute("INSERT INTO tiny VALUES (1, '[1,2,3]')")
        yield name


@pytest.fixture
def inited_repo(tmp_path):
    repo = tmp_path / "repo"
    assert vdedup("--repo", repo, "init") == 0
    return repo


def _fails(repo, code: int, *args: str, env: dict | None = None) -> str:
    p = vdedup_proc("--repo", repo, *args, env=env)
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    return p.stderr


def test_bad_input_exit_codes(bad_db, inited_repo, closed_port):
    s = pg_settings()
    host = s["VDEDUP_TEST_PG_HOST"]
    err = _fails(inited_repo, 15, "backup", f"postgresql://postgres@{host}:{closed_port}/x")
    assert "cannot connect" in err
    err = _fails(inited_repo, 15, "backup", url(bad_db, "missing_table"))
    assert "missing_table" in err and "not found" in err
    err = _fails(inited_repo, 15, "backup", url(bad_db, "nopk"))
    assert "no primary key" in err
    err = _fails(inited_repo, 15, "backup", url("no_such_database_x", "tiny"))
    assert "no_such_database_x" in err
    err = _fails(inited_repo, 2, "backup",
                 f"postgresql://postgres:s3cr3t-pw@{host}:{s['VDEDUP_TEST_PG_PORT']}/{bad_db}")
    assert "s3cr3t-pw" not in err and "PGPASSWORD" in err


def test_wrong_password_is_refused(bad_db, inited_repo):
    """A role with a SCRAM password, and a pg_hba rule for it placed before the trust rules."""
    role = "vdedup_pw_role"
    with connect() as admin:
        hba = admin.execute("SHOW hba_file").fetchone()[0]
        original = admin.execute("SELECT pg_read_file(%s)", (hba,)).fetchone()[0]
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right-pw-123'")
        with connect(bad_db) as conn:
            conn.execute(f"GRANT SELECT ON tiny TO {role}")

        def write_hba(text: str) -> None:
            lines = text.replace("\t", " ").split("\n")
            admin.execute(sql.SQL("COPY (SELECT line FROM unnest({}::text[]) WITH ORDINALITY "
                                  "u(line, n) ORDER BY n) TO {}").format(
                sql.Literal(lines), sql.Literal(hba)))
            admin.execute("SELECT pg_reload_conf()")

        try:
            write_hba(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + original)
            target = url(bad_db, "tiny", user=role)
            err = _fails(inited_repo, 15, "backup", target, env={"PGPASSWORD": "wrong-pw-456"})
            assert "password authentication failed" in err and "wrong-pw" not in err
            ok = vdedup_proc("--repo", inited_repo, "backup", target,
                             env={"PGPASSWORD": "right-pw-123"})
            assert ok.returncode == 0, ok.stderr
            assert "right-pw" not in ok.stderr + ok.stdout
        finally:
            write_hba(original.rstrip("\n"))
            with connect(bad_db) as conn:
                conn.execute(f"REVOKE ALL ON tiny FROM {role}")
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_connector_errors_and_url_rules(bad_db):
    con = open_connector(url(bad_db))
    try:
        assert con.list_collections() == ["nopk", "tiny"]
        with pytest.raises(SourceError, match="no primary key"):
            con.describe("nopk")
        with pytest.raises(CollectionNotFound):
            con.count("nope")
        assert not con.exists("nope") and con.exists("tiny")
        schema = con.describe("tiny")
        with pytest.raises(SourceError, match="already exists"):
            con.create_collection(schema, "tiny")
    finally:
        con.close()
    with pytest.raises(UsageError):
        open_connector(url(bad_db) + "?bogus=1")
    with pytest.raises(UsageError):
        open_connector("postgresql://postgres@127.0.0.1:1/")


def test_schema_from_another_provider_and_delete(bad_db):
    """A Chroma-like schema: id text, one unnamed vector, JSON metadata, documents, uris."""
    from vdedup.model import Record, RecordBatch, SparseField, SparseVector, VectorField

    schema = CollectionSchema(
        provider="chroma", name="docs", id_type=IdType.STRING,
        vectors=(VectorField("", 4, Metric.COSINE), VectorField("half", 2, Metric.DOT, "float16")),
        sparse=(SparseField("kw", index={"dim": 100}),), has_documents=True, has_uris=True)
    rng = np.random.default_rng(3)
    records = [Record(f"d{i}", {"": rng.standard_normal(4).astype(np.float32),
                                "half": rng.standard_normal(2).astype(np.float16)},
                      {"kw": SparseVector([i, 50], [0.5, float(i)])} if i % 2 else {},
                      {"n": i, "when": f"2024-01-{i + 1:02d}", "tags": ["a", None]} if i else None,
                      f"doc {i}", None if i % 3 else f"s3://b/{i}") for i in range(6)]
    con = open_connector(url(bad_db))
    try:
        con.create_collection(schema, "from_chroma")
        con.write("from_chroma", RecordBatch.from_records(records))
        con.finish("from_chroma")
        with connect(bad_db) as conn:
            got = read_table(conn, "from_chroma")
            assert [c[:2] for c in columns(conn, "from_chroma")] == [
                ("id", "text"), ("embedding", "vector(4)"), ("half", "halfvec(2)"),
                ("kw", "sparsevec(100)"), ("metadata", "json"), ("document", "text"),
                ("uri", "text")]
            assert [i[:2] for i in indexes(conn, "from_chroma")] == [
                ("hnsw", ("halfvec_ip_ops",)), ("hnsw", ("vector_cosine_ops",))]
        assert got[("d1",)]["metadata"] == {"n": 1, "when": "2024-01-02", "tags": ["a", None]}
        assert got[("d0",)]["metadata"] is None and got[("d3",)]["uri"] == "s3://b/3"
        back = {r.id: r for b in con.scan("from_chroma") for r in b.records()}
        for r in records:
            b = back[r.id]
            assert b.vectors[""].tobytes() == r.vectors[""].tobytes()
            assert b.vectors["half"].tobytes() == r.vectors["half"].tobytes()
            assert b.sparse == r.sparse and b.metadata == r.metadata
            assert (b.document, b.uri) == (r.document, r.uri)
        with pytest.raises(UsageError, match="date value"):      # JSON has no dates
            con.write("from_chroma", RecordBatch.from_records(
                [Record("dx", {"": np.ones(4, np.float32)}, {}, {"when": dt.date(2024, 1, 1)})]))
        con.delete("from_chroma", ["d1", "d2"])
        assert con.count("from_chroma") == 4
        pairs = con.describe("tiny")
        assert pairs.id_type == IdType.INT
        con.create_collection(pairs, "tiny_copy")
        con.write("tiny_copy", next(con.scan("tiny")))
        con.delete("tiny_copy", [1])
        assert con.count("tiny_copy") == 0
    finally:
        con.close()
