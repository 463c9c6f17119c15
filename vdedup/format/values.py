"""Typed value codec for metadata, documents and ids (format layer).

JSON loses types that backups must keep (int vs float, -0.0, NaN payloads, bytes,
datetimes, dates, times, intervals, decimals, UUIDs, big ints). This small tagged binary encoding keeps them exactly and is
deterministic, so equal values always encode to equal bytes. Tuples are stored as lists.
Dict key order is encoded as given; backup stores metadata in `canonical` form (keys
sorted), because providers do not return keys in a stable order.
"""
from __future__ import annotations

import datetime as _dt
import json as _json
import decimal as _decimal
import itertools
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


def _enc_str(v, out, canonical):
    raw = v.encode("utf-8", "surrogatepass")
    n = len(raw)
    if n < 0x80:
        out.append(STR)
        out.append(n)
    else:
        out.append(STR)
        _varint(n, out)
    out += raw


def _enc_int(v, out, canonical):
    if -(2 ** 63) <= v < 2 ** 63:
        out.append(INT)
        out += _Q.pack(v)
    else:
        raw = str(v).encode()
        out.append(BIGINT)
        _varint(len(raw), out)
        out += raw


def _enc_float(v, out, canonical):
    out.append(FLOAT)
    out += _D.pack(v)


def _enc_list(v, out, canonical):
    out.append(LIST)
    _varint(len(v), out)
    for x in v:
        f = _ENCODERS.get(type(x))
        if f is None:
            _enc_other(x, out, canonical)
        else:
            f(x, out, canonical)


def _enc_dict(v, out, canonical):
    out.append(DICT)
    _varint(len(v), out)
    items = sorted(v.items(), key=lambda kv: str(kv[0])) if canonical else v.items()
    for k, x in items:
        if type(k) is not str:
            raise TypeError(f"metadata keys must be strings, got {type(k).__name__}")
        _enc_str(k, out, canonical)
        f = _ENCODERS.get(type(x))
        if f is None:
            _enc_other(x, out, canonical)
        else:
            f(x, out, canonical)


def _enc_none(v, out, canonical):
    out.append(NONE)


def _enc_bool(v, out, canonical):
    out.append(TRUE if v else FALSE)


def _enc_bytes(v, out, canonical):
    raw = bytes(v)
    out.append(BYTES)
    _varint(len(raw), out)
    out += raw


def _enc_text(tag, raw, out):
    out.append(tag)
    _varint(len(raw), out)
    out += raw


def _enc_other(v, out, canonical):
    """Subclasses, dates and times, decimals, UUIDs, numpy scalars."""
    if v is True or v is False:
        _enc_bool(v, out, canonical)
    elif isinstance(v, int):
        _enc_int(int(v), out, canonical)
    elif isinstance(v, float):
        _enc_float(float(v), out, canonical)
    elif isinstance(v, str):
        _enc_str(str(v), out, canonical)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        _enc_bytes(v, out, canonical)
    elif isinstance(v, (list, tuple)):
        _enc_list(v, out, canonical)
    elif isinstance(v, dict):
        _enc_dict(v, out, canonical)
    elif isinstance(v, _dt.datetime):
        _enc_text(DATETIME, v.isoformat().encode(), out)
    elif isinstance(v, _dt.date):
        _enc_text(DATE, v.isoformat().encode(), out)
    elif isinstance(v, _dt.time):
        _enc_text(TIME, v.isoformat().encode(), out)
    elif isinstance(v, _dt.timedelta):
        out.append(TIMEDELTA)
        out += struct.pack(">qqq", v.days, v.seconds, v.microseconds)
    elif isinstance(v, _decimal.Decimal):
        _enc_text(DECIMAL, str(v).encode(), out)
    elif isinstance(v, _uuid.UUID):
        out.append(UUID)
        out += v.bytes
    elif hasattr(v, "item") and hasattr(v, "dtype"):      # numpy scalar
        x = v.item()
        f = _ENCODERS.get(type(x))
        (f or _enc_other)(x, out, canonical)
    else:
        raise TypeError(f"cannot store metadata value of type {type(v).__name__}")


_Q = struct.Struct(">q")
_D = struct.Struct(">d")
_ENCODERS = {str: _enc_str, int: _enc_int, float: _enc_float, list: _enc_list, dict: _enc_dict,
             type(None): _enc_none, bool: _enc_bool, bytes: _enc_bytes, tuple: _enc_list}


def encode_value(v: Any, out: bytearray | None = None, canonical: bool = False) -> bytearray:
    out = bytearray() if out is None else out
    f = _ENCODERS.get(type(v))
    if f is None:
        _enc_other(v, out, canonical)
    else:
        f(v, out, canonical)
    return out


