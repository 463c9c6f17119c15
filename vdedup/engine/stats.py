"""Stats: logical vs stored size, deduplication and compression ratios (engine layer)."""
from __future__ import annotations

from typing import Any

from ..backend.base import FileType
from ..repository import Repository, Snapshot


def repository_stats(repo: Repository, snapshots: list[Snapshot] | None = None) -> dict[str, Any]:
    snaps = repo.list_snapshots() if snapshots is None else snapshots
    sizes = {t: sum(size for _, size in repo.backend.list(t))
             for t in (FileType.DATA, FileType.INDEX, FileType.SNAPSHOTS, FileType.KEYS)}
    packs = sum(1 for _ in repo.backend.list(FileType.DATA))
    unique_raw = 0
    blobs = 0
    for _, loc in repo.index.items():
        unique_raw += loc.raw_length
        blobs += 1
    logical = sum(s.summary.get("logical_bytes", 0) for s in snaps)
    stored = sum(sizes.values())
    return {
        "snapshots": len(snaps),
        "records": sum(s.record_count() for s in snaps),
        "logical_bytes": logical,
        "unique_bytes": unique_raw,
        "stored_bytes": stored,
        "pack_bytes": sizes[FileType.DATA],
        "index_bytes": sizes[FileType.INDEX],
        "snapshot_bytes": sizes[FileType.SNAPSHOTS],
        "packs": packs,
        "blobs": blobs,
        "dedup_ratio": round(logical / unique_raw, 3) if unique_raw else None,
        "compression_ratio": round(unique_raw / sizes[FileType.DATA], 3) if sizes[FileType.DATA] else None,
        "space_saving_ratio": round(logical / stored, 3) if stored else None,
        "per_snapshot": [{"id": s.id, "time": s.time, "records": s.record_count(),
                          "logical_bytes": s.summary.get("logical_bytes", 0)} for s in snaps],
    }
