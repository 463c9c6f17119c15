"""Comparing a record read back from a target with the record a restore plan wrote into it
(engine layer; no I/O).

Bit for bit, except where the plan has an inexact step (the target's own float rounding):
a vector of a cosine index is then compared by its direction (unit vectors within the
step's bound), a float metadata value by its relative difference. The largest deviation
seen is kept, so a restore can report what the rounding actually did and verify can tell
rounding from damage. Nothing here names a record: results are counts and numbers only.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..model import Record
from ..repository import same_value
from .translate import TranslationPlan


@dataclass
class Bounds:
    """The inexact steps of a plan, by what they are about."""
    vectors: dict[str, float] = field(default_factory=dict)     # target vector name -> bound
    floats: dict[str, float] = field(default_factory=dict)      # metadata key -> relative bound

    @classmethod
    def of(cls, plan: TranslationPlan) -> "Bounds":
        b = cls()
        for s in plan.inexact_steps:
            (b.vectors if s.part == "vectors" else b.floats)[s.field or ""] = float(s.bound or 0.0)
        return b

    def __bool__(self) -> bool:
        return bool(self.vectors or self.floats)


@dataclass
class Deviation:
    """What the comparisons found: records compared, the parts that differed beyond the
    plan's bounds (counted per part), and the largest inexact deviations seen."""
    records: int = 0
    differing: int = 0
    parts: Counter = field(default_factory=Counter)
    direction: float = 0.0      # largest component difference of unit vectors
    length: float = 0.0         # largest relative change of a vector's length
    floats: float = 0.0         # largest relative difference of a float metadata value

    def merge(self, other: "Deviation") -> None:
        self.records += other.records
        self.differing += other.differing
        self.parts.update(other.parts)
        self.direction = max(self.direction, other.direction)
        self.length = max(self.length, other.length)
        self.floats = max(self.floats, other.floats)

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "differing": self.differing, "parts": dict(sorted(self.parts.items())),
                "max_direction_deviation": self.direction, "max_length_change": self.length,
                "max_float_deviation": self.floats}


def compare(expected: Record, got: Record, bounds: Bounds, dev: Deviation) -> list[str]:
    """The parts (id, vectors, sparse, metadata, document, uri) in which `got` differs from
    `expected` beyond the bounds; the comparison is added to `dev`."""
    parts = []
    if type(expected.id) is not type(got.id) or expected.id != got.id:
        parts.append("id")
    if not _same_vectors(expected.vectors, got.vectors, bounds, dev):
        parts.append("vectors")
    if expected.sparse != got.sparse:
        parts.append("sparse")
    if not _same_metadata(expected.metadata, got.metadata, bounds, dev):
        parts.append("metadata")
    if expected.document != got.document:
        parts.append("document")
    if expected.uri != got.uri:
        parts.append("uri")
    dev.records += 1
    if parts:
        dev.differing += 1
        dev.parts.update(parts)
    return parts


def _same_vectors(want: dict[str, np.ndarray], have: dict[str, np.ndarray], bounds: Bounds,
                  dev: Deviation) -> bool:
    if sorted(want) != sorted(have):
        return False
    ok = True
    for name, a in want.items():
        b = have[name]
        bound = bounds.vectors.get(name)
        if bound is None or a.ndim != 1 or b.shape != a.shape:
            ok = ok and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            continue
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        na, nb = float(np.linalg.norm(a64)), float(np.linalg.norm(b64))
        if na == 0.0 or nb == 0.0 or not (np.isfinite(na) and np.isfinite(nb)):
            ok = ok and a.tobytes() == b.tobytes()
            continue
        d = float(np.max(np.abs(a64 / na - b64 / nb))) if a.size else 0.0
        dev.direction = max(dev.direction, d)
        dev.length = max(dev.length, abs(nb / na - 1.0))
        ok = ok and d <= bound
    return ok


def _same_metadata(want: Any, have: Any, bounds: Bounds, dev: Deviation) -> bool:
    want, have = want or None, have or None
    if not bounds.floats or not isinstance(want, dict) or not isinstance(have, dict):
        return same_value(want, have)
    if sorted(want, key=str) != sorted(have, key=str):
        return False
    for k, a in want.items():
        bound = bounds.floats.get(k)
        if bound is None:
            if not same_value(a, have[k]):
                return False
        elif not _close(a, have[k], bound, dev):
            return False
    return True


def _close(a: Any, b: Any, bound: float, dev: Deviation) -> bool:
    """Equal, except that floats (also inside lists) may differ relatively by `bound`."""
    if type(a) is float and type(b) is float:
        if a == b or (a != a and b != b):
            return True
        rel = abs(a - b) / max(abs(a), abs(b))
        dev.floats = max(dev.floats, rel)
        return rel <= bound
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, bound, dev) for x, y in zip(a, b))
    return same_value(a, b)
