"""Ids a target cannot hold as the source did, planned before anything is written.

Milvus holds a primary key once per collection (writing it into another partition moves it)
and cannot page by string ids holding '"' or '\\'. A Pinecone index (emulator) with two
namespaces that share ids, and ids holding those characters, restored into a real
milvus-lite server: the shared ids are a loss the plan refuses (exit 19) before a collection
is created (no option accepts it: Milvus itself would refuse mid-write), a dry run shows it,
and one namespace at a time restores exactly; the awkward ids
become UUIDv5 ids with the original kept, and a restore back into Pinecone gives every record
its original id again, bit for bit.
"""
from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pytest

from emulators.pinecone_emulator import PineconeEmulator
from vdtest import env_connector, unavailable, vdedup

KEY = "pc-key-id-limits"
DIM = 8
SHARED = [f"same-{i}" for i in range(5)]
AWKWARD = ['say "hi"', "back\\slash", 'both\\"']


@pytest.fixture
def world(tmp_path, monkeypatch):
    from vdedup.connectors.pinecone import connector as pc_connector
    uri = os.environ.get("VDEDUP_TEST_MILVUS_URI")
    if not uri:
        unavailable("VDEDUP_TEST_MILVUS_URI is not set: start the servers (scripts/servers.sh)")
    with PineconeEmulator(KEY) as emu:
        monkeypatch.setenv("PINECONE_API_KEY", KEY)
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", emu.url)
        monkeypatch.setattr(pc_connector, "POLL_INTERVAL", 0.05)
        repo = str(tmp_path / "repo")
        assert vdedup("--repo", repo, "init") == 0
        yield emu, repo, "milvus://" + uri.split("://", 1)[1]


def _index(emu, name: str, namespaces: dict[str, list[str]]) -> dict:
    import pinecone
    client = pinecone.Pinecone(api_key=KEY, host=emu.url)
    model = client.indexes.create(
        name=name, schema={"fields": {"_values": {"type": "dense_vector", "dimension": DIM, "metric": "euclidean"}}},
        deployment={"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}, timeout=-1)
    index = client.index(host=model.host)
    rng = np.random.default_rng(len(name))
    written = {}
    for ns, ids in namespaces.items():
        vecs = []
        for i, rid in enumerate(ids):
            v = rng.standard_normal(DIM).astype(np.float32)
            meta = {"n": float(i), "ns": ns or "default"}
            vecs.append({"id": rid, "values": v.tolist(), "metadata": meta})
            written[(ns, rid)] = (v.tobytes(), meta)
        index.upsert(vectors=vecs, namespace=ns)
    return written


def _read(url: str, name: str) -> dict:
    conn = env_connector(url)
    try:
        out = {}
        for ns in conn.describe(name).namespaces:
            for batch in conn.scan(name, ns, 100):
                for r in batch.records():
                    (vec,) = r.vectors.values()
                    out[(ns, r.id)] = (np.asarray(vec, np.float32).tobytes(), r.metadata)
        return out
    finally:
        conn.close()


def _json(capsys, *args):
    capsys.readouterr()
    code = vdedup(*args)
    out = capsys.readouterr()
    assert code == 0, (args, code, out.err[-2000:])
    return json.loads(out.out)


def _milvus_has(url: str, name: str) -> bool:
    conn = env_connector(url)
    try:
        return conn.exists(name)
    finally:
        conn.close()


def test_ids_shared_by_namespaces_are_refused_before_anything_is_written(world, capsys):
    emu, repo, milvus = world
    _index(emu, "shared", {"": SHARED + ["only-a"], "b": SHARED + ["only-b"]})
    snap = _json(capsys, "--repo", repo, "backup", "pinecone://", "--collection", "shared", "--json")["snapshot_id"]
    name = f"shared_{uuid.uuid4().hex[:8]}"

    plan = _json(capsys, "--repo", repo, "restore", snap, "--target", milvus, "--as", name, "--dry-run", "--json")
    assert any("5 record id(s) occur in more than one namespace" in w for w in plan["warnings"]), plan["warnings"]
    assert not _milvus_has(milvus, name)

    capsys.readouterr()
    assert vdedup("--repo", repo, "restore", snap, "--target", milvus, "--as", name) == 19
    err = capsys.readouterr().err
    assert "5 record id(s) occur in more than one namespace" in err and "Traceback" not in err
    assert [ln for ln in err.splitlines() if "error" in ln] == \
        [ln for ln in err.splitlines() if ln.startswith("vdedup: error: 5 record id(s)")], err
    assert not _milvus_has(milvus, name)

    capsys.readouterr()          # no option turns it into a loss to accept: Milvus would refuse mid-write
    assert vdedup("--repo", repo, "restore", snap, "--target", milvus, "--as", name, "--allow-lossy") == 19
    assert not _milvus_has(milvus, name)

    # one namespace at a time is lossless
    for ns, only in (("", "only-a"), ("b", "only-b")):
        out = _json(capsys, "--repo", repo, "restore", snap, "--target", milvus, "--as", f"{name}_{ns or 'a'}",
                    "--namespace", ns, "--json")
        assert not out["warnings"]
        got = _read(milvus, f"{name}_{ns or 'a'}")
        assert sorted(rid for _, rid in got) == sorted(SHARED + [only])


def test_ids_milvus_cannot_hold_become_uuids_and_come_back(world, capsys):
    emu, repo, milvus = world
    written = _index(emu, "awkward", {"": AWKWARD + ["plain-1"], "b": ["plain-2"]})
    snap = _json(capsys, "--repo", repo, "backup", "pinecone://", "--collection", "awkward", "--json")["snapshot_id"]
    name = f"awkward_{uuid.uuid4().hex[:8]}"
    out = _json(capsys, "--repo", repo, "restore", snap, "--target", milvus, "--as", name, "--json")
    (plan,) = out["translation"]
    assert plan["fidelity"] == "exact" and any("UUIDv5" in s["detail"] and s["lossless"] for s in plan["steps"])
    copy = _read(milvus, name)
    assert len(copy) == len(written)
    for (ns, rid), (vec, meta) in copy.items():
        if rid.startswith("plain-"):
            assert "_vdedup_id" not in meta
        else:
            assert str(uuid.UUID(rid)) == rid and meta["_vdedup_id"][4:] in AWKWARD

    back_snap = _json(capsys, "--repo", repo, "backup", milvus, "--collection", name, "--json")["snapshot_id"]
    _json(capsys, "--repo", repo, "restore", back_snap, "--target", "pinecone://", "--as", "back", "--json")
    assert _read("pinecone://", "back") == written
