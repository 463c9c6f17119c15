"""Per-part manifest compaction (vdedup/repository/parts.py, docs/design.md §5): rewrites are paid
for by credit each backup earns from its delta rows, so what a night rewrites follows what it
changed, parts come due on different nights, delta runs stay bounded, and every night's state
reads back exactly."""
from __future__ import annotations

import statistics

import numpy as np
import pytest

from vdedup.backend.memory import MemoryBackend
from vdedup.format.values import meta_bytes
from vdedup.repository import Repository, RowBatch, Tuning
from vdedup.repository.parts import iter_state_cols, parts_of

SMALL = Tuning(part_rows=1024, min_part_rows=512)


class Namespace:
    """A namespace whose truth is kept in dicts, backed up night after night through the
    repository writer (manifest rows only: vector content ids are random)."""

    def __init__(self, n: int, seed: int = 3):
        self.rng = np.random.default_rng(seed)
        self.repo, _ = Repository.init(MemoryBackend(), "compaction")
        self.vref = {i: self.rng.bytes(32) for i in range(n)}
        self.meta = dict.fromkeys(range(n), 0)
        self.next_id = n
        self.entry = None

    def touch(self, share: float) -> None:
        ids = np.array(sorted(self.vref))
        for i in self.rng.choice(ids, int(len(ids) * share), replace=False).tolist():
            self.meta[i] += 1

    def churn(self, share: float) -> None:
        ids = np.array(sorted(self.vref))
        for i in self.rng.choice(ids, int(len(ids) * share), replace=False).tolist():
            del self.vref[i], self.meta[i]
        for i in range(self.next_id, self.next_id + int(len(ids) * share)):
            self.vref[i], self.meta[i] = self.rng.bytes(32), 0
        self.next_id += int(len(ids) * share)

    def rows(self) -> list[tuple[str, bytes, bytes]]:
        return sorted((f"r{i:08d}", v, meta_bytes({"n": self.meta[i], "tag": "x" * 10})) for i, v in self.vref.items())

    def backup(self, tuning: Tuning = SMALL) -> int:
        """Back up the current truth; returns the bytes stored."""
        rows = self.rows()
        writer = self.repo.writer()

        def batches():
            for a in range(0, len(rows), 2000):
                part = rows[a:a + 2000]
                yield RowBatch([r[0] for r in part], np.frombuffer(b"".join(r[1] for r in part), np.uint8).reshape(-1, 32),
                               [r[2] for r in part], [None] * len(part), [None] * len(part))
        self.entry, _ = writer.write_namespace("", self.entry, batches(), ordered=True, tuning=tuning,
                                               expected_rows=len(rows))
        writer.flush()
        writer.close()
        return writer.bytes_written

    def state(self) -> list[tuple[str, bytes, bytes]]:
        out = []
        for cols in iter_state_cols(self.repo, self.entry):
            out.extend(zip(cols.ids, cols.vrefs, cols.mraws))
        return out


def rewritten_rows(entry) -> int:
    return sum(p["count"] for p in parts_of(entry) if p["age"] == 0)


def test_small_changes_rewrite_little_and_parts_come_due_on_different_nights():
    ns = Namespace(16_000)
    ns.backup()
    n_parts = len(parts_of(ns.entry))
    assert n_parts >= 6
    stored, rewritten, minimum = [], [], []
    for night in range(40):
        before = dict(ns.meta)
        ns.touch(0.10)                       # a metadata-only night: cheap delta rows
        stored.append(ns.backup())
        if night % 8 == 7:
            assert ns.state() == ns.rows(), f"night {night}"
        rewritten.append(sum(1 for p in parts_of(ns.entry) if p["age"] == 0))
        # the minimum a backup of the night must store: ids and metadata of the touched records
        minimum.append(sum(len(f"r{i:08d}") + len(meta_bytes({"n": m, "tag": "x" * 10}))
                           for i, m in ns.meta.items() if before[i] != m))
        for p in parts_of(ns.entry):         # delta runs stay bounded
            assert sum(d["rows"] for d in p["deltas"]) <= SMALL.max_chain_rows * p["count"], night
            assert len(p["deltas"]) < SMALL.max_layers
    # compaction happens, a few parts a night, never all at once...
    assert sum(rewritten) >= n_parts, rewritten
    assert max(rewritten[2:]) <= n_parts // 3, rewritten
    # ...and costs less than the nights' own change
    assert statistics.mean(stored) <= 2.0 * statistics.mean(minimum), (stored, rewritten, minimum)


def test_what_a_night_rewrites_follows_what_it_changed():
    def rows_rewritten(share: float) -> int:
        ns = Namespace(12_000, seed=5)
        ns.backup()
        total = 0
        for _ in range(16):
            ns.touch(share)
            ns.backup()
            total += rewritten_rows(ns.entry)
        assert ns.state() == ns.rows()
        return total
    few, many = rows_rewritten(0.02), rows_rewritten(0.2)
    assert many >= 3 * few, (few, many)


def test_unchanged_nights_rewrite_nothing_and_parts_without_credit_continue():
    ns = Namespace(6000)
    ns.backup()
    ns.touch(0.05)
    ns.backup()
    for p in parts_of(ns.entry):             # as written before parts kept a credit
        p.pop("credit", None)
    before = [(p["base"], len(p["deltas"])) for p in parts_of(ns.entry)]
    assert ns.backup() < 1000                # nothing changed: no manifest blob
    assert [(p["base"], len(p["deltas"])) for p in parts_of(ns.entry)] == before
    assert parts_of(ns.entry)[0]["credit"] == 0
    for _ in range(5):
        ns.churn(0.01)
        ns.touch(0.1)
        ns.backup()
        assert ns.state() == ns.rows()
    assert parts_of(ns.entry)[0]["credit"] != 0 or any(p["age"] == 0 for p in parts_of(ns.entry))


@pytest.mark.parametrize("share", [0.5, 3.0])
def test_a_delta_larger_than_a_part_allows_rewrites_it_exactly(share):
    """Every record replaced (more delta rows than the part's row bound): the part is
    rewritten from the rows read, and split when it grew."""
    ns = Namespace(3000)
    ns.backup()
    for i in list(ns.vref)[: int(len(ns.vref) * min(share, 1.0))]:
        ns.vref[i] = ns.rng.bytes(32)
    for i in range(ns.next_id, ns.next_id + int(3000 * max(share - 1, 0))):
        ns.vref[i], ns.meta[i] = ns.rng.bytes(32), 0
    ns.backup()
    assert ns.state() == ns.rows()
