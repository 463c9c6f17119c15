"""The child side of vdedup.repository.lines: parse chunks of an export's JSON lines.

Run as `python -c "from vdedup.lineworker import main; main()"` by LinePool, which keeps it
outside the repository and connector packages so the child imports nothing but json and
the value encoder (it is ready in about a tenth of a second). It answers jobs on standard
input until the input closes:

    job:    u64 length | the raw bytes of a run of whole lines of records.jsonl
    answer: u64 length | pickle of job(raw)

`job(raw)` parses the lines with the files connector's rules (vdedup/jsonlines.py) and
gives what a backup keeps of them: the ids, the canonical bytes of each metadata value
(format/values.py meta_bytes_many, the same bytes the reading thread would compute), the
(key, type) pairs of the metadata, the documents and URIs; or None when the run needs the
reading thread's checks (any error, ids of both types), which then parses it again and
raises the error of the plain scan. The child ignores Ctrl-C: its parent is interrupted
and closes its input.
"""
from __future__ import annotations

import pickle
import signal
import struct
import sys
from itertools import chain

from .errors import SourceError
from .format.values import meta_bytes_many
from .jsonlines import parse_line, split_text

LEN = struct.Struct(">Q")


def metadata_pairs(metas: list) -> set:
    """Every (key, type of its value) pair of the exact dicts among `metas`."""
    dicts = [m for m in metas if type(m) is dict]
    return set(zip(chain.from_iterable(dicts), map(type, chain.from_iterable(map(dict.values, dicts)))))


def job(raw: bytes) -> tuple | None:
    """(n, ids, (metadata bytes, metadata pairs), documents or None, uris or None, id type)
    of a run of whole lines, or None (see the module's docstring)."""
    try:
        lines = split_text(raw)
    except UnicodeDecodeError:
        return None
    ids: list = []
    metas: list = []
    docs: list = []
    uris: list = []
    try:
        for line in lines:
            if not line.strip():
                return None
            rid, meta, doc, uri = parse_line(line, "", 0)
            ids.append(rid)
            metas.append(meta)
            docs.append(doc)
            uris.append(uri)
    except SourceError:
        return None
    if not ids:
        return None
    id_type = type(ids[0])
    if any(type(r) is not id_type for r in ids):
        return None
    return (len(ids), ids, (meta_bytes_many(metas), metadata_pairs(metas)),
            docs if any(d is not None for d in docs) else None,
            uris if any(u is not None for u in uris) else None, id_type)


def read_exact(f, n: int) -> bytes | None:
    parts = []
    while n:
        chunk = f.read(n)
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def read_frame(f) -> bytes | None:
    """One length-prefixed frame (u64 length | bytes), or None at the end of the stream."""
    head = read_exact(f, LEN.size)
    return None if head is None else read_exact(f, LEN.unpack(head)[0])


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    out.write(b"R")
    out.flush()
    while True:
        raw = read_frame(inp)
        if raw is None:
            return
        try:
            data = pickle.dumps((True, job(raw)), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            data = pickle.dumps((False, None))
        out.write(LEN.pack(len(data)) + data)
        out.flush()


if __name__ == "__main__":
    main()
