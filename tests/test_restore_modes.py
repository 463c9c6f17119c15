"""Restore modes: in place (safety snapshot, confirmation, only the difference written, undo),
selective (ids, metadata filter, namespace), dry run, and point in time with --at."""
import json

import numpy as np
import pytest

from vdtest import (add_records, assert_same_records, chroma_collection, make_records, read_all,
                    vdedup, vdedup_proc)


def _json(capsys, *args, code=0):
    capsys.readouterr()
    assert vdedup(*args) == code
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def changed_source(tmp_path, repo_path, capsys):
    """A collection backed up as snapshot A, then changed: 10 vectors, 3 metadata, 5 deleted, 7 added."""
    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", None)
    add_records(col, *make_records(500, dim=16))
    vdedup("--repo", repo_path, "init")
    a = _json(capsys, "--repo", repo_path, "backup", f"chroma://{src}", "--json")
    state_a = read_all(src, "docs")
    ids = sorted(state_a)
    col.update(ids=ids[:10], embeddings=np.random.default_rng(1).standard_normal((10, 16)).astype(np.float32))
    col.update(ids=ids[20:23], metadatas=[{"source": "changed"}] * 3)
    col.delete(ids=ids[30:35])
    add_records(col, *make_records(7, dim=16, seed=3, start=9000))
    return src, col, a["snapshot_id"], state_a


def test_in_place_restore_writes_only_the_difference_and_can_be_undone(repo_path, changed_source, capsys):
    src, col, snap_a, state_a = changed_source
    state_b = read_all(src, "docs")
    out = _json(capsys, "--repo", repo_path, "restore", snap_a, "--in-place", "--yes", "--json")
    plan = out["plan"][0]
    assert (plan["write"], plan["delete"], plan["unchanged"]) == (10 + 3 + 5, 7, 500 - 18)
    assert out["collections"] == {"docs": 18}
    assert_same_records(state_a, read_all(src, "docs"))
    safety = out["safety_snapshot"]
    snaps = _json(capsys, "--repo", repo_path, "snapshots", "--json")
    s = next(x for x in snaps if x["id"] == safety)
    assert "safety" in s["tags"] and s["collections"] == {"docs": 502}
    # undo: restore the safety snapshot in place
    assert vdedup("--repo", repo_path, "restore", safety[:12], "--in-place", "--yes") == 0
    assert_same_records(state_b, read_all(src, "docs"))


def test_in_place_needs_confirmation_when_not_interactive(repo_path, changed_source, capsys):
    """Plan, confirm, then the safety snapshot: a refused restore leaves no snapshot behind."""
    src, col, snap_a, _ = changed_source
    before = read_all(src, "docs")
    snaps = [s["id"] for s in _json(capsys, "--repo", repo_path, "snapshots", "--json")]
    proc = vdedup_proc("--repo", repo_path, "restore", snap_a, "--in-place")
    assert proc.returncode == 2 and "--yes" in proc.stderr and "Traceback" not in proc.stderr
    assert "docs: write 18, delete 7, unchanged 482" in proc.stderr          # the plan came first
    assert "safety snapshot" not in proc.stderr
    assert_same_records(before, read_all(src, "docs"))
    assert [s["id"] for s in _json(capsys, "--repo", repo_path, "snapshots", "--json")] == snaps


def test_dry_run_writes_nothing(tmp_path, repo_path, changed_source, capsys):
    src, col, snap_a, _ = changed_source
    before = read_all(src, "docs")
    snaps = [s["id"] for s in _json(capsys, "--repo", repo_path, "snapshots", "--json")]
    out = _json(capsys, "--repo", repo_path, "restore", snap_a, "--in-place", "--dry-run", "--json")
    assert out["dry_run"] and out["collections"] == {} and out["plan"][0]["delete"] == 7
    assert out["safety_snapshot"] is None
    assert_same_records(before, read_all(src, "docs"))
    assert [s["id"] for s in _json(capsys, "--repo", repo_path, "snapshots", "--json")] == snaps
    out = _json(capsys, "--repo", repo_path, "restore", snap_a, "--target", f"chroma://{tmp_path / 'new'}",
                "--dry-run", "--json")
    assert out["plan"][0]["write"] == 500
    assert not (tmp_path / "new").exists()
    # a non-empty target: the dry run says the restore would be refused
    out = _json(capsys, "--repo", repo_path, "restore", snap_a, "--target", f"chroma://{src}", "--dry-run", "--json")
    assert any("would be refused (exit 16)" in w for w in out["warnings"])


def _files_export(path, n: int = 40):
    path.mkdir()
    vecs = np.random.default_rng(7).standard_normal((n, 8)).astype(np.float32)
    np.save(path / "vectors.npy", vecs)
    (path / "records.jsonl").write_text("".join(json.dumps({"id": f"r{i}", "metadata": {"i": i}}) + "\n"
                                                for i in range(n)))


