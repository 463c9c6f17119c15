"""Object Lock retention as the repository sees it (repository layer).

A repository made with `init --object-lock-days N` (S3 only) says so in its sealed config;
its backend then saves every object a backup needs with a retention of N days and refuses
(RetentionActive) to remove one before that. Operations that delete ask here first which
objects are still held, so that they plan around them instead of failing half-way.
"""
from __future__ import annotations

import datetime as dt

from ..backend.base import FileType
from ..errors import ObjectNotFound


def enabled(repo) -> bool:
    return isinstance(repo.config.get("object_lock"), dict)


def held(repo, ftype: str, names) -> dict[str, dt.datetime]:
    """The objects among `names` whose retention has not ended, with its end (one HEAD
    request each; nothing at all when the repository has no Object Lock)."""
    if not enabled(repo):
        return {}
    out: dict[str, dt.datetime] = {}
    for name in names:
        try:
            until = repo.backend.retained_until(ftype, name)
        except ObjectNotFound:
            continue
        if until is not None:
            out[name] = until
    return out


def held_packs(repo, names) -> dict[str, dt.datetime]:
    return held(repo, FileType.DATA, names)


def held_index_files(repo, names) -> dict[str, dt.datetime]:
    return held(repo, FileType.INDEX, names)
