"""A repository written by vdedup before the one codec (tests/fixtures/main_repo, made with
main at 57d5377 by its make_fixture.py) still opens, lists, checks, restores bit for bit, and
its assets' secrets (random-nonce version-1 form) still open; the next change of an asset
rewrites it in the current form; new backups chain onto the old snapshots as deltas.

The fixture is copied before use: opening a repository writes locks and audit entries."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vdtest import vdedup
from vdedup.assets.audit import AuditLog
from vdedup.assets.store import AssetStore
from vdedup.backend import open_backend
from vdedup.connectors import open_connector
from vdedup.engine.backup import backup
from vdedup.format.objects import ObjectType
from vdedup.repository import Repository

FIXTURE = Path(__file__).parent / "fixtures" / "main_repo"
META = json.loads((FIXTURE / "fixture.json").read_text())


@pytest.fixture
def legacy(tmp_path, monkeypatch) -> Path:
    repo = tmp_path / "legacy-repo"
    shutil.copytree(FIXTURE / "repo", repo)
    for p in repo.rglob("*"):
        p.chmod(0o700 if p.is_dir() else 0o600)
    monkeypatch.setenv("VDEDUP_PASSWORD", META["password"])
    return repo


def export_records(path: Path) -> dict:
    """id -> (vector bytes, dtype, the line's other fields): everything a restore must give back."""
    vectors = np.load(path / "vectors.npy")
    lines = (path / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(vectors)
    out = {}
    for line, vec in zip(lines, vectors):
        d = json.loads(line)
        rid = d.pop("id")
        d.setdefault("document", None)
        d.setdefault("uri", None)
        out[rid] = (vec.tobytes(), str(vec.dtype), d)
    return out


def assert_same_export(expected: Path, got: Path) -> None:
    a, b = export_records(expected), export_records(got)
    assert sorted(a) == sorted(b)
    for rid in a:
        assert a[rid][:2] == b[rid][:2], rid                      # float32 bits, -0.0 and subnormals kept
        assert json.dumps(a[rid][2], sort_keys=True) == json.dumps(b[rid][2], sort_keys=True), rid
        for key, value in a[rid][2]["metadata"].items() if a[rid][2]["metadata"] else ():
            assert type(value) is type(b[rid][2]["metadata"][key]), (rid, key)   # 1 stays int, 1.0 float


def test_the_fixture_is_of_the_old_form(legacy):
    """Guard: the fixture really is pre-codec (else the tests below prove nothing)."""
    with Repository.open(open_backend(str(legacy)), META["password"]) as repo:
        for otype, d in ((ObjectType.SNAPSHOT, "snapshots"), (ObjectType.AUDIT, "audit"),
                         (ObjectType.ASSET, "assets"), (ObjectType.LOCK, "locks"), (ObjectType.KEYLIST, "keylist")):
            for p in (legacy / d).iterdir():
                assert "version" not in repo.load_json_object(otype, p.name), (d, p.name)
        snaps = repo.list_snapshots()
        assert [s.id for s in snaps] == META["snapshots"] and all(s.version == 1 for s in snaps)
        assert len(snaps[1].collections[0]["namespaces"][0]["deltas"]) == 1      # a delta on the first
        prod = AssetStore(repo).get("prod")
        assert prod.record_version == 1 and set(prod._sealed_secret) == {"alg", "nonce", "data"}


def test_an_old_repository_opens_lists_checks_and_restores_bit_for_bit(legacy, tmp_path, capsys):
    capsys.readouterr()
    assert vdedup("--repo", legacy, "snapshots", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(s["id"] for s in listed) == sorted(META["snapshots"])
    for n, snap_id in enumerate(META["snapshots"], start=1):
        target = tmp_path / f"restored-{n}"
        assert vdedup("--repo", legacy, "restore", snap_id, "--target", f"files://{target}") == 0
        assert_same_export(FIXTURE / f"export-{n}", target)
    assert vdedup("--repo", legacy, "check", "--read-data") == 0
    assert vdedup("--repo", legacy, "audit", "--verify") == 0
    assert vdedup("--repo", legacy, "key", "list") == 0
    # the old (stale) lock object is read and removed like any other
    assert vdedup("--repo", legacy, "unlock") == 0
    assert not list((legacy / "locks").iterdir())


def test_old_asset_secrets_open_and_the_next_change_writes_the_new_form(legacy, monkeypatch, capsys):
    with Repository.open(open_backend(str(legacy)), META["password"]) as repo:
        store = AssetStore(repo)
        for name, secret in META["assets"].items():
            assert store.secret(store.get(name)) == secret
    capsys.readouterr()
    assert vdedup("--repo", legacy, "assets", "show", "prod") == 0
    assert f"({len(META['secret'])} chars)" in capsys.readouterr().out
    # a policy change keeps the secret and rewrites the record as version 2
    assert vdedup("--repo", legacy, "assets", "policy", "prod", "--keep-last", "5") == 0
    # a rotate writes the new secret as a sealed field
    monkeypatch.setenv("NEW_SECRET", "pc-rotated-" + "z" * 30)
    assert vdedup("--repo", legacy, "assets", "rotate", "local-docs", "--secret-env", "NEW_SECRET") == 0
    with Repository.open(open_backend(str(legacy)), META["password"]) as repo:
        store = AssetStore(repo)
        prod, docs = store.get("prod"), store.get("local-docs")
        assert prod.record_version == 2 and prod.forget_policy["last"] == 5 and prod.generation == 1
        assert store.secret(prod) == META["secret"] and set(prod._sealed_secret) == {"n", "data"}
        assert docs.record_version == 2 and store.secret(docs) == "pc-rotated-" + "z" * 30
        records = [repo.load_json_object(ObjectType.ASSET, p.name) for p in (legacy / "assets").iterdir()]
        assert len(records) == 2 and all(r["version"] == 2 for r in records)   # the old records are gone
        assert META["secret"] not in json.dumps(records)
    assert vdedup("--repo", legacy, "check") == 0


def test_new_backups_chain_onto_old_snapshots_and_the_audit_log_continues(legacy, tmp_path):
    new_export = tmp_path / "export-3"
    shutil.copytree(FIXTURE / "export-2", new_export)
    lines = (new_export / "records.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["metadata"] = {"changed": 1.0}
    lines[0] = json.dumps(first, sort_keys=True)
    (new_export / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with Repository.open(open_backend(str(legacy)), META["password"]) as repo:
        before = AuditLog(repo).verify()
        connector = open_connector(f"files://{new_export}?collection=docs&metric=cosine")
        # the source string of the old snapshots: the old newest one is the parent
        result = backup(repo, connector, META["source"])
        assert result.parent == META["snapshots"][-1]
        stored = repo.load_json_object(ObjectType.SNAPSHOT, result.snapshot.id)
        entry = stored["collections"][0]["namespaces"][0]
        assert stored["version"] == 1 and entry["version"] == 1
        # the old entry reads as one part of the whole namespace: one more delta layer on the old ones
        assert entry["features"] == ["parts"] and len(entry["parts"]) == 1
        assert len(entry["parts"][0]["deltas"]) == 2
        log = AuditLog(repo)
        log.append("backup", snapshot=result.snapshot.id)
        after = log.verify()
        assert after.ok and len(after.entries) == len(before.entries) + 1
        assert "version" not in after.entries[0] and after.entries[-1]["version"] == 1
        new_id = result.snapshot.id
    target = tmp_path / "restored-3"
    assert vdedup("--repo", legacy, "restore", new_id, "--target", f"files://{target}") == 0
    assert_same_export(new_export, target)
    assert vdedup("--repo", legacy, "check", "--read-data") == 0
