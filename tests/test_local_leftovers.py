"""What a crash or a full disk leaves on this machine and in a local repository, and what
a restore into files:// may touch (issue 19 item 7): the plaintext row spool is private and
removed by the next run, a restore never writes through a planted symlink and makes files of
mode 0600, and `.tmp-*` files of failed saves are removed (at once, or by prune when old)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import numpy as np

from vdtest import vdedup


def _export(path, n: int = 20) -> str:
    path.mkdir(parents=True)
    rng = np.random.default_rng(3)
    np.save(path / "vectors.npy", rng.standard_normal((n, 8)).astype(np.float32))
    (path / "records.jsonl").write_text("".join(json.dumps({"id": f"r{i}", "metadata": {"i": i}}) + "\n"
                                                for i in range(n)))
    return f"files://{path}"


def test_row_spool_is_private_and_a_dead_owners_spool_is_removed_at_start(tmp_path, repo_path):
    from vdedup.repository.spool import TempRows, spool_dir
    with TempRows(spool_dir()) as tmp:
        assert stat.S_IMODE(os.stat(tmp.dir).st_mode) == 0o700
        for name in os.listdir(tmp.dir):
            assert stat.S_IMODE(os.stat(os.path.join(tmp.dir, name)).st_mode) == 0o600, name
    # a spool left by a process killed mid-run (its pid may even be running something else now)
    code = ("import os; from vdedup.repository.spool import TempRows, spool_dir; "
            "t = TempRows(spool_dir()); print(t.dir, flush=True); os._exit(0)")
    left = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=os.environ, check=True).stdout.strip()
    assert os.path.isdir(left)
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "snapshots") == 0        # any command that opens the repository
    assert not os.path.exists(left)


def test_a_spool_in_use_is_not_removed(tmp_path):
    from vdedup.repository.spool import TempRows, remove_stale_spools, spool_dir
    code = ("import sys, time; from vdedup.repository.spool import TempRows, spool_dir; "
            "t = TempRows(spool_dir()); print(t.dir, flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=os.environ)
    try:
        path = proc.stdout.readline().strip()
        assert remove_stale_spools(spool_dir()) == 0 and os.path.isdir(path)
    finally:
        proc.stdin.close()
        proc.wait()
    assert remove_stale_spools(spool_dir()) == 1 and not os.path.exists(path)   # its owner is gone


def test_restore_into_files_does_not_follow_a_planted_symlink(tmp_path, repo_path):
    src = _export(tmp_path / "src")
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", src) == 0
    dst = tmp_path / "dst"
    dst.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, dst / "vectors.npy.partial")        # what the restore writes first
    os.symlink(victim, dst / "records.jsonl.partial")
    old = os.umask(0o022)
    try:
        assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"files://{dst}") == 0
    finally:
        os.umask(old)
    assert victim.read_text() == "precious"
    for name in ("vectors.npy", "records.jsonl"):
        st = os.lstat(dst / name)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, name
    ids = [json.loads(x)["id"] for x in (dst / "records.jsonl").read_text().splitlines()]
    want = np.load(tmp_path / "src" / "vectors.npy")
    assert np.array_equal(np.load(dst / "vectors.npy"), want[[int(i[1:]) for i in ids]])


def test_a_failed_save_leaves_no_temporary_file(tmp_path):
    """A write that fails halfway (the file size limit stands in for a full disk: both fail
    os.write with an error) removes its temporary file."""
    repo = tmp_path / "r"
    code = f"""
import resource, signal
from vdedup.backend.local import LocalBackend
from vdedup.errors import BackendError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
b = LocalBackend({str(repo)!r}); b.create_layout()
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    b.save("data", "ab" * 32, b"x" * 100000)
except BackendError as e:
    print("refused:", e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("refused:")
    left = [p for p in repo.rglob("*") if p.is_file()]
    assert left == [], left


def test_prune_removes_old_temporary_files_only(tmp_path, repo_path, capsys):
    src = _export(tmp_path / "src")
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", src) == 0
    old = [repo_path / "data" / "ab" / ".tmp-0123456789abcdef", repo_path / "index" / ".tmp-00112233aabbccdd",
           repo_path / ".tmp-ffeeddccbbaa9988"]
    young = repo_path / "snapshots" / ".tmp-1111111111111111"
    for p in old + [young]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half a pack" * 100)
    two_hours_ago = time.time() - 7200
    for p in old:
        os.utime(p, (two_hours_ago, two_hours_ago))
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "prune", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["temporaries_removed"] == 3 and result["temporary_bytes_removed"] == 3 * 1100
    assert not any(p.exists() for p in old) and young.exists()
    assert vdedup("--repo", repo_path, "check", "--read-data") == 0
