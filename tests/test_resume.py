"""Resume after interruption, on every backend: a backup killed (SIGKILL), interrupted
(SIGINT) or cut off from its storage (network loss) leaves its uploaded packs indexed, and
the next backup of the same source stores exactly the records that were not yet indexed."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from vdedup.backend import open_backend
from vdedup.format.objects import BlobType
from vdedup.repository import Repository
from vdtest import (PASSWORD, add_records, assert_same_records, chroma_collection, interruptible,
                    make_records, read_all, vdedup)

N = 1200          # 4 KiB vectors: two packs of ~512 records (VDEDUP_PACK_SIZE=1), then the rest
DIM = 1024


@pytest.fixture(scope="module")
def big_source(tmp_path_factory):
    src = tmp_path_factory.mktemp("resume") / "src"
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    _, col = chroma_collection(src, "docs", None)
    add_records(col, *make_records(N, dim=DIM), batch=N)
    return src


@pytest.fixture
def source(tmp_path, big_source, monkeypatch):
    monkeypatch.setenv("VDEDUP_PACK_SIZE", "1")
    src = tmp_path / "src"
    shutil.copytree(big_source, src)
    return src


def _backend(repo_url):
    return open_backend(repo_url, os.environ.get("VDEDUP_S3_ENDPOINT"))


def _indexed_vectors(repo_url) -> int:
    """Vector blobs the repository's index files name (read afresh from the repository)."""
    repo = Repository.open(_backend(repo_url), PASSWORD)
    try:
        return sum(1 for _, loc in repo.index.items() if loc.blob_type == int(BlobType.VECTORS))
    finally:
        repo.close()


def _finish_and_verify(repo_url, src, tmp_path, capsys, indexed_before, full=True):
    backend = _backend(repo_url)
    assert not list(backend.list("snapshots"))                 # nothing half-committed
    packs_before = {n for n, _ in backend.list("data")}
    capsys.readouterr()
    if full:
        assert vdedup("--repo", repo_url, "check", "--read-data", "--json") == 0
        json.loads(capsys.readouterr().out)
    assert vdedup("--repo", repo_url, "backup", f"chroma://{src}", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == N
    # exactly the records whose packs were not indexed yet are stored again
    assert summary["vector_blobs_new"] == N - indexed_before
    assert packs_before <= {n for n, _ in backend.list("data")}
    if not full:
        return
    assert vdedup("--repo", repo_url, "check", "--read-data") == 0
    dst = tmp_path / "dst"
    assert vdedup("--repo", repo_url, "restore", "latest", "--target", f"chroma://{dst}") == 0
    assert_same_records(read_all(src, "docs"), read_all(dst, "docs"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_interrupted_backup_resumes(tmp_path, repo_url, source, capsys, sig):
    assert vdedup("--repo", repo_url, "init") == 0
    backend = _backend(repo_url)
    # slow storage: every index file after the first takes 1.5 s to save, so the backup is
    # interrupted with one pack indexed and at most one more saved but not yet indexed
    env = dict(os.environ, VDEDUP_TEST_FAULTS="save:index:delay:seconds=1.5,after=1")
    proc = subprocess.Popen([sys.executable, "-m", "vdedup_cli.main", "--repo", repo_url, "backup",
                             f"chroma://{source}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, env=env, preexec_fn=interruptible)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(backend.list("index"))) >= 1:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "backup finished before it could be interrupted: " + proc.stderr.read().decode()
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGINT)
    rc = proc.wait(60)
    err = proc.stderr.read().decode()
    locks = list(backend.list("locks"))
    if sig == signal.SIGINT:
        assert rc == 130 and "Traceback" not in err, err
        assert locks == []                                     # released on the way out
    else:
        assert len(locks) == 1                                 # stale: its process is gone
    indexed = _indexed_vectors(repo_url)
    # ctrl-c indexes the packs it saved on its way out; kill -9 cannot
    assert (0 < indexed < N) if sig == signal.SIGKILL else (0 < indexed <= N), indexed
    _finish_and_verify(repo_url, source, tmp_path, capsys, indexed, full=sig == signal.SIGKILL)
    assert vdedup("--repo", repo_url, "unlock") == 0
    assert list(backend.list("locks")) == []


def test_backup_cut_off_from_storage_resumes(tmp_path, repo_url, source, capsys, monkeypatch):
    assert vdedup("--repo", repo_url, "init") == 0
    # the storage becomes unreachable for packs after two were saved; retries give up
    monkeypatch.setenv("VDEDUP_TEST_FAULTS", "save:data:fail:after=2")
    assert vdedup("--repo", repo_url, "backup", f"chroma://{source}") == 1
    err = capsys.readouterr().err
    assert "gave up after 6 attempts" in err and "Traceback" not in err
    monkeypatch.delenv("VDEDUP_TEST_FAULTS")
    assert list(_backend(repo_url).list("locks")) == []
    indexed = _indexed_vectors(repo_url)
    assert 0 < indexed < N
    assert len(list(_backend(repo_url).list("data"))) == 2
    _finish_and_verify(repo_url, source, tmp_path, capsys, indexed, full=False)
