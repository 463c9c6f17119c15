"""Fault injection around any backend, for tests (backend layer).

Rules decide which calls misbehave, deterministically (every Nth matching call):
- `fail`: raise TransientBackendError before the call reaches the backend;
- `fail-after`: let the call happen, then raise TransientBackendError, as when a request
  succeeds on the server but its response is lost (for `list`: after the first name);
- `delay`: sleep `seconds` before the call (slow storage; gives tests time to interrupt);
- `refuse`: raise WriteRefused (permanent, not retried) before the call, as a full disk, a
  read-only mount or an S3 AccessDenied do.
Settings: `every=N` (every Nth matching call), `after=N` (leave the first N alone, e.g. a
network lost after N uploads), `times=N` (at most N faults), `seconds=S` (for delay).

The wrapper sits below RetryBackend, so the retry logic sees the faults. `open_backend`
installs it when VDEDUP_TEST_FAULTS is set (tests only), e.g.
`VDEDUP_TEST_FAULTS="save:data:fail-after:every=2;load:*:fail:every=3,times=5;save:*:delay:seconds=0.2"`
(rules separated by `;`, each OP:FTYPE:KIND[:key=value,...]; `*` matches anything).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Iterator

from ..errors import TransientBackendError, UsageError, WriteRefused
from .base import Backend

OPS = ("save", "load", "stat", "list", "remove", "exists", "create_layout")
KINDS = ("fail", "fail-after", "delay", "refuse")
ENV = "VDEDUP_TEST_FAULTS"


@dataclass
class FaultRule:
    op: str = "*"
    ftype: str = "*"
    kind: str = "fail"
    every: int = 1              # every Nth matching call misbehaves
    after: int = 0              # the first `after` matching calls are left alone
    times: int | None = None    # at most this many times (None: no limit)
    seconds: float = 0.0        # for delay
    calls: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.op != "*" and self.op not in OPS:
            raise UsageError(f"fault rule: unknown operation {self.op!r}")
        if self.kind not in KINDS:
            raise UsageError(f"fault rule: unknown kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.every < 1:
            raise UsageError("fault rule: every must be at least 1")

    def matches(self, op: str, ftype: str) -> bool:
        return self.op in ("*", op) and self.ftype in ("*", ftype)

    def hit(self) -> bool:
        """Count a matching call; whether this one misbehaves."""
        self.calls += 1
        if self.calls <= self.after:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        if (self.calls - self.after) % self.every:
            return False
        self.fired += 1
        return True


def parse_rules(spec: str) -> list[FaultRule]:
    rules = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        fields = part.split(":")
        if len(fields) < 3 or len(fields) > 4:
            raise UsageError(f"fault rule {part!r}: expected OP:FTYPE:KIND[:key=value,...]")
        kw: dict = {"op": fields[0], "ftype": fields[1], "kind": fields[2]}
        for item in filter(None, (fields[3] if len(fields) == 4 else "").split(",")):
            k, _, v = item.partition("=")
            if k in ("every", "times", "after"):
                kw[k] = int(v)
            elif k == "seconds":
                kw[k] = float(v)
            else:
                raise UsageError(f"fault rule {part!r}: unknown setting {k!r}")
        rules.append(FaultRule(**kw))
    return rules


class FaultyBackend:
    def __init__(self, inner: Backend, rules: list[FaultRule] | str):
        self.inner = inner
        self.rules = parse_rules(rules) if isinstance(rules, str) else list(rules)
        self.faults = 0               # faults injected so far
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return self.inner.location

    def __getattr__(self, name: str):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _before(self, op: str, ftype: str) -> bool:
        """Apply delay and fail rules; returns whether the call must fail after running."""
        delay, fail, fail_after, refuse = 0.0, False, False, False
        with self._lock:
            for r in self.rules:
                if r.matches(op, ftype) and r.hit():
                    if r.kind == "delay":
                        delay += r.seconds
                    elif r.kind == "fail":
                        fail = True
                    elif r.kind == "refuse":
                        refuse = True
                    else:
                        fail_after = True
            if fail or fail_after or refuse:
                self.faults += 1
        if delay:
            time.sleep(delay)
        if refuse:
            raise WriteRefused(f"cannot {'write' if op == 'save' else op} {ftype}: the storage refuses writes (injected fault)")
        if fail:
            raise TransientBackendError(f"injected fault: {op} {ftype} (transient)")
        return fail_after

    def _after(self, op: str, ftype: str) -> None:
        raise TransientBackendError(f"injected fault after {op} {ftype} (transient)")

    def exists(self) -> bool:
        after = self._before("exists", "config")
        r = self.inner.exists()
        if after:
            self._after("exists", "config")
        return r

    def create_layout(self) -> None:
        after = self._before("create_layout", "*")
        self.inner.create_layout()
        if after:
            self._after("create_layout", "*")

    def save(self, ftype: str, name: str, data: bytes) -> None:
        after = self._before("save", ftype)
        self.inner.save(ftype, name, data)
        if after:
            self._after("save", ftype)

    def load(self, ftype: str, name: str, offset: int = 0, length: int | None = None) -> bytes:
        after = self._before("load", ftype)
        r = self.inner.load(ftype, name, offset, length)
        if after:
            self._after("load", ftype)
        return r

    def stat(self, ftype: str, name: str) -> int:
        after = self._before("stat", ftype)
        r = self.inner.stat(ftype, name)
        if after:
            self._after("stat", ftype)
        return r

    def remove(self, ftype: str, name: str) -> None:
        after = self._before("remove", ftype)
        self.inner.remove(ftype, name)
        if after:
            self._after("remove", ftype)

    def list(self, ftype: str) -> Iterator[tuple[str, int]]:
        after = self._before("list", ftype)
        for i, item in enumerate(self.inner.list(ftype)):
            yield item
            if after and i == 0:
                self._after("list", ftype)
        if after:                           # an empty listing fails at its end
            self._after("list", ftype)
