"""Block codec: many blobs compressed together (format layer).

A block's plaintext is one codec byte followed by the codec's data. Codec 1 ("lanes"):

    zstd( u32 n | n x (u32 head_len, u32 body_len, u8 itemsize) | heads... | lanes )

Each blob is split at its body offset (vector payloads: header | arrays; tree blobs have
an empty body). Bodies with the same element size are concatenated into a lane and the
lane is byte-shuffled by that size (all first bytes, then all second bytes, ...), which
lets zstd find the redundancy in float exponents. Before shuffling, 4-byte lanes are rotated
left by one bit per 32-bit little-endian word, so that a float32's exponent fills one byte. Lanes are stored for itemsize 1, 2, 4, 8
in that order, each as u64 length + bytes.
"""
from __future__ import annotations

import struct
import threading

import numpy as np
import zstandard

from .vectors import split_payload

CODEC_LANES = 1
LANE_SIZES = (1, 2, 4, 8)
ZSTD_LEVEL = 1      # measured: on shuffled float32 lanes level 1 beats 3 (0.842 vs 0.852 of raw) and is faster

_VECTOR_PARAMS = zstandard.ZstdCompressionParameters(
    window_log=20, min_match=7, hash_log=6, chain_log=6, search_log=1, target_length=0,
    strategy=zstandard.STRATEGY_FAST)
# Vector blocks: three of four float lanes are random mantissa bytes, so match finding only
# costs; with it nearly off, zstd's entropy coder gets the exponent lane close to its entropy
# (measured: 0.834 of raw against 0.842 at level 1, and faster). Any zstd decoder reads both.
_local = threading.local()          # a ZstdCompressor must not be used by two threads at once


def _compressor(vector_payloads: bool) -> zstandard.ZstdCompressor:
    pair = getattr(_local, "cctx", None)
    if pair is None:
        pair = _local.cctx = (zstandard.ZstdCompressor(level=ZSTD_LEVEL),
                              zstandard.ZstdCompressor(compression_params=_VECTOR_PARAMS))
    return pair[1] if vector_payloads else pair[0]


def _planes(flat: np.ndarray, itemsize: int) -> np.ndarray:
    """(itemsize, N) byte planes of N items: one contiguous copy per plane (numpy's transposed
    copy of the whole array is several times slower)."""
    b = flat.view(np.uint8).reshape(-1, itemsize)
    out = np.empty((itemsize, b.shape[0]), dtype=np.uint8)
    for j in range(itemsize):
        out[j] = b[:, j]
    return out


def _items(planes: np.ndarray) -> np.ndarray:
    """Inverse of _planes: the (N, itemsize) bytes of N items."""
    itemsize = planes.shape[0]
    out = np.empty((planes.shape[1], itemsize), dtype=np.uint8)
    for j in range(itemsize):
        out[:, j] = planes[j]
    return out


def shuffle(data: bytes, itemsize: int) -> bytes:
    if itemsize == 1 or not data:
        return data
    if itemsize == 4:
        # rotate each 32-bit word left by one bit: a float32's sign moves to bit 0 and its
        # whole 8-bit exponent into the top byte, which then compresses to ~2-3 bits
        w = np.frombuffer(data, dtype="<u4")
        return _planes((w << np.uint32(1)) | (w >> np.uint32(31)), 4).tobytes()
    return _planes(np.frombuffer(data, dtype=np.uint8), itemsize).tobytes()


def unshuffle(data: bytes, itemsize: int) -> bytes:
    if itemsize == 1 or not data:
        return data
    out = _items(np.frombuffer(data, dtype=np.uint8).reshape(itemsize, -1))
    if itemsize == 4:
        w = out.view("<u4").reshape(-1)
        return ((w >> np.uint32(1)) | (w << np.uint32(31))).tobytes()
    return out.tobytes()


def encode_block(blobs: list[bytes], vector_payloads: bool) -> bytes:
    table = bytearray(struct.pack(">I", len(blobs)))
    heads: list[bytes] = []
    lanes: dict[int, list[bytes]] = {k: [] for k in LANE_SIZES}
    for blob in blobs:
        if vector_payloads:
            itemsize, off = split_payload(blob)
        else:
            itemsize, off = 1, len(blob)
        head, body = blob[:off], blob[off:]
        if itemsize not in lanes or len(body) % itemsize:
            itemsize = 1
        table += struct.pack(">IIB", len(head), len(body), itemsize)
        heads.append(head)
        lanes[itemsize].append(body)
    parts = [bytes(table), *heads]
    for k in LANE_SIZES:
        lane = shuffle(b"".join(lanes[k]), k)
        parts += [struct.pack(">Q", len(lane)), lane]
    cctx = _compressor(vector_payloads)
    return bytes([CODEC_LANES]) + cctx.compress(b"".join(parts))


