"""Typed value codec for metadata, documents and ids (format layer).

JSON loses types that backups must keep (int vs float, -0.0, NaN payloads, bytes,
datetimes, dates, times, intervals, decimals, UUIDs, big ints). This small tagged binary encoding keeps them exactly and is
deterministic, so equal values always encode to equal bytes. Tuples are stored as lists.
Dict key order is encoded as given; backup stores metadata in `canonical` form (keys
sorted), because providers do not return keys in a stable order.
"""
from __future__ import annotations

import datetime as _dt
import decimal as _decimal
import struct
import uuid as _uuid
from typing import Any

NONE, FALSE, TRUE, INT, BIGINT, FLOAT, STR, BYTES, LIST, DICT, DATETIME, DATE, DECIMAL, UUID, TIME, TIMEDELTA = range(16)


def _varint(n: int, out: bytearray) -> None:
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    shift = n = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7


def encode_value(v: Any, out: bytearray | None = None, canonical: bool = False) -> bytearray:
    out = bytearray() if out is None else out
    if v is None:
        out.append(NONE)
    elif v is True:
        out.append(TRUE)
    elif v is False:
        out.append(FALSE)
    elif isinstance(v, int):
        if -(2 ** 63) <= v < 2 ** 63:
            out.append(INT)
            out += struct.pack(">q", v)
        else:
            raw = str(v).encode()
            out.append(BIGINT)
            _varint(len(raw), out)
            out += raw
    elif isinstance(v, float):
        out.append(FLOAT)
        out += struct.pack(">d", v)
    elif isinstance(v, str):
        raw = v.encode("utf-8", "surrogatepass")
        out.append(STR)
        _varint(len(raw), out)
        out += raw
    elif isinstance(v, (bytes, bytearray, memoryview)):
        raw = bytes(v)
        out.append(BYTES)
        _varint(len(raw), out)
        out += raw
    elif isinstance(v, (list, tuple)):
        out.append(LIST)
        _varint(len(v), out)
        for x in v:
            encode_value(x, out, canonical)
    elif isinstance(v, dict):
        out.append(DICT)
        _varint(len(v), out)
        items = sorted(v.items(), key=lambda kv: str(kv[0])) if canonical else v.items()
        for k, x in items:
            if not isinstance(k, str):
                raise TypeError(f"metadata keys must be strings, got {type(k).__name__}")
            encode_value(k, out, canonical)
            encode_value(x, out, canonical)
    elif isinstance(v, _dt.datetime):
        out.append(DATETIME)
        raw = v.isoformat().encode()
        _varint(len(raw), out)
        out += raw
    elif isinstance(v, _dt.date):
        out.append(DATE)
        raw = v.isoformat().encode()
        _varint(len(raw), out)
        out += raw
    elif isinstance(v, _dt.time):
        out.append(TIME)
        raw = v.isoformat().encode()
        _varint(len(raw), out)
        out += raw
    elif isinstance(v, _dt.timedelta):
        out.append(TIMEDELTA)
        out += struct.pack(">qqq", v.days, v.seconds, v.microseconds)
    elif isinstance(v, _decimal.Decimal):
        out.append(DECIMAL)
        raw = str(v).encode()
        _varint(len(raw), out)
        out += raw
    elif isinstance(v, _uuid.UUID):
        out.append(UUID)
        out += v.bytes
    elif hasattr(v, "item") and hasattr(v, "dtype"):      # numpy scalar
        return encode_value(v.item(), out, canonical)
    else:
        raise TypeError(f"cannot store metadata value of type {type(v).__name__}")
    return out


def decode_value(buf: bytes | memoryview, pos: int = 0) -> tuple[Any, int]:
    mv = buf if isinstance(buf, memoryview) else memoryview(buf)
    tag = mv[pos]
    pos += 1
    if tag == NONE:
        return None, pos
    if tag == TRUE:
        return True, pos
    if tag == FALSE:
        return False, pos
    if tag == INT:
        return struct.unpack_from(">q", mv, pos)[0], pos + 8
    if tag == FLOAT:
        return struct.unpack_from(">d", mv, pos)[0], pos + 8
    if tag == UUID:
        return _uuid.UUID(bytes=bytes(mv[pos:pos + 16])), pos + 16
    if tag == TIMEDELTA:
        d, s, us = struct.unpack_from(">qqq", mv, pos)
        return _dt.timedelta(days=d, seconds=s, microseconds=us), pos + 24
    if tag in (STR, BYTES, BIGINT, DATETIME, DATE, TIME, DECIMAL):
        n, pos = _read_varint(mv, pos)
        raw = bytes(mv[pos:pos + n])
        pos += n
        if tag == STR:
            return raw.decode("utf-8", "surrogatepass"), pos
        if tag == BYTES:
            return raw, pos
        if tag == BIGINT:
            return int(raw), pos
        if tag == DATETIME:
            return _dt.datetime.fromisoformat(raw.decode()), pos
        if tag == TIME:
            return _dt.time.fromisoformat(raw.decode()), pos
        if tag == DECIMAL:
            return _decimal.Decimal(raw.decode()), pos
        return _dt.date.fromisoformat(raw.decode()), pos
    if tag == LIST:
        n, pos = _read_varint(mv, pos)
        items = []
        for _ in range(n):
            x, pos = decode_value(mv, pos)
            items.append(x)
        return items, pos
    if tag == DICT:
        n, pos = _read_varint(mv, pos)
        d = {}
        for _ in range(n):
            k, pos = decode_value(mv, pos)
            d[k], pos = decode_value(mv, pos)
        return d, pos
    raise ValueError(f"bad value tag {tag}")


def dumps(v: Any, canonical: bool = False) -> bytes:
    return bytes(encode_value(v, canonical=canonical))


def loads(b: bytes) -> Any:
    v, pos = decode_value(b)
    if pos != len(b):
        raise ValueError("trailing bytes after value")
    return v


def canonical(v: Any) -> Any:
    """The value with every dict's keys sorted (providers do not keep key order stable)."""
    if isinstance(v, dict):
        return {k: canonical(v[k]) for k in sorted(v, key=str)}
    if isinstance(v, list):
        return [canonical(x) for x in v]
    return v


def same(a: Any, b: Any) -> bool:
    """Exact equality including types (1 != 1.0, True != 1, NaN payloads compared bitwise)."""
    return dumps(a) == dumps(b)
