"""The portal's parts that need no browser: the plot, connection strings, the systemd timer's
next run, job progress, and discovery (engine/discovery.py) against an embedded Chroma."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from vdtest import require_module

from vdedup.errors import UsageError
from vdedup_portal.jobs import JobReporter
from vdedup_portal.pages.connect import read_connection, split_connection
from vdedup_portal.plot import Point, history_svg, nice_ticks
from vdedup_portal.schedule import parse_systemd_time

KIB = 1024


def test_nice_ticks() -> None:
    assert nice_ticks(637) == [0, 200, 400, 600, 800]
    assert nice_ticks(630) == [0, 200, 400, 600, 800]
    assert nice_ticks(4) == [0, 1, 2, 3, 4]
    assert nice_ticks(0) == [0.0, 1.0]
    assert nice_ticks(150 * KIB, binary=True) == [0, 50 * KIB, 100 * KIB, 150 * KIB]
    assert nice_ticks(3 * KIB * KIB, binary=True) == [0, KIB * KIB, 2 * KIB * KIB, 3 * KIB * KIB]
    for top in (1, 7, 99, 101, 12345, 5e9):
        ticks = nice_ticks(top)
        assert ticks[0] == 0 and ticks[-1] >= top and len(ticks) <= 6


def test_history_svg_draws_one_point_per_snapshot() -> None:
    t0 = dt.datetime(2026, 12, 1, 2, 15, tzinfo=dt.timezone.utc)
    points = [Point(t0 + dt.timedelta(days=i), f"<s{i}>", 1000 + 10 * i, 50_000 * (i + 1),
                    None if i == 0 else 20_000 * i) for i in range(3)]
    svg = str(history_svg(points))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert len(re.findall(r'<circle class="pt records"', svg)) == 3
    assert len(re.findall(r'<circle class="pt data"', svg)) == 3
    assert len(re.findall(r'<circle class="pt stored"', svg)) == 2        # unknown for the first
    assert "1,020 records" in svg and "&lt;s1&gt;" in svg and "<s1>" not in svg
    assert "2026-12-01" in svg and "2026-12-03" in svg                       # days apart: dates
    xs = [float(x) for x in re.findall(r'class="pt records"[^>]*cx="([\d.]+)"', svg)]
    assert xs == sorted(xs) and xs[0] < xs[1] < xs[2]
    assert str(history_svg([])) == ""
    single = str(history_svg(points[:1]))
    assert single.count('class="pt records"') == 1


def test_split_connection() -> None:
    assert split_connection("pinecone", "", "k") == ("pinecone://", "k")
    assert split_connection("pinecone", "rag-index", "k") == ("pinecone://rag-index", "k")
    assert split_connection("postgresql", "postgresql://app:s3cret@db.internal:5432/vectors?table=docs", None) == \
        ("postgresql://app@db.internal:5432/vectors?table=docs", "s3cret")
    assert split_connection("qdrant", "qdrant://q.internal:6333?api_key=abc", "") == ("qdrant://q.internal:6333", "abc")
    assert split_connection("qdrant", "qdrant://q.internal:6333?api_key=abc", "abc") == ("qdrant://q.internal:6333", "abc")
    assert split_connection("chroma", "chroma:///srv/chroma", None) == ("chroma:///srv/chroma", None)
    with pytest.raises(UsageError, match="holds a credential and the secret field another"):
        split_connection("qdrant", "qdrant://q:6333?api_key=abc", "other")
    with pytest.raises(UsageError, match="give the address"):
        split_connection("qdrant", " ", "k")
    with pytest.raises(UsageError, match="that is a qdrant address, not Milvus"):
        split_connection("milvus", "qdrant://q:6333", None)


def test_a_connection_string_in_the_secret_field() -> None:
    pasted = "postgresql://app:pw%3Awith%2Fodd@db.internal:5432/vectors?table=docs"
    assert read_connection("postgresql", "", pasted) == ("postgresql://app@db.internal:5432/vectors?table=docs",
                                                         "pw:with/odd")
    # with an address given, the field is the secret as typed, "://" or not
    assert read_connection("postgresql", "postgresql://app@db/v", "a://b") == ("postgresql://app@db/v", "a://b")
    # another provider's URL in the secret field is a secret, and the address is still missing
    with pytest.raises(UsageError, match="give the address"):
        read_connection("qdrant", "", "postgresql://app:pw@db/v")


def test_parse_systemd_time() -> None:
    assert parse_systemd_time("Thu 2026-12-03 02:15:00 UTC\n") == dt.datetime(2026, 12, 3, 2, 15, tzinfo=dt.timezone.utc)
    assert parse_systemd_time("") is None
    assert parse_systemd_time("n/a") is None
    local = parse_systemd_time("Thu 2026-12-03 02:15:00 CET")
    assert local is not None and local.tzinfo is not None


def test_job_reporter_progress() -> None:
    r = JobReporter()
    r.phase("backup a", 200)
    r.advance(50)
    r.advance(50)
    r.phase("backup b")                    # the previous one ends when the next begins
    r.advance(7)
    r.warn("careful")
    snap = r.snapshot()
    assert snap["phases"][0] == {"name": "backup a", "total": 200, "done": 100, "finished": True, "percent": 50}
    assert snap["phases"][1] == {"name": "backup b", "total": None, "done": 7, "finished": False, "percent": None}
    r.done()
    assert r.snapshot()["phases"][1]["percent"] == 100 and r.snapshot()["warnings"] == ["careful"]


def test_discover_embedded_chroma(tmp_path: Path) -> None:
    require_module("chromadb")
    from vdedup.engine.discovery import discover
    from vdtest import add_records, chroma_collection, make_records
    client, col = chroma_collection(tmp_path / "c", "docs", space="cosine")
    add_records(col, *make_records(40, dim=12))
    other = client.get_or_create_collection("notes", embedding_function=None,
                                            configuration={"hnsw": {"space": "l2"}})
    ids, emb, metas, docs, uris = make_records(5, dim=6, seed=3)
    other.add(ids=ids, embeddings=emb, metadatas=metas, documents=docs)
    del client, col, other
    found = {d.name: d for d in discover(f"chroma://{tmp_path / 'c'}")}
    assert set(found) == {"docs", "notes"}
    assert (found["docs"].provider, found["docs"].count, found["docs"].namespaces) == ("chroma", 40, ("",))
    assert found["notes"].count == 5


def test_portal_command(repo: Path, capsys: pytest.CaptureFixture) -> None:
    import socket

    from vdedup_cli.aiassets import run as backupengine
    from vdtest import vdedup
    assert backupengine(["portal", "--help"]) == 0
    assert "one-time link" in capsys.readouterr().out
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert vdedup("--repo", str(repo), "portal", "--port", str(port)) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