@pytest.mark.parametrize("provider", ["chroma", "qdrant+local", "files"])
@pytest.mark.parametrize("made", [False, True], ids=["absent", "empty-dir"])
def test_a_dry_run_into_a_local_path_creates_nothing(provider, made, tmp_path, repo_path, capsys):
    """Every provider whose URL is a local path: a dry run (restore, in place) and a verify leave a path that does not exist absent, and an empty directory empty."""
    vdedup("--repo", repo_path, "init")
    if provider == "files":
        _files_export(tmp_path / "export")
        source = f"files://{tmp_path / 'export'}?metric=cosine"
    else:
        _, col = chroma_collection(tmp_path / "src", "docs", "cosine")
        add_records(col, *make_records(40, dim=8))
        source = f"chroma://{tmp_path / 'src'}"
    snap = _json(capsys, "--repo", repo_path, "backup", source, "--json")["snapshot_id"]
    new = tmp_path / "new" / "dir"
    if made:
        new.mkdir(parents=True)
    target = f"{provider}://{new}"
    out = _json(capsys, "--repo", repo_path, "restore", snap[:12], "--target", target, "--dry-run", "--json")
    assert out["dry_run"] and sum(p["write"] for p in out["plan"]) == 40 and out["collections"] == {}
    named = f"{target}?collection=named"
    out = _json(capsys, "--repo", repo_path, "restore", snap[:12], "--target", named, "--dry-run", "--json")
    assert [p["target"] for p in out["plan"]] == ["named"]
    assert vdedup("--repo", repo_path, "restore", snap[:12], "--target", target, "--in-place", "--dry-run") == 0
    assert vdedup("--repo", repo_path, "verify", snap[:12], "--target", target) == 17   # nothing there
    if made:
        assert new.is_dir() and not any(new.iterdir())
    else:
        assert not new.exists() and not new.parent.exists()


def test_selective_restore_by_ids_and_filter(tmp_path, repo_path, changed_source, capsys):
    src, col, snap_a, state_a = changed_source
    ids_file = tmp_path / "ids.txt"
    wanted = sorted(state_a)[100:110]
    ids_file.write_text("\n".join(wanted) + "\n")
    dst = tmp_path / "dst"
    assert vdedup("--repo", repo_path, "restore", snap_a, "--target", f"chroma://{dst}", "--ids", ids_file) == 0
    got = read_all(dst, "docs")
    assert sorted(got) == wanted
    assert_same_records({k: state_a[k] for k in wanted}, got)
    dst2 = tmp_path / "dst2"
    assert vdedup("--repo", repo_path, "restore", snap_a, "--target", f"chroma://{dst2}",
                  "--where", 'source = "src-3" and page >= 100') == 0
    expect = {k: v for k, v in state_a.items() if v[1] and v[1]["source"] == "src-3" and v[1]["page"] >= 100}
    assert expect and sorted(read_all(dst2, "docs")) == sorted(expect)
    assert vdedup("--repo", repo_path, "restore", snap_a, "--target", f"chroma://{dst2}", "--as", "x",
                  "--where", "page >=") == 2
    assert vdedup("--repo", repo_path, "restore", snap_a, "--target", f"chroma://{dst2}", "--as", "y",
                  "--namespace", "nope") == 14


def test_point_in_time_with_at(tmp_path, repo_path, changed_source, capsys):
    src, col, snap_a, state_a = changed_source
    b = _json(capsys, "--repo", repo_path, "backup", f"chroma://{src}", "--json")
    snaps = _json(capsys, "--repo", repo_path, "snapshots", "--json")
    t_a = next(s["time"] for s in snaps if s["id"] == snap_a)
    dst = tmp_path / "dst"
    out = _json(capsys, "--repo", repo_path, "restore", "--at", t_a, "--target", f"chroma://{dst}", "--json")
    assert out["snapshot_id"] == snap_a
    assert_same_records(state_a, read_all(dst, "docs"))
    out = _json(capsys, "--repo", repo_path, "restore", "--at", "2999-01-01 00:00", "--target",
                f"chroma://{tmp_path / 'dst3'}", "--json")
    assert out["snapshot_id"] == b["snapshot_id"]
    assert vdedup("--repo", repo_path, "restore", "--at", "1999-01-01", "--target", f"chroma://{dst}") == 14
    assert vdedup("--repo", repo_path, "restore", "--at", "yesterday", "--target", f"chroma://{dst}") == 2
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "restore", "--target", f"chroma://{dst}") == 2
    assert "which snapshot? give a SNAPSHOT" in capsys.readouterr().err
    assert vdedup("--repo", repo_path, "restore", snap_a, "--at", t_a, "--target", f"chroma://{dst}") == 2
    assert "not both" in capsys.readouterr().err


def test_metric_override_is_shown_and_applied(tmp_path, repo_path, changed_source, capsys):
    import chromadb
    src, col, snap_a, state_a = changed_source
    dst = tmp_path / "dst"
    out = _json(capsys, "--repo", repo_path, "restore", snap_a, "--target", f"chroma://{dst}",
                "--metric", "dot", "--allow-lossy", "--json")      # Chroma floats: may be one ulp off
    t = out["translation"][0]
    assert not t["lossless"] and any(s["accepted_by"] == "--metric" for s in t["steps"])
    assert chromadb.PersistentClient(path=str(dst)).get_collection("docs").configuration["hnsw"]["space"] == "ip"
    assert_same_records(state_a, read_all(dst, "docs"))
    assert vdedup("--repo", repo_path, "restore", snap_a, "--target", f"chroma://{dst}", "--as", "z",
                  "--metric", "chebyshev") == 2
