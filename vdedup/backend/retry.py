"""Retry wrapper around any backend (backend layer).

Only TransientBackendError is retried (throttling, 5xx, timeouts, dropped connections), with
exponential backoff and full jitter, at most `attempts` tries; not-found, exists and
permanent errors pass through at once. Two cases need care because a request can succeed
on the server while its response is lost:

- save: a retried conditional create may find the object it already wrote and get
  ObjectExists. After a transient failure the wrapper reads the object back and treats an
  identical one as success; a different one is a real conflict and stays ObjectExists.
- remove: a retry may find the object already gone; after a transient failure that is
  success.

A listing that fails midway restarts and skips the names it has already yielded (every
backend lists in name order).
"""
from __future__ import annotations

import hashlib
import logging
import random
import time
from typing import Callable, Iterator, TypeVar

from ..errors import ObjectExists, ObjectNotFound, TransientBackendError
from .base import Backend

ATTEMPTS = 6
BASE_DELAY = 0.25       # seconds; doubles per attempt
MAX_DELAY = 8.0

log = logging.getLogger("vdedup.backend")
T = TypeVar("T")


class RetryBackend:
    def __init__(self, inner: Backend, attempts: int = ATTEMPTS, base_delay: float = BASE_DELAY,
                 max_delay: float = MAX_DELAY, sleep: Callable[[float], None] = time.sleep):
        self.inner = inner
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self.retries = 0            # how many retries were made (for tests and stats)

    @property
    def location(self) -> str:
        return self.inner.location

    def __getattr__(self, name: str):
        # anything beyond the interface (e.g. S3Backend.bucket) comes from the wrapped backend
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_delay, self.base_delay * (2 ** attempt)))

    def _run(self, what: str, fn: Callable[[], T], on_retry_error: Callable[[Exception], T | None] | None = None) -> T:
        """Run fn, retrying transient errors. After the first transient failure, other errors
        go to on_retry_error, which may turn them into a result (returning non-None)."""
        failed = False
        for attempt in range(self.attempts):
            try:
                return fn()
            except TransientBackendError as e:
                failed = True
                if attempt + 1 >= self.attempts:
                    raise TransientBackendError(f"{e.message}; gave up after {self.attempts} attempts") from None
                self.retries += 1
                delay = self._delay(attempt)
                log.warning("%s: %s; retrying in %.2f s (attempt %d of %d)", what, e.message, delay,
                            attempt + 2, self.attempts)
                self._sleep(delay)
            except (ObjectExists, ObjectNotFound) as e:
                if failed and on_retry_error is not None:
                    result = on_retry_error(e)
                    if result is not None:
                        return result
                raise
        raise AssertionError("unreachable")

    # ---- the backend interface ------------------------------------------------------------
    def exists(self) -> bool:
        return self._run("exists", self.inner.exists)

    def create_layout(self) -> None:
        self._run("create layout", self.inner.create_layout)

    def save(self, ftype: str, name: str, data: bytes) -> None:
        def already_ours(e: Exception):
            if not isinstance(e, ObjectExists):
                return None
            # an earlier attempt may have written it before its response was lost
            if self._run("verify", lambda: self.inner.stat(ftype, name)) != len(data):
                return None
            stored = self._run("verify", lambda: self.inner.load(ftype, name))
            if hashlib.sha256(stored).digest() == hashlib.sha256(data).digest():
                log.info("save %s/%s: found the object an interrupted attempt wrote", ftype, name[:16])
                return True
            return None

        self._run(f"save {ftype}/{name[:16]}", lambda: self.inner.save(ftype, name, data), already_ours)

    def load(self, ftype: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._run(f"load {ftype}/{name[:16]}", lambda: self.inner.load(ftype, name, offset, length))

    def stat(self, ftype: str, name: str) -> int:
        return self._run(f"stat {ftype}/{name[:16]}", lambda: self.inner.stat(ftype, name))

    def remove(self, ftype: str, name: str) -> None:
        def already_gone(e: Exception):
            return True if isinstance(e, ObjectNotFound) else None

        self._run(f"remove {ftype}/{name[:16]}", lambda: self.inner.remove(ftype, name), already_gone)

    def list(self, ftype: str) -> Iterator[tuple[str, int]]:
        last: str | None = None
        failures = 0
        while True:
            try:
                for name, size in self.inner.list(ftype):
                    if last is not None and name <= last:
                        continue            # yielded before a failed attempt
                    yield name, size
                    last = name
                    failures = 0            # progress resets the budget
                return
            except TransientBackendError as e:
                failures += 1
                if failures >= self.attempts:
                    raise TransientBackendError(f"{e.message}; gave up after {self.attempts} attempts") from None
                self.retries += 1
                delay = self._delay(failures - 1)
                log.warning("list %s: %s; retrying in %.2f s", ftype, e.message, delay)
                self._sleep(delay)
