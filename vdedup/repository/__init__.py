"""Repository layer: packs, index (LMDB cache), keys, locks, snapshots, manifests."""
from .repo import Repository
from .snapshot import Snapshot

__all__ = ["Repository", "Snapshot"]
