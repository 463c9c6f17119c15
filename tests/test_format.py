"""Format layer: every encoder round-trips exactly, and keeps types."""
import datetime as dt
import math
import random
import struct

import numpy as np
import pytest

from vdedup.format import block, manifest as mf, values
from vdedup.format.vectors import decode_payload, encode_payload
from vdedup.model import SparseVector


@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 2 ** 63 - 1, -(2 ** 63), 2 ** 80, 1.0, -0.0, float("inf"), 1e-300,
    "", "ü€𝄞", b"\x00\xff", [1, 1.0, True, None], {"a": {"b": [1, {"c": 2.5}]}},
    dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.timezone.utc), dt.date(2026, 1, 2),
    dt.time(3, 4, 5, 6), dt.timedelta(days=-1, seconds=5, microseconds=7),
    __import__("decimal").Decimal("-12.3400"), __import__("uuid").UUID(int=12345),
])
def test_values_round_trip_keeps_types(value):
    back = values.loads(values.dumps(value))
    assert values.same(back, value)
    assert type(back) is type(value)


def test_values_distinguish_types_and_nan_bits():
    assert not values.same(1, 1.0)
    assert not values.same(True, 1)
    assert not values.same(0.0, -0.0)
    nan = struct.unpack(">d", b"\x7f\xf8\x00\x00\x00\x00\x00\x01")[0]
    back = values.loads(values.dumps(nan))
    assert math.isnan(back) and struct.pack(">d", back) == struct.pack(">d", nan)


def test_canonical_sorts_keys_recursively():
    a = values.canonical({"b": 1, "a": {"y": 1, "x": [{"q": 1, "p": 2}]}})
    assert list(a) == ["a", "b"] and list(a["a"]) == ["x", "y"] and list(a["a"]["x"][0]) == ["p", "q"]


def test_vector_payload_round_trip_all_kinds():
    rng = np.random.default_rng(1)
    vectors = {
        "": rng.standard_normal(384).astype(np.float32),
        "half": rng.standard_normal(16).astype(np.float16),
        "bits": rng.integers(0, 256, 8).astype(np.uint8),
        "multi": rng.standard_normal((3, 8)).astype(np.float32),
    }
    sparse = {"bm25": SparseVector(np.array([7, 3, 100000], np.uint32), np.array([0.5, -1.25, 3.0], np.float32))}
    v2, s2 = decode_payload(encode_payload(vectors, sparse))
    assert set(v2) == set(vectors)
    for k in vectors:
        assert v2[k].dtype == vectors[k].dtype and v2[k].shape == vectors[k].shape
        assert v2[k].tobytes() == vectors[k].tobytes()
    assert s2 == sparse


def test_vector_payload_is_canonical():
    v = np.arange(4, dtype=np.float32)
    a = encode_payload({"b": v, "a": v}, {})
    b = encode_payload({"a": v, "b": v}, {})
    assert a == b


def test_block_round_trip_and_compresses_floats():
    rng = np.random.default_rng(2)
    payloads = []
    for i in range(200):
        x = rng.standard_normal(256).astype(np.float32)
        x /= np.linalg.norm(x)
        sp = {"s": SparseVector(np.arange(i % 5, dtype=np.uint32), np.ones(i % 5, np.float32))}
        payloads.append(encode_payload({"": x}, sp if i % 2 else {}))
    enc = block.encode_block(payloads, vector_payloads=True)
    assert block.decode_block(enc) == payloads
    assert len(enc) < 0.9 * sum(map(len, payloads))   # rotate + shuffle + zstd beats raw floats
    trees = [bytes(random.Random(i).randbytes(i)) for i in range(50)]
    assert block.decode_block(block.encode_block(trees, vector_payloads=False)) == trees
    # blobs of more than one layout: decode_block_rows gives decode_block's list
    assert block.decode_block_rows(enc) == payloads


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.uint8, np.int8])
def test_a_block_of_one_layout_decodes_into_rows_equal_to_its_blobs(dtype):
    from vdedup.format.vectors import dense_batch_rows, decode_dense_batch, decode_dense_rows
    rng = np.random.default_rng(3)
    arr = (rng.standard_normal((120, 37)) * 50).astype(dtype)
    arr[0, 0] = -0.0 if arr.dtype.kind == "f" else arr[0, 0]
    payloads = [encode_payload({"": row}, {}) for row in arr]
    enc = block.encode_block(payloads, vector_payloads=True)
    rows = block.decode_block_rows(enc)
    assert isinstance(rows, np.ndarray) and [r.tobytes() for r in rows] == block.decode_block(enc) == payloads
    buf, width = dense_batch_rows({"": arr})
    enc2 = block.encode_rows_block(np.frombuffer(buf, np.uint8).reshape(len(arr), width),
                                   width - arr.itemsize * arr.shape[1], arr.itemsize)
    assert block.decode_block_rows(enc2).tobytes() == buf
    got, want = decode_dense_rows(rows[[5, 1, 7]]), decode_dense_batch([payloads[5], payloads[1], payloads[7]])
    assert got[""].dtype == want[""].dtype and got[""].tobytes() == want[""].tobytes() == arr[[5, 1, 7]].tobytes()
    # a blob of another layout in the block, or no blobs: decode_block's list
    odd = payloads[:3] + [encode_payload({"": arr[0][:5]}, {})]
    assert block.decode_block_rows(block.encode_block(odd, vector_payloads=True)) == odd
    assert block.decode_block_rows(block.encode_block([], vector_payloads=True)) == []


