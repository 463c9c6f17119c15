"""Large writes go past the page cache (vdedup/directio.py): the bytes on disk are
the same whichever way they are written, a file system that refuses direct writes gets
them through the cache, and real write errors still refuse the save with nothing left."""
from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys

import pytest

from vdedup import directio as direct
from vdedup.backend.local import LocalBackend
from vdedup.errors import WriteRefused


def _takes_direct_writes(d) -> bool:
    """Whether the file system of directory `d` accepts an aligned O_DIRECT write."""
    import mmap
    path = os.path.join(d, "probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | direct.O_DIRECT)
        buf = mmap.mmap(-1, 4096)
        os.write(fd, buf)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(path)


@pytest.mark.parametrize("size", [direct.MIN_SIZE, 3 * direct.MIN_SIZE + 123, direct.CHUNK * 2 + 4096 * 3 + 1])
def test_large_writes_go_past_the_cache_and_read_back_exactly(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        went = direct.write_all(fd, data)
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & direct.O_DIRECT      # the descriptor is as it was
    finally:
        os.close(fd)
    assert path.read_bytes() == data
    if _takes_direct_writes(tmp_path):
        assert went == size - size % direct.ALIGN
    else:
        assert went == 0


def test_small_writes_use_the_cache(tmp_path, monkeypatch):
    seen = []
    real = os.write
    monkeypatch.setattr(direct.os, "write", lambda fd, b: (seen.append(fcntl.fcntl(fd, fcntl.F_GETFL)), real(fd, b))[1])
    data = os.urandom(direct.MIN_SIZE - 1)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert direct.write_all(fd, data) == 0
    finally:
        os.close(fd)
    assert seen and not any(flags & direct.O_DIRECT for flags in seen)
    assert (tmp_path / "f").read_bytes() == data


def test_a_file_system_refusing_direct_writes_gets_them_through_the_cache(tmp_path, monkeypatch):
    """EINVAL from a direct write (tmpfs on older kernels, FUSE): the save goes on through
    the page cache, from wherever the direct writes stopped, and reads back exactly."""
    real = os.write
    calls = {"direct": 0}

    def write(fd, b):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & direct.O_DIRECT:
            calls["direct"] += 1
            if calls["direct"] > 1:               # the first chunk goes, the second is refused
                raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, b)

    monkeypatch.setattr(direct.os, "write", write)
    b = LocalBackend(str(tmp_path / "repo"))
    b.create_layout()
    data = os.urandom(2 * direct.CHUNK + 5000)
    b.save("data", "cd" * 32, data)
    assert calls["direct"] == 2
    assert b.load("data", "cd" * 32) == data


def test_a_failing_direct_write_refuses_the_save_and_leaves_nothing(tmp_path, monkeypatch):
    real = os.write
    takes = _takes_direct_writes(tmp_path)

    def write(fd, b):
        # where direct writes work, the direct write is the one that fails; elsewhere the
        # write through the cache
        if not takes or fcntl.fcntl(fd, fcntl.F_GETFL) & direct.O_DIRECT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, b)

    b = LocalBackend(str(tmp_path / "repo"))
    b.create_layout()
    monkeypatch.setattr(direct.os, "write", write)
    with pytest.raises(WriteRefused):
        b.save("data", "ef" * 32, os.urandom(3 * direct.MIN_SIZE))
    assert [p for p in (tmp_path / "repo").rglob("*") if p.is_file()] == []


def test_a_size_limit_hit_in_a_direct_write_leaves_no_temporary_file(tmp_path):
    repo = tmp_path / "r"
    code = f"""
import resource, signal
from vdedup.backend.local import LocalBackend
from vdedup.errors import BackendError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
b = LocalBackend({str(repo)!r}); b.create_layout()
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
try:
    b.save("data", "ab" * 32, b"x" * (5 << 20))
except BackendError as e:
    print("refused:", e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("refused:")
    assert [p for p in repo.rglob("*") if p.is_file()] == []


def test_an_appender_writes_pieces_past_the_cache_and_the_file_reads_back_exactly(tmp_path):
    """A restored export's vectors file: many pieces of any size, a header rewritten at the
    end; whole chunks go past the cache where the file system takes it."""
    rng = __import__("random").Random(5)
    pieces = [os.urandom(rng.choice([1, 128, 3072, 4096, 100_000, 3 << 20])) for _ in range(40)]
    path = tmp_path / "v"
    a = direct.Appender(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    a.write(b"\0" * 128)
    for p in pieces:
        a.write(p)
        a.flush()
    a.end()
    os.pwrite(a.fileno(), b"H" * 128, 0)
    a.close()
    want = b"H" * 128 + b"".join(pieces)
    assert path.read_bytes() == want
    whole = len(want) - len(want) % direct.ALIGN
    assert a.bytes_direct == (whole if _takes_direct_writes(tmp_path) else 0)


def test_an_appender_goes_on_through_the_cache_after_a_refusal(tmp_path, monkeypatch):
    real = os.write
    refused = []
    takes = _takes_direct_writes(tmp_path)

    def write(fd, b):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & direct.O_DIRECT:
            refused.append(len(b))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, b)

    monkeypatch.setattr(direct.os, "write", write)
    data = os.urandom(3 * direct.CHUNK + 777)
    path = tmp_path / "v"
    a = direct.Appender(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for i in range(0, len(data), 1 << 20):
        a.write(data[i:i + (1 << 20)])
    a.close()
    assert path.read_bytes() == data
    assert len(refused) == (1 if takes else 0) and a.bytes_direct == 0   # tried once at most
