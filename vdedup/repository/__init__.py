"""Repository layer: packs, index (LMDB cache), keys, locks, snapshots, manifests.

The only door to stored bytes: the engine reads and writes through `Repository`'s verbs
(a `Writer` session to store batches and namespaces and commit a snapshot,
`read_namespace` / `namespace_rows` to read them back, `mark_snapshots` /
`check_references` / `verify_pack` / `repack` / the index and pack listings for check
and prune) and the neutral row types re-exported here; it imports neither format/ nor
backend/.
"""
from ..format.pack import BlockInfo
from .parts import Tuning, parts_of, same_manifest, sources_of, sub_entry
from .reachable import BlobMarks, NamespaceRefs
from .repo import Repository
from .rows import KINDS, Row, RowBatch, Unsorted, changed_fields, same_value
from .snapshot import Snapshot
from .writer import Writer

__all__ = ["BlobMarks", "BlockInfo", "KINDS", "NamespaceRefs", "Repository", "Row", "RowBatch", "Snapshot",
           "Tuning", "Unsorted", "Writer", "changed_fields", "parts_of", "same_manifest", "same_value", "sources_of",
           "sub_entry"]
