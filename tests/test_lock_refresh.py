"""A lock that cannot be refreshed is not silently outlived: once the storage refuses the
refresh writes for GIVE_UP_AFTER seconds, the operation stops (LockLost, exit 11) before
its lock could be taken for stale by another client, so a prune elsewhere cannot delete
what it still needs. Test hooks: the module's intervals, shortened; a backend that starts
refusing lock writes after the first one; a source that is slow to read."""
from __future__ import annotations

import os
import signal
import time

import pytest

from vdedup.backend import FaultyBackend, LocalBackend, RetryBackend
from vdedup.backend.base import FileType
from vdedup.connectors import open_connector
from vdedup.engine.backup import backup
from vdedup.errors import LockLost
from vdedup.repository import Repository
from vdedup.repository import locks
from vdtest import PASSWORD, add_records, chroma_collection, make_records


@pytest.fixture
def short_locks(monkeypatch):
    monkeypatch.setattr(locks, "REFRESH_EVERY", 0.2)
    monkeypatch.setattr(locks, "RETRY_EVERY", 0.1)
    monkeypatch.setattr(locks, "STALE_AFTER", 4.0)
    monkeypatch.setattr(locks, "GIVE_UP_AFTER", 1.5)


class Recording:
    """The storage as seen from below the lock: when each object was written."""

    def __init__(self, inner):
        self.inner = inner
        self.saves: list[tuple[float, str, str]] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def save(self, ftype, name, data):
        self.inner.save(ftype, name, data)
        self.saves.append((time.time(), ftype, name))


class SlowSource:
    """A real Chroma connector that takes its time per batch (a large remote database)."""

    def __init__(self, inner, seconds: float):
        self.inner, self.seconds = inner, seconds
        self.provider = inner.provider

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def scan(self, collection, namespace="", batch_size=1000):
        for batch in self.inner.scan(collection, namespace, batch_size):
            time.sleep(self.seconds)
            yield batch

    def scan_partition(self, collection, partition, batch_size=1000):   # what backups read through
        for batch in self.inner.scan_partition(collection, partition, batch_size):
            time.sleep(self.seconds)
            yield batch


def _repo(repo_path, rules: str) -> tuple[Repository, Recording]:
    Repository.init(LocalBackend(str(repo_path)), PASSWORD)[0].close()
    rec = Recording(LocalBackend(str(repo_path)))
    return Repository.open(RetryBackend(FaultyBackend(rec, rules)), PASSWORD), rec


def test_refresh_failures_stop_the_operation_before_the_lock_goes_stale(repo_path, short_locks):
    repo, rec = _repo(repo_path, "save:locks:refuse:after=1")      # the first lock write works
    lock = repo.lock(exclusive=False, operation="backup")
    started = lock.written_at
    saved_until = started
    with pytest.raises(LockLost) as e:
        for i in range(100):
            repo.backend.save(FileType.SNAPSHOTS, f"{i:064x}", b"x")
            saved_until = time.time()
            time.sleep(0.1)
    assert e.value.exit_code == 11 and "could not be refreshed" in e.value.message
    assert "refuses writes" in e.value.message                 # the cause is named
    # every object was written before the lock could be taken for stale, with margin
    last = max(t for t, ftype, _ in rec.saves if ftype != "locks")
    assert last <= started + locks.GIVE_UP_AFTER + 0.05 < started + locks.STALE_AFTER
    assert saved_until - started >= locks.GIVE_UP_AFTER - 0.3   # and the lock held that long
    lock.release()
    repo.close()


def test_refresh_that_recovers_keeps_the_operation_going(repo_path, short_locks):
    repo, rec = _repo(repo_path, "save:locks:refuse:after=1,times=3")   # three refusals, then ok
    lock = repo.lock(exclusive=False, operation="backup")
    try:
        for i in range(30):                                    # 3 s, twice GIVE_UP_AFTER
            repo.backend.save(FileType.SNAPSHOTS, f"{i:064x}", b"x")
            time.sleep(0.1)
        assert not lock.lost and lock.refresh_error is None
        assert len([1 for _, ftype, _ in rec.saves if ftype == "locks"]) >= 5
    finally:
        lock.release()
    assert list(repo.backend.list(FileType.LOCKS)) == []
    repo.close()


def test_a_slow_backup_whose_lock_is_lost_commits_no_snapshot(tmp_path, repo_path, short_locks):
    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", None)
    add_records(col, *make_records(300, dim=8))
    repo, rec = _repo(repo_path, "save:locks:refuse:after=1")
    conn = SlowSource(open_connector(f"chroma://{src}"), 0.15)
    started = time.time()
    with pytest.raises(LockLost):
        backup(repo, conn, f"chroma://{src}", batch_size=20)     # 15 batches: 2.25 s of reading
    conn.close()
    assert not any(ftype == "snapshots" for _, ftype, _ in rec.saves)
    assert all(t <= started + locks.STALE_AFTER for t, _, _ in rec.saves)
    assert repo.list_snapshots() == []
    repo.close()
    # without the faults the same backup commits
    repo = Repository.open(LocalBackend(str(repo_path)), PASSWORD)
    backup(repo, open_connector(f"chroma://{src}"), f"chroma://{src}", batch_size=20)
    assert len(repo.list_snapshots()) == 1
    repo.close()


class CtrlC:
    """The storage below the lock, with ctrl-c (SIGINT to this process) arriving just as a
    lock object is saved or removed."""

    def __init__(self, inner, at: str):
        self.inner, self.at = inner, at

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def save(self, ftype, name, data):
        if ftype == "locks" and self.at == "save":
            os.kill(os.getpid(), signal.SIGINT)
        self.inner.save(ftype, name, data)

    def remove(self, ftype, name):
        if ftype == "locks" and self.at == "remove":
            os.kill(os.getpid(), signal.SIGINT)
        self.inner.remove(ftype, name)


@pytest.mark.parametrize("at", ["save", "remove"])
def test_ctrl_c_while_a_lock_object_is_saved_or_removed_leaves_none(repo_path, at):
    """The interruption comes once the lock object is saved (and then taken back) or removed:
    the operation ends with KeyboardInterrupt and no lock object stays behind. (Ctrl-C is
    handled as in a terminal: a test run started in the background of a non-interactive
    shell inherits SIGINT ignored, tests/vdtest.py interruptible.)"""
    Repository.init(LocalBackend(str(repo_path)), PASSWORD)[0].close()
    repo = Repository.open(CtrlC(LocalBackend(str(repo_path)), at), PASSWORD)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            lock = repo.lock(exclusive=False, operation="backup")
            lock.release()
        assert list(LocalBackend(str(repo_path)).list(FileType.LOCKS)) == []
    finally:
        signal.signal(signal.SIGINT, previous)
        repo.close()
