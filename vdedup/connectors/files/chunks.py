"""Reading an export's records.jsonl as chunks of raw lines that a helper process parses
(connector layer).

For a whole-file scan the files connector can hand out runs of `batch_size` raw lines
(split on b"\\n" only) to a `pmap` the caller gives (a backup: repository/lines.py, whose
helper process parses them with the same rules, vdedup/jsonlines.py, and derives what the
backup keeps of the metadata), so the reading thread no longer parses JSON.

Exactness: a chunk is decoded as UTF-8 and split by universal newlines, as the text-mode
reading of the plain scan does. A chunk the helper does not answer (a bad or empty line,
ids of both types), or whose lines are more than the vectors left, is parsed again here
with the plain scan's checks, so the error raised (message, line number) is the plain
scan's.
"""
from __future__ import annotations

import codecs
import io
import itertools
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ...errors import SourceError, UsageError
from ...jsonlines import split_text
from ...model import RecordBatch

# pmap(chunks) -> (chunk, answer) in order; an answer: (n, ids, derived, documents or None,
# uris or None, id type) of the chunk's lines, or None (parse it here)
PMap = Callable[[Iterable[bytes]], Iterator[tuple[bytes, Any]]]


BLOCK = 1 << 20


def line_offset(path: str, start: int) -> int | None:
    """The byte offset of line `start` (0-based) of a records.jsonl, counting b"\n" line
    ends; None if the lines before it hold a b"\r" (text-mode reading splits there too) or
    are not UTF-8, or the file has fewer lines: the plain scan then reads that partition,
    with its own errors."""
    if start <= 0:
        return 0
    check = codecs.getincrementaldecoder("utf-8")()
    seen = at = 0
    try:
        with open(path, "rb") as f:
            while True:
                block = f.read(BLOCK)
                if not block:
                    return None
                n = block.count(b"\n")
                if seen + n >= start:
                    cut = -1
                    for _ in range(start - seen):
                        cut = block.index(b"\n", cut + 1)
                    block = block[:cut + 1]
                check.decode(block, final=seen + n >= start)
                if b"\r" in block:
                    return None
                if seen + n >= start:
                    return at + len(block)
                seen += n
                at += len(block)
    except (OSError, UnicodeDecodeError):
        return None


READ_BLOCK = 1 << 20           # bytes of the records file read at a time by scan_derived


def scan_derived(conn: Any, collection: str, batch_size: int, pmap: PMap, start: int = 0,
                 stop: int | None = None, begin: int = 0) -> Iterator[tuple]:
    """Rows start..stop-1 of the export (stop None: to the end; `begin`: the byte offset of
    line `start`, line_offset) as (RecordBatch, derived) pairs: `derived` is what `pmap`
    derived of the batch's metadata, and the batch then carries none; or None, for a chunk
    parsed here (the batch then has its metadata). The same records, checks and errors as
    the plain scan of the same rows."""
    from .connector import VECTORS_FILE, checked_line
    if batch_size < 1:
        raise UsageError("batch size must be at least 1")
    arr = conn._vectors()
    vec, rec = conn._files()
    stored, native = arr.dtype, arr.dtype.newbyteorder("=")
    offset, rows, dim = int(arr.offset), int(arr.shape[0]), int(arr.shape[1])
    row_bytes = stored.itemsize * dim
    del arr
    pos = start
    lineno = start                               # lines (text-mode lines) taken so far
    id_type: type | None = None

    def vectors(vf, a: int, n: int) -> np.ndarray:
        vf.seek(offset + a * row_bytes)
        dense = np.empty((n, dim), dtype=stored)
        if vf.readinto(dense.reshape(-1).view(np.uint8)) != n * row_bytes:
            raise SourceError(f"{VECTORS_FILE} is shorter than its header says")
        return dense if stored == native else dense.astype(native)

    def plain(vf, lines: Iterable[str]) -> Iterator[tuple]:
        """The plain scan's per-line checks and batches, over text-mode lines."""
        nonlocal pos, lineno, id_type
        ids: list = []
        metas: list = []
        docs: list = []
        uris: list = []

        def batch() -> RecordBatch:
            out = RecordBatch(ids=list(ids), dense={"": vectors(vf, pos - len(ids), len(ids))},
                              metadata=list(metas),
                              documents=list(docs) if any(d is not None for d in docs) else None,
                              uris=list(uris) if any(u is not None for u in uris) else None)
            ids.clear(), metas.clear(), docs.clear(), uris.clear()
            return out

        for line in lines:
            lineno += 1
            rid, meta, doc, uri = checked_line(line, rec, lineno, pos, rows, id_type)
            id_type = type(rid)
            ids.append(rid)
            metas.append(meta)
            docs.append(doc)
            uris.append(uri)
            pos += 1
            if len(ids) >= batch_size:
                yield batch(), None
        if ids:
            yield batch(), None

    def runs(f) -> Iterator[bytes]:
        """Chunks of batch_size raw lines (the last one of the file may lack its "\n"), up
        to line `stop`: cut from blocks of READ_BLOCK bytes at the positions of their line
        ends (found by numpy), not read a line at a time."""
        left = None if stop is None else stop - start
        tail = b""
        while left is None or left > 0:
            block = f.read(max(READ_BLOCK, len(tail)))      # long lines: the reads double
            data = tail + block if tail else block
            if not block:
                if data:
                    yield data               # fewer lines than wanted: the file's last ones
                return
            ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
            at = k = 0
            while left is None or left > 0:
                want = batch_size if left is None else min(batch_size, left)
                if k + want > len(ends):
                    break
                end = int(ends[k + want - 1]) + 1
                yield data[at:end]
                at, k = end, k + want
                if left is not None:
                    left -= want
            tail = data[at:]

    try:
        with open(rec, "rb") as f, open(vec, "rb") as vf:
            f.seek(begin)
            chunks = runs(f)
            done = begin                         # bytes of the chunks taken
            rest = False
            for raw, res in pmap(chunks):
                if b"\r" in raw:
                    # text-mode reading splits at "\r" too: from here on, read as the plain scan
                    rest = True
                    break
                done += len(raw)
                if res is not None and pos + res[0] <= rows and id_type in (None, res[5]):
                    n, ids, derived, docs, uris, id_type = res
                    batch = RecordBatch(ids=ids, dense={"": vectors(vf, pos, n)}, metadata=None,
                                        documents=docs, uris=uris)
                    pos += n
                    lineno += n
                    yield batch, derived
                else:        # the plain scan's checks, for their exact error
                    yield from plain(vf, split_text(raw))
            if rest:
                f.seek(done)
                text = io.TextIOWrapper(f, encoding="utf-8", newline=None)
                yield from plain(vf, text if stop is None else itertools.islice(text, max(0, stop - pos)))
            if pos != rows and (stop is None or pos < min(stop, rows)):
                raise SourceError(f"{rec} has {pos} lines but {VECTORS_FILE} has {rows} rows")
    except OSError as e:
        raise SourceError(f"cannot read {rec} ({type(e).__name__})") from e
    except UnicodeDecodeError as e:
        raise SourceError(f"{rec} is not UTF-8 text") from e
