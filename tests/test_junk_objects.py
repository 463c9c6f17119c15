"""A junk or damaged object in snapshots/ or assets/ does not take the repository down:
`snapshots`, `restore`, `backup`, `assets list` and `backup --all` skip it with a warning
naming it (on stderr and in --json output), `check` reports it (exit 17), and prune, which
could delete data an unreadable snapshot needs, refuses to run. Real processes, as a user."""
from __future__ import annotations

import json
import os

import pytest

from vdtest import (add_records, assert_same_records, chroma_collection, make_records, read_all,
                    vdedup_proc)

JUNK = "ab" * 32


def _run(*args, code: int = 0, input: str | None = None):
    proc = vdedup_proc(*args, input=input)
    assert proc.returncode == code, (args, proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    return proc


@pytest.fixture
def repo(tmp_path, repo_path):
    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", None)
    add_records(col, *make_records(120, dim=8))
    _run("--repo", repo_path, "init")
    _run("--repo", repo_path, "backup", f"chroma://{src}")
    return repo_path, src


@pytest.mark.parametrize("junk", [os.urandom(200), b"VDDO\x01\x03" + os.urandom(60), b""])
def test_junk_snapshot_is_skipped_with_a_warning_and_reported_by_check(repo, tmp_path, junk):
    repo_path, src = repo
    (repo_path / "snapshots" / JUNK).write_bytes(junk)
    (repo_path / "snapshots" / "not-a-snapshot").write_bytes(b"hello")

    p = _run("--repo", repo_path, "snapshots", "--json")
    assert len(json.loads(p.stdout)) == 1
    assert JUNK[:16] in p.stderr and "not-a-snapshot" in p.stderr and "warning" in p.stderr

    p = _run("--repo", repo_path, "backup", f"chroma://{src}", "--json")
    out = json.loads(p.stdout)
    assert out["parent"] is not None and any(JUNK[:16] in w for w in out["warnings"])

    dst = tmp_path / "dst"
    p = _run("--repo", repo_path, "restore", "latest", "--target", f"chroma://{dst}")
    assert JUNK[:16] in p.stderr
    assert_same_records(read_all(src, "docs"), read_all(dst, "docs"))
    # asking for the damaged snapshot itself: an integrity error, not "no such snapshot"
    p = _run("--repo", repo_path, "restore", JUNK[:10], "--target", f"chroma://{tmp_path / 'd2'}", code=17)
    assert "damaged" in p.stderr

    p = _run("--repo", repo_path, "check", "--json", code=17)
    errors = json.loads(p.stdout)["errors"]
    assert any(JUNK[:8] in e for e in errors) and any("not-a-sn" in e for e in errors), errors

    # prune cannot know what an unreadable snapshot needs: it stops before deleting anything
    before = sorted(p.name for p in (repo_path / "data").rglob("*") if p.is_file())
    p = _run("--repo", repo_path, "prune", "--max-unused", "0%", code=17)
    assert JUNK[:8] in p.stderr
    assert sorted(p.name for p in (repo_path / "data").rglob("*") if p.is_file()) == before


def test_junk_asset_object_is_skipped_with_a_warning_and_reported_by_check(tmp_path, repo_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for path, seed in ((a, 1), (b, 2)):
        _, col = chroma_collection(path, "docs", None)
        add_records(col, *make_records(40, dim=8, seed=seed))
    _run("--repo", repo_path, "init")
    _run("--repo", repo_path, "connect", "-p", "chroma", "--name", "a-docs", f"chroma://{a}")
    _run("--repo", repo_path, "connect", "-p", "chroma", "--name", "b-docs", f"chroma://{b}")
    junk_name = "cd" * 16 + "-" + "ef" * 8
    (repo_path / "assets" / junk_name).write_bytes(os.urandom(120))
    (repo_path / "assets" / "junk").write_bytes(b"\x00")

    p = _run("--repo", repo_path, "assets", "list", "--json")
    assert sorted(x["name"] for x in json.loads(p.stdout)) == ["a-docs", "b-docs"]
    assert junk_name[:16] in p.stderr and "warning" in p.stderr

    p = _run("--repo", repo_path, "backup", "--all", "--json")
    out = json.loads(p.stdout)
    assert out["ok"] == 2 and out["failed"] == [] and any(junk_name[:16] in w for w in out["warnings"])
    _run("--repo", repo_path, "backup", "--asset", "a-docs")

    p = _run("--repo", repo_path, "check", "--json", code=17)
    errors = json.loads(p.stdout)["errors"]
    assert any(junk_name[:16] in e for e in errors) and any("assets/junk" in e for e in errors), errors
    # once the junk is gone, check is clean
    (repo_path / "assets" / junk_name).unlink()
    (repo_path / "assets" / "junk").unlink()
    p = _run("--repo", repo_path, "check", "--json")
    assert json.loads(p.stdout)["assets"] == 2


def test_damaged_audit_entry_and_junk_are_reported_by_check(repo):
    repo_path, _ = repo
    entries = sorted((repo_path / "audit").iterdir())
    assert len(entries) >= 2
    (repo_path / "audit" / "garbage").write_bytes(b"x")
    p = _run("--repo", repo_path, "check", "--json", code=17)
    assert any("audit/garbage" in e for e in json.loads(p.stdout)["errors"])
    (repo_path / "audit" / "garbage").unlink()
    b = bytearray(entries[0].read_bytes())
    b[-5] ^= 1
    entries[0].write_bytes(bytes(b))
    p = _run("--repo", repo_path, "check", "--json", code=17)
    assert any("audit log" in e and "entry 1" in e for e in json.loads(p.stdout)["errors"]), p.stdout
