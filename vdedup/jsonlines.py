"""The line rules of a files export's records.jsonl (docs/connectors: files), in a module of
its own: the files connector reads with them, and the helper process that parses lines
during a backup (vdedup/lineworker.py) imports them without the connector layer (nothing
here but json and vdedup.errors, so the helper starts in a tenth of a second).
"""
from __future__ import annotations

import io
import json
from typing import Any

from .errors import SourceError

LINE_KEYS = {"id", "metadata", "document", "uri"}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_SCAN = json.JSONDecoder(parse_constant=_no_constants).scan_once   # built once, not per line


def split_text(raw: bytes) -> list[str]:
    """The lines of a run of whole lines (raw bytes ending at a b"\\n", or at the end of the
    file) as reading the file in text mode gives them: UTF-8 (UnicodeDecodeError if not),
    universal newlines. A "\\r\\n" never straddles two such runs."""
    return list(io.StringIO(raw.decode("utf-8"), newline=None))


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
