"""Tamper detection: a flipped byte anywhere in a pack is caught by check --read-data and
by restore; a damaged pack names the snapshots it affects."""
import json
import os

import pytest

from vdtest import add_records, chroma_collection, make_records, vdedup, vdedup_proc


@pytest.fixture
def backed_up(tmp_path, repo_path):
    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", None)
    add_records(col, *make_records(1500, dim=64))
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"chroma://{src}") == 0
    return src


def _packs(repo_path):
    return sorted(p for p in (repo_path / "data").rglob("*") if p.is_file())


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))


def test_healthy_repository_passes_check(backed_up, repo_path, capsys):
    assert vdedup("--repo", repo_path, "check") == 0
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "check", "--read-data", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["packs_read"] == len(_packs(repo_path)) and out["records_checked"] == 1500


@pytest.mark.parametrize("where", ["first-block", "middle", "trailer"])
def test_flipped_byte_is_caught_by_check_and_restore(backed_up, repo_path, tmp_path, capsys, where):
    pack = _packs(repo_path)[0]
    size = pack.stat().st_size
    offset = {"first-block": 64, "middle": size // 2, "trailer": size - 10}[where]
    _flip(pack, offset)
    assert vdedup("--repo", repo_path, "check") == 0          # structure alone cannot see it
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "check", "--read-data", "--json") == 17
    out = json.loads(capsys.readouterr().out)
    assert not out["ok"] and any(pack.name[:16] in e for e in out["errors"])
    if where != "trailer":
        assert any("snapshot" in e and "docs" in e for e in out["errors"])   # names what it affects
        proc = vdedup_proc("--repo", repo_path, "restore", "latest", "--target", f"chroma://{tmp_path / 'dst'}")
        assert proc.returncode == 17, proc.stderr
        assert "Traceback" not in proc.stderr and "authentication failed" in proc.stderr


def test_deleted_pack_is_reported(backed_up, repo_path, capsys):
    pack = _packs(repo_path)[0]
    pack.unlink()
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "check", "--json") == 17
    out = json.loads(capsys.readouterr().out)
    assert any("missing" in e for e in out["errors"])
