"""Repository locks (repository layer).

A lock is a sealed object `locks/ID` holding time, host, pid and whether it is exclusive.
Backup and restore take shared locks; anything that deletes takes an exclusive one. A lock
is stale when its process is gone (same host) or it was not refreshed for STALE_AFTER
seconds; stale locks never block, and `unlock` removes them. A held lock is refreshed in
the background every REFRESH_EVERY seconds.
"""
from __future__ import annotations

import getpass
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass

from ..errors import ObjectNotFound, RepositoryLocked, VdedupError
from ..format.objects import ObjectType

STALE_AFTER = 30 * 60
REFRESH_EVERY = 5 * 60


@dataclass
class LockInfo:
    name: str
    time: float
    hostname: str
    pid: int
    exclusive: bool
    operation: str

    def is_stale(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if now - self.time > STALE_AFTER:
            return True
        if self.hostname == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False


def _username() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


class Lock:
    def __init__(self, repo, exclusive: bool, operation: str):
        self.repo = repo
        self.exclusive = exclusive
        self.operation = operation
        self.name: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> str:
        name = secrets.token_hex(32)
        body = {"time": time.time(), "hostname": socket.gethostname(), "pid": os.getpid(),
                "username": _username(), "exclusive": self.exclusive, "operation": self.operation}
        self.repo.save_json_object(ObjectType.LOCK, name, body)
        return name

    def acquire(self) -> "Lock":
        self.name = self._write()
        for other in self.repo.list_locks():
            if other.name == self.name or other.is_stale():
                continue
            if self.exclusive or other.exclusive:
                self.release()
                kind = "an exclusive" if other.exclusive else "a"
                raise RepositoryLocked(
                    f"repository is locked: {kind} lock held by '{other.operation}' "
                    f"(pid {other.pid} on {other.hostname}, since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(other.time))})")
        self._thread = threading.Thread(target=self._refresh, daemon=True)
        self._thread.start()
        return self

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_EVERY):
            try:
                new = self._write()
                old, self.name = self.name, new
                self.repo.backend.remove("locks", old)
            except VdedupError:
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.name:
            try:
                self.repo.backend.remove("locks", self.name)
            except ObjectNotFound:
                pass
            self.name = None

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
