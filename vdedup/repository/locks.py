"""Repository locks (repository layer).

A lock is a sealed object `locks/ID` holding time, host, pid and whether it is exclusive.
Backup and restore take shared locks; anything that deletes takes an exclusive one. A lock
is stale when its process is gone (same host) or it was not refreshed for STALE_AFTER
seconds; stale locks never block, and `unlock` removes them. A held lock is refreshed in
the background every REFRESH_EVERY seconds.

A refresh that fails is retried every RETRY_EVERY seconds; once our newest lock object is
GIVE_UP_AFTER old (well before STALE_AFTER, when another client may take it for stale and a
prune may delete what we still need), the operation stops: every backend call it makes
through the repository raises LockLost. Readers that cannot write a lock at all (full disk,
read-only storage, no permission) read without one, with a warning (`read_lock`).

A lock object of a version this vdedup does not know (a newer vdedup wrote it) is taken for
a live exclusive lock, stale only by its `time` when it has a readable one: refusing to run
beside an operation whose rules we do not know is the safe side (`unlock --remove-all` clears
it).
"""
from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterator

from ..backend.base import FileType
from ..errors import (FormatError, IntegrityError, LockLost, ObjectNotFound, RepositoryLocked, UnsupportedFormat,
                      WriteRefused)
from ..format.objects import ObjectType, open_json_object
from ..format.versions import FORMATS

VERSION = FORMATS[ObjectType.LOCK].writes

STALE_AFTER = 30 * 60
REFRESH_EVERY = 5 * 60
RETRY_EVERY = 30
GIVE_UP_AFTER = STALE_AFTER - 3 * REFRESH_EVERY // 2      # 22.5 minutes without a refresh


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
        if self.hostname == socket.gethostname() and self.pid > 0:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False


def list_locks(repo) -> list[LockInfo]:
    """Every lock object that opens; damaged ones are ignored (they cannot be ours)."""
    out = []
    for name, _ in repo.backend.list(FileType.LOCKS):
        try:
            d = repo.load_json_object(ObjectType.LOCK, name)
        except UnsupportedFormat:
            out.append(_newer_lock(repo, name))
            continue
        except (ObjectNotFound, IntegrityError, FormatError):
            continue
        try:
            out.append(LockInfo(name, float(d["time"]), str(d["hostname"]), int(d["pid"]),
                                bool(d["exclusive"]), str(d["operation"])))
        except (KeyError, TypeError, ValueError):
            continue                      # malformed: as good as damaged
    return out


def _newer_lock(repo, name: str) -> LockInfo:
    """A lock object of an unknown version: a live exclusive lock until its `time` is old."""
    try:
        d = open_json_object(repo.master, ObjectType.LOCK, name, repo.backend.load(FileType.LOCKS, name),
                        check=False).data
    except (ObjectNotFound, IntegrityError):
        d = {}
    t, pid = d.get("time"), d.get("pid")
    when = float(t) if type(t) in (int, float) else time.time()
    return LockInfo(name, when, str(d.get("hostname", "?")), pid if type(pid) is int and pid > 0 else 0,
                    True, f"(lock format version {d.get('version')!r} of a newer vdedup)")


def _username() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


_DEFERRED = (signal.SIGINT, signal.SIGTERM)    # SIGTERM: how a scale-out worker is asked to stop


