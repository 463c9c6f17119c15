"""Crash safety: a backup killed (SIGKILL) at any moment leaves a repository that check
passes, and the next backup completes it, reusing the packs already indexed."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from vdtest import add_records, assert_same_records, chroma_collection, make_records, read_all, vdedup


@pytest.fixture(scope="module")
def big_source(tmp_path_factory):
    src = tmp_path_factory.mktemp("crash") / "src"
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    _, col = chroma_collection(src, "docs", None)
    add_records(col, *make_records(6000, dim=256), batch=5000)
    return src


def _packs(repo_path):
    return [p for p in (repo_path / "data").rglob("*") if p.is_file() and not p.name.startswith(".")]


@pytest.mark.parametrize("kill_when", ["early", "after-first-index", "after-second-index"])
def test_backup_killed_midway(tmp_path, repo_path, big_source, capsys, kill_when, monkeypatch):
    monkeypatch.setenv("VDEDUP_PACK_SIZE", "1")                   # ~6 packs for this data
    src = tmp_path / "src"
    shutil.copytree(big_source, src)
    assert vdedup("--repo", repo_path, "init") == 0
    proc = subprocess.Popen([sys.executable, "-m", "vdedup_cli.main", "--repo", str(repo_path), "backup",
                             f"chroma://{src}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    want = {"early": 0, "after-first-index": 1, "after-second-index": 2}[kill_when]
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if want == 0 and time.time() > deadline - 119.5:
            break
        if want and len([p for p in (repo_path / "index").iterdir() if not p.name.startswith(".")]) >= want:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "backup finished before it could be killed: " + proc.stderr.read().decode()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list((repo_path / "snapshots").iterdir())          # no half-written snapshot
    # the killed process left a lock; it is stale (dead pid) and blocks nothing
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "check", "--read-data", "--json") == 0
    json.loads(capsys.readouterr().out)
    packs_before = {p.name for p in _packs(repo_path)}
    assert vdedup("--repo", repo_path, "backup", f"chroma://{src}", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 6000
    if want:
        # the packs written before the kill were indexed and reused, not uploaded again
        assert summary["vector_blobs_new"] < 6000
        assert packs_before <= {p.name for p in _packs(repo_path)}
    assert vdedup("--repo", repo_path, "check", "--read-data") == 0
    dst = tmp_path / "dst"
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"chroma://{dst}") == 0
    assert_same_records(read_all(src, "docs"), read_all(dst, "docs"))
    assert vdedup("--repo", repo_path, "unlock") == 0
    assert not list((repo_path / "locks").iterdir())