@pytest.mark.parametrize("head", [0, 3, 4, 13, 16])
def test_rows_of_a_block_of_4_byte_elements_come_back_whatever_the_head_length(head):
    """The rotation of 4-byte lanes is undone straight into the rows when their bodies are
    4-byte aligned (a head of a multiple of 4 bytes), through a copy otherwise."""
    rows = np.random.default_rng(head).integers(0, 256, (257, head + 4 * 45), dtype=np.uint8)
    got = block.decode_block_rows(block.encode_rows_block(rows, head, 4))
    assert isinstance(got, np.ndarray) and got.shape == rows.shape and (got == rows).all()


def test_dense_vectors_of_several_pieces_equal_those_of_the_stacked_rows():
    from vdedup.format.vectors import decode_dense_batch, decode_dense_pieces, decode_dense_rows
    arr = np.random.default_rng(8).standard_normal((50, 9)).astype(np.float32)
    rows = np.stack([np.frombuffer(encode_payload({"": r}, {}), np.uint8) for r in arr])
    pieces = [rows[:7], rows[7:8], rows[8:30], rows[30:]]
    got, want = decode_dense_pieces(pieces), decode_dense_batch([r.tobytes() for r in rows])
    assert got[""].dtype == want[""].dtype == np.float32 and got[""].tobytes() == want[""].tobytes() == arr.tobytes()
    for other_pieces in ([rows[:0], rows], [rows[:10], rows[10:10], rows[10:]]):     # empty pieces anywhere
        assert decode_dense_pieces(other_pieces)[""].tobytes() == arr.tobytes()
    other = rows.copy()
    other[40, 0] ^= 1                               # one payload of another layout: not a dense batch
    assert decode_dense_rows(other) is None and decode_dense_pieces([other[:30], other[30:]]) is None
    assert decode_dense_pieces([rows[:5], rows[5:, :-4]]) is None      # pieces of two widths
    assert decode_dense_pieces([rows[:0]]) is None


def _row(i, meta=None, vref=None):
    return mf.Row(f"id-{i}", vref or bytes([i % 256]) * 32, meta if meta is not None else {"i": i}, f"d{i}", None)


def test_segment_and_delta_round_trip():
    rows = [_row(i) for i in range(100)] + [mf.Row(12345678901, b"\x01" * 32, None, None, "u")]
    back = mf.decode_segment(mf.encode_segment(rows))
    assert [(r.id, r.vref, r.meta, r.doc, r.uri) for r in back] == [(r.id, r.vref, r.meta, r.doc, r.uri) for r in rows]
    old = _row(1, {"a": 1, "b": "x", "c": [1]})
    new = _row(1, {"a": 1, "b": "y", "d": True})
    d = mf.diff(old, new)
    assert d is not None and d.flags == mf.F_META_PATCH
    delta = [d, mf.Row("gone", op=mf.OP_DELETE, flags=0), _row(7)]
    back = mf.decode_delta(mf.encode_delta(delta))
    applied = mf.apply(old, back[0])
    assert values.same(applied.meta, new.meta) and applied.vref == old.vref
    assert back[1].op == mf.OP_DELETE and mf.apply(old, back[1]) is None
    assert back[2].op == mf.OP_FULL and back[2].meta == {"i": 7}