def _dec_len(buf, pos):
    n = buf[pos]
    if n < 0x80:
        return n, pos + 1
    return _read_varint(buf, pos)


def _dec_str(buf, pos):
    n = buf[pos]
    if n < 0x80:
        pos += 1
    else:
        n, pos = _read_varint(buf, pos)
    end = pos + n
    return buf[pos:end].decode("utf-8", "surrogatepass"), end


def _dec_raw(buf, pos):
    n, pos = _dec_len(buf, pos)
    return bytes(buf[pos:pos + n]), pos + n


def _dec_list(buf, pos):
    n, pos = _dec_len(buf, pos)
    items = []
    append, decoders = items.append, _DECODERS
    for _ in range(n):
        x, pos = decoders[buf[pos]](buf, pos + 1)
        append(x)
    return items, pos


def _dec_dict(buf, pos):
    n, pos = _dec_len(buf, pos)
    d = {}
    decoders, dec_str = _DECODERS, _dec_str
    for _ in range(n):
        if buf[pos] != STR:
            raise ValueError("metadata key is not a string")
        k, pos = dec_str(buf, pos + 1)
        d[k], pos = decoders[buf[pos]](buf, pos + 1)
    return d, pos


def _text(conv):
    def dec(buf, pos):
        raw, pos = _dec_raw(buf, pos)
        return conv(raw.decode()), pos
    return dec


def _bad(buf, pos):
    raise ValueError(f"bad value tag {buf[pos - 1]}")


def _dec_timedelta(buf, pos):
    d, s, us = struct.unpack_from(">qqq", buf, pos)
    return _dt.timedelta(days=d, seconds=s, microseconds=us), pos + 24


_DECODERS = [_bad] * 256
_DECODERS[NONE] = lambda b, p: (None, p)
_DECODERS[TRUE] = lambda b, p: (True, p)
_DECODERS[FALSE] = lambda b, p: (False, p)
_DECODERS[INT] = lambda b, p: (_Q.unpack_from(b, p)[0], p + 8)
_DECODERS[FLOAT] = lambda b, p: (_D.unpack_from(b, p)[0], p + 8)
_DECODERS[STR] = _dec_str
_DECODERS[BYTES] = _dec_raw
_DECODERS[BIGINT] = _text(int)
_DECODERS[LIST] = _dec_list
_DECODERS[DICT] = _dec_dict
_DECODERS[DATETIME] = _text(_dt.datetime.fromisoformat)
_DECODERS[DATE] = _text(_dt.date.fromisoformat)
_DECODERS[TIME] = _text(_dt.time.fromisoformat)
_DECODERS[DECIMAL] = _text(_decimal.Decimal)
_DECODERS[UUID] = lambda b, p: (_uuid.UUID(bytes=bytes(b[p:p + 16])), p + 16)
_DECODERS[TIMEDELTA] = _dec_timedelta


def decode_value(buf: bytes | memoryview, pos: int = 0) -> tuple[Any, int]:
    if isinstance(buf, memoryview):
        buf = bytes(buf)
    try:
        return _DECODERS[buf[pos]](buf, pos + 1)
    except (IndexError, struct.error) as e:
        raise ValueError(f"truncated value ({e})") from None


def dumps(v: Any, canonical: bool = False) -> bytes:
    return bytes(encode_value(v, canonical=canonical))


def loads(b: bytes) -> Any:
    v, pos = decode_value(b)
    if pos != len(b):
        raise ValueError("trailing bytes after value")
    return v


def canonical(v: Any) -> Any:
    """The value with every dict's keys sorted (providers do not keep key order stable).
    A dict or list that is already canonical is returned as it is (not copied)."""
    if isinstance(v, dict):
        keys = list(v)
        plain = keys == sorted(keys, key=str)
        if plain:
            for x in v.values():
                if isinstance(x, (dict, list)) and canonical(x) is not x:
                    plain = False
                    break
        return v if plain else {k: canonical(v[k]) for k in sorted(keys, key=str)}
    if isinstance(v, list):
        for i, x in enumerate(v):
            if isinstance(x, (dict, list)) and canonical(x) is not x:
                return v[:i] + [canonical(y) for y in v[i:]]
        return v
    return v


_UNSURE = object()


