"""Rollback is visible: deleting the newest snapshot, cutting off the end of the audit log, or
putting back an old asset or key list object leaves a repository valid in itself, but the
client remembers what it saw (and warns, on stderr and in --json output), snapshots record
the audit head, and `check` / `audit --verify` cross-check the log against the snapshots.
A forget (here or on another machine) is not a rollback."""
from __future__ import annotations

import json
import shutil

import pytest

from vdtest import add_records, chroma_collection, make_records, vdedup

class Cli:
    def __init__(self, capsys, monkeypatch, repo_path, tmp_path):
        self.capsys, self.mp, self.repo, self.tmp = capsys, monkeypatch, repo_path, tmp_path

    def machine(self, name: str) -> None:
        """Run the next commands as another machine (its own cache, so its own memory)."""
        self.mp.setenv("VDEDUP_CACHE_DIR", str(self.tmp / f"cache-{name}"))

    def __call__(self, *args, code: int = 0, input: str | None = None):
        self.capsys.readouterr()
        if input is not None:
            import io
            self.mp.setattr("sys.stdin", io.StringIO(input))
        rc = vdedup("--repo", self.repo, *args)
        out = self.capsys.readouterr()
        assert rc == code, (args, rc, out.err)
        return out

    def json(self, *args, code: int = 0):
        out = self(*args, "--json", code=code)
        return json.loads(out.out), out.err


@pytest.fixture
def cli(capsys, monkeypatch, repo_path, tmp_path):
    return Cli(capsys, monkeypatch, repo_path, tmp_path)


@pytest.fixture
def two_backups(cli, tmp_path):
    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", None)
    add_records(col, *make_records(60, dim=8))
    cli("init")
    first, _ = cli.json("backup", f"chroma://{src}")
    add_records(col, *make_records(10, dim=8, seed=3, start=500))
    second, _ = cli.json("backup", f"chroma://{src}")
    return src, first["snapshot_id"], second["snapshot_id"]


def test_deleted_newest_snapshot_is_seen_here_and_by_check_anywhere(cli, two_backups, repo_path, tmp_path):
    src, first, second = two_backups
    (repo_path / "snapshots" / second).unlink()
    # this machine remembers it: every command warns, --json objects carry the warning
    snaps, err = cli.json("snapshots")
    assert [s["id"] for s in snaps] == [first]
    assert second[:8] in err and "rolled back" in err
    restored, err = cli.json("restore", "latest", "--target", f"chroma://{tmp_path / 'dst'}")
    assert restored.get("snapshot_id", first) and any(second[:8] in w for w in restored["warnings"])
    report, _ = cli.json("check", code=17)
    assert any(second[:8] in e and "rolled back" in e for e in report["errors"]), report["errors"]
    # the warning stays: the memory keeps what it saw until it is deleted
    assert second[:8] in cli("snapshots").err
    # another machine never saw it, but the audit log recorded the backup
    cli.machine("other")
    report, _ = cli.json("check", code=17)
    assert any(second[:8] in e and "no forget removed it" in e for e in report["errors"]), report["errors"]
    verify, _ = cli.json("audit", "--verify", code=17)
    assert any(second[:8] in p for p in verify["verify"]["problems"])


def test_forget_is_not_a_rollback_here_or_elsewhere(cli, two_backups):
    src, first, second = two_backups
    cli.machine("other")
    cli("snapshots")                                  # the other machine has seen both
    cli.machine("main")
    cli("snapshots")
    removed, _ = cli.json("forget", "--keep-last", "1")
    assert removed["removed"] == 1
    out = cli("snapshots")
    assert "warning" not in out.err
    report, _ = cli.json("check")
    assert report["ok"], report
    cli.machine("other")                              # it saw `first`; a forget removed it
    out = cli("snapshots")
    assert "warning" not in out.err, out.err
    assert cli.json("check")[0]["ok"]
    cli.machine("fresh")
    assert cli.json("check")[0]["ok"]
    verify, _ = cli.json("audit", "--verify")
    assert verify["verify"]["ok"] and verify["verify"]["problems"] == []


