"""What the portal holds while it runs (portal layer).

One repository, opened at start with the password (which is then dropped: the unlocked
master key lives in the Repository object). Reading snapshots, assets and the audit log
needs no more than that and runs alongside anything. Work that uses the local index cache
(an LMDB environment, one per process) or a connector (whose secret is lent through this
process's environment) runs one at a time under `work`, and the index is closed after each
such piece of work so that the next one sees what other processes (a nightly CLI run)
added meanwhile.
"""
from __future__ import annotations

import contextlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from vdedup.repository import Repository

from .jobs import Jobs

BUSY_WAIT = 30.0           # seconds a page waits for running work before saying so
PENDING_TTL = 15 * 60      # seconds a pasted secret waits for the indexes to be chosen


class Busy(Exception):
    """Other work (a backup, a restore) holds the repository; the page says so."""

    def __init__(self, what: str | None):
        super().__init__(what or "another operation")
        self.what = what


@dataclass
class Session:
    sid: str
    csrf: str
    created: float = field(default_factory=time.time)


@dataclass
class PendingConnection:
    """A pasted secret between 'find indexes' and 'connect': in memory only, never in a page."""
    id: str
    sid: str                                  # the session it belongs to
    provider: str
    url: str                                  # redacted
    name: str
    secret: str | None = field(repr=False)
    found: list[Any]
    created: float = field(default_factory=time.time)


class PortalState:
    def __init__(self, repo: Repository, location: str, port: int, token: str | None = None):
        self.repo = repo
        self.location = location
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.cookie = f"vdedup_portal_{port}"
        self._token: str | None = token or secrets.token_urlsafe(32)
        self.sessions: dict[str, Session] = {}
        self.work = threading.Lock()
        self.working_on: str | None = None
        self.jobs = Jobs(self)
        self._pending: dict[str, PendingConnection] = {}
        self._mutex = threading.Lock()

    # ---- the one-time token and sessions ----------------------------------------------
    @property
    def link(self) -> str:
        return f"{self.origin}/?token={self._token}" if self._token else self.origin + "/"

    def take_token(self, offered: str) -> Session | None:
        """The token works once: the first visit turns it into a session."""
        with self._mutex:
            if self._token is None or not hmac.compare_digest(offered.encode(), self._token.encode()):
                return None
            self._token = None
            s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
            self.sessions[s.sid] = s
            return s

    def session(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        for known, s in self.sessions.items():
            if hmac.compare_digest(known.encode(), sid.encode()):
                return s
        return None

    # ---- work that uses the index or a connector ---------------------------------------
    @contextlib.contextmanager
    def working(self, what: str, wait: float | None = BUSY_WAIT) -> Iterator[Repository]:
        """Run `what` alone; raise Busy when other work holds the lock longer than `wait`."""
        if not self.work.acquire(timeout=-1 if wait is None else wait):
            raise Busy(self.working_on)
        self.working_on = what
        try:
            yield self.repo
        finally:
            self.working_on = None
            try:
                self.repo.close()          # the next piece of work syncs the index again
            finally:
                self.work.release()

    # ---- pending connections ------------------------------------------------------------
    def add_pending(self, sid: str, provider: str, url: str, name: str, secret: str | None,
                    found: list[Any]) -> PendingConnection:
        with self._mutex:
            self._expire()
            p = PendingConnection(secrets.token_urlsafe(16), sid, provider, url, name, secret, found)
            self._pending[p.id] = p
            return p

    def pending(self, pid: str, sid: str) -> PendingConnection | None:
        with self._mutex:
            self._expire()
            p = self._pending.get(pid)
            return p if p is not None and hmac.compare_digest(p.sid, sid) else None

    def drop_pending(self, pid: str) -> None:
        with self._mutex:
            p = self._pending.pop(pid, None)
            if p is not None:
                p.secret = None

    def _expire(self) -> None:
        now = time.time()
        for pid in [k for k, p in self._pending.items() if now - p.created > PENDING_TTL]:
            self._pending.pop(pid).secret = None
