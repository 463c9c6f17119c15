"""The neutral layout of a Weaviate class (connector layer; depends only on model and errors).

A schema from another provider becomes a class in the neutral layout, marked by JSON in the
class description (`{"vdedup": 1, "layout": "neutral", ...}`) so that describe() and scan()
give the neutral form back exactly. This module builds such a class (neutral_class), reads it
back (Layout: its marker and its properties' descriptions) and turns records into the
properties it holds and back; the connector (connector.py) does the talking to the server and
the plain object shapes. Why the layout is as it is: see connector.py's docstring.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from typing import Any

from ...errors import SourceError, UsageError
from ...model import CollectionSchema, IdType, MetadataField, Metric, Record, VectorField

# The neutral layout: how a class created from another provider's schema holds it exactly.
MARKER = "vdedup"                # key of the JSON marker kept in the class description
LAYOUT = "neutral"
SIDE = "_vdedup"                 # text property: JSON of values no property of theirs holds
DEFAULT_TENANT = "_default"      # the tenant that holds the neutral namespace ""
DEFAULT_VECTOR = "vdedup_default"   # the unnamed vector, when the class has named ones too
NAME_RE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,230}$")         # property names
VECTOR_NAME_RE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,229}$")  # named vectors
TENANT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RESERVED_PROPS = {"_additional", "_id", "id", SIDE.lower()}
MAX_EXACT_INT = 2 ** 53          # JSON numbers beyond this are not exact everywhere
SCALAR_ENC = {"str": "text", "int": "int", "float": "number", "bool": "boolean",
              "dict": "json", "datetime": "datetime"}
ENC_TYPE = {"json": "text", "datetime": "text"}   # encodings kept in text properties


def neutral_class(schema: CollectionSchema, name: str, distances: dict[Metric, str]
                  ) -> tuple[dict[str, Any], list[str]]:
    """A class in the neutral layout for a schema from another provider, and the tenants to
    create in it: its vectors (the unnamed one too; `distances` names Weaviate's distance for
    each metric it has), metadata fields, namespaces as tenants ("" as a reserved tenant), and
    a marker in the description so describe() and scan() give the neutral form back."""
    if schema.sparse:
        raise UsageError("Weaviate cannot store sparse vectors "
                         f"({', '.join(repr(s.name or '(default)') for s in schema.sparse)})")
    body: dict[str, Any] = {"class": name}
    marker: dict[str, Any] = {MARKER: 1, "layout": LAYOUT}
    # Vectors: one unnamed vector stays the legacy vector; with named ones (or as a
    # multi-vector, which only named vectors can be) it becomes a named vector.
    names = [v.name for v in schema.vectors]
    legacy = names == [""] and not schema.vectors[0].multivector
    vector_names: dict[str, str] = {}
    taken: set[str] = set()
    for v in sorted(schema.vectors, key=lambda v: (v.name == "", v.name)):
        if legacy:
            vector_names[v.name] = ""
        elif v.name and VECTOR_NAME_RE.match(v.name) and v.name not in taken:
            vector_names[v.name] = v.name
        else:
            vector_names[v.name] = _free_name(DEFAULT_VECTOR if v.name == "" else _derived(v.name), taken)
        taken.add(vector_names[v.name])
    for v in schema.vectors:
        distance = distances.get(v.metric)
        if distance is None:
            raise UsageError(f"metric {v.metric.value!r} of vector {v.name or '(default)'!r} cannot "
                             "be represented in Weaviate")
        if v.dtype != "float32":
            raise UsageError(f"vector {v.name or '(default)'!r}: Weaviate stores float32 only, "
                             f"not {v.dtype}")
        index: dict[str, Any] = {"distance": distance}
        if v.multivector:
            index["multivector"] = {"enabled": True}
        wname = vector_names[v.name]
        if wname == "":
            body.update(vectorizer="none", vectorIndexType="hnsw", vectorIndexConfig=index)
        else:
            body.setdefault("vectorConfig", {})[wname] = {
                "vectorizer": {"none": {}}, "vectorIndexType": "hnsw", "vectorIndexConfig": index}
    renamed = {n: w for n, w in vector_names.items() if n != w}
    if renamed:
        marker["vectors"] = renamed
    dims = {v.name: v.dim for v in schema.vectors if v.dim is not None}
    if dims:
        marker["dims"] = dims
    # Metadata: fields of one known type get their property now; lists (of unknown items),
    # mixed and null fields get one at the first write that shows a value.
    marker["fields"] = [[f.name, f.type, f.indexed, f.nullable] for f in schema.metadata_fields]
    props: list[dict[str, Any]] = []
    taken_props: set[str] = set(RESERVED_PROPS)
    for f in schema.metadata_fields:
        enc = SCALAR_ENC.get(f.type)
        if enc is not None:
            props.append(_property(f.name, enc, taken_props, strict=True))
    body["properties"] = props
    # Namespaces: tenants of the same names where Weaviate allows the name; "" and other
    # names go to reserved or derived tenant names, kept in the marker.
    tenants: list[str] = []
    if any(schema.namespaces):
        body["multiTenancyConfig"] = {"enabled": True}
        mapping: dict[str, str] = {}
        used = {n for n in schema.namespaces if TENANT_RE.match(n)}
        for ns in schema.namespaces:
            if TENANT_RE.match(ns):
                tenants.append(ns)
                continue
            base = DEFAULT_TENANT if ns == "" else "ns_" + hashlib.sha256(ns.encode()).hexdigest()[:16]
            tname, k = base, 0
            while tname in used:
                k += 1
                tname = f"{base}_{k}"
            used.add(tname)
            mapping[ns] = tname
            tenants.append(tname)
        if mapping:
            marker["tenants"] = mapping
    body["description"] = json.dumps(marker, ensure_ascii=False, sort_keys=True)
    return body, tenants


def _derived(name: str) -> str:
    """A valid Weaviate name for a name that is not one (kept in a marker or description)."""
    clean = re.sub(r"[^_0-9A-Za-z]", "_", name)[:40]
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"v_{clean}_{digest}" if clean else f"v_{digest}"


def _free_name(base: str, taken: set[str], fold: bool = False) -> str:
    key = (lambda n: n.lower()) if fold else (lambda n: n)
    name, k = base, 0
    while key(name) in taken:
        k += 1
        name = f"{base}_{k}"
    return name


def _property(key: str, enc: str, taken: set[str], strict: bool) -> dict[str, Any]:
    """A property definition for metadata key `key` stored with encoding `enc`; `taken` holds
    the lower-cased names in use (Weaviate compares them case-insensitively)."""
    base = key[:1].lower() + key[1:]         # the server lower-cases the first letter
    if not NAME_RE.match(base) or base.lower() in taken:
        base = _derived(key)
        base = base[:1].lower() + base[1:]
    name = _free_name(base, taken, fold=True)
    taken.add(name.lower())
    desc: dict[str, Any] = {"key": key, "enc": enc}
    if not strict:
        desc["from"] = "data"
    return {"name": name, "dataType": [ENC_TYPE.get(enc, enc)],
            "description": json.dumps({MARKER: desc}, ensure_ascii=False, sort_keys=True)}


class _NoFit(Exception):
    """A value that the property's type cannot hold exactly."""


