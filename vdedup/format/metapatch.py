"""Metadata patches of many manifest rows at once (format layer; the row-at-a-time forms are
`_meta_patch` / `_apply_meta_patch` in format/manifest.py, which these give the same bytes as).

A delta row that changes some keys of a record's metadata dict holds a patch
{"set": {key: value}, "del": [keys]} (docs/design.md §5). Backups compute patches for every
record whose metadata changed, and reading a manifest applies them to the base rows: both
decode the metadata bytes of all the rows concerned in one JSON pass and encode the results
in one encoder pass, instead of a decoder and an encoder call per row.
"""
from __future__ import annotations

from operator import itemgetter
from typing import Any

from . import values
from .manifest import _apply_meta_patch, _meta_patch

_FIRST = itemgetter(slice(0, 1))


def decode_many(raws: list[bytes]) -> tuple[list[Any], bool]:
    """The values of metadata bytes ([values.meta_value(r) for r in raws]), and whether
    every one was in the JSON form (decoded in one pass)."""
    if raws and min(map(_FIRST, raws)) >= b" ":
        try:
            out = values.meta_values_json(raws)
        except ValueError:
            out = []
        if len(out) == len(raws):
            return out, True
    return [values.meta_value(r) for r in raws], False


def _encode(vals: list[Any], json_form: bool) -> list[bytes]:
    return values.meta_bytes_json_many(vals) if json_form else [values.meta_bytes(v) for v in vals]


def _patch_json(old: Any, new: Any) -> dict | None:
    """_meta_patch of two values decoded from JSON-form bytes (fresh objects, str keys):
    when new's keys are sorted, as canonical metadata's are, the patch applied to old gives
    new exactly, so the check _meta_patch makes is not repeated."""
    if type(old) is not dict or type(new) is not dict:
        return _meta_patch(old, new)
    keys = list(new)
    if keys != sorted(keys):
        return _meta_patch(old, new)
    same = values.same
    return {"set": {k: v for k, v in new.items() if k not in old or not same(old[k], v)},
            "del": [k for k in old if k not in new]}


def _apply_json(old: Any, patch: Any) -> dict:
    """_apply_meta_patch of values decoded from JSON-form bytes (fresh objects, which it
    may change): the old dict edited in place; its keys are not sorted again, as the
    encoder of metadata bytes sorts them."""
    if type(old) is not dict or type(patch) is not dict:
        return _apply_meta_patch(old, patch)
    for k in patch["del"]:
        old.pop(k, None)
    old.update(patch["set"])
    return old


def patches(olds: list[bytes], news: list[bytes]) -> list[bytes | None]:
    """For each (old, new) pair of metadata bytes, the bytes of the patch turning old into
    new, or None where no patch does (not both dicts): _meta_patch for many rows."""
    if not olds:
        return []
    ov, json_old = decode_many(olds)
    nv, json_new = decode_many(news)
    ps = list(map(_patch_json if json_old and json_new else _meta_patch, ov, nv))
    have = [p for p in ps if p is not None]
    enc = iter(_encode(have, json_old and json_new))
    return [None if p is None else next(enc) for p in ps]


def apply_patches(olds: list[bytes], patch_raws: list[bytes]) -> list[bytes]:
    """The metadata bytes of each old metadata with its patch applied: _apply_meta_patch for
    many rows."""
    if not olds:
        return []
    ov, json_old = decode_many(olds)
    pv, json_patch = decode_many(patch_raws)
    try:
        new = list(map(_apply_json if json_old and json_patch else _apply_meta_patch, ov, pv))
    except (AttributeError, TypeError, KeyError):
        raise ValueError("manifest delta patches metadata that is not a dict") from None
    return _encode(new, json_old and json_patch)
