"""End to end through the CLI on an embedded Chroma: nightly backups store only what
changed, and every snapshot restores bit for bit."""
import json

import numpy as np
import pytest

from vdtest import (add_records, assert_same_records, chroma_collection, make_records, read_all,
                    repo_bytes, vdedup)


def _json_out(capsys, *args):
    capsys.readouterr()
    assert vdedup(*args) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(params=["l2"])
def source(tmp_path, request):
    # Chroma returns l2 and ip vectors exactly as written; cosine collections perturb them
    # by a few ulp on every write (see test_cosine_collections_restore_within_chroma_rounding)
    src = tmp_path / "src"
    client, col = chroma_collection(src, "docs", request.param)
    add_records(col, *make_records(3000, dim=96))
    return src, col


@pytest.mark.parametrize("source", ["l2", "ip"], indirect=True)
def test_nightly_backups_restore_every_snapshot_exactly(tmp_path, repo_path, source, capsys):
    src, col = source
    assert vdedup("--repo", repo_path, "init") == 0
    states = [read_all(src, "docs")]
    first = _json_out(capsys, "--repo", repo_path, "backup", f"chroma://{src}", "--tag", "night-1", "--json")
    assert first["records"] == 3000 and first["added"] == 3000

    # night 2: 1% vectors updated, 1% added, 0.5% deleted, some metadata and documents edited
    rng = np.random.default_rng(9)
    ids = sorted(states[0])
    upd = ids[:30]
    col.update(ids=upd, embeddings=rng.standard_normal((30, 96)).astype(np.float32))
    add_records(col, *make_records(30, dim=96, seed=5, start=10_000))
    col.delete(ids=ids[100:115])
    col.update(ids=ids[200:210], metadatas=[{"source": "edited", "page": 1.5, "ok": None if False else True}] * 10)
    keep = col.get(ids=ids[300:305], include=["embeddings"])      # Chroma re-embeds documents
    col.update(ids=keep["ids"], documents=["new text"] * 5,        # unless embeddings are given
               embeddings=np.asarray(keep["embeddings"]).astype(np.float32))
    states.append(read_all(src, "docs"))
    second = _json_out(capsys, "--repo", repo_path, "backup", f"chroma://{src}", "--json")
    assert second["added"] == 30 and second["deleted"] == 15
    assert second["changed"] == 30 + 10 + 5
    assert second["parent"] == first["snapshot_id"]

    # night 3: nothing changed
    third = _json_out(capsys, "--repo", repo_path, "backup", f"chroma://{src}", "--json")
    assert third["changed"] == third["added"] == third["deleted"] == 0
    assert third["bytes_added"] < 4096

    snaps = _json_out(capsys, "--repo", repo_path, "snapshots", "--json")
    assert [s["id"] for s in snaps] == [first["snapshot_id"], second["snapshot_id"], third["snapshot_id"]]
    assert snaps[0]["tags"] == ["night-1"] and snaps[0]["collections"] == {"docs": 3000}
    assert snaps[1]["collections"] == {"docs": 3015}
    assert all(s["source"] == f"chroma://{src}" and "time" in s for s in snaps)

    for i, snap in enumerate(snaps[:2]):
        dst = tmp_path / f"dst{i}"
        assert vdedup("--repo", repo_path, "restore", snap["id"][:10], "--target", f"chroma://{dst}") == 0
        assert_same_records(states[i], read_all(dst, "docs"))
    # restore under another name, into the same target, from 'latest'
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"chroma://{tmp_path / 'dst0'}",
                  "--as", "docs-latest") == 0
    assert_same_records(states[1], read_all(tmp_path / "dst0", "docs-latest"))


def test_incremental_bytes_added(tmp_path, repo_path, source, capsys):
    src, col = source
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"chroma://{src}") == 0
    size1 = repo_bytes(repo_path)
    # change the vectors of 50 records: about 50 * 96 * 4 bytes of new data
    ids = sorted(read_all(src, "docs"))[:50]
    col.update(ids=ids, embeddings=np.random.default_rng(3).standard_normal((50, 96)).astype(np.float32))
    out = _json_out(capsys, "--repo", repo_path, "backup", f"chroma://{src}", "--json")
    added = repo_bytes(repo_path) - size1
    assert out["changed"] == 50
    assert added < 50 * 96 * 4 + 12_000, added      # the vectors, a small delta, index and snapshot
    assert added > 50 * 96 * 4 * 0.8                 # and the new vectors really are stored
    # a metadata-only change on 300 records adds far less than their vectors would
    ids = sorted(read_all(src, "docs"))[500:800]
    col.update(ids=ids, metadatas=[{"source": "x", "page": 7, "score": 0.5, "ok": False, "tags": ["a"]}] * 300)
    size2 = repo_bytes(repo_path)
    out = _json_out(capsys, "--repo", repo_path, "backup", f"chroma://{src}", "--json")
    assert out["changed"] == 300 and out["vector_blobs_new"] == 0
    assert repo_bytes(repo_path) - size2 < 8_000


