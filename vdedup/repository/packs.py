"""Whole packs read back: verification (check --read-data) and repacking (prune)
(repository layer).

Both read a pack whole, derive its key from the header, open the trailer (the block table
without blob ids) and open every block; this module is the one place that does it.
Trailers carry no blob ids (docs/design.md §4.3): verification takes them from the index,
repacking recomputes them from the blobs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from ..errors import IntegrityError, VdedupError
from ..format import block as blockfmt
from ..format import pack as packfmt
from ..format.objects import BlobType
from ..format.pack import BlockInfo
from .parallel import Workers


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


def verify_pack(repo, name: str, indexed: list[BlockInfo] | None, workers: Workers | None = None) -> PackCheck:
    """Read a pack whole: its trailer must match the index's block table for it (`indexed`,
    None when no index file names it), every block must authenticate and decode, and every
    blob must hash to the id the index gives it."""
    workers = workers or Workers(repo, 1)
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
            ids = workers.content_ids(b.blob_type, blobs)
            for (blob_id, raw_len), blob, cid in zip(b.blobs, blobs, ids):
                if len(blob) != raw_len or (blob_id and cid != blob_id):
                    out.damaged.add(blob_id)
                    out.errors.append(f"pack {name[:16]} block {b.number}: blob {blob_id.hex()[:16]} "
                                      f"does not match its content id")
        except Exception as e:               # any failure to authenticate or decode is damage
            out.errors.append(f"pack {name[:16]} block {b.number}: {_message(e)}")
            out.damaged.update(blob_id for blob_id, _ in b.blobs if blob_id)
    return out


def verify_packs(repo, names: Iterable[str], indexed: dict[bytes, list[BlockInfo]],
                 workers: int = 1) -> Iterator[tuple[str, PackCheck]]:
    """verify_pack for each pack (its index entry from `indexed`), `workers` at a time, in order."""
    with Workers(repo, workers) as w:
        yield from w.map(lambda name: (name, verify_pack(repo, name, indexed.get(bytes.fromhex(name)), w)), names)


def pack_blobs(repo, name: str, workers: Workers | None = None) -> list[tuple[BlobType, bytes, bytes]]:
    """Every blob of a pack as (type, id, data), ids recomputed from the contents; a pack
    that cannot be read raises IntegrityError naming the pack (and block)."""
    workers = workers or Workers(repo, 1)
    try:
        pack = _Pack(repo, name)
        blocks = pack.trailer()
    except VdedupError as e:
        raise IntegrityError(f"pack {name[:16]}: {e.message}") from None
    out = []
    for b in blocks:
        try:
            blobs = pack.blobs(b)
        except Exception as e:
            raise IntegrityError(f"pack {name[:16]} block {b.number}: {_message(e)}") from None
        btype = BlobType(b.blob_type)
        out.extend(zip([btype] * len(blobs), workers.content_ids(b.blob_type, blobs), blobs))
    return out


def index_pack(repo, name: str, workers: Workers | None = None) -> tuple[list[BlockInfo], list[str]]:
    """A pack's block table with blob ids, from the pack alone (repair index): the trailer
    gives the blocks, each block is opened and its blobs hashed. A block that does not
    open is left out (its blobs stay unindexed); returns (blocks, error lines). A pack
    whose header or trailer does not open gives no blocks."""
    workers = workers or Workers(repo, 1)
    try:
        pack = _Pack(repo, name)
        blocks = pack.trailer()
    except Exception as e:
        return [], [f"pack {name[:16]}: {_message(e) if isinstance(e, VdedupError) else 'trailer cannot be read'}"]
    out, errors = [], []
    for b in blocks:
        try:
            blobs = pack.blobs(b)
            if len(blobs) != len(b.blobs) or any(len(x) != n for x, (_, n) in zip(blobs, b.blobs)):
                raise VdedupError("block does not match the trailer")
        except Exception as e:
            errors.append(f"pack {name[:16]} block {b.number}: {_message(e)}")
            continue
        ids = workers.content_ids(b.blob_type, blobs)
        out.append(BlockInfo(b.number, b.offset, b.length, b.blob_type,
                             tuple((blob_id, len(x)) for blob_id, x in zip(ids, blobs))))
    return out, errors


def index_packs(repo, names: Iterable[str], workers: int = 1) -> Iterator[tuple[str, list[BlockInfo], list[str]]]:
    """index_pack for each pack, `workers` at a time, in order."""
    with Workers(repo, workers) as w:
        yield from w.map(lambda name: (name, *index_pack(repo, name, w)), names)


def repack(repo, writer, packs: list[tuple[str, int]], keep: Callable[[str, bytes], bool],
           workers: int = 1) -> Iterator[int]:
    """Copy the blobs of each pack (name, expected) that `keep(name, id)` chooses into new
    packs through `writer` (packs read and verified `workers` at a time, copied in order);
    yields how many were copied per pack. Exactly `expected` must be found in each, or
    IntegrityError (and nothing should be deleted)."""
    hint = "run 'vdedup check --read-data'"

    def read(item: tuple[str, int]):
        try:
            return pack_blobs(repo, item[0], w)
        except IntegrityError as e:
            return e

    with Workers(repo, workers) as w:
        for (name, expected), blobs in zip(packs, w.map(read, packs)):
            if isinstance(blobs, IntegrityError):
                raise IntegrityError(f"cannot repack {blobs.message}; prune stopped before deleting anything",
                                     hint=hint)
            n = 0
            for btype, blob_id, blob in blobs:
                if keep(name, blob_id):
                    writer.copy_blob(btype, blob, blob_id)
                    n += 1
            if n != expected:
                raise IntegrityError(f"pack {name[:16]} holds {n} of the {expected} blobs the index lists for it; "
                                     f"prune stopped before deleting anything", hint=hint)
            yield n
