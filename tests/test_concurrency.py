"""Concurrency, on every backend: two backups of different sources into one repository at
the same time both succeed and both restore exactly; an exclusive lock (as prune takes)
keeps backups out with exit 11, and cannot be taken while a backup runs."""
import json
import os
import subprocess
import sys
import time

from vdedup.backend import open_backend
from vdedup.errors import RepositoryLocked
from vdedup.repository import Repository
from vdtest import (PASSWORD, add_records, assert_same_records, chroma_collection, make_records,
                    read_all, vdedup)


SLOW = 0.5          # seconds each save takes in the overlapping backups


def _backend(repo_url):
    return open_backend(repo_url, os.environ.get("VDEDUP_S3_ENDPOINT"))


def _source(path, seed):
    _, col = chroma_collection(path, "docs", None)
    add_records(col, *make_records(300, dim=64, seed=seed))
    add_records(col, *make_records(100, dim=64, seed=99, start=90_000))    # the same in both
    return path


def test_two_backups_at_once_both_succeed_and_restore_exactly(tmp_path, repo_url, capsys):
    srcs = [_source(tmp_path / "a", 1), _source(tmp_path / "b", 2)]
    assert vdedup("--repo", repo_url, "init") == 0
    backend = _backend(repo_url)
    # slow storage, so that the two backups really overlap
    env = dict(os.environ, VDEDUP_TEST_FAULTS=f"save:*:delay:seconds={SLOW}", VDEDUP_PACK_SIZE="1")
    procs = [subprocess.Popen([sys.executable, "-m", "vdedup_cli.main", "--repo", repo_url, "backup",
                               f"chroma://{src}", "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env) for src in srcs]
    most_locks, deadline = 0, time.time() + 120
    refused = None
    while time.time() < deadline and any(p.poll() is None for p in procs):
        n = len(list(backend.list("locks")))
        most_locks = max(most_locks, n)
        # probe only once both backups hold their locks: a probe while one is still taking its
        # lock is a real prune racing it, and the backup then rightly refuses (exit 11). A lock
        # object seen is not yet a lock held (its writer still lists the others), so both must
        # have been visible for a while (a lock's time is taken before its slow save)
        if n >= 2 and refused is None:
            repo = Repository.open(backend, PASSWORD)
            held = [lk for lk in repo.list_locks() if time.time() - lk.time > SLOW + 0.15]
            if len(held) < 2:
                repo.close()
                time.sleep(0.02)
                continue
            try:
                repo.lock(exclusive=True, operation="prune").release()
                refused = False
            except RepositoryLocked as e:
                refused = "backup" in e.message
            finally:
                repo.close()
        time.sleep(0.02)
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
    assert most_locks == 2, "the backups did not overlap"
    assert refused is True, "an exclusive lock was granted while a backup ran"
    summaries = [json.loads(out) for out, _ in outs]
    assert [s["records"] for s in summaries] == [400, 400]
    snaps = {s["source"]: s["id"] for s in json.loads(_stdout(capsys, "--repo", repo_url, "snapshots", "--json"))}
    assert len(snaps) == 2
    for i, src in enumerate(srcs):
        snap = snaps[f"chroma://{src}"]
        assert snap == summaries[i]["snapshot_id"]
        dst = tmp_path / f"dst{i}"
        assert vdedup("--repo", repo_url, "restore", snap[:12], "--target", f"chroma://{dst}") == 0
        assert_same_records(read_all(src, "docs"), read_all(dst, "docs"))
    assert vdedup("--repo", repo_url, "check", "--read-data") == 0
    assert list(backend.list("locks")) == []


def _stdout(capsys, *args) -> str:
    capsys.readouterr()
    assert vdedup(*args) == 0
    return capsys.readouterr().out


def test_exclusive_lock_keeps_backup_out(tmp_path, repo_url, capsys):
    src = _source(tmp_path / "src", 3)
    assert vdedup("--repo", repo_url, "init") == 0
    repo = Repository.open(_backend(repo_url), PASSWORD)
    try:
        lock = repo.lock(exclusive=True, operation="prune")
        capsys.readouterr()
        assert vdedup("--repo", repo_url, "backup", f"chroma://{src}") == 11
        err = capsys.readouterr().err
        assert "exclusive lock held by 'prune'" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 2            # the error and its hint
        lock.release()
        # a shared lock (another backup, a restore) does not keep a backup out
        shared = repo.lock(exclusive=False, operation="restore")
        assert vdedup("--repo", repo_url, "backup", f"chroma://{src}") == 0
        shared.release()
    finally:
        repo.close()
    assert list(_backend(repo_url).list("locks")) == []
