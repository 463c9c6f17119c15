"""The child side of vdedup.repository.lines: parse chunks of an export's JSON lines.

Run as `python -c "from vdedup.lineworker import main; main()"` by LinePool, which keeps it
outside the repository and connector packages so the child imports nothing but json and
the value encoder (it is ready in about a tenth of a second). It answers jobs on standard
input until the input closes:

    config: u64 length | JSON {"key": hex, "memo": path, "fallback": path or null} or nothing
            (the first frame only)
    job:    u64 length | the raw bytes of a run of whole lines of records.jsonl
    answer: u64 length | pickle of job(raw)
    save:   u64 0 (an empty job): write the memo of this run's lines (no answer)

With a key, lines already parsed in the export's last backup are answered from the memo
in the repository's local cache (vdedup/linememo.py) instead of being parsed again; the
answers are the same.

`job(raw)` parses the lines with the files connector's rules (vdedup/jsonlines.py) and
gives what a backup keeps of them: the ids, the canonical bytes of each metadata value
(format/values.py meta_bytes_parsed, the same bytes the reading thread would compute), the
(key, type) pairs of the metadata, the documents and URIs; or None when the run needs the
reading thread's checks (any error, ids of both types), which then parses it again and
raises the error of the plain scan. The child ignores Ctrl-C: its parent is interrupted
and closes its input.
"""
from __future__ import annotations

import gc
import json
import pickle
import signal
import struct
import sys
from itertools import chain

from .arrays import unique
from .errors import SourceError
from .format.values import meta_bytes_parsed
from .jsonlines import parse_line, parse_lines, parse_run, split_text

LEN = struct.Struct(">Q")


def metadata_pairs(metas: list) -> set:
    """Every (key, type of its value) pair of the exact dicts among `metas`."""
    dicts = [m for m in metas if type(m) is dict]
    return set(zip(chain.from_iterable(dicts), map(type, chain.from_iterable(map(dict.values, dicts)))))


def metadata_parsed(metas: list) -> tuple[list[bytes], set]:
    """(the canonical bytes of each, metadata_pairs(metas)) of metadata decoded from the
    lines' JSON (dicts or None): format/values.py meta_bytes_parsed, told the dicts' values
    and their types from the pass that finds the pairs."""
    dicts = [m for m in metas if type(m) is dict]
    inner = list(chain.from_iterable(map(dict.values, dicts)))
    types = list(map(type, inner))
    return meta_bytes_parsed(metas, inner, set(types)), set(zip(chain.from_iterable(dicts), types))


def job(raw: bytes) -> tuple | None:
    """(n, ids, (metadata bytes, metadata pairs), documents or None, uris or None, id type)
    of a run of whole lines, or None (see the module's docstring)."""
    try:
        lines = split_text(raw)
    except UnicodeDecodeError:
        return None
    parsed = parse_lines(lines)
    if parsed is None:                   # some line is not plainly right: each on its own
        parsed = [], [], [], []
        try:
            for line in lines:
                if not line.strip():
                    return None
                for col, v in zip(parsed, parse_line(line, "", 0)):
                    col.append(v)
        except SourceError:
            return None
    ids, metas, docs, uris = parsed
    if not ids:
        return None
    id_types = set(map(type, ids))
    if len(id_types) != 1:
        return None
    return (len(ids), ids, metadata_parsed(metas),
            docs if any(d is not None for d in docs) else None,
            uris if any(u is not None for u in uris) else None, id_types.pop())


