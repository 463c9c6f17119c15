"""The line helper's memo (vdedup/linememo.py): lines parsed in the last backup are answered
from a sealed memo in the local cache, and every answer is exactly the one parsing gives."""
from __future__ import annotations

import json
import os
import random

import numpy as np

from vdedup.linememo import LineMemo
from vdedup.lineworker import job, job_memo

KEY = bytes(range(32))


def _line(i: int, style: int) -> str:
    """Lines of every form the memo meets: compact and key-sorted (the memo's fast path),
    spaced, escaped, int ids, documents and URIs, null or missing metadata."""
    meta: object = {"page": i % 9, "source": f"gdrive://d/{i}", "tags": ["a", "b"][: i % 3], "at": f"2025-{i}"}
    if style == 0:
        return json.dumps({"id": f"doc-{i:06d}#chunk", "metadata": meta}, sort_keys=True, separators=(",", ":"))
    if style == 1:
        return json.dumps({"id": i * 7919, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    if style == 2:
        return json.dumps({"id": f"doc {i}", "metadata": meta})                     # spaces, insertion order
    if style == 3:
        return json.dumps({"id": f"caf\u00e9 \"{i}\"", "metadata": {"s": "\u00e9\t\u2028", "f": i / 3.0, "n": None},
                           "document": f"line\nbreak {i} \u00e9", "uri": f"s3://b/{i}"}, ensure_ascii=i % 2 == 0)
    if style == 4:
        return json.dumps({"id": f"n-{i}", "metadata": None, "document": f"plain text {i}"})
    if style == 5:
        return json.dumps({"id": f"m-{i}"})
    if style == 7:           # compact, other keys and types: another (key, type) pair set
        return json.dumps({"id": f"k-{i}", "metadata": {"page": str(i), "ok": i % 2 == 0}}, sort_keys=True,
                          separators=(",", ":"))
    return json.dumps({"metadata": {"z": [1, {"y": 2.5}], "a": -0.0, "big": 10 ** 30 + i}, "id": f"x-{i}"},
                      separators=(",", ":"))


def _chunks(lines: list[str], size: int) -> list[bytes]:
    return ["".join(x + "\n" for x in lines[a:a + size]).encode() for a in range(0, len(lines), size)]


def _same(got, want) -> bool:
    """Equal answers, down to the types of the ids and of the metadata values' bytes."""
    if got != want:
        return False
    if got is None:
        return True
    return [type(x) for x in got[1]] == [type(x) for x in want[1]] and got[2][1] == want[2][1]


def _export_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    styles = [0] * 6 + [2, 3, 4, 5, 6, 7]
    lines = []
    for i in range(n):
        style = rng.choice(styles)
        lines.append(_line(i, style))
    return lines


def test_memo_answers_are_what_parsing_gives_night_after_night(tmp_path):
    path = str(tmp_path / "memo")
    lines = _export_lines(3000, 0)
    int_lines = [_line(i, 1) for i in range(500)]
    hits = []
    for night in range(3):
        memo = LineMemo(KEY, path)
        found = 0
        for c in _chunks(lines, 250) + _chunks(int_lines, 97):
            d = memo.digests(c.splitlines(keepends=True))
            found += int((memo.known(d) >= 0).sum())
            assert _same(job_memo(c, memo), job(c))
        memo.save()
        hits.append(found)
        # the next night: some lines rewritten, some gone, some new (shifted positions)
        rng = random.Random(night)
        for i in rng.sample(range(len(lines)), 60):
            lines[i] = lines[i].replace("gdrive", "GDRIVE").replace("caf", "CAF")
        del lines[100:140]
        lines[1000:1000] = [_line(10_000 + night * 100 + k, k % 7) for k in range(30)]
    assert hits[0] == 0
    # every line the memo can hold came back the next night (compact lines and the forms it finds)
    assert hits[1] > 0.6 * (len(lines) + 500) and hits[2] > 0.6 * (len(lines) + 500)


def test_memo_gives_way_to_the_checks_of_a_chunk(tmp_path):
    """A chunk with a bad line, a blank line, ids of both types or a carriage return gets
    what job gives it, however many of its lines the memo holds."""
    path = str(tmp_path / "memo")
    good = [_line(i, 0) for i in range(20)]
    memo = LineMemo(KEY, path)
    assert _same(job_memo(_chunks(good, 20)[0], memo), job(_chunks(good, 20)[0]))
    memo.save()
    memo = LineMemo(KEY, path)
    for bad in (good[:10] + ["{not json"] + good[10:], good[:10] + [""] + good[10:],
                good[:10] + [_line(3, 1)] + good[10:]):
        c = _chunks(bad, 100)[0]
        assert job_memo(c, memo) is None and job(c) is None
    crlf = "".join(x + "\r\n" for x in good).encode()
    assert _same(job_memo(crlf, memo), job(crlf))


def test_memo_file_is_sealed_and_a_damaged_or_foreign_one_is_ignored(tmp_path):
    path = str(tmp_path / "memo")
    lines = [_line(i, 0) for i in range(400)]
    chunks = _chunks(lines, 100)
    memo = LineMemo(KEY, path)
    for c in chunks:
        job_memo(c, memo)
    memo.save()
    raw = open(path, "rb").read()
    for needle in (b"doc-000123", b"gdrive", b"page", b'"tags"'):
        assert needle not in raw                       # no id, value or key in the clear
    assert len(LineMemo(KEY, path).old["d0"]) == 400
    # another repository's key, then one flipped byte: no entry is trusted, answers unchanged
    assert len(LineMemo(bytes(32), path).old["d0"]) == 0
    damaged = bytearray(raw)
    damaged[len(raw) // 2] ^= 1
    with open(path, "wb") as f:
        f.write(bytes(damaged))
    memo = LineMemo(KEY, path)
    assert len(memo.old["d0"]) == 0
    for c in chunks:
        assert _same(job_memo(c, memo), job(c))
    os.unlink(path)
    assert len(LineMemo(KEY, path).old["d0"]) == 0


def test_identical_lines_share_one_entry(tmp_path):
    path = str(tmp_path / "memo")
    lines = [_line(1, 0)] * 5 + [_line(2, 0)]
    memo = LineMemo(KEY, path)
    c = _chunks(lines, 10)[0]
    assert _same(job_memo(c, memo), job(c))
    memo.save()
    memo = LineMemo(KEY, path)
    assert len(memo.old["d0"]) == 2
    assert np.all(memo.known(memo.digests(c.splitlines(keepends=True))) >= 0)
    assert _same(job_memo(c, memo), job(c))


def test_lookups_find_every_digest_even_when_first_halves_collide(tmp_path):
    """known(): the open-addressing table finds each old entry by its whole digest, including
    digests sharing the first half or the same slot (low bits), and answers -1 for the rest."""
    memo = LineMemo(b"k" * 32, None)
    rng = np.random.default_rng(7)
    d0 = rng.integers(0, 1 << 63, 5000, dtype=np.uint64)
    d0[100:110] = d0[99]                        # same first half, different second halves
    d0[200:230] = (d0[200:230] >> np.uint64(20)) << np.uint64(20)   # same low bits: same slot
    d1 = rng.integers(0, 1 << 63, 5000, dtype=np.uint64)
    memo.old = {"d0": d0, "d1": d1}
    want = rng.permutation(5000)
    q = np.stack([d0[want], d1[want]], axis=1)
    assert memo.known(q).tolist() == want.tolist()
    other = np.stack([d0[:50], d1[:50] ^ np.uint64(1)], axis=1)          # first half known only
    fresh = rng.integers(0, 1 << 63, (50, 2), dtype=np.uint64)
    assert memo.known(np.concatenate([other, fresh])).tolist() == [-1] * 100
