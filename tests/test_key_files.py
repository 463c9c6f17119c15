"""Damaged, missing, planted and absurd key files: a damaged password key file is "damaged"
(exit 17), not "wrong password" (exit 12); `check` verifies every key file against the
keyed digests of the key list, so a dead recovery key is found before the day it is needed;
scrypt parameters are bounded both for new keys and for key files read."""
from __future__ import annotations

import json
import time

import pytest

from vdedup.backend import LocalBackend
from vdedup.backend.base import FileType
from vdedup.errors import KeyFileDamaged, UsageError, WrongPassword
from vdedup.repository import Repository
from vdtest import PASSWORD, vdedup, vdedup_proc


def _key_files(repo_path):
    """(password key path, recovery key path)."""
    found = {}
    for p in (repo_path / "keys").iterdir():
        found[json.loads(p.read_bytes())["kind"]] = p
    return found["password"], found["recovery"]


def _flip(path, pos: int) -> None:
    b = bytearray(path.read_bytes())
    b[pos] ^= 0x01
    path.write_bytes(bytes(b))


def _check(capsys, repo_path, *extra):
    capsys.readouterr()
    rc = vdedup("--repo", repo_path, "check", "--json", *extra)
    return rc, json.loads(capsys.readouterr().out)


@pytest.fixture
def repo(repo_path, capsys):
    assert vdedup("--repo", repo_path, "init", "--json") == 0
    init = json.loads(capsys.readouterr().out)
    return repo_path, init["recovery_key"]


def test_every_flipped_byte_of_the_password_key_file_is_damage_not_a_wrong_password(repo):
    repo_path, recovery = repo
    pw, _ = _key_files(repo_path)
    good = pw.read_bytes()
    for pos in range(len(good)):
        _flip(pw, pos)
        with pytest.raises(KeyFileDamaged) as e:
            Repository.open(LocalBackend(str(repo_path)), PASSWORD)
        assert pw.name[:8] in e.value.message, (pos, e.value.message)
        assert e.value.exit_code == 17
        # the recovery key still opens the repository
        Repository.open(LocalBackend(str(repo_path)), recovery).close()
        pw.write_bytes(good)
    # a wrong password on an intact repository stays a wrong password
    with pytest.raises(WrongPassword):
        Repository.open(LocalBackend(str(repo_path)), "not the password")


def test_damaged_password_key_file_through_the_cli(repo):
    repo_path, _ = repo
    pw, _ = _key_files(repo_path)
    _flip(pw, len(pw.read_bytes()) // 2)
    proc = vdedup_proc("--repo", repo_path, "snapshots")
    assert proc.returncode == 17, proc.stderr
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("vdedup: error:")]
    assert len(line) == 1 and "damaged" in line[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("where", ["start", "middle", "data", "end"])
def test_flipped_byte_in_the_recovery_key_file_is_found_by_check(repo, capsys, where):
    repo_path, recovery = repo
    _, rec = _key_files(repo_path)
    raw = rec.read_bytes()
    pos = {"start": 3, "middle": len(raw) // 2, "data": raw.index(b'"data"') + 12, "end": len(raw) - 3}[where]
    rc, out = _check(capsys, repo_path)
    assert rc == 0 and out["ok"], out
    _flip(rec, pos)
    rc, out = _check(capsys, repo_path, "--read-data")
    assert rc == 17 and not out["ok"]
    assert any(rec.name[:8] in e and "recovery" in e for e in out["errors"]), out["errors"]
    # and the recovery key really is dead: nothing opens with it
    with pytest.raises((KeyFileDamaged, WrongPassword)):
        Repository.open(LocalBackend(str(repo_path)), recovery)


def test_replaced_key_file_with_a_valid_checksum_is_found_by_check(repo, capsys):
    """An attacker (or a copy from another repository) can write a well-formed key file with
    a correct unkeyed checksum; only the keyed digest of the key list tells it apart."""
    repo_path, _ = repo
    other = repo_path.parent / "other"
    assert vdedup("--repo", other, "init") == 0
    _, rec = _key_files(repo_path)
    _, other_rec = _key_files(other)
    rec.write_bytes(other_rec.read_bytes())          # well-formed, wraps another master key
    rc, out = _check(capsys, repo_path)
    assert rc == 17 and any(rec.name[:8] in e and "differ" in e for e in out["errors"]), out


def test_missing_listed_key_and_junk_and_planted_keys(repo, capsys):
    repo_path, _ = repo
    _, rec = _key_files(repo_path)
    rec.unlink()
    rc, out = _check(capsys, repo_path)
    assert rc == 17 and any(rec.name[:8] in e and "missing" in e for e in out["errors"]), out
    # `key remove` of the missing key drops it from the key list: check is clean again
    assert vdedup("--repo", repo_path, "key", "remove", rec.name[:10]) == 0
    rc, out = _check(capsys, repo_path)
    assert rc == 0, out
    # junk in keys/ is an error; unlocking still works
    (repo_path / "keys" / ("ab" * 32)).write_bytes(b"\x00junk\xff")
    rc, out = _check(capsys, repo_path)
    assert rc == 17 and any("abababab" in e and "damaged" in e for e in out["errors"]), out
    (repo_path / "keys" / ("ab" * 32)).unlink()
    # a planted well-formed key file is a warning (it cannot open the repository), even one
    # that opens with our password (another repository's, with the same password)
    other = repo_path.parent / "other"
    assert vdedup("--repo", other, "init") == 0
    for planted in (other / "keys").iterdir():
        (repo_path / "keys" / planted.name).write_bytes(planted.read_bytes())
        rc, out = _check(capsys, repo_path)
        assert rc == 0 and any(planted.name[:8] in w and "not in the key list" in w
                               for w in out["warnings"]), out


def test_key_operations_keep_the_key_list(repo, capsys, monkeypatch):
    repo_path, recovery = repo
    monkeypatch.setenv("VDEDUP_NEW_PASSWORD", "second secret")
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "key", "add", "--json") == 0
    added = json.loads(capsys.readouterr().out)["id"]
    assert vdedup("--repo", repo_path, "key", "add", "--recovery") == 0
    assert _check(capsys, repo_path)[0] == 0
    assert vdedup("--repo", repo_path, "key", "remove", added[:10]) == 0
    assert vdedup("--repo", repo_path, "key", "passwd") == 0      # the password is now "second secret"
    monkeypatch.setenv("VDEDUP_PASSWORD", "second secret")
    rc, out = _check(capsys, repo_path)
    assert rc == 0 and not [w for w in out["warnings"] if "key" in w], out
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "key", "list", "--json") == 0
    keys = json.loads(capsys.readouterr().out)
    assert sorted(k["kind"] for k in keys) == ["password", "recovery", "recovery"]
    assert all(k["status"] == "ok" for k in keys), keys
    assert len(list((repo_path / "keylist").iterdir())) == 1        # older generations removed


