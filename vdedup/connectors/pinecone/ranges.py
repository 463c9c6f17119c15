"""Reading one id range of a Pinecone namespace through `list` prefixes (connector layer).

`list` filters ids by an ASCII `prefix` (no NUL) and nothing else, so a range [lo, hi) of ids
(code point order, docs/scale-out.md) is read through prefixes whose ids include all of
the range's: each id listed under one prefix at most, and the caller keeps those inside it.
"""
from __future__ import annotations

from typing import Callable, Iterator

from ...model import Partition
from ...model.partition import string_ranges, string_ranges_at

COVER_CHARS = 128                # most list prefixes one id range is read through


def id_cover(lo: str | None, hi: str | None) -> list[str]:
    """List prefixes whose ids include every id in [lo, hi) (None: open), each id listed
    under one prefix at most (the caller keeps those inside the range). Prefixes are what
    `list` takes: ASCII, no NUL. The bounds' common prefix followed by each character from
    lo's next one to hi's; where that needs other characters (an empty lo: any character,
    NUL included, may follow) or more than COVER_CHARS prefixes, the widest ASCII common
    prefix (at worst "": the whole namespace)."""
    if hi is None:
        return [""]                                    # open above: the whole namespace
    lo = lo or ""
    n = 0
    while n < len(lo) and n < len(hi) and lo[n] == hi[n]:
        n += 1
    common, rest = hi[:n], lo[n:]
    start, end = (ord(rest[0]) if rest else 0), ord(hi[n])
    head = _ascii_head(common)
    if head != common or start < 1 or end > 127 or end - start + 1 > COVER_CHARS:
        return [head]
    return [common + chr(c) for c in range(start, end + 1)]


def _ascii_head(s: str) -> str:
    """The longest prefix of s that `list` takes as a prefix."""
    n = 0
    while n < len(s) and 0 < ord(s[n]) < 128:
        n += 1
    return s[:n]


def plan_ranges(list_ids: Callable[[], Iterator[str]], target_size: int, namespace: str) -> list[Partition]:
    """Id ranges of about target_size ids of a namespace (model/partition.py), from a listing
    of its ids. `list` answers in byte order (= code point order): only the ids on either side
    of every target_size-th position are kept; a listing out of order is read again, all of
    it, and sorted in memory."""
    pairs: list[tuple[str, str]] = []
    prev: str | None = None
    n = 0
    for rid in list_ids():
        if prev is not None and rid <= prev:
            return string_ranges(sorted(list_ids()), target_size, "ids", namespace)
        if n and n % target_size == 0:
            pairs.append((prev, rid))     # type: ignore[arg-type]
        prev, n = rid, n + 1
    return string_ranges_at(pairs, n, target_size, "ids", namespace)
