"""The audit log: an entry per operation (failures included), hash-chained and sealed in the
repository, so that a removed, reordered or altered entry fails `audit --verify` (exit 17)."""
from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from vdedup.assets.audit import AuditLog
from vdedup.backend import open_backend
from vdedup.format.objects import ObjectType
from vdedup.repository import Repository
from vdtest import PASSWORD, vdedup_proc
from test_assets import Cli, assert_secret_absent, chroma_source


@pytest.fixture
def cli(capsys, monkeypatch, repo_path) -> Cli:
    return Cli(capsys, monkeypatch, "--repo", repo_path)


def _history(tmp_path: Path, cli: Cli) -> list[dict]:
    chroma_source(tmp_path / "chroma", n=20)
    cli("init")
    cli("connect", "-p", "chroma", "--name", "docs", f"chroma://{tmp_path / 'chroma'}")
    cli("backup", "--asset", "docs")
    cli("backup", f"chroma://{tmp_path / 'nowhere'}", expect=15)        # a failure is logged too
    cli("restore", "latest", "--target", f"chroma://{tmp_path / 'copy'}")
    cli("forget", "--keep-last", "5")
    cli("key", "list")
    log = cli.json("audit", "--json", "--verify")
    assert log["verify"]["ok"] is True
    return log["entries"]


def test_every_operation_is_logged_with_its_outcome(tmp_path, repo_path, cli):
    entries = _history(tmp_path, cli)
    ops = [(e["seq"], e["operation"], e["outcome"], e["exit_code"], e["error"], e["asset"]) for e in entries]
    assert ops == [(1, "init", "ok", 0, None, None), (2, "connect", "ok", 0, None, "docs"),
                   (3, "backup", "ok", 0, None, "docs"), (4, "backup", "error", 15, "SourceError", None),
                   (5, "restore", "ok", 0, None, None), (6, "forget", "ok", 0, None, None),
                   (7, "key list", "ok", 0, None, None)]
    backup = entries[2]
    snaps = cli.json("snapshots", "--json")
    assert backup["snapshot"] == snaps[0]["id"] and backup["counts"]["records"] == 20
    for e in entries:
        assert e["user"] and e["host"] and e["time"].endswith("+00:00")
    # the chain: each entry names the keyed hash of the one before it
    assert entries[0]["prev"] == "0" * 64 and len({e["prev"] for e in entries}) == len(entries)
    # the human listing, and no entry for reading the log itself
    table = cli("audit").out
    assert "SourceError" in table and "restore" in table
    assert len(cli.json("audit", "--json")["entries"]) == len(entries) + 1      # + `snapshots`


def test_nothing_is_written_where_the_repository_cannot_be_opened(tmp_path, repo_path, cli, monkeypatch):
    cli("init")
    before = sorted(p.name for p in (repo_path / "audit").iterdir())
    monkeypatch.setenv("VDEDUP_PASSWORD", "wrong")
    cli("snapshots", expect=12)
    monkeypatch.setenv("VDEDUP_PASSWORD", PASSWORD)
    assert sorted(p.name for p in (repo_path / "audit").iterdir()) == before
    Cli(cli.capsys, monkeypatch, "--repo", tmp_path / "none")("snapshots", expect=10)


@pytest.mark.parametrize("damage", ["alter", "delete", "delete-first", "swap", "truncate-chain"])
def test_tampering_fails_verify_with_exit_17(tmp_path, repo_path, cli, damage):
    _history(tmp_path, cli)
    audit = repo_path / "audit"
    names = sorted(p.name for p in audit.iterdir())
    assert len(names) == 7
    if damage == "alter":                  # flip one byte of entry 3's ciphertext
        p = audit / names[2]
        data = bytearray(p.read_bytes())
        data[-20] ^= 1
        p.chmod(0o600)
        p.write_bytes(bytes(data))
        want = "entry 3 is damaged or altered (position 3)"
    elif damage == "delete":
        (audit / names[3]).unlink()
        want = "entry 4 is missing (position 4)"
    elif damage == "delete-first":
        (audit / names[0]).unlink()
        want = "entry 1 is missing (position 1)"
    elif damage == "swap":                 # reorder: entries 2 and 5 trade places
        a, b = audit / names[1], audit / names[4]
        tmp = audit / "swap"
        a.rename(tmp)
        b.rename(a)
        tmp.rename(b)
        want = "entry 2 is damaged or altered (position 2)"
    else:                                  # remove entry 3 and renumber the rest: the chain breaks
        with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
            entries = [repo.load_json_object(ObjectType.AUDIT, n) for n in names]
            for n in names[2:]:
                repo.backend.remove("audit", n)
            for e in entries[3:]:
                e["seq"] -= 1
                repo.save_json_object(ObjectType.AUDIT, f"{e['seq']:012d}", e)   # even with the master key...
        want = "entry 3 does not follow entry 2 (chain broken) (position 3)"
    r = vdedup_proc("--repo", repo_path, "audit", "--verify")
    assert r.returncode == 17, (r.stdout, r.stderr)
    assert want in r.stderr and "Traceback" not in r.stderr
    # without --verify the readable entries are still listed
    assert cli("audit").out


def test_concurrent_appends_form_one_chain(tmp_path, repo_path, cli):
    cli("init")
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        def writer(k: int) -> None:
            log = AuditLog(repo)
            for i in range(5):
                log.append("test", counts={"writer": k, "i": i})

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result = AuditLog(repo).verify()
    assert result.ok, result.problem
    assert len(result.entries) == 21


def test_the_secret_search_itself_finds_every_form(tmp_path):
    """The absence checks elsewhere would catch a secret stored in any of these forms."""
    secret = "pc-0123456789abcdef0123456789abcdef"
    for form in (secret.encode(), secret.encode().hex().encode(), base64.b64encode(b"x" + secret.encode()),
                 json.dumps({"k": secret}).encode(), secret.encode("utf-16-le")):
        (tmp_path / "f").write_bytes(b"prefix" + form + b"suffix")
        with pytest.raises(AssertionError):
            assert_secret_absent(secret, roots=(tmp_path,))