def test_ls_and_stats(repo_path, source, capsys):
    src, _ = source
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"chroma://{src}") == 0
    assert vdedup("--repo", repo_path, "backup", f"chroma://{src}") == 0
    ls = _json_out(capsys, "--repo", repo_path, "ls", "latest", "--json")
    coll = ls["collections"][0]
    assert coll["name"] == "docs" and coll["count"] == 3000
    vec = coll["schema"]["vectors"][0]
    assert vec["dim"] == 96 and vec["metric"] == "euclidean" and vec["dtype"] == "float32"
    types = {m["name"]: m["type"] for m in coll["schema"]["metadata_fields"]}
    assert types == {"source": "str", "page": "int", "score": "float", "ok": "bool", "tags": "list"}
    st = _json_out(capsys, "--repo", repo_path, "stats", "--json")
    assert st["snapshots"] == 2 and st["records"] == 6000
    assert st["dedup_ratio"] > 1.9                  # two identical snapshots stored once
    assert st["logical_bytes"] > st["unique_bytes"] > st["pack_bytes"] > 0


def test_restore_refuses_non_empty_target_and_overwrite_upserts(tmp_path, repo_path, source, capsys):
    src, col = source
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"chroma://{src}") == 0
    before = read_all(src, "docs")
    col.delete(ids=sorted(before)[:100])
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"chroma://{src}") == 16
    assert len(read_all(src, "docs")) == 2900                          # nothing written
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"chroma://{src}", "--overwrite") == 0
    assert_same_records(before, read_all(src, "docs"))


def test_collections_selected_and_missing(tmp_path, repo_path, source, capsys):
    src, _ = source
    client, other = chroma_collection(src, "other", None)      # Chroma's default space: l2
    add_records(other, *make_records(50, dim=8, seed=2))
    assert vdedup("--repo", repo_path, "init") == 0
    out = _json_out(capsys, "--repo", repo_path, "backup", f"chroma://{src}", "--collection", "other", "--json")
    assert out["collections"] == {"other": 50}
    ls = _json_out(capsys, "--repo", repo_path, "ls", "latest", "--json")
    assert ls["collections"][0]["schema"]["vectors"][0]["metric"] == "euclidean"
    assert vdedup("--repo", repo_path, "backup", f"chroma://{src}", "--collection", "nope") == 15
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"chroma://{tmp_path / 'd'}",
                  "--collection", "docs") == 14
    out = _json_out(capsys, "--repo", repo_path, "backup", f"chroma://{src}", "--json")
    assert out["collections"] == {"docs": 3000, "other": 50}
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"chroma://{tmp_path / 'd'}",
                  "--as", "x") == 2                                # --as needs a single collection


def test_cosine_collections_restore_within_chroma_rounding(tmp_path, repo_path, capsys):
    """vdedup stores exactly what Chroma returns (checked through the engine), but a Chroma
    cosine collection changes floats by a few ulp on every write, so the restored collection
    matches within that rounding, and the metric and configuration are kept."""
    from vdedup.backend import LocalBackend
    from vdedup.connectors import open_connector
    from vdedup.engine.restore import iter_records
    from vdedup.repository import Repository
    from vdtest import PASSWORD

    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", "cosine")
    add_records(col, *make_records(500, dim=32))
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"chroma://{src}") == 0
    conn = open_connector(f"chroma://{src}")
    scanned = {r.id: r for b in conn.scan("docs") for r in b.records()}
    repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    snap = repo.list_snapshots()[-1]
    stored = {r.id: r for r in iter_records(repo, snap.collections[0]["namespaces"][0])}
    repo.close()
    assert sorted(stored) == sorted(scanned)
    for rid, r in scanned.items():
        assert stored[rid].vectors[""].tobytes() == r.vectors[""].tobytes()
        assert stored[rid].metadata == r.metadata and stored[rid].document == r.document
    dst = tmp_path / "dst"
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"chroma://{dst}") == 0
    a, b = read_all(src, "docs"), read_all(dst, "docs")
    assert sorted(a) == sorted(b)
    for rid in a:
        va, vb = np.frombuffer(a[rid][0], np.float32), np.frombuffer(b[rid][0], np.float32)
        assert np.allclose(va, vb, rtol=0, atol=1e-6) and a[rid][1:] == b[rid][1:]
    import chromadb
    cfg = chromadb.PersistentClient(path=str(dst)).get_collection("docs").configuration
    assert cfg["hnsw"]["space"] == "cosine"