def _same_fast(a: Any, b: Any) -> Any:
    """True/False when the answer is certain for plain built-in types, else _UNSURE.

    Mirrors `dumps(a) == dumps(b)` without encoding: exact types only (a subclass, numpy
    scalar, date, Decimal... falls back to encoding), floats by their bit pattern, dict
    keys in order (the encoding keeps the order it is given)."""
    t = type(a)
    if t is not type(b):
        if t in _PLAIN and type(b) in _PLAIN and not (t in _SEQ and type(b) in _SEQ):
            return False          # different tags: different encodings
        return _UNSURE
    if t is str or t is int or t is bytes or t is bool or a is None:
        return a == b
    if t is float:
        return _D.pack(a) == _D.pack(b)
    if t is dict:
        if len(a) != len(b):
            return False
        for (ka, va), (kb, vb) in zip(a.items(), b.items()):
            if type(ka) is not str or type(kb) is not str:
                return _UNSURE
            if ka != kb:
                return False
            r = _same_fast(va, vb)
            if r is not True:
                return r
        return True
    if t is list or t is tuple:
        if len(a) != len(b):
            return False
        for va, vb in zip(a, b):
            r = _same_fast(va, vb)
            if r is not True:
                return r
        return True
    return _UNSURE


_SEQ = (list, tuple)
_PLAIN = {str, int, float, bytes, bool, type(None), dict, list, tuple}


def same(a: Any, b: Any) -> bool:
    """Exact equality including types (1 != 1.0, True != 1, NaN payloads compared bitwise):
    the same answer as comparing the two encodings, computed without encoding where the
    values are plain built-ins."""
    r = _same_fast(a, b)
    if r is _UNSURE:
        return dumps(a) == dumps(b)
    return r


# ---- row-level metadata bytes (manifest format 2) ------------------------------------------

def _raise_type(v: Any) -> Any:
    raise TypeError(type(v).__name__)


def _json_encoder():
    """Compact, key-sorted JSON without NaN; the C encoder is built once (json.dumps would
    build a new encoder for every call)."""
    c_make = getattr(_json.encoder, "c_make_encoder", None)
    if c_make is not None:
        enc = c_make(None, _raise_type, _json.encoder.encode_basestring, None, ":", ",", True, False, False)
        # the column form calls the C encoder through map: no Python frame per value
        return (lambda v: "".join(enc(v, 0))), (lambda vs: map("".join, map(enc, vs, itertools.repeat(0))))
    one = _json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False,
                            check_circular=False, default=_raise_type).encode
    return one, (lambda vs: map(one, vs))


_JSON_ENCODE, _JSON_ENCODE_MANY = _json_encoder()
_JSON_DECODE = _json.JSONDecoder().decode
_JSON_COLUMN_TYPES = {str, int, type(None)}
_STR_ONLY = {str}


def _str_keys(v: Any) -> bool:
    """True when every dict inside v has only str keys (JSON would stringify other keys)."""
    if type(v) is dict:
        if v and set(map(type, v)) != _STR_ONLY:
            return False
        items = v.values()
    else:
        items = v                                   # list or tuple
    for x in items:
        if type(x) in _CONTAINERS and not _str_keys(x):
            return False
    return True


_CONTAINERS = {dict, list, tuple}


def meta_bytes(v: Any) -> bytes:
    """The canonical bytes of one metadata value (keys sorted at every level).

    Values made only of str, int, bool, None, finite floats, lists and str-keyed dicts (what
    providers return) are compact JSON text, which always starts with a byte >= 0x20 and
    decodes to exactly the same value and types (floats by their shortest repr, which
    round-trips, -0.0 included). Anything else (NaN, bytes, dates, numpy scalars, ...) is the
    typed encoding (§4.6 of docs/design.md), whose first byte is a tag < 0x20. Equal values
    give equal bytes and different values different bytes, as with the typed encoding."""
    if type(v) in _CONTAINERS and not _str_keys(v):
        return dumps(v, canonical=True)          # raises for non-str keys, as before
    try:
        return _JSON_ENCODE(v).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, RecursionError):
        return dumps(v, canonical=True)


_SCALARS = {str, int, float, bool, type(None)}


def _plain_json(values: list) -> bool:
    """Whether every value is a JSON scalar, or a dict with str keys whose values are scalars
    or lists of scalars: values whose meta_bytes is their JSON text (checked with a few passes
    over the whole batch instead of a walk per value)."""
    top = set(map(type, values))
    if not top <= _SCALARS | {dict}:
        return False
    dicts = list(filter(dict.__instancecheck__, values)) if dict in top else []   # exact dicts: top says so
    if not dicts:
        return True
    if not set(map(type, itertools.chain.from_iterable(dicts))) <= _STR_ONLY:
        return False
    inner = list(itertools.chain.from_iterable(map(dict.values, dicts)))
    kinds = set(map(type, inner))
    if kinds <= _SCALARS:
        return True
    if not kinds <= _SCALARS | {list}:
        return False
    return set(map(type, itertools.chain.from_iterable(filter(list.__instancecheck__, inner)))) <= _SCALARS


