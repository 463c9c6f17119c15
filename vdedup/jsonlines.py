"""The line rules of a files export's records.jsonl (docs/connectors: files), in a module of
its own: the files connector reads with them, and the helper process that parses lines
during a backup (vdedup/lineworker.py) imports them without the connector layer (nothing
here but json and vdedup.errors, so the helper starts in a tenth of a second).
"""
from __future__ import annotations

import io
import json
from itertools import chain, repeat
from typing import Any

from .errors import SourceError

LINE_KEYS = {"id", "metadata", "document", "uri"}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_SCAN = json.JSONDecoder(parse_constant=_no_constants).scan_once   # built once, not per line
_DECODE = json.JSONDecoder(parse_constant=_no_constants).decode
_NONE = type(None)


def split_text(raw: bytes) -> list[str]:
    """The lines of a run of whole lines (raw bytes ending at a b"\\n", or at the end of the
    file) as reading the file in text mode gives them: UTF-8 (UnicodeDecodeError if not),
    universal newlines. A "\\r\\n" never straddles two such runs."""
    return list(io.StringIO(raw.decode("utf-8"), newline=None))


def parse_lines(lines: list[str]) -> tuple[list, list, list, list] | None:
    """The ids, metadata, documents and URIs of many lines, as parse_line gives them, found
    with one parse of the lines joined into a JSON array and checks that run over whole
    columns; None when any line is not plainly right (parse_line, line by line, then tells
    which and why). The array has as many elements as there are lines only when each line
    holds exactly one JSON value: a blank line or one holding two values breaks the count
    or the parse."""
    if not lines:
        return None
    return _columns("[" + ",".join(lines) + "]", len(lines))


def parse_run(raw: bytes, n: int) -> tuple[list, list, list, list] | None:
    """parse_lines of a run of n whole lines (raw bytes) that holds no b"\\r", without
    splitting it into lines first: a line ends at b"\\n" only, and JSON text never holds a
    raw newline, so the run with its newlines made commas is the array parse_lines parses
    (but for whitespace). UnicodeDecodeError when it is not UTF-8."""
    if not n:
        return None
    text = raw.decode("utf-8")
    return _columns("[" + (text[:-1] if text.endswith("\n") else text).replace("\n", ",") + "]", n)


def _columns(array: str, n: int) -> tuple[list, list, list, list] | None:
    try:
        objs = _DECODE(array)
    except (ValueError, RecursionError):
        return None
    if len(objs) != n or set(map(type, objs)) != {dict} or \
            not set(chain.from_iterable(objs)) <= LINE_KEYS:
        return None
    ids, metas, docs, uris = (list(map(dict.get, objs, repeat(k))) for k in ("id", "metadata", "document", "uri"))
    if not set(map(type, ids)) <= {str, int} or not set(map(type, metas)) <= {dict, _NONE} or \
            not set(map(type, docs)) <= {str, _NONE} or not set(map(type, uris)) <= {str, _NONE}:
        return None
    return ids, metas, docs, uris


def parse_line(line: str, path: str, lineno: int) -> tuple[Any, Any, Any, Any]:
    """(id, metadata, document, uri) of one line of records.jsonl; SourceError naming the line, never its content."""
    try:
        start = 0 if line[:1] == "{" else len(line) - len(line.lstrip())
        obj, end = _SCAN(line, start)             # the C scanner json.loads uses, without its wrapper
    except StopIteration:
        obj, end = None, -1
    except ValueError:
        end = -1
    if end < 0 or (end != len(line) and line[end:].strip()):
        raise SourceError(f"{path} line {lineno}: not valid JSON") from None
    if type(obj) is not dict:
        raise SourceError(f"{path} line {lineno}: not a JSON object")
    if not obj.keys() <= LINE_KEYS:
        extra = sorted(set(obj) - LINE_KEYS)
        raise SourceError(f"{path} line {lineno}: unknown key {extra[0]!r} "
                          f"(known: {', '.join(sorted(LINE_KEYS))})")
    get = obj.get
    rid, meta, doc, uri = get("id"), get("metadata"), get("document"), get("uri")
    if type(rid) is not str and type(rid) is not int:
        raise SourceError(f"{path} line {lineno}: the id must be a string or an integer")
    if meta is not None and type(meta) is not dict:
        raise SourceError(f"{path} line {lineno}: metadata must be an object or null")
    for key, v in (("document", doc), ("uri", uri)):
        if v is not None and type(v) is not str:
            raise SourceError(f"{path} line {lineno}: {key} must be a string or null")
    return rid, meta, doc, uri
