"""key add/list/remove/passwd: round trips, the old password stops working after passwd, the
key in use and the last key cannot be removed, the recovery key unlocks; no password on argv."""
from __future__ import annotations

import json

from vdtest import PASSWORD, vdedup


def _json(capsys, *args, code: int = 0):
    capsys.readouterr()
    assert vdedup(*args) == code
    return json.loads(capsys.readouterr().out)


def _opens(repo, password: str) -> int:
    """The exit code of opening the repository with this password (in-process)."""
    import pytest
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VDEDUP_PASSWORD", password)
        return vdedup("--repo", repo, "key", "list", "--json")


def test_key_round_trips(repo_url, capsys, monkeypatch, tmp_path):
    init = _json(capsys, "--repo", repo_url, "init", "--json")
    recovery = init["recovery_key"]
    keys = _json(capsys, "--repo", repo_url, "key", "list", "--json")
    assert sorted(k["kind"] for k in keys) == ["password", "recovery"]
    (current,) = [k for k in keys if k["current"]]
    assert current["kind"] == "password"

    # add: the new password comes from the environment (or a file), never from argv
    monkeypatch.setenv("VDEDUP_NEW_PASSWORD", "second secret")
    added = _json(capsys, "--repo", repo_url, "key", "add", "--json")
    assert added["kind"] == "password"
    assert len(_json(capsys, "--repo", repo_url, "key", "list", "--json")) == 3
    assert _opens(repo_url, "second secret") == 0 and _opens(repo_url, PASSWORD) == 0
    assert _opens(repo_url, "not a key") == 12

    # the key in use cannot be removed; another one can, by unique prefix
    capsys.readouterr()
    assert vdedup("--repo", repo_url, "key", "remove", current["id"][:10]) == 2
    assert "in use" in capsys.readouterr().err
    assert vdedup("--repo", repo_url, "key", "remove", added["id"][:12]) == 0
    assert _opens(repo_url, "second secret") == 12
    assert vdedup("--repo", repo_url, "key", "remove", "0000000000") == 2

    # passwd: new key added, the one in use removed; the old password stops working
    pw_file = tmp_path / "newpw"
    pw_file.write_text("third secret\n")
    monkeypatch.delenv("VDEDUP_NEW_PASSWORD")
    monkeypatch.setenv("VDEDUP_NEW_PASSWORD_FILE", str(pw_file))
    assert vdedup("--repo", repo_url, "key", "passwd") == 0
    assert _opens(repo_url, PASSWORD) == 12
    assert _opens(repo_url, "third secret") == 0
    monkeypatch.setenv("VDEDUP_PASSWORD", "third secret")
    keys = _json(capsys, "--repo", repo_url, "key", "list", "--json")
    assert sorted(k["kind"] for k in keys) == ["password", "recovery"]
    assert current["id"] not in {k["id"] for k in keys}

    # the recovery key unlocks; passwd while unlocked with it keeps it
    monkeypatch.setenv("VDEDUP_PASSWORD", recovery.lower())
    (rec,) = [k for k in _json(capsys, "--repo", repo_url, "key", "list", "--json") if k["current"]]
    assert rec["kind"] == "recovery"
    monkeypatch.setenv("VDEDUP_NEW_PASSWORD_FILE", str(pw_file))
    pw_file.write_text("fourth secret\n")
    assert vdedup("--repo", repo_url, "key", "passwd") == 0
    kinds = sorted(k["kind"] for k in _json(capsys, "--repo", repo_url, "key", "list", "--json"))
    assert kinds == ["password", "password", "recovery"]
    assert _opens(repo_url, "fourth secret") == 0 and _opens(repo_url, "third secret") == 0

    # with the recovery key in use, both passwords can go; then the recovery key is the last
    # key and cannot be removed (nor can it be while it is in use)
    for k in _json(capsys, "--repo", repo_url, "key", "list", "--json"):
        if k["kind"] == "password":
            assert vdedup("--repo", repo_url, "key", "remove", k["id"]) == 0
    capsys.readouterr()
    assert vdedup("--repo", repo_url, "key", "remove", rec["id"]) == 2
    assert "last password or recovery key" in capsys.readouterr().err
    assert _opens(repo_url, recovery) == 0


def test_new_password_is_required_and_never_on_argv(repo_url, capsys, monkeypatch):
    assert vdedup("--repo", repo_url, "init") == 0
    monkeypatch.setenv("VDEDUP_NEW_PASSWORD", "")
    capsys.readouterr()
    assert vdedup("--repo", repo_url, "key", "add") == 12        # stdin is no terminal: nothing to ask
    assert "VDEDUP_NEW_PASSWORD" in capsys.readouterr().err
    assert vdedup("--repo", repo_url, "key", "add", "--password", "x") != 0   # there is no such option
    added = _json(capsys, "--repo", repo_url, "key", "add", "--recovery", "--json")
    assert len(added["recovery_key"].replace("-", "")) == 52
    assert _opens(repo_url, added["recovery_key"]) == 0
    assert len(_json(capsys, "--repo", repo_url, "key", "list", "--json")) == 3
