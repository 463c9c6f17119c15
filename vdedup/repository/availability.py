"""Which stored data can still be read, and which records lost theirs (repository layer).

A blob is readable when the index locates it in a pack that exists, that a readable index
file names (the local cache may still hold locations from an index file damaged since),
and that `check --read-data` did not find damaged. `check` counts the records of each
namespace whose vector data is not readable; `repair snapshots` keeps only the others.
A namespace whose manifest is not wholly readable has lost all its records: without every
manifest blob nobody can say which records it held (or which a lost delta changed).
"""
from __future__ import annotations

from typing import Any, Iterator

from ..errors import VdedupError
from .columns import Cols
from .manifest import iter_state_cols

CHUNK = 10_000


class Availability:
    """`usable_packs`: the packs whose blobs may be read (present, whole, named by a
    readable index file); `damaged`: blob ids found damaged by reading the packs."""

    def __init__(self, repo, usable_packs: set[bytes], damaged: set[bytes] | None = None):
        self.repo = repo
        self.usable_packs = usable_packs
        self.damaged = damaged or set()

    def readable_many(self, blob_ids: list[bytes]) -> list[bool]:
        raws = self.repo.index.get_many(blob_ids)
        packs, damaged = self.usable_packs, self.damaged
        return [raw is not None and bytes(raw[:32]) in packs and blob_id not in damaged
                for blob_id, raw in zip(blob_ids, raws)]


def split_state(repo, entry: dict[str, Any], avail: Availability) -> Iterator[tuple[Cols, list]]:
    """The namespace's rows in record-key order, run by run: (the rows whose vector data is
    readable, the ids of the records whose data is not). Raises VdedupError if the
    manifest cannot be read."""
    for run in iter_state_cols(repo, entry):
        ok = avail.readable_many(run.vrefs)
        if all(ok):
            yield run, []
            continue
        keep = [i for i, good in enumerate(ok) if good]
        kept = Cols([run.keys[i] for i in keep], [run.ids[i] for i in keep], [run.vrefs[i] for i in keep],
                    [run.mraws[i] for i in keep], [run.docs[i] for i in keep], [run.uris[i] for i in keep])
        yield kept, [run.ids[i] for i, good in enumerate(ok) if not good]


def lost_records(repo, entry: dict[str, Any], avail: Availability) -> int:
    """How many of the namespace's records cannot be restored (all of them if its manifest
    cannot be read)."""
    try:
        return sum(len(lost) for _, lost in split_state(repo, entry, avail))
    except VdedupError:
        return int(entry["count"])