def job_memo(raw: bytes, memo) -> tuple | None:
    """job(raw), the lines found in `memo` answered from it (and this run's lines noted in it)."""
    import numpy as np
    from .linememo import value
    if b"\r" in raw:                             # text mode would split at "\r" too
        return job(raw)
    lines = raw.splitlines(keepends=True)        # at b"\n" only, as split_text here
    n = len(lines)
    if not n:
        return None
    d = memo.digests(lines)
    hits = memo.known(d)
    ids: list = [None] * n
    mraws: list = [None] * n
    docs: list = [None] * n
    uris: list = [None] * n
    found = hits >= 0
    pairs: set = set()
    if found.any():
        js = hits[found]
        old = memo.old
        kinds = old["kinds"][js]
        # most lines: a plain string id, metadata, no document or URI (kinds 1, 1, 0, 0)
        plain = (kinds[:, 0] == 1) & (kinds[:, 1] == 1) & (kinds[:, 2] == 0) & (kinds[:, 3] == 0)
        at = found.nonzero()[0]
        if plain.any():
            sp = old["spans"][js[plain], :4].T.tolist()
            for i, a, b, c, e in zip(at[plain].tolist(), *sp):
                line = lines[i]
                ids[i] = line[a:b].decode("utf-8")
                mraws[i] = line[c:e]
        rest = ~plain
        for i, (ki, km, kd, ku), (a, b, c, e, f, g, h, m) in zip(at[rest].tolist(), kinds[rest].tolist(),
                                                                old["spans"][js[rest]].tolist()):
            line = lines[i]
            ids[i] = line[a:b].decode("utf-8") if ki == 1 else value(line, ki, a, b)
            mraws[i] = line[c:e] if km else b"null"
            if kd:
                docs[i] = value(line, kd, f, g)
            if ku:
                uris[i] = value(line, ku, h, m)
        pairs = pairs.union(*(memo.old_pairs[p] for p in unique(old["pairs"][js]).tolist()))
    miss = [] if found.all() else (~found).nonzero()[0].tolist()
    metas = []
    whole = len(miss) == n                   # a first backup: every line, the run at once
    if miss:
        try:
            if whole:
                parsed = parse_run(raw, n)
                texts = split_text(raw) if parsed is None else []
            else:
                texts = [lines[i].decode("utf-8") for i in miss]
                parsed = parse_lines(texts)
            if parsed is not None and whole:
                ids, metas, docs, uris = parsed
            elif parsed is not None:
                metas = parsed[1]
                for col, vals in ((ids, parsed[0]), (docs, parsed[2]), (uris, parsed[3])):
                    for i, v in zip(miss, vals):
                        col[i] = v
            else:
                for i, text in zip(miss, texts):
                    if not text.strip():
                        return None
                    ids[i], meta, docs[i], uris[i] = parse_line(text, "", 0)
                    metas.append(meta)
        except (SourceError, UnicodeDecodeError):
            return None
        mb, mpairs = metadata_parsed(metas)
        if whole:
            mraws = mb
        else:
            for i, mraw in zip(miss, mb):
                mraws[i] = mraw
        pairs |= mpairs
    id_types = set(map(type, ids))
    if len(id_types) != 1:
        return None
    id_type = id_types.pop()
    memo.keep(d, hits)
    if miss:
        if whole:
            memo.learn(lines, d, miss, ids, metas, mb, docs, uris, mpairs)
        else:
            memo.learn(lines, d, miss, [ids[i] for i in miss], metas, mb, [docs[i] for i in miss],
                       [uris[i] for i in miss], mpairs)
    return (n, ids, (mraws, pairs), docs if docs.count(None) != n else None,
            uris if uris.count(None) != n else None, id_type)


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
    # a run's parsed dicts live until its answer is sent, so with the default threshold (700
    # allocations) the collector ran ~4,000 times at 1M lines (0.5 s, a full pass every ~30
    # chunks) for garbage that is freed by reference counting anyway; net 10,000 objects
    # between collections bounds memory all the same
    gc.set_threshold(10_000, 10, 10)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    config = read_frame(inp)
    if config is None:
        return
    memo = None
    if config:
        from .linememo import LineMemo
        cfg = json.loads(config)
        memo = LineMemo(bytes.fromhex(cfg["key"]), cfg.get("memo"), cfg.get("fallback"))
    out.write(b"R")
    out.flush()
    while True:
        raw = read_frame(inp)
        if raw is None:
            return
        if not raw:
            try:
                if memo is not None:
                    memo.save()
            except Exception:
                pass
            continue
        try:
            data = pickle.dumps((True, job(raw) if memo is None else job_memo(raw, memo)),
                                protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            data = pickle.dumps((False, None))
        out.write(LEN.pack(len(data)) + data)
        out.flush()


if __name__ == "__main__":
    main()
