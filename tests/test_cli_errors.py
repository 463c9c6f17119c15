"""Bad input: a one-line error, a documented exit code, no traceback, and nothing stored
is changed. Run as real processes, as a user would."""
import hashlib
import socket

import pytest

from vdtest import PASSWORD, add_records, chroma_collection, make_records, vdedup, vdedup_proc


def _digest(path):
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and "locks" not in p.parts and "audit" not in p.parts:   # failures are audited
            h.update(str(p.relative_to(path)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def repo_with_snapshot(tmp_path, repo_path):
    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", None)
    add_records(col, *make_records(200, dim=16))
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"chroma://{src}") == 0
    return src


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _one_line_error(proc, code, fragment):
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("vdedup: error:")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


CASES = {
    "wrong password": (lambda t, r, s: (["--repo", r, "snapshots"], {"VDEDUP_PASSWORD": "nope"}), 12, "wrong password"),
    "no password": (lambda t, r, s: (["--repo", r, "snapshots"], {"VDEDUP_PASSWORD": ""}), 12, "no password"),
    "missing repository": (lambda t, r, s: (["--repo", t / "nowhere", "snapshots"], {}), 10, "no repository"),
    "not a repository": (lambda t, r, s: (["--repo", s, "snapshots"], {}), 10, "no repository"),
    "no --repo": (lambda t, r, s: (["snapshots"], {}), 10, "no repository given"),
    "init twice": (lambda t, r, s: (["--repo", r, "init"], {}), 13, "already exists"),
    "unknown snapshot": (lambda t, r, s: (["--repo", r, "restore", "deadbeef", "--target", f"chroma://{t}/d"], {}), 14, "no snapshot"),
    "missing collection": (lambda t, r, s: (["--repo", r, "backup", f"chroma://{s}", "--collection", "nope"], {}), 15, "nope"),
    "unreachable server": (lambda t, r, s: (["--repo", r, "backup", f"chroma://127.0.0.1:{_closed_port()}"], {}), 15, "cannot reach"),
    "non-empty target": (lambda t, r, s: (["--repo", r, "restore", "latest", "--target", f"chroma://{s}"], {}), 16, "already holds"),
    "unknown provider": (lambda t, r, s: (["--repo", r, "backup", "nosuchdb://x"], {}), 2, "unknown provider"),
    "not a URL": (lambda t, r, s: (["--repo", r, "backup", "just-a-path"], {}), 2, "not a source URL"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(case, tmp_path, repo_path, repo_with_snapshot):
    build, code, fragment = CASES[case]
    args, env = build(tmp_path, repo_path, repo_with_snapshot)
    before = _digest(repo_path)
    proc = vdedup_proc(*args, env=env)
    _one_line_error(proc, code, fragment)
    assert _digest(repo_path) == before


def test_password_file_and_no_secret_in_output(tmp_path, repo_path, repo_with_snapshot):
    pw_file = tmp_path / "pw"
    pw_file.write_text(PASSWORD + "\n")
    proc = vdedup_proc("--repo", repo_path, "snapshots", env={"VDEDUP_PASSWORD": "", "VDEDUP_PASSWORD_FILE": str(pw_file)})
    assert proc.returncode == 0, proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    proc = vdedup_proc("--repo", repo_path, "snapshots", env={"VDEDUP_PASSWORD": "", "VDEDUP_PASSWORD_FILE": str(tmp_path / "none")})
    _one_line_error(proc, 12, "VDEDUP_PASSWORD_FILE")


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x01binary\n", b"\x80abc", b"ok\x00\xc3\x28"])
def test_binary_password_file_is_one_clear_line(tmp_path, repo_path, repo_with_snapshot, content):
    """A password file that is not UTF-8 text (a key file, an image picked by mistake) is a
    missing password (exit 12) named in one line, not an internal UnicodeDecodeError."""
    pw_file = tmp_path / "pw.bin"
    pw_file.write_bytes(content)
    proc = vdedup_proc("--repo", repo_path, "snapshots", env={"VDEDUP_PASSWORD": "", "VDEDUP_PASSWORD_FILE": str(pw_file)})
    _one_line_error(proc, 12, "VDEDUP_PASSWORD_FILE")
    assert "not UTF-8 text" in proc.stderr and "Unicode" not in proc.stderr
    # the same for a new password read by `key add`
    proc = vdedup_proc("--repo", repo_path, "key", "add", env={"VDEDUP_NEW_PASSWORD_FILE": str(pw_file)})
    _one_line_error(proc, 12, "VDEDUP_NEW_PASSWORD_FILE")


def test_locked_repository_refuses_with_exit_11(repo_path, repo_with_snapshot):
    from vdedup.backend import LocalBackend
    from vdedup.repository import Repository
    repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    lock = repo.lock(exclusive=True, operation="prune")
    try:
        proc = vdedup_proc("--repo", repo_path, "backup", f"chroma://{repo_with_snapshot}")
        _one_line_error(proc, 11, "locked")
    finally:
        lock.release()
        repo.close()


def test_url_credentials_never_shown(tmp_path, repo_path, repo_with_snapshot):
    """A credential in a source URL is bad input, refused before any connection is tried:
    exit 2 (usage), whether or not the server is reachable, and the secret is never echoed."""
    before = _digest(repo_path)
    proc = vdedup_proc("--repo", repo_path, "backup", f"chroma://user:s3cret-token@127.0.0.1:{_closed_port()}")
    _one_line_error(proc, 2, "credentials do not belong in a Chroma URL")
    assert "s3cret-token" not in proc.stdout + proc.stderr
    assert _digest(repo_path) == before


@pytest.mark.parametrize("args", [["nosuchcmd"], ["snapshots", "--bogus"], ["restore"]])
def test_usage_errors_exit_2_without_traceback(args, repo_path, repo_with_snapshot):
    proc = vdedup_proc("--repo", repo_path, *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
