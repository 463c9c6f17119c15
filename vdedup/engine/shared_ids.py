"""Ids that several namespaces of a snapshot share (engine layer).

Most providers hold an id once per namespace, so the same id may name different records in
two namespaces. Milvus holds a primary key once per collection (`ids_per_namespace=False`
in its descriptor): writing the second namespace's record moves the id out of the first
partition, and a record is lost. A restore of several namespaces into such a target counts
the shared ids first (a streaming merge of the namespaces' manifests, which are sorted by
record key, so memory stays flat) and refuses them as a lossy step unless --allow-lossy.
"""
from __future__ import annotations

import heapq
from itertools import groupby
from typing import Any, Callable, Iterable, Iterator

from ..repository import Repository, Row


def _keyed(rows: Iterable[Row], k: int, keep: Callable[[Row], bool]) -> Iterator[tuple[bytes, int]]:
    for row in rows:
        if keep(row):
            yield row.key, k


def count_shared_ids(repo: Repository, entries: list[dict[str, Any]], keep: Callable[[Row], bool]) -> int:
    """How many record ids occur in more than one of these namespace entries (rows `keep`
    accepts only)."""
    if len(entries) < 2:
        return 0
    streams = [_keyed(repo.namespace_rows(e), k, keep) for k, e in enumerate(entries)]
    shared = 0
    for _, group in groupby(heapq.merge(*streams), key=lambda t: t[0]):
        if len({k for _, k in group}) > 1:
            shared += 1
    return shared