def test_diff_apply_random_property():
    rnd = random.Random(5)
    pool = [None, 1, 1.0, True, "x", [1, 2], {"n": 1}]
    for _ in range(500):
        def meta():
            if rnd.random() < 0.1:
                return None
            return {k: rnd.choice(pool) for k in rnd.sample("abcdef", rnd.randint(0, 5))}
        old = mf.Row("r", bytes([rnd.randint(0, 2)]) * 32, meta(), rnd.choice([None, "d1", "d2"]), rnd.choice([None, "u"]))
        new = mf.Row("r", bytes([rnd.randint(0, 2)]) * 32, meta(), rnd.choice([None, "d1", "d2"]), rnd.choice([None, "u"]))
        d = mf.diff(old, new)
        want = [new.vref, values.canonical(new.meta), new.doc, new.uri]
        if d is None:
            assert values.same([old.vref, values.canonical(old.meta), old.doc, old.uri], want)
            continue
        d = mf.decode_delta(mf.encode_delta([d]))[0]
        got = mf.apply(old, d)
        assert values.same([got.vref, got.meta, got.doc, got.uri], want)


def _meta_pool(rnd):

    scalars = [None, 0, 1, -1, 1.0, -0.0, 0.0, 2.5, float("nan"), float("inf"), True, False, "", "x",
               "\u00e9\n\"", "\ud800", 2 ** 70, -(2 ** 64), b"\x00b", np.float32(1.5), np.int64(3),
               np.float64(0.1), (1, 2), dt.date(2020, 1, 2)]

    def value(depth=0):
        r = rnd.random()
        if depth < 3 and r < 0.2:
            return [value(depth + 1) for _ in range(rnd.randint(0, 3))]
        if depth < 3 and r < 0.4:
            keys = rnd.sample(["a", "b", "\u00e9", "z", "_"], rnd.randint(0, 4))
            return {k: value(depth + 1) for k in keys}
        return rnd.choice(scalars)
    return value


def test_meta_bytes_are_exact_and_canonical():
    """Format 2 stores metadata as JSON where that is exact, else typed: the bytes must
    decode to the canonical value with every type, and compare like the typed encoding."""
    rnd = random.Random(11)
    value = _meta_pool(rnd)
    seen = []
    for _ in range(3000):
        v = value()
        raw = values.meta_bytes(v)
        back = values.meta_value(raw)
        assert values.dumps(back) == values.dumps(v, canonical=True), (v, raw)
        seen.append((raw, values.dumps(v, canonical=True)))
    json_rows = sum(1 for raw, _ in seen if raw[0] >= 0x20)
    assert 0 < json_rows < len(seen)            # both forms were exercised
    for (ra, ta), (rb, tb) in zip(seen, seen[1:] + seen[:1]):
        assert (ra == rb) == (ta == tb)
    with pytest.raises(TypeError):
        values.meta_bytes({1: "int key"})
    assert values.meta_bytes({"b": 1, "a": 2}) == values.meta_bytes({"a": 2, "b": 1}) == b'{"a":2,"b":1}'


def _encode_segment_v1(rows):

    return b"".join([struct.pack(">BI", mf.SEGMENT, len(rows)), mf._col([r.id for r in rows]),
                     b"".join(r.vref for r in rows), mf._col([r.meta for r in rows]),
                     mf._col([r.doc for r in rows]), mf._col([r.uri for r in rows])])


def test_format_1_segments_still_decode():
    rows = [_row(i, {"k": [i, 1.5], "z": None}) for i in range(20)] + [mf.Row(7, b"\x02" * 32, None, None, "u")]
    back = mf.decode_segment(_encode_segment_v1(rows))
    assert [(r.id, r.vref, r.mraw, r.doc, r.uri) for r in back] == [(r.id, r.vref, r.mraw, r.doc, r.uri) for r in rows]
    assert mf.encode_segment(back) == mf.encode_segment(rows)


