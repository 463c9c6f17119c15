"""Pack files and index files (format layer).

A pack holds many encrypted blocks; each block holds many blobs (see block.py).

    header  b"VDDP" | u8 version | 32-byte salt            -> pack subkey = derive(master, salt)
    block i AES-GCM(subkey, nonce(1, i), block plaintext, aad = "VDDP" | pack id | u32 i | u8 blob type)
    trailer AES-GCM(subkey, nonce(2, 0), zstd(block table), aad = "VDDP" | pack id | "trailer")
    u32     length of the sealed trailer

The block table lists for every block its offset, length, blob type and blobs: in index files
(per pack) each blob's 32-byte id and raw length; in the pack trailer only the raw lengths, since
ids are keyed hashes of the contents that a reader with the key recomputes (index files hold
them; a pack alone still yields its index by decrypting and hashing its blobs). Counter nonces under a per-pack subkey never repeat and stay far below GCM's
limits (a pack has at most a few thousand blocks).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import zstandard

from ..crypto.aead import TAG_SIZE, counter_nonce, open_sealed, seal, seal_into
from ..crypto.keys import MasterKey
from ..errors import FormatError

PACK_MAGIC = b"VDDP"
PACK_VERSION = 1
PACK_HEADER = 4 + 1 + 32
ID_LEN = 32


@dataclass(frozen=True)
class BlockInfo:
    number: int
    offset: int
    length: int
    blob_type: int
    blobs: tuple[tuple[bytes, int], ...]    # (blob id, raw length)


@dataclass(frozen=True)
class BlobLocation:
    pack: bytes
    block: int
    offset: int
    length: int
    ordinal: int
    raw_length: int
    blob_type: int

    _S = struct.Struct(">IQIIIB")

    def to_bytes(self) -> bytes:
        return self.pack + self._S.pack(self.block, self.offset, self.length, self.ordinal,
                                        self.raw_length, self.blob_type)

    @classmethod
    def from_bytes(cls, b: bytes) -> "BlobLocation":
        return cls(bytes(b[:ID_LEN]), *cls._S.unpack_from(b, ID_LEN))


def pack_header(salt: bytes) -> bytes:
    return PACK_MAGIC + bytes([PACK_VERSION]) + salt


def _block_aad(pack_id: bytes, number: int, blob_type: int) -> bytes:
    return PACK_MAGIC + pack_id + struct.pack(">IB", number, blob_type)


def seal_block(key: bytes, pack_id: bytes, number: int, blob_type: int, plaintext: bytes) -> bytes:
    return seal(key, counter_nonce(1, number), plaintext, _block_aad(pack_id, number, blob_type))


def seal_block_into(key: bytes, pack_id: bytes, number: int, blob_type: int, plaintext: bytes,
                    out: memoryview) -> None:
    """seal_block() written into `out` (len(plaintext) + TAG_SIZE bytes of the pack being built)."""
    seal_into(key, counter_nonce(1, number), plaintext, _block_aad(pack_id, number, blob_type), out)


def open_block(key: bytes, pack_id: bytes, number: int, blob_type: int, ciphertext: bytes) -> bytes:
    return open_sealed(key, counter_nonce(1, number), ciphertext, _block_aad(pack_id, number, blob_type),
                       f"pack {pack_id.hex()[:16]} block {number}")


def pack_key(master: MasterKey, header: bytes) -> bytes:
    if len(header) < PACK_HEADER or header[:4] != PACK_MAGIC:
        raise FormatError("not a vdedup pack")
    if header[4] != PACK_VERSION:
        raise FormatError(f"pack format version {header[4]} is not supported")
    return master.subkey(header[5:PACK_HEADER])


def encode_table(blocks: list[BlockInfo], with_ids: bool = True) -> bytes:
    """Block table; pack trailers omit the blob ids (`with_ids=False`): they are keyed hashes of
    the blobs' contents, so a reader with the key recomputes them, and index files hold them."""
    out = bytearray(struct.pack(">I", len(blocks)))
    for b in blocks:
        out += struct.pack(">IQIBI", b.number, b.offset, b.length, b.blob_type, len(b.blobs))
        for blob_id, raw_len in b.blobs:
            out += (blob_id if with_ids else b"") + struct.pack(">I", raw_len)
    return bytes(out)


