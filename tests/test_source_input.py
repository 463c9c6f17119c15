"""Bad sources give one line and an exit code at backup time, never an internal error or a
side effect (issue 19 item 5): zero-dimension vectors, repeated ids, a missing Chroma
directory."""
from __future__ import annotations

import json

import numpy as np

from vdtest import vdedup


def _export(path, vectors: np.ndarray, lines: list[dict]) -> str:
    path.mkdir(parents=True)
    np.save(path / "vectors.npy", vectors)
    (path / "records.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return f"files://{path}"


def test_zero_dimension_vectors_are_refused_at_backup(tmp_path, repo_path, capsys):
    src = _export(tmp_path / "zero", np.zeros((3, 0), dtype=np.float32),
                  [{"id": f"r{i}", "metadata": None} for i in range(3)])
    assert vdedup("--repo", repo_path, "init") == 0
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "backup", src) == 15
    err = capsys.readouterr().err
    assert "dimension 0" in err and "internal error" not in err and "TypeError" not in err
    assert len([x for x in err.splitlines() if x.startswith("vdedup: error")]) == 1
    assert not list((repo_path / "snapshots").iterdir())       # nothing was committed


def test_duplicate_ids_are_counted_and_the_last_one_kept(tmp_path, repo_path, capsys):
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((8, 4)).astype(np.float32)
    ids = ["a", "b", "c", "b", "d", "e", "a", "f"]               # 2 repeated ids, 6 distinct
    lines = [{"id": rid, "metadata": {"line": i}} for i, rid in enumerate(ids)]
    src = _export(tmp_path / "dups", vectors, lines)
    assert vdedup("--repo", repo_path, "init") == 0
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "backup", src, "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["duplicates"] == 2 and summary["records"] == 6
    assert vdedup("--repo", repo_path, "backup", src) == 0       # said to people too
    assert "2 record(s) repeated an id" in capsys.readouterr().err
    dst = tmp_path / "out"
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"files://{dst}") == 0
    got = [json.loads(x) for x in (dst / "records.jsonl").read_text().splitlines()]
    restored = np.load(dst / "vectors.npy")
    by_id = {g["id"]: (g["metadata"]["line"], restored[i].tobytes()) for i, g in enumerate(got)}
    assert sorted(by_id) == ["a", "b", "c", "d", "e", "f"]
    last = {rid: i for i, rid in enumerate(ids)}                # policy: the last line wins
    for rid, (line, vec) in by_id.items():
        assert line == last[rid] and vec == vectors[last[rid]].tobytes()


def test_backup_of_a_missing_chroma_directory_creates_nothing(tmp_path, repo_path, capsys):
    missing = tmp_path / "missing" / "dir"
    assert vdedup("--repo", repo_path, "init") == 0
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "backup", f"chroma://{missing}") == 15
    err = capsys.readouterr().err
    assert "no chroma database" in err
    assert not missing.exists() and not missing.parent.exists()