def test_segment_columns_fall_back_to_typed_values():
    rows = [mf.Row(2 ** 63 + 5, b"\x03" * 32, {"t": b"raw"}, "doc\ud800", None),
            mf.Row(-4, b"\x04" * 32, {"f": float("nan")}, None, "u")]
    back = mf.decode_segment(mf.encode_segment(rows))
    assert [r.id for r in back] == [2 ** 63 + 5, -4] and back[0].doc == "doc\ud800"
    assert back[0].meta == {"t": b"raw"} and back[1].meta["f"] != back[1].meta["f"]
    with pytest.raises(ValueError):
        mf.decode_segment(mf.encode_segment(rows)[:-3])


def test_record_keys_sort_and_bound():
    assert mf.record_key("a") < mf.record_key("b")
    assert mf.record_key(1) < mf.record_key(2) and mf.record_key(-5) < mf.record_key(3)
    long_a, long_b = "x" * 1000 + "a", "x" * 1000 + "b"
    assert len(mf.record_key(long_a)) <= mf.MAX_KEY and mf.record_key(long_a) != mf.record_key(long_b)
    with pytest.raises(TypeError):
        mf.record_key(1.5)


@pytest.mark.parametrize("ids", [
    [], [""], ["a", "b", ""], ["a\0b", "c"], ["\0"], ["\ud800", "\udc00x"], ["\ud83d", "\ude00"],
    ["ü€𝄞", "doc-1#chunk-2"], ["x" * 1000 + "a", "y"], ["a", 7], [3, -4], ["s"] * 3,
])
def test_record_keys_of_a_run_are_each_ids_key(ids):
    assert mf.record_keys(ids) == [mf.record_key(i) for i in ids]


def test_split_ids_keeps_trailing_zero_bytes():
    raw = bytes(range(32)) + b"\0" * 32 + b"\xff" * 31 + b"\0"
    assert mf.split_ids(raw) == [raw[i:i + 32] for i in range(0, len(raw), 32)]
    assert mf.split_ids(memoryview(raw)[32:64]) == [b"\0" * 32] and mf.split_ids(b"") == []
    with pytest.raises(ValueError):
        mf.split_ids(raw[:-1])


def test_metadata_bytes_of_parsed_json_equal_meta_bytes_whichever_encoder_writes_them():
    """meta_bytes_parsed (orjson for batches without floats or nested objects, else the json
    encoder) gives exactly meta_bytes for every code point as a key and as a string, ints
    at and past 64 bits, and the batches it must leave to the json encoder."""
    import itertools
    import json
    from vdedup.format import values
    from vdedup.format.values import meta_bytes, meta_bytes_parsed
    from vdedup.lineworker import metadata_parsed, metadata_pairs

    def check(metas):
        # as the line worker gets them: decoded from JSON text
        parsed = json.loads(json.dumps(metas, ensure_ascii=False))
        got, pairs = metadata_parsed(parsed)
        assert got == [meta_bytes(m) for m in parsed]
        assert pairs == metadata_pairs(parsed)

    assert values._orjson() is not None          # installed with the providers' extras: the fast path is tested
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for a in range(0, len(points), 4096):
        chunk = points[a:a + 4096]
        check([{c: c, "k" + c: [c, "x"]} for c in chunk])
    big = [2**63 - 1, -2**63, 2**63, 2**64 - 1, 2**64, -2**63 - 1, 10**30, 0, -1]
    check([{"n": n} for n in big])
    check([{"n": n, "l": [n, True, None, "s"]} for n in big])
    check([{"f": 1e-05, "g": 1e16, "h": 0.1}, {"f": 5e-324}])           # floats: the json encoder
    check([{"l": [1.5, 2]}, {"l": ["a"]}])                              # a float in a list
    check([{"d": {"b": 1, "a": [1, {"z": None}]}}, None, {}])          # nested objects
    check([None, None])
    check([{"b": 2, "a": 1, "é": 3, "\U0001F600": 4, "\uffff": 5, "A": 6}])
    lone = [{"s": "\ud800x", "t": "ok"}]                                # a lone surrogate: orjson refuses
    assert meta_bytes_parsed(lone, list(itertools.chain.from_iterable(d.values() for d in lone)), {str}) \
        == [meta_bytes(lone[0])]
