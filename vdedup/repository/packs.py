"""Whole packs read back: verification (check --read-data) and repacking (prune)
(repository layer).

Both read a pack whole, derive its key from the header, open the trailer (the block table
without blob ids) and open every block; this module is the one place that does it.
Trailers carry no blob ids (docs/design.md §4.3): verification takes them from the index,
repacking recomputes them from the blobs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..errors import IntegrityError, VdedupError
from ..format import block as blockfmt
from ..format import pack as packfmt
from ..format.objects import BlobType
from ..format.pack import BlockInfo


@dataclass
class PackCheck:
    """What reading one pack found: error lines and the ids of the blobs found damaged."""
    errors: list[str] = field(default_factory=list)
    damaged: set[bytes] = field(default_factory=set)


class _Pack:
    """A pack's bytes, key and trailer."""

    def __init__(self, repo, name: str):
        self.name = name
        self.id = bytes.fromhex(name)
        self.data = repo.load_pack(name)
        self.key = packfmt.pack_key(repo.master, self.data[:packfmt.PACK_HEADER])   # FormatError

    def trailer(self) -> list[BlockInfo]:
        tlen = int.from_bytes(self.data[-4:], "big")
        return packfmt.open_trailer(self.key, self.id, self.data[-4 - tlen:-4])

    def blobs(self, b: BlockInfo) -> list[bytes]:
        """The blobs of one block, authenticated and decoded (any failure raises)."""
        plain = packfmt.open_block(self.key, self.id, b.number, b.blob_type, self.data[b.offset:b.offset + b.length])
        return blockfmt.decode_block(plain)


def _message(e: Exception) -> str:
    return e.message if isinstance(e, VdedupError) else str(e)


def verify_pack(repo, name: str, indexed: list[BlockInfo] | None) -> PackCheck:
    """Read a pack whole: its trailer must match the index's block table for it (`indexed`,
    None when no index file names it), every block must authenticate and decode, and every
    blob must hash to the id the index gives it."""
    out = PackCheck()
    try:
        pack = _Pack(repo, name)
    except VdedupError as e:                 # no key, no block can be read
        out.errors.append(f"pack {name[:16]}: {e.message}")
        out.damaged.update(b for blk in (indexed or []) for b, _ in blk.blobs)
        return out
    try:
        blocks = pack.trailer()
    except Exception as e:                   # the blocks may still be fine: check them by the index
        msg = e.message if isinstance(e, VdedupError) else f"trailer cannot be decoded ({e})"
        out.errors.append(f"pack {name[:16]}: {msg}")
        blocks = indexed or []
    if indexed is not None:                  # the trailer has no ids: take them from the index
        if not packfmt.same_layout(blocks, indexed):
            out.errors.append(f"pack {name[:16]}: contents differ from the index")
        blocks = indexed
    for b in blocks:
        try:
            blobs = pack.blobs(b)
            if len(blobs) != len(b.blobs):
                raise VdedupError("block holds a different number of blobs than listed")
            for (blob_id, raw_len), blob in zip(b.blobs, blobs):
                if len(blob) != raw_len or (blob_id and repo.content_id(BlobType(b.blob_type), blob) != blob_id):
                    out.damaged.add(blob_id)
                    out.errors.append(f"pack {name[:16]} block {b.number}: blob {blob_id.hex()[:16]} "
                                      f"does not match its content id")
        except Exception as e:               # any failure to authenticate or decode is damage
            out.errors.append(f"pack {name[:16]} block {b.number}: {_message(e)}")
            out.damaged.update(blob_id for blob_id, _ in b.blobs if blob_id)
    return out


def pack_blobs(repo, name: str) -> Iterator[tuple[BlobType, bytes, bytes]]:
    """Every blob of a pack as (type, id, data), ids recomputed from the contents; a pack
    that cannot be read raises IntegrityError naming the pack (and block)."""
    try:
        pack = _Pack(repo, name)
        blocks = pack.trailer()
    except VdedupError as e:
        raise IntegrityError(f"pack {name[:16]}: {e.message}") from None
    for b in blocks:
        try:
            blobs = pack.blobs(b)
        except Exception as e:
            raise IntegrityError(f"pack {name[:16]} block {b.number}: {_message(e)}") from None
        btype = BlobType(b.blob_type)
        for blob in blobs:
            yield btype, repo.content_id(btype, blob), blob


def repack(repo, writer, name: str, keep: Callable[[bytes], bool], expected: int) -> int:
    """Copy the blobs of pack `name` that `keep(id)` chooses into new packs through `writer`;
    exactly `expected` must be found, or IntegrityError (and nothing should be deleted)."""
    n = 0
    hint = "run 'vdedup check --read-data'"
    try:
        for btype, blob_id, blob in pack_blobs(repo, name):
            if keep(blob_id):
                writer.copy_blob(btype, blob, blob_id)
                n += 1
    except IntegrityError as e:
        raise IntegrityError(f"cannot repack {e.message}; prune stopped before deleting anything",
                             hint=hint) from None
    if n != expected:
        raise IntegrityError(f"pack {name[:16]} holds {n} of the {expected} blobs the index lists for it; "
                             f"prune stopped before deleting anything", hint=hint)
    return n