@contextlib.contextmanager
def _interrupt_after():
    """Ctrl-C (and a scale-out worker's stop request, engine/scaleout.py) held back while a
    lock object is saved or removed: a signal that arrives is noted and its handler run once
    the step is done (KeyboardInterrupt for ctrl-c), so an interrupted operation never
    leaves its lock object behind half-handled. Only in the main thread (the only one
    Python runs signal handlers in), and only for handlers set from Python."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    previous = {}
    for sig in _DEFERRED:
        handler = signal.getsignal(sig)
        if callable(handler):                 # a Python handler (not SIG_DFL, SIG_IGN or C's)
            previous[sig] = signal.signal(sig, lambda signum, frame: noted.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(noted):
            previous[sig](sig, None)


class Lock:
    def __init__(self, repo, exclusive: bool, operation: str):
        self.repo = repo
        self.exclusive = exclusive
        self.operation = operation
        self.name: str | None = None
        self.written_at = 0.0                 # `time` of our newest lock object
        self.refresh_error: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard: LockGuardBackend | None = None

    def _write(self, name: str) -> None:
        now = time.time()
        body = {"version": VERSION, "time": now, "hostname": socket.gethostname(), "pid": os.getpid(),
                "username": _username(), "exclusive": self.exclusive, "operation": self.operation}
        self.repo.save_json_object(ObjectType.LOCK, name, body)
        self.written_at = now

    def acquire(self) -> "Lock":
        # named before it is written: an interruption (ctrl-c) anywhere from here on takes
        # back the lock object if it was saved
        self.name = secrets.token_hex(32)
        try:
            with _interrupt_after():
                self._write(self.name)
            others = self.repo.list_locks()
            for other in others:
                if other.name == self.name or other.is_stale():
                    continue
                if self.exclusive or other.exclusive:
                    kind = "an exclusive" if other.exclusive else "a"
                    raise RepositoryLocked(
                        f"repository is locked: {kind} lock held by '{other.operation}' "
                        f"(pid {other.pid} on {other.hostname}, since "
                        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(other.time))})")
            # every later backend call of the operation goes through the guard, which stops
            # it once the lock is lost; not interrupted half-way (a Thread.start() cut short
            # leaves a thread that cannot be joined)
            with _interrupt_after():
                self._guard = LockGuardBackend(self.repo.backend, self)
                self.repo.backend = self._guard
                self._thread = threading.Thread(target=self._refresh, daemon=True)
                self._thread.start()
        except BaseException:
            with contextlib.suppress(Exception):   # the error that stopped us is the one to see
                self.release()
            raise
        return self

    def _refresh(self) -> None:
        wait = REFRESH_EVERY
        while not self._stop.wait(wait):
            new = secrets.token_hex(32)
            try:
                self._write(new)
            except Exception as e:        # storage full, gone, refusing: try again sooner
                self.refresh_error = getattr(e, "message", None) or type(e).__name__
                if time.time() - self.written_at > GIVE_UP_AFTER:
                    self.lost = True
                    return
                wait = min(RETRY_EVERY, REFRESH_EVERY)
                continue
            old, self.name = self.name, new
            self.refresh_error = None
            wait = REFRESH_EVERY
            try:
                self.repo.backend.remove("locks", old)
            except Exception:
                pass                      # an old lock object of ours goes stale by itself

    def check(self) -> None:
        """Raise LockLost once the lock can no longer be relied on."""
        if not self.lost and self.written_at and time.time() - self.written_at > GIVE_UP_AFTER:
            self.lost = True
        if self.lost:
            age = int(time.time() - self.written_at)
            raise LockLost(f"the {self.operation} lock could not be refreshed for {age} s "
                           f"({self.refresh_error or 'no refresh succeeded'}); stopped before other "
                           f"clients may take it for stale (after {STALE_AFTER} s)")

    def release(self) -> None:
        try:
            self._stop.set()
            if self._thread is not None and self._thread.ident is not None:   # (started)
                self._thread.join(timeout=5)
            if self._guard is not None:
                if self.repo.backend is self._guard:
                    self.repo.backend = self._guard.inner
                else:                     # a lock taken after ours wraps our guard: pass through
                    self._guard.lock = None
                self._guard = None
        finally:                          # whatever happened above, the lock object goes
            if self.name:
                with _interrupt_after():
                    try:
                        self.repo.backend.remove("locks", self.name)
                    except ObjectNotFound:
                        pass
                    self.name = None

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class NoLock:
    """What a reader holds when the storage refused its lock: nothing to refresh or remove."""
    name = None
    lost = False

    def check(self) -> None:
        pass

    def release(self) -> None:
        pass

    def __enter__(self) -> "NoLock":
        return self

    def __exit__(self, *exc) -> None:
        pass


def read_lock(repo, operation: str) -> Lock | NoLock:
    """A shared lock for an operation that only reads (restore, check). When the storage
    refuses the lock object (full disk, read-only mount, no permission, S3 AccessDenied), read
    without one rather than not at all, with a warning: data an exclusive operation started
    meanwhile removes would make the read fail loudly, never silently. A live exclusive lock
    still blocks, as it would have."""
    try:
        return Lock(repo, False, operation).acquire()
    except WriteRefused as e:
        for other in repo.list_locks():
            if other.exclusive and not other.is_stale():
                raise RepositoryLocked(f"repository is locked: an exclusive lock held by '{other.operation}' "
                                       f"(pid {other.pid} on {other.hostname})") from None
        repo.warn(f"cannot write a lock ({e.message}): {operation} reads without one; do not run "
                  f"prune until it is done")
        return NoLock()


class LockGuardBackend:
    """Wraps the repository's backend while a lock is held: every call except on locks/
    first checks that the lock is still good, so an operation cannot outlive its lock."""

    def __init__(self, inner, lock: Lock | None):
        self.inner = inner
        self.lock = lock

    @property
    def location(self) -> str:
        return self.inner.location

    def __getattr__(self, name: str):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _check(self, ftype: str) -> None:
        if self.lock is not None and ftype != "locks":
            self.lock.check()

    def save(self, ftype: str, name: str, data: bytes) -> None:
        self._check(ftype)
        self.inner.save(ftype, name, data)

    def load(self, ftype: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self._check(ftype)
        return self.inner.load(ftype, name, offset, length)

    def stat(self, ftype: str, name: str) -> int:
        self._check(ftype)
        return self.inner.stat(ftype, name)

    def list(self, ftype: str) -> Iterator[tuple[str, int]]:
        self._check(ftype)
        return self.inner.list(ftype)

    def remove(self, ftype: str, name: str) -> None:
        self._check(ftype)
        self.inner.remove(ftype, name)

    def exists(self) -> bool:
        return self.inner.exists()