def decode_table(data: bytes, pos: int = 0, with_ids: bool = True) -> tuple[list[BlockInfo], int]:
    (n,) = struct.unpack_from(">I", data, pos)
    pos += 4
    blocks = []
    idl = ID_LEN if with_ids else 0
    for _ in range(n):
        number, offset, length, btype, nblobs = struct.unpack_from(">IQIBI", data, pos)
        pos += 21
        blobs = []
        for _ in range(nblobs):
            blobs.append((bytes(data[pos:pos + idl]), struct.unpack_from(">I", data, pos + idl)[0]))
            pos += idl + 4
        blocks.append(BlockInfo(number, offset, length, btype, tuple(blobs)))
    return blocks, pos


def same_layout(a: list[BlockInfo], b: list[BlockInfo]) -> bool:
    """Whether two block tables describe the same blocks and blob sizes (ids aside)."""
    return [(x.number, x.offset, x.length, x.blob_type, [n for _, n in x.blobs]) for x in a] == \
        [(x.number, x.offset, x.length, x.blob_type, [n for _, n in x.blobs]) for x in b]


def seal_trailer(key: bytes, pack_id: bytes, blocks: list[BlockInfo]) -> bytes:
    body = zstandard.ZstdCompressor(level=3).compress(encode_table(blocks, with_ids=False))
    sealed = seal(key, counter_nonce(2, 0), body, PACK_MAGIC + pack_id + b"trailer")
    return sealed + struct.pack(">I", len(sealed))


def open_trailer(key: bytes, pack_id: bytes, sealed: bytes) -> list[BlockInfo]:
    body = open_sealed(key, counter_nonce(2, 0), sealed, PACK_MAGIC + pack_id + b"trailer",
                       f"pack {pack_id.hex()[:16]} trailer")
    blocks, _ = decode_table(zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 30),
                             with_ids=False)
    return blocks


def encode_index(packs: dict[bytes, list[BlockInfo]]) -> bytes:
    """Index file body: u8 version | u32 npacks | per pack: 32-byte id + block table."""
    out = bytearray(b"\x01" + struct.pack(">I", len(packs)))
    for pack_id, blocks in packs.items():
        out += pack_id + encode_table(blocks)
    return bytes(out)


def decode_index(data: bytes) -> dict[bytes, list[BlockInfo]]:
    if data[:1] != b"\x01":
        raise FormatError("unknown index format version")
    (n,) = struct.unpack_from(">I", data, 1)
    pos = 5
    packs = {}
    for _ in range(n):
        pack_id = bytes(data[pos:pos + ID_LEN])
        packs[pack_id], pos = decode_table(data, pos + ID_LEN)
    return packs


def locations(pack_id: bytes, blocks: list[BlockInfo]):
    for b in blocks:
        for ordinal, (blob_id, raw_len) in enumerate(b.blobs):
            yield blob_id, BlobLocation(pack_id, b.number, b.offset, b.length, ordinal, raw_len, b.blob_type)


_LOCATION = np.dtype([("block", ">u4"), ("offset", ">u8"), ("length", ">u4"), ("ordinal", ">u4"),
                      ("raw_length", ">u4"), ("blob_type", "u1")])      # BlobLocation._S after the pack id


def location_bytes(pack_id: bytes, blocks: list[BlockInfo]) -> list[tuple[bytes, bytes]]:
    """(blob id, BlobLocation.to_bytes()) of every blob of a pack, built as one array."""
    ids, rows = location_rows(pack_id, blocks)
    if not ids:
        return []
    return list(zip(ids, np.ascontiguousarray(rows).view(f"V{rows.shape[1]}").reshape(-1).tolist()))


def location_rows(pack_id: bytes, blocks: list[BlockInfo]) -> tuple[list[bytes], np.ndarray]:
    """The blob ids of a pack and, as the rows of one uint8 array, their locations
    (BlobLocation.to_bytes() each), with no object per blob."""
    n = sum(len(b.blobs) for b in blocks)
    if not n:
        return [], np.zeros((0, ID_LEN + _LOCATION.itemsize), dtype=np.uint8)
    rec = np.empty(n, dtype=_LOCATION)
    ids: list[bytes] = []
    pos = 0
    for b in blocks:
        k = len(b.blobs)
        part = rec[pos:pos + k]
        part["block"], part["offset"], part["length"], part["blob_type"] = b.number, b.offset, b.length, b.blob_type
        part["ordinal"] = np.arange(k)
        part["raw_length"] = [r for _, r in b.blobs]
        ids.extend(i for i, _ in b.blobs)
        pos += k
    out = np.empty((n, ID_LEN + _LOCATION.itemsize), dtype=np.uint8)
    out[:, :ID_LEN] = np.frombuffer(pack_id, dtype=np.uint8)
    out[:, ID_LEN:] = rec.view(np.uint8).reshape(n, _LOCATION.itemsize)
    return ids, out
