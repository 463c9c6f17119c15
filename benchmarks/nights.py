"""Nightly manifests simulated: what each night of a changing namespace stores in manifest
blobs alone (benchmarks/scaleout.py nights, tests/test_scaleout.py).

Vector content ids are synthetic (random), so only the manifest is written: a namespace of
n records with string ids and small metadata; each night 1% of the records are replaced by
new ones (new ids, new vectors) and 10% have a metadata value changed.
"""
from __future__ import annotations

import numpy as np

from vdedup.backend.memory import MemoryBackend
from vdedup.format.values import meta_bytes
from vdedup.repository import Repository, RowBatch, Tuning

PASSWORD = "nights"


def simulate_nights(n_records: int, nights: int, tuning: Tuning, seed: int = 1) -> list[int]:
    """Manifest bytes stored per night for a namespace of n_records with 1% churn (records
    replaced by new ones) and 10% metadata touches a night (vector ids are synthetic)."""
    rng = np.random.default_rng(seed)
    repo, _ = Repository.init(MemoryBackend(), PASSWORD)
    next_id = n_records
    ids = np.arange(n_records)
    vrefs = rng.integers(0, 256, (n_records, 32), dtype=np.uint8)
    meta = np.zeros(n_records, dtype=np.int64)
    # the batches' inputs, kept between nights (only what changes is made again): the ids as
    # strings, and the metadata bytes of each value a record's counter can have
    names = np.array([f"r{i:09d}" for i in ids], dtype=object)
    mraws = np.array([meta_bytes({"v": v, "k": "x" * 12}) for v in range(nights + 1)], dtype=object)
    nones = [None] * 10_000
    prev, stored = None, []
    for night in range(nights + 1):
        if night:
            churn = rng.choice(len(ids), len(ids) // 100, replace=False)
            ids[churn] = np.arange(next_id, next_id + len(churn))
            names[churn] = [f"r{i:09d}" for i in ids[churn]]
            next_id += len(churn)
            vrefs[churn] = rng.integers(0, 256, (len(churn), 32), dtype=np.uint8)
            meta[rng.choice(len(ids), len(ids) // 10, replace=False)] += 1
        order = np.argsort(ids)
        writer = repo.writer()

        def batches():
            for a in range(0, len(order), 10_000):
                sel = order[a:a + 10_000]
                yield RowBatch(names[sel].tolist(), vrefs[sel], mraws[meta[sel]].tolist(),
                               nones[:len(sel)], nones[:len(sel)])
        entry, _ = writer.write_namespace("", prev, batches(), ordered=True, tuning=tuning,
                                          expected_rows=len(ids))
        writer.flush()
        writer.close()
        if night:
            stored.append(writer.bytes_written)
        prev = entry
    repo.close()
    return stored