def _jsonable(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, list):
        return all(_jsonable(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _jsonable(x) for k, x in v.items())
    return False


def _fits(v: Any, t: str) -> bool:
    if t == "text":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "int":
        return isinstance(v, int) and not isinstance(v, bool) and -MAX_EXACT_INT <= v <= MAX_EXACT_INT
    if t == "number":
        return isinstance(v, float) and math.isfinite(v)
    return False


def _encode(v: Any, enc: str) -> Any:
    if enc == "json":
        if isinstance(v, (dict, list)) and _jsonable(v):
            return json.dumps(v, ensure_ascii=False)
        raise _NoFit
    if enc == "datetime":
        if isinstance(v, dt.datetime):
            return v.isoformat()
        raise _NoFit
    if enc.endswith("[]"):
        if isinstance(v, list) and v and all(_fits(x, enc[:-2]) for x in v):
            return list(v)
        raise _NoFit
    if _fits(v, enc):
        return v
    raise _NoFit


def _send_raw(v: Any, enc: str) -> bool:
    """Whether a value against its field's declared type goes to the server as it is (to be
    refused there, as any write against a class's types is) rather than to the side property.
    Numbers that are exact only elsewhere (int in a number field, beyond 2^53, NaN) do not."""
    if enc not in ("text", "int", "number", "boolean") or v is None:
        return False
    if enc in ("int", "number") and isinstance(v, (int, float)) and not isinstance(v, bool):
        return False
    return isinstance(v, (str, bool, int, float))


def _decode(v: Any, enc: str) -> Any:
    if enc == "json":
        return json.loads(v)
    if enc == "datetime":
        return dt.datetime.fromisoformat(v)
    if enc == "number":
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v
    if enc == "number[]":
        return [float(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in v]
    return v


def _infer(v: Any) -> str | None:
    """The encoding a first value suggests for a new property (None: no property yet)."""
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "text"
    if isinstance(v, dt.datetime):
        return "datetime"
    if isinstance(v, dict):
        return "json"
    if isinstance(v, list) and v:
        for kind, enc in ((bool, "boolean[]"), (str, "text[]"), (float, "number[]")):
            if all(isinstance(x, kind) for x in v):
                return enc
        if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return "int[]"
        return "json"
    return None


class Layout:
    """A class in the neutral layout, read from its marker and its properties' descriptions."""

    def __init__(self, marker: dict[str, Any], cls: dict[str, Any]) -> None:
        self.marker = marker
        self.tenants: dict[str, str] = dict(marker.get("tenants") or {})
        self.vectors: dict[str, str] = dict(marker.get("vectors") or {})
        self.props: dict[str, tuple[str, str, bool]] = {}     # name -> (key, enc, strict)
        self.has_side = False
        for p in cls.get("properties") or []:
            if p["name"] == SIDE:
                self.has_side = True
                continue
            try:
                desc = json.loads(p.get("description") or "")[MARKER]
                key, enc, strict = desc["key"], desc["enc"], desc.get("from") != "data"
            except (ValueError, KeyError, TypeError):     # a property added by hand
                key, enc, strict = p["name"], p["dataType"][0], True
            self.props[p["name"]] = (key, enc, strict)
        self.keys = {key: name for name, (key, _, _) in self.props.items()}

    @classmethod
    def of(cls, wclass: dict[str, Any]) -> "Layout | None":
        try:
            marker = json.loads(wclass.get("description") or "")
        except ValueError:
            return None
        if isinstance(marker, dict) and marker.get(MARKER) == 1 and marker.get("layout") == LAYOUT:
            return cls(marker, wclass)
        return None

    def describe(self, cls: dict[str, Any], tenants: list[dict[str, Any]],
                 vector_fields: tuple[VectorField, ...], multi_tenant: bool) -> CollectionSchema:
        """The neutral schema; `vector_fields` are the class's own (as Weaviate names them)."""
        back_t = {t: n for n, t in self.tenants.items()}
        back_v = {w: n for n, w in self.vectors.items()}
        dims = self.marker.get("dims") or {}
        vectors = []
        for v in vector_fields:
            name = back_v.get(v.name, v.name)
            vectors.append(VectorField(name=name, dim=dims.get(name), metric=v.metric,
                                       dtype=v.dtype, multivector=v.multivector, index=v.index))
        namespaces = (tuple(sorted(back_t.get(t["name"], t["name"]) for t in tenants))
                      if multi_tenant else ("",))
        fields = tuple(MetadataField(*f) for f in self.marker.get("fields") or [])
        return CollectionSchema(
            provider="weaviate", name=cls["class"], id_type=IdType.UUID,
            vectors=tuple(sorted(vectors, key=lambda v: v.name)), metadata_fields=fields,
            namespaces=namespaces, options={},
            extras={"class": cls, "tenants": tenants, "layout": self.marker})

    def new_properties(self, records: list[Record]) -> list[dict[str, Any]]:
        """Properties to add for metadata keys that have none yet, typed by their first value."""
        taken = set(RESERVED_PROPS) | {n.lower() for n in self.props}
        out = []
        seen = set(self.keys)
        for rec in records:
            for k, v in (rec.metadata or {}).items():
                if k in seen:
                    continue
                enc = _infer(v)
                if enc is not None:
                    seen.add(k)
                    out.append(_property(k, enc, taken, strict=False))
        if not self.has_side:
            if any(self._needs_side(rec, out) for rec in records):
                out.append({"name": SIDE, "dataType": ["text"], "indexFilterable": False,
                            "indexSearchable": False,
                            "description": "vdedup: metadata values no property holds exactly (JSON)"})
        return out

    def _needs_side(self, rec: Record, new: list[dict[str, Any]]) -> bool:
        encs = {key: (enc, strict) for key, enc, strict in self.props.values()}
        for p in new:
            d = json.loads(p["description"])[MARKER]
            encs[d["key"]] = (d["enc"], False)
        for k, v in (rec.metadata or {}).items():
            if k not in encs:
                return True
            enc, strict = encs[k]
            try:
                _encode(v, enc)
            except _NoFit:
                if not (strict and _send_raw(v, enc)):
                    return True
        return False

    def to_write(self, rec: Record, cls: dict[str, Any]) -> Record:
        """The record as the class holds it: metadata as its properties (and the side
        property), vectors under their Weaviate names."""
        props: dict[str, Any] = {}
        side: dict[str, Any] = {}
        side_dt: dict[str, str] = {}
        for k, v in (rec.metadata or {}).items():
            name = self.keys.get(k)
            if name is not None:
                _, enc, strict = self.props[name]
                try:
                    props[name] = _encode(v, enc)
                    continue
                except _NoFit:
                    if strict and _send_raw(v, enc):
                        props[name] = v          # against its declared type: the server refuses it
                        continue
            if isinstance(v, dt.datetime):
                side_dt[k] = v.isoformat()
            elif _jsonable(v):
                side[k] = v
            else:
                raise UsageError(f"metadata field {k!r}: a {type(v).__name__} value cannot be "
                                 "stored exactly in Weaviate")
        if side or side_dt:
            if not any(p["name"] == SIDE for p in cls.get("properties") or []):
                raise SourceError(f"Weaviate class {cls['class']!r} lacks property {SIDE!r}")
            extra: dict[str, Any] = {"v": side} if side else {}
            if side_dt:
                extra["dt"] = side_dt
            props[SIDE] = json.dumps(extra, ensure_ascii=False)
        if rec.document is not None or rec.uri is not None:
            raise UsageError("Weaviate has no document or uri field: keep them in metadata first")
        renamed = {self.vectors.get(n, n): v for n, v in rec.vectors.items()}
        return Record(rec.id, renamed, rec.sparse, props)

    def record(self, obj: dict[str, Any], raw: Record) -> Record:
        """The neutral record of object `obj`, read as `raw` (properties as they came)."""
        back_v = {w: n for n, w in self.vectors.items()}
        vectors = {back_v.get(n, n): v for n, v in raw.vectors.items()}
        meta: dict[str, Any] = {}
        for name, v in (raw.metadata or {}).items():
            if name == SIDE:
                try:
                    extra = json.loads(v)
                    meta.update(extra.get("v") or {})
                    meta.update({k: dt.datetime.fromisoformat(x) for k, x in (extra.get("dt") or {}).items()})
                except (ValueError, TypeError, AttributeError):
                    raise SourceError(f"Weaviate object {raw.id} of class {obj.get('class')!r}: "
                                      f"property {SIDE!r} is not what vdedup wrote") from None
                continue
            key, enc, _ = self.props.get(name, (name, "", True))
            try:
                meta[key] = _decode(v, enc)
            except (ValueError, TypeError):
                meta[key] = v              # written by someone else: kept as the server gives it
        return Record(id=raw.id, vectors=vectors, metadata=meta or None)
