"""Stats: logical vs stored size, deduplication and compression ratios (engine layer).

For the whole repository, unique data is every blob in the index. For chosen snapshots
it is the blobs they reference (marked in a temporary LMDB), and `exclusive_bytes` is the
part no other snapshot references: roughly what forgetting them and pruning would free.
"""
from __future__ import annotations

from typing import Any

from ..repository import BlobMarks, Repository, Snapshot


def repository_stats(repo: Repository, snapshots: list[Snapshot] | None = None) -> dict[str, Any]:
    all_snaps = repo.list_snapshots()
    snaps = all_snaps if snapshots is None else snapshots
    sizes = repo.object_sizes()
    packs = sum(1 for _ in repo.list_packs()[0])
    unique_raw = 0
    blobs = 0
    extra: dict[str, Any] = {}
    index_raw = sum(loc.raw_length for _, loc in repo.index.items())
    if snapshots is None:
        unique_raw = index_raw
        blobs = repo.index.count()
    else:
        chosen = {s.id for s in snaps}
        with BlobMarks() as marks:
            repo.mark_snapshots(snaps, marks, "chosen")
            repo.mark_snapshots([s for s in all_snaps if s.id not in chosen], marks, "others")
            exclusive_raw = exclusive_blobs = 0
            for blob_id, _ in marks.keys("chosen"):
                loc = repo.index.get(blob_id)
                size = loc.raw_length if loc is not None else 0
                unique_raw += size
                blobs += 1
                if marks.get(blob_id, "others") is None:
                    exclusive_raw += size
                    exclusive_blobs += 1
        extra = {"exclusive_bytes": exclusive_raw, "exclusive_blobs": exclusive_blobs}
    logical = sum(s.summary.get("logical_bytes", 0) for s in snaps)
    stored = sum(sizes.values())
    return {
        "snapshots": len(snaps),
        "records": sum(s.record_count() for s in snaps),
        "logical_bytes": logical,
        "unique_bytes": unique_raw,
        "stored_bytes": stored,
        "pack_bytes": sizes["data"],
        "index_bytes": sizes["index"],
        "snapshot_bytes": sizes["snapshots"],
        "packs": packs,
        "blobs": blobs,
        "dedup_ratio": round(logical / unique_raw, 3) if unique_raw else None,
        "compression_ratio": round(index_raw / sizes["data"], 3) if sizes["data"] else None,
        "space_saving_ratio": round(logical / stored, 3) if stored else None,
        **extra,
        "per_snapshot": [{"id": s.id, "time": s.time, "records": s.record_count(),
                          "logical_bytes": s.summary.get("logical_bytes", 0)} for s in snaps],
    }
