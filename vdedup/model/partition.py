"""Partitions of a namespace: pieces a backup reads independently (model layer; no I/O).

A connector splits a namespace into partitions of roughly `target_size` records, each
readable on its own (`Connector.scan_partition`): row ranges of a files export, offset pages
of Chroma, primary-key ranges of pgvector and Milvus, or the whole namespace. A partition is
a plain value (JSON-serialisable `spec`) so it can travel to a worker process or a Ray task.

`key` names the partition stably: the same data and target size give the same keys whatever
the number of workers, and a partition's manifest runs carry its key (docs/design.md §4.13),
so the next backup diffs each partition against its own previous runs. "" is the whole
namespace. Connectors choose bounds aligned to fixed strides, so that records appended at
the end make new partitions instead of moving the bounds of the old ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

WHOLE = ""


@dataclass(frozen=True)
class Partition:
    namespace: str = ""
    key: str = WHOLE                       # stable name; "" = the whole namespace
    spec: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    estimate: int | None = None            # records it holds, as the source estimated them

    def to_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "key": self.key, "spec": dict(self.spec), "estimate": self.estimate}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Partition":
        return cls(d.get("namespace", ""), d.get("key", WHOLE), dict(d.get("spec") or {}), d.get("estimate"))


def whole(namespace: str = "", estimate: int | None = None) -> Partition:
    return Partition(namespace, WHOLE, {}, estimate)


def stride_ranges(lo: int, hi: int, count: int, target_size: int, prefix: str,
                  namespace: str = "", fmt: Callable[[int], str] = str) -> list[Partition]:
    """Ranges of integer keys between lo and hi (inclusive) holding about `target_size` of
    `count` records each (if the keys are spread evenly): bounds at multiples of the
    power-of-two stride nearest to that size, the first range open
    below and the last open above (new keys always fall in some range). spec: {"lo", "hi"}
    (None: open), lo inclusive, hi exclusive."""
    if count <= target_size or hi <= lo:
        return [whole(namespace, count)]
    span = hi - lo + 1
    want = max(1, span * target_size // max(count, 1))
    stride = 1 << max(0, want.bit_length() - 1)          # the power of two nearest to want
    if want >= 3 * stride // 2:
        stride *= 2
    first, last = lo // stride, hi // stride
    if first == last:
        return [whole(namespace, count)]
    out = []
    per = count * stride // span
    for k in range(first, last + 1):
        a = None if k == first else k * stride
        b = None if k == last else (k + 1) * stride
        name = f"{prefix}:{'' if a is None else fmt(a)}..{'' if b is None else fmt(b)}"
        out.append(Partition(namespace, name, {"lo": a, "hi": b}, per))
    return out


def row_ranges(count: int, target_size: int, prefix: str, namespace: str = "") -> list[Partition]:
    """Ranges of row positions [k*target, (k+1)*target), the last open above. spec: {"start",
    "stop"} (stop None: to the end)."""
    if count <= target_size:
        return [whole(namespace, count)]
    out = []
    n = (count + target_size - 1) // target_size
    for k in range(n):
        a, b = k * target_size, None if k == n - 1 else (k + 1) * target_size
        out.append(Partition(namespace, f"{prefix}:{a}..{'' if b is None else b}", {"start": a, "stop": b},
                             (b if b is not None else count) - a))
    return out


def last_key(exists_from: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest key in [lo, hi], found by bisection with `exists_from(x)`: whether some
    key >= x exists (one cheap probe of a source that reads from a key onwards, such as a
    cursor that starts at an id). lo must be a key; about log2(hi - lo) probes."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if exists_from(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def string_ranges(sorted_keys: list[str], target_size: int, prefix: str,
                  namespace: str = "") -> list[Partition]:
    """Ranges of string keys (code point order, which is also UTF-8 byte order) holding
    `target_size` of `sorted_keys` each (see string_ranges_at)."""
    count = len(sorted_keys)
    pairs = [(sorted_keys[k - 1], sorted_keys[k]) for k in range(target_size, count, target_size)]
    return string_ranges_at(pairs, count, target_size, prefix, namespace)


def string_ranges_at(pairs: list[tuple[str, str]], count: int, target_size: int, prefix: str,
                     namespace: str = "") -> list[Partition]:
    """Ranges of string keys of `target_size` keys each, given the sorted keys on either side
    of every `target_size`-th position (k*target - 1, k*target) of `count` keys: a bound is
    the shortest prefix of the later key that sorts after the earlier one, the first range
    open below and the last open above. spec: {"lo", "hi"} (None: open), lo inclusive, hi
    exclusive. The key names a range by a digest of its bounds, not the bounds: they are
    pieces of record ids."""
    import hashlib
    import json

    if count <= target_size or not pairs:
        return [whole(namespace, count)]
    bounds: list[str | None] = [None]
    for a, b in pairs:
        i = 0
        while i < len(a) and i < len(b) and a[i] == b[i]:
            i += 1
        bounds.append(b[:i + 1])
    bounds.append(None)
    out = []
    for k in range(len(bounds) - 1):
        lo, hi = bounds[k], bounds[k + 1]
        digest = hashlib.sha256(json.dumps([lo, hi]).encode()).hexdigest()[:16]
        est = min(target_size, count - k * target_size)
        out.append(Partition(namespace, f"{prefix}:{digest}", {"lo": lo, "hi": hi}, est))
    return out
