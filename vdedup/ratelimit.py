"""Rates and token buckets, for throttling (all layers; depends on nothing but errors).

A production database or a managed service with a quota should not be read as fast as
vdedup can read it, nor a shared uplink filled by an upload. Two kinds of limit use this:

- `--limit-rate` on the records read from a source (backup) or written to a target
  (restore): records per second (`500r/s`) or bytes per second (`20MB/s`), the bytes being
  those of the records' vectors, metadata, documents and uris (engine/throttle.py);
- `--limit-upload` / `--limit-download` on the repository's storage: bytes per second of
  objects saved and loaded (backend/ratelimit.py).

A token bucket holds at most `burst` units and refills at `rate` units per second. Taking
more than it holds leaves it in debt, and the taker sleeps until the debt is paid: a request
bigger than the bucket (a 16 MiB pack, a batch of 1000 records) is never refused, only
spaced out, and over any long run no more than `rate` units per second (plus one burst) pass.
Several threads may share one bucket.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Callable

from .errors import UsageError

BURST_SECONDS = 0.25         # the bucket holds a quarter of a second's worth

_UNITS = {"": 1, "k": 1000, "m": 1000 ** 2, "g": 1000 ** 3,
          "ki": 1024, "mi": 1024 ** 2, "gi": 1024 ** 3}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:(r|rec|records?)|([kmg]i?)?b)\s*/\s*s(?:ec)?\s*$", re.I)


@dataclass(frozen=True)
class Rate:
    """`per_second` units a second; `unit` is "records" or "bytes"."""
    per_second: float
    unit: str

    def __str__(self) -> str:
        return f"{self.per_second:g} {self.unit}/s"


def parse_rate(text: str, option: str = "--limit-rate", records: bool = True) -> Rate:
    """`500r/s` (records; only where `records`), `20MB/s`, `512KiB/s`, `1GB/s`, `100B/s`
    (K, M, G: powers of 1000; Ki, Mi, Gi: of 1024)."""
    m = _RATE.match(text or "")
    if m is None or (m.group(2) and not records):
        forms = "500r/s or 20MB/s" if records else "20MB/s or 512KiB/s"
        raise UsageError(f"bad {option} {text!r}: use e.g. {forms}")
    amount = float(m.group(1))
    if amount <= 0:
        raise UsageError(f"bad {option} {text!r}: the rate must be above 0")
    if m.group(2):
        return Rate(amount, "records")
    return Rate(amount * _UNITS[(m.group(3) or "").lower()], "bytes")


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate * BURST_SECONDS))
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0            # seconds spent sleeping (for stats and tests)

    def take(self, amount: float) -> float:
        """Take `amount` units, sleeping as long as the rate requires; the seconds slept."""
        if amount <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= amount
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
            self.waited += wait
        if wait > 0:
            self._sleep(wait)
        return wait
