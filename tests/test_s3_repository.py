"""End to end on the S3 backend (a real S3 protocol server): init, nightly backups of an
embedded Chroma, restore bit for bit, check --read-data, and tampering caught."""
import json
import os

import numpy as np
import pytest

from vdedup.backend import FileType, open_backend
from vdtest import (add_records, assert_same_records, chroma_collection, make_records, read_all,
                    vdedup, vdedup_proc)

pytestmark = pytest.mark.parametrize("repo_url", ["s3"], indirect=True)


def _json_out(capsys, *args):
    capsys.readouterr()
    assert vdedup(*args) == 0
    return json.loads(capsys.readouterr().out)


def _s3(repo_url):
    import boto3
    backend = open_backend(repo_url, os.environ["VDEDUP_S3_ENDPOINT"])
    client = boto3.client("s3", endpoint_url=os.environ["VDEDUP_S3_ENDPOINT"])
    return backend, client


@pytest.fixture
def source(tmp_path):
    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", "l2")
    add_records(col, *make_records(1000, dim=64))
    return src, col


def test_nightly_backups_on_s3_restore_exactly(tmp_path, repo_url, source, capsys):
    src, col = source
    assert repo_url.startswith("s3://")
    init = _json_out(capsys, "--repo", repo_url, "init", "--json")
    assert init["location"] == repo_url
    states = [read_all(src, "docs")]
    first = _json_out(capsys, "--repo", repo_url, "backup", f"chroma://{src}", "--tag", "night-1", "--json")
    assert first["records"] == 1000 and first["added"] == 1000

    # the repository's layout under the prefix mirrors the local one; no lock is left behind
    backend, client = _s3(repo_url)
    bucket, prefix = backend.bucket, backend.prefix
    keys = [o["Key"] for p in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in p.get("Contents", [])]
    assert all(k.startswith(prefix + "/") for k in keys)
    rel = {k[len(prefix) + 1:].split("/")[0] for k in keys}
    assert {"config", "keys", "data", "index", "snapshots"} <= rel <= set(FileType.ALL) - {"locks"}
    packs = [k for k in keys if k.startswith(f"{prefix}/data/")]
    assert packs and all(k.split("/")[-2] == k.split("/")[-1][:2] for k in packs)

    # night 2: vectors updated, records added and deleted, metadata edited
    rng = np.random.default_rng(4)
    ids = sorted(states[0])
    col.update(ids=ids[:20], embeddings=rng.standard_normal((20, 64)).astype(np.float32))
    add_records(col, *make_records(25, dim=64, seed=8, start=50_000))
    col.delete(ids=ids[100:110])
    col.update(ids=ids[600:606], metadatas=[{"source": "edited", "page": 2, "ok": False}] * 6)
    states.append(read_all(src, "docs"))
    second = _json_out(capsys, "--repo", repo_url, "backup", f"chroma://{src}", "--json")
    assert (second["added"], second["deleted"], second["changed"]) == (25, 10, 26)
    assert second["parent"] == first["snapshot_id"]
    assert second["bytes_added"] < first["bytes_added"] / 5

    snaps = _json_out(capsys, "--repo", repo_url, "snapshots", "--json")
    assert [s["id"] for s in snaps] == [first["snapshot_id"], second["snapshot_id"]]
    for i, snap in enumerate(snaps):
        dst = tmp_path / f"dst{i}"
        assert vdedup("--repo", repo_url, "restore", snap["id"][:10], "--target", f"chroma://{dst}") == 0
        assert_same_records(states[i], read_all(dst, "docs"))

    check = _json_out(capsys, "--repo", repo_url, "check", "--read-data", "--json")
    assert check["ok"] and check["snapshots"] == 2 and check["packs_read"] >= 2
    assert not list(backend.list("locks"))


def test_tampered_pack_on_s3_is_caught(tmp_path, repo_url, source, capsys):
    src, _ = source
    assert vdedup("--repo", repo_url, "init") == 0
    assert vdedup("--repo", repo_url, "backup", f"chroma://{src}") == 0
    backend, client = _s3(repo_url)
    name, size = next(iter(backend.list("data")))
    key = backend.inner._key("data", name)
    data = bytearray(client.get_object(Bucket=backend.bucket, Key=key)["Body"].read())
    data[size // 2] ^= 0x01
    client.put_object(Bucket=backend.bucket, Key=key, Body=bytes(data))    # an attacker overwrites
    assert vdedup("--repo", repo_url, "check") == 0                        # structure is intact
    capsys.readouterr()
    assert vdedup("--repo", repo_url, "check", "--read-data", "--json") == 17
    out = json.loads(capsys.readouterr().out)
    assert not out["ok"] and any(name[:16] in e for e in out["errors"])
    assert any("snapshot" in e and "docs" in e for e in out["errors"])
    proc = vdedup_proc("--repo", repo_url, "restore", "latest", "--target", f"chroma://{tmp_path / 'dst'}")
    assert proc.returncode == 17, proc.stderr
    assert "Traceback" not in proc.stderr


def test_deleted_pack_and_wrong_password_on_s3(repo_url, source, capsys, monkeypatch):
    src, _ = source
    assert vdedup("--repo", repo_url, "init") == 0
    assert vdedup("--repo", repo_url, "backup", f"chroma://{src}") == 0
    backend, _ = _s3(repo_url)
    name, _ = next(iter(backend.list("data")))
    backend.remove("data", name)
    capsys.readouterr()
    assert vdedup("--repo", repo_url, "check", "--json") == 17
    assert any("missing" in e for e in json.loads(capsys.readouterr().out)["errors"])
    monkeypatch.setenv("VDEDUP_PASSWORD", "not the password")
    assert vdedup("--repo", repo_url, "snapshots") == 12