def test_repository_without_a_key_list_gets_one_at_the_next_key_operation(repo, capsys, monkeypatch, tmp_path):
    repo_path, _ = repo
    for p in (repo_path / "keylist").iterdir():
        p.unlink()
    # (this machine saw the list: it would say the list went backwards; a repository made by
    # an older vdedup never had one, as a machine that never saw this one shows)
    monkeypatch.setenv("VDEDUP_CACHE_DIR", str(tmp_path / "other-machine"))
    rc, out = _check(capsys, repo_path)
    assert rc == 0 and any("no key list" in w for w in out["warnings"]), out
    assert vdedup("--repo", repo_path, "key", "add", "--recovery") == 0
    rc, out = _check(capsys, repo_path)
    assert rc == 0 and not any("key list" in w for w in out["warnings"]), out
    _flip(_key_files(repo_path)[1], 5)           # the recovery key, which the password cannot reach
    assert _check(capsys, repo_path)[0] == 17


@pytest.mark.parametrize("value", ["2", "1000", "3", "4194304", "lots", "-1024"])
def test_scrypt_n_from_the_environment_is_bounded(repo_path, monkeypatch, capsys, value):
    monkeypatch.setenv("VDEDUP_SCRYPT_N", value)
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "init") == 2
    assert "VDEDUP_SCRYPT_N" in capsys.readouterr().err
    assert not (repo_path / "config").exists()
    from vdedup.crypto.keys import scrypt_params
    with pytest.raises(UsageError):
        scrypt_params()


@pytest.mark.parametrize("params", [{"n": 2 ** 40, "r": 8, "p": 1}, {"n": 2 ** 20, "r": 64, "p": 1},
                                    {"n": 2 ** 17, "r": 8, "p": 100000}, {"n": 3, "r": 8, "p": 1},
                                    {"n": "1024", "r": 8, "p": 1}, {"n": 2 ** 20, "r": 16, "p": 1}])
def test_absurd_kdf_parameters_are_refused_before_scrypt_runs(repo, monkeypatch, capsys, params):
    """A planted key file asking for terabytes of memory is refused unread: scrypt is never
    called for it, the real keys still open, and `check` names it."""
    repo_path, _ = repo
    import vdedup.crypto.keys as ck
    pw, _ = _key_files(repo_path)
    doc = json.loads(pw.read_bytes())
    doc["kdf"].update(params)
    doc.pop("checksum")
    from vdedup.repository.keys import checksum
    doc["checksum"] = checksum(doc)          # well-formed apart from its parameters
    planted = repo_path / "keys" / ("cd" * 32)
    planted.write_text(json.dumps(doc))
    calls = []
    real = ck.Scrypt

    def spy(*a, **kw):
        calls.append(kw)
        return real(*a, **kw)

    monkeypatch.setattr(ck, "Scrypt", spy)
    started = time.monotonic()
    Repository.open(LocalBackend(str(repo_path)), PASSWORD).close()
    assert all(c["n"] == 1024 for c in calls), calls
    # alone, it is a clear refusal, not an allocation and not "wrong password"
    pw.unlink()
    calls.clear()
    with pytest.raises(KeyFileDamaged) as e:
        Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    assert calls == [] and "scrypt" in e.value.message and time.monotonic() - started < 5
    assert e.value.exit_code == 17


def test_key_file_format_on_disk(repo):
    repo_path, _ = repo
    for p in (repo_path / "keys").iterdir():
        doc = json.loads(p.read_bytes())
        assert set(doc) == {"version", "kind", "created", "kdf", "nonce", "data", "checksum"}
        from vdedup.repository.keys import checksum
        assert doc["checksum"] == checksum(doc)
    (listed,) = (repo_path / "keylist").iterdir()
    assert listed.name == "000000000001" and listed.read_bytes()[:4] == b"VDDO"
    backend = LocalBackend(str(repo_path))
    assert sorted(n for n, _ in backend.list(FileType.KEYLIST)) == ["000000000001"]