@pytest.mark.parametrize("cut", [1, 2, "all"])
def test_cut_off_audit_log_is_detected(cli, two_backups, repo_path, cut):
    entries = sorted((repo_path / "audit").iterdir())
    doomed = entries if cut == "all" else entries[-cut:]
    verify, _ = cli.json("audit", "--verify")
    assert verify["verify"]["ok"]
    for p in doomed:
        p.unlink()
    # this machine saw the longer log
    verify, err = cli.json("audit", "--verify", code=17)
    assert not verify["verify"]["ok"] and any("cut off" in p or "backwards" in p for p in verify["verify"]["problems"])
    assert "went backwards" in err                      # also said when the repository was opened
    # a machine that never saw it: the last snapshot recorded a longer log (for cuts that reach
    # below the entries it saw) or the backups recorded in the remaining log are gone
    cli.machine("fresh")
    if cut == 1:
        # the last entry (the second backup's) was written after every snapshot recorded its
        # audit head, and its snapshot still exists: only the memory of a machine can tell
        verify, _ = cli.json("audit", "--verify")
    else:
        verify, _ = cli.json("audit", "--verify", code=17)
        assert any("cut off" in p for p in verify["verify"]["problems"]), verify


def test_audit_head_recorded_in_snapshots(cli, two_backups, repo_path):
    from vdedup.backend import LocalBackend
    from vdedup.repository import Repository
    from vdtest import PASSWORD
    src, first, second = two_backups
    repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    snaps = {s.id: s for s in repo.list_snapshots()}
    from vdedup.assets.audit import AuditLog
    log = AuditLog(repo)
    entries = log.read()
    for sid in (first, second):
        head = snaps[sid].audit_head
        assert head["seq"] >= 1 and head["hash"] == log.digest(entries[head["seq"] - 1])
        # the backup's own entry comes after the head it recorded
        (own,) = [e for e in entries if e.get("snapshot") == sid]
        assert own["seq"] == head["seq"] + 1
    repo.close()


def test_old_asset_record_put_back_after_rotate(cli, repo_path, tmp_path):
    cli("init")
    cli("connect", "-p", "pinecone", "--name", "prod", "pinecone://prod", "--secret-stdin",
        input="pc-old-secret-0123456789abcdef\n")
    (old,) = list((repo_path / "assets").iterdir())
    saved = tmp_path / "old-asset"
    shutil.copy(old, saved)
    cli("assets", "rotate", "prod", "--secret-stdin", input="pc-new-secret-0123456789abcdef\n")
    (new,) = list((repo_path / "assets").iterdir())
    assert new.name != old.name
    new.unlink()
    shutil.copy(saved, repo_path / "assets" / old.name)
    out = cli("assets", "show", "prod")
    assert "went back from generation 1 to 0" in out.err
    report, _ = cli.json("check", code=17)
    assert any("prod" in e and "generation" in e for e in report["errors"]), report["errors"]


def test_old_key_list_put_back(cli, repo_path, tmp_path):
    cli("init")
    (gen1,) = list((repo_path / "keylist").iterdir())
    saved = gen1.read_bytes()
    cli("key", "add", "--recovery")
    (gen2,) = list((repo_path / "keylist").iterdir())
    assert gen2.name == "000000000002"
    gen2.unlink()
    gen1.write_bytes(saved)
    out = cli("snapshots")
    assert "key list went backwards" in out.err
    report, _ = cli.json("check", code=17)
    assert any("key list went backwards" in e for e in report["errors"])
    assert any("not in the key list" in w for w in report["warnings"])


def test_memory_holds_no_names_or_secrets(cli, repo_path, tmp_path):
    cli("init")
    cli("connect", "-p", "pinecone", "--name", "customer-rag-index", "pinecone://customer-rag-index",
        "--secret-stdin", input="pc-secret-value-0123456789abcdef\n")
    (seen,) = list((tmp_path / "cache").rglob("seen.json"))
    text = seen.read_text()
    assert "customer-rag-index" not in text and "pc-secret" not in text
    assert oct(seen.stat().st_mode & 0o777) == "0o600"
