"""Cross-provider restore, end to end through the CLI: a Chroma snapshot is restored into
each other provider (real engines or emulators), that collection is backed up, and the new
snapshot is restored back into Chroma. Where the plan says lossless the round trip is bit for
bit; where it says lossy, the plan named the loss and nothing else changed.

Each side is read through vdedup's own connectors, so records are compared provider-neutrally.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from vdedup.connectors import open_connector
from vdtest import add_records, chroma_collection, make_records, vdedup


def _records(url: str, name: str) -> dict:
    conn = open_connector(url)
    try:
        out = {}
        for ns in conn.describe(name).namespaces:
            for batch in conn.scan(name, ns, 500):
                for r in batch.records():
                    out[r.id] = r
        return out
    finally:
        conn.close()


def _json(capsys, *args):
    capsys.readouterr()
    code = vdedup(*args)
    captured = capsys.readouterr()
    assert code == 0, (code, captured.err[-2000:])
    return json.loads(captured.out)


@pytest.fixture
def chroma_snapshot(tmp_path, repo_path, capsys):
    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", None)                 # l2 (euclidean)
    ids, emb, metas, docs, uris = make_records(120, dim=16)
    metas = [None if m is None else {k: v for k, v in m.items() if k != "tags"} for m in metas]
    add_records(col, ids, emb, metas, docs, [None] * len(ids))
    vdedup("--repo", repo_path, "init")
    snap = _json(capsys, "--repo", repo_path, "backup", f"chroma://{src}", "--json")["snapshot_id"]
    return f"chroma://{src}", snap, _records(f"chroma://{src}", "docs")


def _pinecone(monkeypatch):
    from vdedup.connectors import pinecone as pc_connector
    from vdedup.testing.pinecone_emulator import PineconeEmulator
    emu = PineconeEmulator("pc-key-cross")
    emu.__enter__()
    monkeypatch.setenv("PINECONE_API_KEY", "pc-key-cross")
    monkeypatch.setenv("PINECONE_CONTROLLER_HOST", emu.url)
    monkeypatch.setattr(pc_connector, "POLL_INTERVAL", 0.05)
    return emu, "pinecone://", "docs-x"


def _weaviate(monkeypatch):
    from vdedup.testing.weaviate_emulator import WeaviateEmulator
    emu = WeaviateEmulator(api_keys=["wv-key-cross"])
    emu.__enter__()
    monkeypatch.setenv("WEAVIATE_API_KEY", "wv-key-cross")
    return emu, f"weaviate://{emu.host}:{emu.port}", "DocsX"


def _qdrant(tmp_path):
    return None, f"qdrant+local://{tmp_path / 'qdrant'}", "docs_x"


def _pgvector():
    host, port = os.environ.get("VDEDUP_TEST_PG_HOST"), os.environ.get("VDEDUP_TEST_PG_PORT")
    assert host and port, "VDEDUP_TEST_PG_* not set: start the servers with scripts/servers.sh"
    db = f"cross_{int(time.time() * 1000) % 10**9}"
    import psycopg
    with psycopg.connect(host=host, port=int(port), user="postgres", dbname="postgres", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {db}")
    with psycopg.connect(host=host, port=int(port), user="postgres", dbname=db, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return None, f"postgresql://postgres@{host}:{port}/{db}", "docs_x"


def _milvus():
    uri = os.environ.get("VDEDUP_TEST_MILVUS_URI")
    assert uri, "VDEDUP_TEST_MILVUS_URI not set: start the servers with scripts/servers.sh"
    return None, "milvus://" + uri.split("://", 1)[1], f"docs_x_{int(time.time() * 1000) % 10**9}"


TARGETS = ["qdrant", "pinecone", "weaviate"]   # pgvector and Milvus as targets of a foreign schema: see the note in docs/restore.md


@pytest.mark.parametrize("target", TARGETS)
def test_chroma_to_provider_and_back(target, tmp_path, repo_path, chroma_snapshot, capsys, monkeypatch):
    source_url, snap, original = chroma_snapshot
    emu, url, name = {"qdrant": lambda: _qdrant(tmp_path), "pinecone": lambda: _pinecone(monkeypatch),
                      "weaviate": lambda: _weaviate(monkeypatch), "pgvector": _pgvector,
                      "milvus": _milvus}[target]()
    try:
        out = _json(capsys, "--repo", repo_path, "restore", snap, "--target", url, "--as", name, "--json")
        plan = out["translation"][0]
        assert plan["source_provider"] == "chroma" and plan["errors"] == []
        lossy = [s["detail"] for s in plan["steps"] if not s["lossless"]]
        there = _records(url if target != "pinecone" else f"pinecone://{name}", name)
        assert len(there) == len(original)
        # back: back up the target, restore that snapshot into a new Chroma
        t_url = url if target in ("pinecone",) else url
        back_snap = _json(capsys, "--repo", repo_path, "backup", t_url, "--collection", name, "--json")["snapshot_id"]
        dst = tmp_path / "back"
        out2 = _json(capsys, "--repo", repo_path, "restore", back_snap, "--target", f"chroma://{dst}",
                     "--as", "docs", "--json")
        assert out2["translation"][0]["errors"] == []
        back = _records(f"chroma://{dst}", "docs")
        assert sorted(back) == sorted(original)                 # original string ids restored
        for rid, rec in original.items():
            got = back[rid]
            assert got.vectors[""].tobytes() == rec.vectors[""].tobytes(), (target, rid)
            assert got.document == rec.document, (target, rid)
            if lossy:
                # the only loss a plan may allow here: integers read back as floats (Pinecone)
                assert all("integers" in d or "null" in d for d in lossy), lossy
                want = {k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v)
                        for k, v in (rec.metadata or {}).items()}
                assert (got.metadata or {}) == want, (target, rid)
            else:
                assert json.dumps(got.metadata, sort_keys=True) == json.dumps(rec.metadata, sort_keys=True), \
                    (target, rid, got.metadata, rec.metadata)
                assert {k: type(v) for k, v in (got.metadata or {}).items()} == \
                    {k: type(v) for k, v in (rec.metadata or {}).items()}, (target, rid)
    finally:
        if emu is not None:
            emu.__exit__(None, None, None)
