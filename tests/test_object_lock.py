"""Immutable repositories on S3 (Object Lock), against the moto server: `init
--object-lock-days N` makes a bucket with Object Lock and every object a backup needs is saved
with a retention; backups and restores work; forget and prune remove nothing still retained,
say what stays and until when, and exit 3; once the retention ends they remove it for good
(the versions, not just a delete marker). VDEDUP_TEST_RETENTION_SECONDS (tests only) replaces
the days so that a retention can end within a test."""
from __future__ import annotations

import datetime as dt
import json
import os
import time

import pytest

from vdtest import add_records, assert_same_records, chroma_collection, make_records, read_all, vdedup_proc

pytestmark = pytest.mark.parametrize("repo_url", ["s3"], indirect=True)


def _run(*args, code: int = 0, env: dict | None = None):
    proc = vdedup_proc(*args, env=env)
    assert proc.returncode == code, (args, proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def _client():
    import boto3
    return boto3.client("s3", endpoint_url=os.environ["VDEDUP_S3_ENDPOINT"])


def _where(repo_url: str) -> tuple[str, str]:
    bucket, _, prefix = repo_url[len("s3://"):].partition("/")
    return bucket, prefix


def _objects(repo_url: str, kind: str) -> list[str]:
    bucket, prefix = _where(repo_url)
    got = _client().list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{kind}/").get("Contents", [])
    return [o["Key"] for o in got]


def _versions(repo_url: str) -> tuple[list[str], list[str]]:
    bucket, prefix = _where(repo_url)
    r = _client().list_object_versions(Bucket=bucket, Prefix=f"{prefix}/")
    return [v["Key"] for v in r.get("Versions", [])], [m["Key"] for m in r.get("DeleteMarkers", [])]


def _source(tmp_path, n=80, seed=0):
    src = tmp_path / f"src{seed}"
    _, col = chroma_collection(src, "docs", None)
    add_records(col, *make_records(n, dim=8, seed=seed))
    return src


def test_object_lock_repository_retains_what_backups_need(repo_url, tmp_path):
    r = repo_url
    p = _run("--repo", r, "init", "--object-lock-days", "3", "--json")
    assert json.loads(p.stdout)["object_lock"] == {"mode": "GOVERNANCE", "days": 3}
    bucket, _ = _where(r)
    assert _client().get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    src = _source(tmp_path)
    _run("--repo", r, "backup", f"chroma://{src}", "--tag", "first")
    _run("--repo", r, "connect", "-p", "chroma", "--name", "docs", f"chroma://{src}")
    add_records(chroma_collection(src, "docs", None)[1], *make_records(10, dim=8, seed=5, start=900))
    _run("--repo", r, "backup", f"chroma://{src}")

    c = _client()
    now = dt.datetime.now(dt.timezone.utc)
    for kind in ("data", "index", "snapshots", "keys", "keylist", "audit"):
        keys = _objects(r, kind)
        assert keys, kind
        for key in keys:
            h = c.head_object(Bucket=bucket, Key=key)
            assert h.get("ObjectLockMode") == "GOVERNANCE", (kind, key)
            until = h["ObjectLockRetainUntilDate"]
            assert dt.timedelta(days=2.9) < until - now < dt.timedelta(days=3.1), (kind, until)
    h = c.head_object(Bucket=bucket, Key=_where(r)[1] + "/config")
    assert h.get("ObjectLockMode") == "GOVERNANCE"
    for key in _objects(r, "assets"):                 # replaced by `assets rotate`: not retained
        assert c.head_object(Bucket=bucket, Key=key).get("ObjectLockMode") is None
    assert _objects(r, "locks") == []                 # released locks are gone for good

    # forget cannot remove a retained snapshot: it says which and until when, exit 3
    p = _run("--repo", r, "forget", "--keep-last", "1", "--json", code=3)
    out = json.loads(p.stdout)
    assert out["removed"] == 0 and len(out["retained"]) == 1
    assert out["retained"][0]["until"][:10] == (now + dt.timedelta(days=3)).date().isoformat()
    assert "retention" in p.stderr and "Object Lock" in p.stderr
    assert len(json.loads(_run("--repo", r, "snapshots", "--json").stdout)) == 2
    # an attacker holding our credentials cannot destroy a pack either
    pack = _objects(r, "data")[0]
    vid = c.head_object(Bucket=bucket, Key=pack)["VersionId"]
    with pytest.raises(Exception) as e:
        c.delete_object(Bucket=bucket, Key=pack, VersionId=vid)
    assert "AccessDenied" in str(e.value)
    # everything still works
    _run("--repo", r, "check", "--read-data")
    dst = tmp_path / "dst"
    _run("--repo", r, "restore", "latest", "--target", f"chroma://{dst}")
    assert_same_records(read_all(src, "docs"), read_all(dst, "docs"))
    _run("--repo", r, "assets", "rotate", "docs", "--no-secret")     # assets stay changeable


def test_forget_and_prune_remove_what_is_no_longer_retained(repo_url, tmp_path):
    r = repo_url
    short = {"VDEDUP_TEST_RETENTION_SECONDS": "3"}
    _run("--repo", r, "init", "--object-lock-days", "1", "--object-lock-mode", "compliance", env=short)
    src = _source(tmp_path)
    _run("--repo", r, "backup", f"chroma://{src}", "--tag", "old", env=short)
    # a backup that fails at its snapshot leaves packs and index files no snapshot uses,
    # retained for a day
    src2 = _source(tmp_path, n=60, seed=7)
    _run("--repo", r, "backup", f"chroma://{src2}", code=1,
         env={"VDEDUP_TEST_FAULTS": "save:snapshots:refuse"})
    data_before = sorted(_objects(r, "data"))
    p = _run("--repo", r, "prune", "--max-unused", "0%", "--keep-unindexed-for", "0", "--json", code=3)
    out = json.loads(p.stdout)
    held = {x["object"].split("/")[0] for x in out["retained"]}
    assert "data" in held and out["packs_deleted"] == 0 and sorted(_objects(r, "data")) == data_before
    assert all(x["until"] for x in out["retained"])
    _run("--repo", r, "check", "--read-data")         # kept whole: nothing half-removed

    # the first backup's retention (3 s) ends: forget removes it, for good
    time.sleep(4)
    old = json.loads(_run("--repo", r, "snapshots", "--json").stdout)[0]["id"]
    src3 = _source(tmp_path, n=50, seed=9)
    _run("--repo", r, "backup", f"chroma://{src3}", env=short)
    time.sleep(4)
    p = _run("--repo", r, "forget", "--keep-last", "1", "--group-by", "host", "--json", env=short)
    assert json.loads(p.stdout)["removed"] == 1
    versions, markers = _versions(r)
    assert not any(old in k for k in versions + markers)           # the version is gone, no marker
    # prune: the expired data goes, the failed backup's data (retained a day) stays: exit 3
    p = _run("--repo", r, "prune", "--max-unused", "0%", "--keep-unindexed-for", "0", "--json", code=3)
    out = json.loads(p.stdout)
    assert out["packs_deleted"] >= 1 and out["retained"]
    gone = set(data_before) - set(_objects(r, "data"))
    assert gone and not any(k in gone for k in _versions(r)[0])     # removed versions, not hidden
    _run("--repo", r, "check", "--read-data")
    dst = tmp_path / "dst"
    _run("--repo", r, "restore", "latest", "--target", f"chroma://{dst}")
    assert_same_records(read_all(src3, "docs"), read_all(dst, "docs"))


def test_object_lock_needs_s3(repo_url, tmp_path):
    p = _run("--repo", tmp_path / "local", "init", "--object-lock-days", "7", code=2)
    assert "S3" in p.stderr
    _run("--repo", repo_url, "init", "--object-lock-days", "7", "--object-lock-mode", "forever", code=2)
