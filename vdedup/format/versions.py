"""Versions and features of the JSON objects, and the typed namespace entry (format layer).

Every JSON object carries `version` (the object's format) and may list `features` (optional
format features it uses). A reader refuses a version or a feature it does not know with
UnsupportedFormat (exit 17) naming them, instead of half-reading a newer format; unknown
*fields* are ignored, so additions that an older reader may safely skip need neither.
Objects written before versions existed have no `version` and are read as version 1
(their format is exactly version 1), except the config, which always had one.
The table is docs/design.md §11.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, TypedDict

from .. import __version__
from ..errors import FormatError, UnsupportedFormat
from .objects import ObjectType, describe


@dataclass(frozen=True)
class RecordFormat:
    writes: int                         # the version this vdedup writes
    reads: frozenset[int]               # the versions it reads
    features: frozenset[str] = frozenset()   # the features it understands
    legacy_unversioned: bool = True     # an object without `version` is version 1


FORMATS: dict[ObjectType, RecordFormat] = {
    ObjectType.CONFIG: RecordFormat(1, frozenset({1}), legacy_unversioned=False),
    ObjectType.SNAPSHOT: RecordFormat(1, frozenset({1})),
    ObjectType.LOCK: RecordFormat(1, frozenset({1})),
    ObjectType.AUDIT: RecordFormat(1, frozenset({1})),
    # 1: the secret sealed with a random nonce under the credential-store key (read only,
    # format/legacy.py); 2: the secret is a sealed field of the object (format/objects.py)
    ObjectType.ASSET: RecordFormat(2, frozenset({1, 2})),
    ObjectType.KEYLIST: RecordFormat(1, frozenset({1})),
}

# a namespace entry inside a snapshot is versioned on its own
# "parts": the manifest is a list of key-range parts, each with its own base and deltas
# (docs/design.md §4.13); a reader without it refuses the entry by name
NAMESPACE_ENTRY = RecordFormat(1, frozenset({1}), features=frozenset({"parts"}))


def object_version(otype: ObjectType, data: Mapping[str, Any]) -> int:
    v = data.get("version", 1 if FORMATS[otype].legacy_unversioned else 0)
    return v if type(v) is int else 0


def _check(fmt: RecordFormat, what: str, data: Mapping[str, Any]) -> None:
    if "version" not in data and not fmt.legacy_unversioned:
        raise FormatError(f"{what}: no format version")
    version = data.get("version", 1)
    if type(version) is not int:
        raise FormatError(f"{what}: format version {version!r} is not a number")
    if version not in fmt.reads:
        known = ", ".join(map(str, sorted(fmt.reads)))
        raise UnsupportedFormat(f"{what}: format version {version} is not known to vdedup {__version__} "
                                f"(it reads {known}); written by a newer vdedup?")
    features = data.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise FormatError(f"{what}: malformed features list")
    unknown = sorted(set(features) - fmt.features)
    if unknown:
        raise UnsupportedFormat(f"{what} uses features vdedup {__version__} does not know: "
                                f"{', '.join(unknown)}")


def _what(otype: ObjectType, name: str) -> str:
    return "repository" if otype == ObjectType.CONFIG else describe(otype, name)


def check_readable(otype: ObjectType, name: str, data: Mapping[str, Any]) -> None:
    """Refuse an object whose version or features this vdedup does not know."""
    _check(FORMATS[otype], _what(otype, name), data)


def check_writable(otype: ObjectType, name: str, data: Mapping[str, Any]) -> None:
    """Every object written carries the version this vdedup writes (a programming error else)."""
    fmt = FORMATS[otype]
    if data.get("version") != fmt.writes:
        raise ValueError(f"{describe(otype, name)}: objects are written as version {fmt.writes}, "
                         f"got {data.get('version')!r}")
    _check(fmt, _what(otype, name), data)


# ---- namespace entries (docs/design.md §4.11) -------------------------------------------------

class DeltaLayer(TypedDict):
    chunks: list[str]           # hex ids of delta blobs
    rows: int                   # delta rows in this layer (tombstones included)


class ManifestPart(TypedDict, total=False):
    source: str                 # the source partition's key ("" = the whole namespace)
    lo: str                     # hex record key where the part starts ("" = open below)
    count: int
    base: str
    deltas: list[DeltaLayer]
    age: int                    # backups since its base was written
    credit: int                 # on a source's first part: rows of bases it may rewrite (compaction, §5)
    ordered: bool


class NamespaceEntry(TypedDict, total=False):
    version: int
    name: str                   # required
    count: int                  # required
    logical_bytes: int
    base: str                   # required without the feature "parts": hex id of the segment list
    deltas: list[DeltaLayer]    # required without the feature "parts"
    features: list[str]         # ["parts"]: the manifest is `parts` (docs/design.md §4.13)
    parts: list[ManifestPart]   # required with the feature "parts"
    ordered: bool               # absent: the rows streamed in record-key order


class CollectionEntry(TypedDict):
    name: str
    schema: dict[str, Any]      # the provider-neutral CollectionSchema as a dict
    count: int
    namespaces: list[NamespaceEntry]


def _is_id(x: Any) -> bool:
    return isinstance(x, str) and len(x) == 64 and all(c in "0123456789abcdef" for c in x)


def _is_count(x: Any) -> bool:
    return type(x) is int and x >= 0


def _deltas_ok(deltas: Any) -> bool:
    return isinstance(deltas, list) and all(
        isinstance(layer, dict) and _is_count(layer.get("rows")) and isinstance(layer.get("chunks"), list)
        and all(_is_id(c) for c in layer["chunks"]) for layer in deltas)


def _part_ok(p: Any) -> bool:
    return (isinstance(p, dict) and isinstance(p.get("source"), str) and isinstance(p.get("lo"), str)
            and all(c in "0123456789abcdef" for c in p["lo"]) and len(p["lo"]) % 2 == 0
            and _is_count(p.get("count")) and _is_count(p.get("age", 0)) and _is_id(p.get("base"))
            and type(p.get("credit", 0)) is int
            and _deltas_ok(p.get("deltas")) and isinstance(p.get("ordered", False), bool))


def namespace_entry(d: Any, where: str) -> NamespaceEntry:
    """A namespace entry as read: refused if its version or features are unknown, or if a
    field a reader relies on is missing or of the wrong type (FormatError, naming it)."""
    if not isinstance(d, dict):
        raise FormatError(f"{where}: namespace entry is not an object")
    name = d.get("name")
    what = f"{where} namespace {name!r}"
    _check(NAMESPACE_ENTRY, what, d)
    problems = []
    if not isinstance(name, str):
        problems.append("name")
    if not _is_count(d.get("count")):
        problems.append("count")
    if "logical_bytes" in d and not _is_count(d["logical_bytes"]):
        problems.append("logical_bytes")
    if "parts" in d.get("features", []):
        parts = d.get("parts")
        if not isinstance(parts, list) or not parts or not all(_part_ok(p) for p in parts):
            problems.append("parts")
    else:
        if not _is_id(d.get("base")):
            problems.append("base")
        if not _deltas_ok(d.get("deltas")):
            problems.append("deltas")
    if "ordered" in d and not isinstance(d["ordered"], bool):
        problems.append("ordered")
    if problems:
        raise FormatError(f"{what}: malformed ({', '.join(problems)})")
    return d  # type: ignore[return-value]


def new_namespace_entry(d: Mapping[str, Any], where: str) -> NamespaceEntry:
    """A namespace entry as written: stamped with the version this vdedup writes, checked."""
    return namespace_entry({**d, "version": NAMESPACE_ENTRY.writes}, where)
