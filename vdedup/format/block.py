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


def _rotl1(w: np.ndarray) -> np.ndarray:
    """32-bit words rotated left by one bit (a new array): a float32's sign moves to bit 0
    and its whole 8-bit exponent into the top byte, which then compresses to ~2-3 bits."""
    out = np.left_shift(w, np.uint32(1))
    out |= w >> np.uint32(31)
    return out


def _word_planes(w: np.ndarray, planes: np.ndarray) -> None:
    """The 4 byte planes of little-endian 32-bit words `w` into the rows of `planes` (4, N):
    each plane a word shifted and cast to its low byte (a contiguous cast runs about twice
    as fast as gathering every fourth byte)."""
    np.copyto(planes[0], w, casting="unsafe")
    for j in (1, 2, 3):
        np.copyto(planes[j], w >> np.uint32(8 * j), casting="unsafe")


def _plane_words(planes: np.ndarray) -> np.ndarray:
    """Inverse of _word_planes: the 32-bit words (a new array) of 4 byte planes."""
    w = planes[3].astype(np.uint32)
    for j in (2, 1, 0):
        w <<= np.uint32(8)
        w |= planes[j]
    return w


def shuffle(data: bytes, itemsize: int) -> bytes:
    if itemsize == 1 or not data:
        return data
    if itemsize == 4:
        w = np.frombuffer(data, dtype="<u4")
        out = np.empty((4, len(w)), dtype=np.uint8)
        _word_planes(_rotl1(w), out)
        return out.tobytes()
    return _planes(np.frombuffer(data, dtype=np.uint8), itemsize).tobytes()


def unshuffle(data: bytes, itemsize: int) -> bytes:
    if itemsize == 1 or not data:
        return data
    if itemsize == 4:
        w = _plane_words(np.frombuffer(data, dtype=np.uint8).reshape(4, -1))
        return ((w >> np.uint32(1)) | (w << np.uint32(31))).tobytes()
    return _items(np.frombuffer(data, dtype=np.uint8).reshape(itemsize, -1)).tobytes()


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


def encode_rows_block(rows: np.ndarray | list, head_len: int, itemsize: int) -> bytes:
    """encode_block(vector_payloads=True) of n payloads of one layout given as the rows of an
    (n, width) uint8 array, or of several such pieces one after the other, each a head of
    `head_len` bytes and a body of `itemsize`-byte elements: the same bytes, built without a
    step per blob. A piece may also be (head, bodies): every row's head is the bytes `head`
    and the array holds the bodies only. The block's plaintext is laid out in one buffer and every piece written
    into its place (the heads, the rotated words straight into their byte planes): each
    vector byte is read twice and written twice before zstd, not copied at every step."""
    pieces = [(None, r) if isinstance(r, np.ndarray) else r for r in (rows if isinstance(rows, list) else [rows])]
    pieces = [(h, r) for h, r in pieces if len(r)]
    n = sum(len(r) for _, r in pieces)
    blen = (pieces[0][1].shape[1] - (head_len if pieces[0][0] is None else 0)) if pieces else 0
    if itemsize not in LANE_SIZES or blen % itemsize:
        itemsize = 1
    lane = n * blen
    heads_at = 4 + _ENTRY.itemsize * n
    lanes_at = heads_at + n * head_len
    total = lanes_at + 8 * len(LANE_SIZES) + lane
    out = np.empty(total, dtype=np.uint8)
    struct.pack_into(">I", out, 0, n)
    table = out[4:heads_at].view(_ENTRY)
    table["head"], table["body"], table["itemsize"] = head_len, blen, itemsize
    heads = out[heads_at:lanes_at].reshape(n, head_len)
    pos = lanes_at
    body_at = 0
    for k in LANE_SIZES:
        struct.pack_into(">Q", out, pos, lane if k == itemsize else 0)
        pos += 8
        if k == itemsize:
            body_at = pos
            pos += lane
    planes = out[body_at:body_at + lane].reshape(itemsize, -1)
    at = 0
    for head, r in pieces:
        m = len(r)
        if head is None:
            heads[at:at + m] = r[:, :head_len]
            body = r[:, head_len:]
        else:
            if len(head) != head_len or r.shape[1] != blen:
                raise ValueError("pieces of several layouts")
            heads[at:at + m] = np.frombuffer(head, dtype=np.uint8)
            body = r
        a, span = at * blen // itemsize, m * blen // itemsize
        if itemsize == 1:
            planes.reshape(n, blen)[at:at + m] = body
        elif itemsize == 4:
            try:
                w = body.view("<u4")                 # rows' bodies in place (aligned heads)
            except ValueError:
                w = np.ascontiguousarray(body).view("<u4")
            _word_planes(_rotl1(w).reshape(-1), planes[:, a:a + span])
        else:
            b = np.ascontiguousarray(body).reshape(-1, itemsize)
            for j in range(itemsize):
                planes[j, a:a + span] = b[:, j]
        at += m
    return bytes([CODEC_LANES]) + _compressor(True).compress(out)


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
    if k == 4:                              # undo the rotation of shuffle (see there), into the rows
        w = _plane_words(body.reshape(4, -1)).reshape(n, blen // 4)
        out = rows[:, hlen:].view("<u4") if hlen % 4 == 0 else np.empty_like(w)
        np.right_shift(w, np.uint32(1), out=out)
        w <<= np.uint32(31)
        out |= w
        if out.base is not rows:
            rows[:, hlen:] = out.view(np.uint8)
        return rows
    rows[:, hlen:] = _items(body.reshape(k, -1)).reshape(n, blen)
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
