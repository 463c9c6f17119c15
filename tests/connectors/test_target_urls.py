"""A target URL that names a collection (index, class, table) is where a restore writes, for
every provider whose URL can name one; naming one while the snapshot holds several is a
usage error. Each restored copy is then checked with `vdedup verify` (counts, every record,
nearest-neighbour answers through the provider's own query API)."""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

import numpy as np
import pytest

from vdtest import require_module  # noqa: E402  (fails, not skips: tests/vdtest.py)
pinecone = require_module("pinecone")

from cross_sources import pg_database  # noqa: E402
from qdrant_rest_bridge import RestBridge  # noqa: E402
from vdtest import env_connector  # noqa: E402
from vdedup.connectors.pinecone import connector as pc_connector  # noqa: E402
from emulators.pinecone_emulator import PineconeEmulator  # noqa: E402
from emulators.weaviate_emulator import WeaviateEmulator  # noqa: E402
from vdtest import vdedup  # noqa: E402

API_KEY = "pc-key-target-urls"
N = 30


@pytest.fixture
def emulator(monkeypatch) -> Iterator[PineconeEmulator]:
    with PineconeEmulator(API_KEY) as emu:
        monkeypatch.setenv("PINECONE_API_KEY", API_KEY)
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", emu.url)
        monkeypatch.setattr(pc_connector, "POLL_INTERVAL", 0.05)
        yield emu


def _index(emu: PineconeEmulator, name: str, seed: int) -> Any:
    client = pinecone.Pinecone(api_key=API_KEY, host=emu.url)
    model = client.indexes.create(
        name=name, schema={"fields": {"_values": {"type": "dense_vector", "dimension": 8, "metric": "cosine"}}},
        deployment={"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}, timeout=-1)
    index = client.index(host=model.host)
    rng = np.random.default_rng(seed)
    index.upsert(vectors=[{"id": f"rec-{i:03d}", "values": rng.standard_normal(8).astype(np.float32).tolist(),
                           "metadata": {"title": f"t {i}", "page": float(i), "ok": i % 2 == 0}}
                          for i in range(N)])
    return index


def _json(capsys, *args: Any, code: int = 0) -> Any:
    capsys.readouterr()
    assert vdedup(*args) == code, capsys.readouterr().err[-2000:]
    return json.loads(capsys.readouterr().out)


def _collections(url: str) -> dict[str, int]:
    conn = env_connector(url)
    try:
        return {c: sum(conn.count(c, ns) for ns in conn.describe(c).namespaces) for c in conn.list_collections()}
    finally:
        conn.close()


def test_a_target_url_naming_a_collection_is_where_the_restore_writes(tmp_path, repo_path, emulator, capsys):
    src = _index(emulator, "bar-src", 1)
    repo = str(repo_path)
    assert vdedup("--repo", repo, "init") == 0
    snap = _json(capsys, "--repo", repo, "backup", "pinecone://bar-src", "--json")["snapshot_id"]
    src.delete(ids=[f"rec-{i:03d}" for i in range(5)])       # the live source changes afterwards

    pg = pg_database(f"turls{os.getpid()}")
    milvus = "milvus://" + os.environ["VDEDUP_TEST_MILVUS_URI"].split("://", 1)[1]
    mv_name = f"named_mv_{os.getpid()}"
    with RestBridge() as bridge, WeaviateEmulator() as wv:
        targets = [   # (URL naming the collection, where to list, the name)
            ("pinecone://bar-dst", "pinecone://", "bar-dst"),
            (f"qdrant+local://{tmp_path / 'qd'}?collection=named_qd", f"qdrant+local://{tmp_path / 'qd'}", "named_qd"),
            (f"{bridge.url}/named_qr", bridge.url, "named_qr"),
            (f"{milvus}/default/{mv_name}", f"{milvus}/default", mv_name),
            (f"weaviate://{wv.host}:{wv.port}/NamedWv", f"weaviate://{wv.host}:{wv.port}", "NamedWv"),
            (f"{pg}?table=named_pg", pg, "named_pg"),
            (f"chroma://{tmp_path / 'ch'}?collection=named_ch", f"chroma://{tmp_path / 'ch'}", "named_ch"),
        ]
        for url, where, name in targets:
            extra = ["--overwrite"] if url.startswith("pinecone") else []    # was the dangerous case
            out = _json(capsys, "--repo", repo, "restore", snap[:12], "--target", url, *extra, "--json")
            assert out["collections"] == {name: N}, url
            got = _collections(where)
            assert got.get(name) == N, (url, got)
            assert "bar-src" not in got or url.startswith("pinecone"), (url, got)   # not the snapshot's name
            report = _json(capsys, "--repo", repo, "verify", snap[:12], "--target", url, "--sample", str(N),
                           "--queries", "10", "--json")
            assert report["ok"] and report["recall_at_10"] == 1.0, (url, report["problems"])
            assert report["namespaces"][0]["sampled"] == N and report["namespaces"][0]["recall_method"] \
                == "target queries", url
        # the source index was left alone: still the 25 records it had when the restores began
        assert _collections("pinecone://") == {"bar-src": N - 5, "bar-dst": N}

        # an URL and --as naming different collections, or a URL naming one while the snapshot has
        # several: usage errors (exit 2), and nothing is created at the target
        assert vdedup("--repo", repo, "restore", snap[:12], "--target",
                      f"chroma://{tmp_path / 'ch2'}?collection=aaa", "--as", "bbb") == 2
        _index(emulator, "other-src", 2)
        both = _json(capsys, "--repo", repo, "backup", "pinecone://", "--json")["snapshot_id"]
        capsys.readouterr()
        assert vdedup("--repo", repo, "restore", both[:12], "--target",
                      f"qdrant+local://{tmp_path / 'qd2'}?collection=one") == 2
        err = capsys.readouterr().err
        assert "names one collection ('one')" in err and "'bar-src'" in err and "--collection" in err
        assert vdedup("--repo", repo, "restore", both[:12], "--target", f"{pg}?table=one") == 2
        assert not (tmp_path / "qd2").exists() and not (tmp_path / "ch2").exists()
        assert "one" not in _collections(pg)
        # --collection picks one: then the URL names where it goes
        out = _json(capsys, "--repo", repo, "restore", both[:12], "--collection", "other-src", "--target",
                    f"qdrant+local://{tmp_path / 'qd2'}?collection=one", "--json")
        assert out["collections"] == {"one": N}