def meta_bytes_many(values: list) -> list[bytes]:
    """[meta_bytes(v) for v in values], in one encoder pass when the batch is plain JSON:
    JSON text never holds a raw newline (it is escaped), so the rows are joined by one and
    split again after a single UTF-8 encoding."""
    if values and _plain_json(values):
        try:
            text = "\n".join(_JSON_ENCODE_MANY(values))
        except (TypeError, ValueError, RecursionError):     # NaN or infinity somewhere
            return [meta_bytes(v) for v in values]
        out = text.encode("utf-8", "surrogatepass").split(b"\n")
        if len(out) == len(values):
            return out
    return [meta_bytes(v) for v in values]


def meta_bytes_json_many(values: list) -> list[bytes]:
    """[meta_bytes(v) for v in values] for values made of JSON values with str keys (decoded
    from JSON-form metadata bytes, or built from such values), in one encoder pass; anything
    the JSON form cannot hold (NaN, infinity) goes through meta_bytes."""
    try:
        text = "\n".join(_JSON_ENCODE_MANY(values))
    except (TypeError, ValueError, RecursionError):
        return [meta_bytes(v) for v in values]
    out = text.encode("utf-8", "surrogatepass").split(b"\n")
    return out if len(out) == len(values) else [meta_bytes(v) for v in values]


_ORJSON: Any = False          # not looked for yet; None: not installed
_ORJSON_SAME = {str, int, bool, type(None)}     # what orjson writes as the json encoder does


def _orjson() -> Any:
    global _ORJSON
    if _ORJSON is False:
        try:
            import orjson
            _ORJSON = orjson
        except ImportError:
            _ORJSON = None
    return _ORJSON


def meta_bytes_parsed(values: list, inner: list, inner_types: set) -> list[bytes]:
    """[meta_bytes(v) for v in values] for metadata just decoded from JSON text (dicts with
    str keys, or None; no NaN or infinity: a files export's lines); `inner` holds the values
    of those dicts and `inner_types` their types.

    Such values are plain JSON, so their bytes are their compact key-sorted JSON text
    (meta_bytes_json_many). When orjson is installed and no value holds a float or a nested
    object (only str, int, bool, null, and lists of those), orjson writes the same bytes at
    about a third of the cost: every code point as a key and as a string is written alike
    (tests/test_format.py), ints within 64 bits alike (orjson refuses larger ones, and a
    refusal sends the batch to the json encoder). Floats it writes in another form (0.00001
    for 1e-05), so a batch holding any goes to the json encoder."""
    oj = _orjson()
    if oj is not None and inner_types <= _ORJSON_SAME | {list} and (
            list not in inner_types or set(map(type, itertools.chain.from_iterable(
                filter(list.__instancecheck__, inner)))) <= _ORJSON_SAME):
        try:
            return list(map(oj.dumps, values, itertools.repeat(None), itertools.repeat(oj.OPT_SORT_KEYS)))
        except TypeError:                 # an int past 64 bits, a lone surrogate
            pass
    return meta_bytes_json_many(values)


def meta_value(raw: bytes) -> Any:
    """Inverse of meta_bytes."""
    if not raw:
        raise ValueError("empty metadata value")
    if raw[0] < 0x20:
        return loads(raw)
    return _JSON_DECODE(raw.decode("utf-8", "surrogatepass"))


def meta_values_json(raws: list[bytes]) -> list[Any]:
    """Decode many JSON-form metadata values (meta_bytes output starting >= 0x20) at once."""
    text = b"[" + b",".join(raws) + b"]"
    out = _JSON_DECODE(text.decode("utf-8", "surrogatepass"))
    return out if isinstance(out, list) else []


def dumps_column(items: list) -> bytes:
    """A list of ids, documents or URIs: compact JSON (first byte `[`) when every item is a
    plain str, int or None, otherwise the typed encoding of the list (first byte 8)."""
    if set(map(type, items)) <= _JSON_COLUMN_TYPES:
        try:
            return _json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
        except ValueError:                          # an int too long for JSON text
            pass
    return dumps(items)


def loads_column(raw: bytes) -> list:
    if raw[:1] == b"[":
        out = _JSON_DECODE(raw.decode("utf-8", "surrogatepass"))
    else:
        out = loads(raw)
    if not isinstance(out, list):
        raise ValueError("a manifest column is not a list")
    return out
