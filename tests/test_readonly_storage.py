"""A full disk or a read-only repository must not block reading: `check --read-data` and
`restore` of an existing snapshot fall back to reading without a lock, with a one-line
warning; writing commands fail with one clear line. Tested with the fault-injecting backend
(every save refused, as ENOSPC/EROFS/AccessDenied do) and, as root, on a real full tmpfs and
a real read-only mount."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from vdtest import require_module, unavailable

from vdedup.backend import FaultyBackend, LocalBackend, RetryBackend
from vdedup.errors import RepositoryLocked, WriteRefused
from vdedup.repository import Repository
from vdtest import (PASSWORD, add_records, assert_same_records, chroma_collection, make_records,
                    read_all, vdedup_proc)


def _run(*args, code: int = 0, env: dict | None = None):
    proc = vdedup_proc(*args, env=env)
    assert proc.returncode == code, (args, proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def _backed_up(tmp_path: Path, repo_path: Path) -> Path:
    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", None)
    add_records(col, *make_records(150, dim=8))
    _run("--repo", repo_path, "init")
    _run("--repo", repo_path, "backup", f"chroma://{src}")
    return src


def _reads_work(tmp_path: Path, repo_path: Path, src: Path, env: dict | None, label: str) -> None:
    p = _run("--repo", repo_path, "check", "--read-data", env=env)
    warn = [ln for ln in p.stderr.splitlines() if "cannot write a lock" in ln]
    assert len(warn) == 1 and "check reads without one" in warn[0], p.stderr
    assert "no errors were found" in p.stdout
    p = _run("--repo", repo_path, "check", "--json", env=env)
    assert any("cannot write a lock" in w for w in json.loads(p.stdout)["warnings"])
    dst = tmp_path / f"dst-{label}"
    p = _run("--repo", repo_path, "restore", "latest", "--target", f"chroma://{dst}", env=env)
    assert "cannot write a lock" in p.stderr
    assert_same_records(read_all(src, "docs"), read_all(dst, "docs"))
    # writing cannot work: one clear line, exit 1
    p = _run("--repo", repo_path, "backup", f"chroma://{src}", code=1, env=env)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("vdedup: error:")]
    assert len(errors) == 1 and "cannot write" in errors[0], p.stderr


def test_refused_writes_fall_back_to_lock_free_reading(tmp_path, repo_path):
    src = _backed_up(tmp_path, repo_path)
    _reads_work(tmp_path, repo_path, src, {"VDEDUP_TEST_FAULTS": "save:*:refuse;remove:*:refuse"}, "faults")


def test_an_exclusive_lock_still_blocks_a_lock_free_reader(tmp_path, repo_path):
    _backed_up(tmp_path, repo_path)
    owner = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    lock = owner.lock(exclusive=True, operation="prune")
    try:
        reader = Repository.open(RetryBackend(FaultyBackend(LocalBackend(str(repo_path)), "save:*:refuse")),
                                 PASSWORD)
        with pytest.raises(RepositoryLocked):
            reader.read_lock("restore")
        with pytest.raises(WriteRefused):           # a writer gets the refusal itself
            reader.lock(exclusive=False, operation="backup")
    finally:
        lock.release()
        owner.close()
    got = reader.read_lock("restore")
    assert got.name is None and any("cannot write a lock" in w for w in reader.warnings)


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    _mount("-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_and_read_only_mount(tmp_path, small_disk):
    repo_path = small_disk / "repo"
    src = _backed_up(tmp_path, repo_path)
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)      # fill the disk to the last byte
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        (small_disk / "probe").write_bytes(b"x" * 8192)
    _reads_work(tmp_path, repo_path, src, None, "full")
    filler.unlink()
    _mount("-o", "remount,ro", str(small_disk))
    with pytest.raises(OSError):
        (small_disk / "probe").write_bytes(b"x")
    _reads_work(tmp_path, repo_path, src, None, "ro")


def test_s3_access_denied_on_write_is_a_refusal(tmp_path):
    """What boto3 raises for a 403 on PutObject/DeleteObject becomes WriteRefused (which
    readers fall back from); a 403 on a read stays a plain backend error."""
    require_module("boto3")
    from botocore.exceptions import ClientError
    from vdedup.backend.s3 import S3Backend
    b = S3Backend("bucket", "p", "http://127.0.0.1:1")
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                          "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
    assert isinstance(b._error(denied, "write", "p/locks/x"), WriteRefused)
    assert isinstance(b._error(denied, "remove", "p/locks/x"), WriteRefused)
    assert not isinstance(b._error(denied, "read", "p/config"), WriteRefused)