def encode_rows_block(rows: np.ndarray, head_len: int, itemsize: int) -> bytes:
    """encode_block(vector_payloads=True) of n payloads of one layout given as the rows of an
    (n, width) uint8 array, each a head of `head_len` bytes and a body of `itemsize`-byte
    elements: the same bytes, built without a step per blob."""
    n, width = rows.shape
    blen = width - head_len
    if itemsize not in LANE_SIZES or blen % itemsize:
        itemsize = 1
    table = np.empty(n, dtype=_ENTRY)
    table["head"], table["body"], table["itemsize"] = head_len, blen, itemsize
    parts = [struct.pack(">I", n), table.tobytes(), np.ascontiguousarray(rows[:, :head_len]).tobytes()]
    body = np.ascontiguousarray(rows[:, head_len:]).reshape(-1)
    for k in LANE_SIZES:
        lane = shuffle(body.tobytes(), k) if k == itemsize else b""
        parts += [struct.pack(">Q", len(lane)), lane]
    return bytes([CODEC_LANES]) + _compressor(True).compress(b"".join(parts))


_ENTRY = np.dtype([("head", ">u4"), ("body", ">u4"), ("itemsize", "u1")])


def decode_block_rows(data: bytes) -> np.ndarray | list[bytes]:
    """decode_block, but when every blob of the block has the same head and body lengths
    (a block of one batch's dense payloads, the usual case) the blobs as the rows of one
    (n, width) uint8 array, built without a step per blob; else decode_block's list."""
    if not data or data[0] != CODEC_LANES:
        raise ValueError("unknown block codec")
    raw = zstandard.ZstdDecompressor().decompress(memoryview(data)[1:], max_output_size=1 << 31)
    rows = _uniform_rows(raw)
    return _decode_raw(raw) if rows is None else rows


def _uniform_rows(raw: bytes) -> np.ndarray | None:
    """The blobs of a decompressed block as rows, or None unless they all have one layout."""
    (n,) = struct.unpack_from(">I", raw, 0)
    if not n or len(raw) < 4 + 9 * n:
        return None
    table = np.frombuffer(raw, dtype=_ENTRY, count=n, offset=4)
    hlen, blen, k = (int(x) for x in table[0].tolist())
    entries = np.frombuffer(raw, dtype=np.uint8, count=n * _ENTRY.itemsize, offset=4).reshape(n, -1)
    if k not in LANE_SIZES or not (entries == entries[0]).all():    # as bytes: comparing records is slow
        return None
    pos = 4 + 9 * n + n * hlen
    lanes = {}
    for size in LANE_SIZES:
        if pos + 8 > len(raw):
            return None
        (ln,) = struct.unpack_from(">Q", raw, pos)
        lanes[size] = (pos + 8, ln)
        pos += 8 + ln
    start, ln = lanes[k]
    if pos != len(raw) or ln != n * blen or any(lanes[size][1] for size in LANE_SIZES if size != k):
        return None
    rows = np.empty((n, hlen + blen), dtype=np.uint8)
    rows[:, :hlen] = np.frombuffer(raw, dtype=np.uint8, count=n * hlen, offset=4 + 9 * n).reshape(n, hlen)
    if not ln:
        return rows
    body = np.frombuffer(raw, dtype=np.uint8, count=ln, offset=start)
    if k == 1:
        rows[:, hlen:] = body.reshape(n, blen)
        return rows
    items = _items(body.reshape(k, -1))
    if k == 4:                              # undo the rotation of shuffle (see there), into the rows
        w = items.view("<u4").reshape(n, blen // 4)
        out = rows[:, hlen:].view("<u4") if hlen % 4 == 0 else np.empty_like(w)
        np.right_shift(w, np.uint32(1), out=out)
        w <<= np.uint32(31)
        out |= w
        if out.base is not rows:
            rows[:, hlen:] = out.view(np.uint8)
        return rows
    rows[:, hlen:] = items.reshape(n, blen)
    return rows


def decode_block(data: bytes) -> list[bytes]:
    if not data or data[0] != CODEC_LANES:
        raise ValueError("unknown block codec")
    raw = zstandard.ZstdDecompressor().decompress(memoryview(data)[1:], max_output_size=1 << 31)
    return _decode_raw(raw)


def _decode_raw(raw: bytes) -> list[bytes]:
    (n,) = struct.unpack_from(">I", raw, 0)
    pos = 4
    entries = []
    for _ in range(n):
        entries.append(struct.unpack_from(">IIB", raw, pos))
        pos += 9
    heads = []
    for hlen, _, _ in entries:
        heads.append(raw[pos:pos + hlen])
        pos += hlen
    lanes: dict[int, bytes] = {}
    for k in LANE_SIZES:
        (ln,) = struct.unpack_from(">Q", raw, pos)
        pos += 8
        lanes[k] = unshuffle(raw[pos:pos + ln], k)
        pos += ln
    offsets = {k: 0 for k in LANE_SIZES}
    out = []
    for (hlen, blen, k), head in zip(entries, heads):
        out.append(head + lanes[k][offsets[k]:offsets[k] + blen])
        offsets[k] += blen
    return out
