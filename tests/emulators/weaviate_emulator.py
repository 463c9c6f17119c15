"""An in-memory emulator of Weaviate's REST API, for tests and benchmarks only (not part of the installed package).

No Weaviate server runs on the project's machines (embedded mode downloads a binary), so the
Weaviate connector is tested through the official `weaviate-client` against this emulator.
It follows the REST API of Weaviate's OpenAPI specification (`openapi-specs/schema.json` in
the weaviate/weaviate repository, info.version 1.40.0-dev; it reports itself as 1.33.0) for
the endpoints the connector and the client call:

    GET  /v1/.well-known/ready | live | openid-configuration (404: no OIDC)
    GET  /v1/meta
    GET  /v1/schema                        POST /v1/schema
    GET  /v1/schema/{class}                DELETE /v1/schema/{class}
    GET  /v1/schema/{class}/tenants        POST /v1/schema/{class}/tenants
    POST /v1/schema/{class}/properties     (add a property)
    GET  /v1/objects?class=&after=&limit=&include=vector&tenant=
    POST /v1/objects                       GET|HEAD|PUT|PATCH|DELETE /v1/objects/{class}/{id}
    POST /v1/batch/objects
    POST /v1/graphql                       (only `Aggregate { C(tenant:) { meta { count } } }`,
                                            and `Get { C(nearVector: {vector: [...],
                                            targetVectors: ["v"]}, limit: k, tenant: "t")
                                            { _additional { id } } }`, answered exactly)

Behaviour kept from the real server: API keys as `Authorization: Bearer KEY` (a missing or
wrong key is a 401 with go-openapi's `{"code": 401, "message": ...}` body; the well-known
endpoints need none), `{"error": [{"message": ...}]}` bodies, a bodiless 404 for an unknown
class in object listing, the UUID-ordered `after` cursor, tenants required on multi-tenant
classes, schema defaults filled in on create, property names with their first letter
lower-cased (as the server does), null property values not stored (weaviate/weaviate#2207,
nested ones too since #6055), `int` values beyond 2^53 rounded through float64 (#1563,
#11735), vectors kept as float32, dates re-formatted as
RFC 3339, and a `number` property whose value is whole coming back without a fraction
(Go encodes float64 3.0 as `3`). Its gRPC API is not emulated: the client's gRPC channel is
never used by the connector.

Faults for retry tests: `fail(status, times, path=..., method=..., delay=...)` answers the
next matching requests with that status (429 carries `Retry-After`), or delays them.

    with WeaviateEmulator(api_keys=["k"]) as wv:
        ...   # wv.host, wv.port, wv.url

One file of about 850 lines on purpose: it is read side by side with the OpenAPI document it
follows, endpoint by endpoint.
"""
from __future__ import annotations

import bisect
import copy
import datetime as dt
import json
import re
import socket
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

VERSION = "1.33.0"
CLASS_RE = re.compile(r"^[A-Z][_0-9A-Za-z]*$")
PROP_RE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,230}$")     # GraphQL names, at most 231
VECTOR_RE = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,229}$")   # target vectors: at most 230
PRIMITIVES = {"text", "int", "number", "boolean", "date", "uuid", "blob", "geoCoordinates",
              "phoneNumber", "object", "text[]", "int[]", "number[]", "boolean[]", "date[]",
              "uuid[]", "object[]", "string", "string[]"}
DEFAULT_LIMIT = 25
MAX_RESULTS = 10000
AGGREGATE_RE = re.compile(
    r"^\s*\{\s*Aggregate\s*\{\s*([A-Za-z_][0-9A-Za-z_]*)\s*(?:\(\s*tenant\s*:\s*\"([^\"]*)\"\s*\))?"
    r"\s*\{\s*meta\s*\{\s*count\s*\}\s*\}\s*\}\s*\}\s*$")


NEAR_RE = re.compile(
    r"^\s*\{\s*Get\s*\{\s*([A-Za-z_][0-9A-Za-z_]*)\s*\(\s*nearVector\s*:\s*\{\s*vector\s*:\s*\[([^\]]*)\]"
    r"\s*(?:,\s*targetVectors\s*:\s*\[\s*\"([^\"]*)\"\s*\]\s*)?\}\s*,\s*limit\s*:\s*(\d+)"
    r"\s*(?:,\s*tenant\s*:\s*\"([^\"]*)\"\s*)?\)\s*\{\s*_additional\s*\{\s*id\s*\}\s*\}\s*\}\s*\}\s*$")


def hnsw_defaults() -> dict[str, Any]:
    return {"skip": False, "cleanupIntervalSeconds": 300, "maxConnections": 32,
            "efConstruction": 128, "ef": -1, "dynamicEfMin": 100, "dynamicEfMax": 500,
            "dynamicEfFactor": 8, "vectorCacheMaxObjects": 1000000000000,
            "flatSearchCutoff": 40000, "distance": "cosine",
            "pq": {"enabled": False, "bitCompression": False, "segments": 0, "centroids": 256,
                   "trainingLimit": 100000,
                   "encoder": {"type": "kmeans", "distribution": "log-normal"}},
            "bq": {"enabled": False}, "sq": {"enabled": False, "trainingLimit": 100000,
                                             "rescoreLimit": 20},
            "filterStrategy": "sweeping", "multivector": {"enabled": False,
                                                          "aggregation": "maxSim"}}


def _merge(defaults: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    for k, v in (given or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class ApiError(Exception):
    def __init__(self, status: int, message: str | None = None, body: Any = None):
        super().__init__(message or str(status))
        self.status = status
        if body is None and message is not None:
            body = {"error": [{"message": message}]}
        self.body = body


@dataclass
class Fault:
    status: int | None
    times: int
    path: str
    method: str | None
    delay: float


class Store:
    """The emulated database: classes, tenants and objects, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.classes: dict[str, dict[str, Any]] = {}
        self.tenants: dict[str, dict[str, str]] = {}
        self.objects: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.dims: dict[tuple[str, str], int] = {}

    # --------------------------------------------------------------- schema

    def create_class(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("class"), str):
            raise ApiError(422, "class name is required")
        name = body["class"][:1].upper() + body["class"][1:]
        if not CLASS_RE.match(name):
            raise ApiError(422, f"'{body['class']}' is not a valid class name")
        if name in self.classes:
            raise ApiError(422, f'class name "{name}" already exists')
        cls = copy.deepcopy(body)
        cls["class"] = name
        props = cls.get("properties") or []
        seen = set()
        for p in props:
            self._check_property(p, name)
            p["name"] = _lower_first(p["name"])
            if p["name"].lower() in seen:
                raise ApiError(422, f"class \"{name}\": conflict for property \"{p['name']}\": "
                                    "already in use or provided multiple times")
            seen.add(p["name"].lower())
        cls["properties"] = [self._property_defaults(p) for p in props]
        mt = _merge({"enabled": False, "autoTenantCreation": False,
                     "autoTenantActivation": False}, cls.get("multiTenancyConfig"))
        cls["multiTenancyConfig"] = mt
        cls["invertedIndexConfig"] = _merge(
            {"bm25": {"b": 0.75, "k1": 1.2}, "cleanupIntervalSeconds": 60,
             "stopwords": {"additions": None, "preset": "en", "removals": None},
             "usingBlockMaxWAND": True}, cls.get("invertedIndexConfig"))
        cls["replicationConfig"] = _merge(
            {"asyncEnabled": False, "deletionStrategy": "NoAutomatedResolution", "factor": 1},
            cls.get("replicationConfig"))
        if mt["enabled"]:
            sharding = {"actualCount": 0, "actualVirtualCount": 0, "desiredCount": 0,
                        "desiredVirtualCount": 0, "function": "", "key": "", "strategy": "",
                        "virtualPerPhysical": 0}
        else:
            sharding = {"actualCount": 1, "actualVirtualCount": 128, "desiredCount": 1,
                        "desiredVirtualCount": 128, "function": "murmur3", "key": "_id",
                        "strategy": "hash", "virtualPerPhysical": 128}
        cls["shardingConfig"] = _merge(sharding, cls.get("shardingConfig"))
        vc = cls.get("vectorConfig")
        if vc:
            if not isinstance(vc, dict):
                raise ApiError(422, "vectorConfig must be an object")
            for vname, conf in vc.items():
                if not VECTOR_RE.match(vname):
                    raise ApiError(422, f"invalid target vector name {vname!r}")
                conf = dict(conf or {})
                conf.setdefault("vectorizer", {"none": {}})
                conf.setdefault("vectorIndexType", "hnsw")
                if conf["vectorIndexType"] == "hnsw":
                    conf["vectorIndexConfig"] = _merge(hnsw_defaults(),
                                                       conf.get("vectorIndexConfig"))
                vc[vname] = conf
        else:
            cls.pop("vectorConfig", None)
            cls.setdefault("vectorizer", "none")
            cls.setdefault("vectorIndexType", "hnsw")
            if cls["vectorIndexType"] == "hnsw":
                cls["vectorIndexConfig"] = _merge(hnsw_defaults(), cls.get("vectorIndexConfig"))
        cls.setdefault("moduleConfig", {})
        self.classes[name] = cls
        self.tenants[name] = {}
        if not mt["enabled"]:
            self.objects[(name, "")] = {}
        return copy.deepcopy(cls)

    def _check_property(self, p: Any, cls: str) -> None:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            raise ApiError(422, f"class \"{cls}\": invalid property name")
        if not PROP_RE.match(p["name"]):
            raise ApiError(422, f"'{p['name']}' is not a valid property name. Property names in "
                                "Weaviate are restricted to valid GraphQL names, which must be "
                                "\u201c/[_A-Za-z][_0-9A-Za-z]{0,230}/\u201d.")
        types = p.get("dataType")
        if not isinstance(types, list) or not types:
            raise ApiError(422, f"property '{p['name']}': invalid dataType: dataType must not be empty")
        if types[0] in PRIMITIVES:
            return
        for target in types:       # a cross-reference: every target class must exist
            if target not in self.classes and target != cls:
                raise ApiError(422, f"property '{p['name']}': invalid dataType: "
                                    f"reference property to nonexistent class")

    def add_property(self, name: str, body: Any) -> dict[str, Any]:
        """POST /v1/schema/{className}/properties: the Property, with defaults, as stored."""
        cls = self.classes.get(name)
        if cls is None:
            raise ApiError(422, f"add property to class {name!r}: class not found")
        if not isinstance(body, dict):
            raise ApiError(422, "invalid property")
        prop = copy.deepcopy(body)
        self._check_property(prop, cls["class"])
        prop["name"] = _lower_first(prop["name"])
        if any(p["name"].lower() == prop["name"].lower() for p in cls["properties"]):
            raise ApiError(422, f"class \"{cls['class']}\": conflict for property "
                                f"\"{prop['name']}\": already in use or provided multiple times")
        prop = self._property_defaults(prop)
        cls["properties"].append(prop)
        return copy.deepcopy(prop)

    def _property_defaults(self, p: dict[str, Any]) -> dict[str, Any]:
        p = dict(p)
        base = p["dataType"][0]
        text = base in ("text", "text[]", "string", "string[]")
        if text:
            p.setdefault("tokenization", "word")
        p.setdefault("indexFilterable", True)
        p.setdefault("indexSearchable", text)
        if base in PRIMITIVES:
            p.setdefault("indexRangeFilters", False)
        if base in ("object", "object[]"):
            p["nestedProperties"] = [self._property_defaults(n) for n in p.get("nestedProperties") or []]
        return p

    def get_class(self, name: str) -> dict[str, Any]:
        cls = self.classes.get(name) or self.classes.get(name[:1].upper() + name[1:])
        if cls is None:
            raise ApiError(404)
        return cls

    def delete_class(self, name: str) -> None:
        cls = self.classes.pop(name, None)
        if cls is not None:
            self.tenants.pop(name, None)
            for key in [k for k in self.objects if k[0] == name]:
                self.objects.pop(key)
                self.dims.pop(key, None)
            for key in [k for k in self.dims if k[0] == name]:
                self.dims.pop(key)

    def list_tenants(self, name: str) -> list[dict[str, str]]:
        cls = self._mt_class(name)
        return [{"name": t, "activityStatus": s} for t, s in self.tenants[cls["class"]].items()]

    def add_tenants(self, name: str, body: Any) -> list[dict[str, str]]:
        cls = self._mt_class(name)
        if not isinstance(body, list):
            raise ApiError(422, "tenants must be an array")
        out = []
        for t in body:
            tname = (t or {}).get("name")
            if not isinstance(tname, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", tname):
                raise ApiError(422, f"tenant name should only contain alphanumeric characters "
                                    f"(a-z, A-Z, 0-9), underscore (_), and hyphen (-), with a "
                                    f"length between 1 and 64 characters")
            status = (t.get("activityStatus") or "ACTIVE").upper()
            status = {"HOT": "ACTIVE", "COLD": "INACTIVE"}.get(status, status)
            self.tenants[cls["class"]].setdefault(tname, status)
            self.objects.setdefault((cls["class"], tname), {})
            out.append({"name": tname, "activityStatus": status})
        return out

    def _mt_class(self, name: str) -> dict[str, Any]:
        cls = self.classes.get(name)
        if cls is None:
            raise ApiError(422, f'class "{name}" not found')
        if not cls["multiTenancyConfig"]["enabled"]:
            raise ApiError(422, f'multi-tenancy is not enabled for class "{name}"')
        return cls

    # --------------------------------------------------------------- objects

    def shard(self, cls: dict[str, Any], tenant: str | None) -> tuple[str, str]:
        name = cls["class"]
        if cls["multiTenancyConfig"]["enabled"]:
            if not tenant:
                raise ApiError(422, f"class {name} has multi-tenancy enabled, "
                                    "but request was without tenant")
            status = self.tenants[name].get(tenant)
            if status is None:
                raise ApiError(422, f'tenant not found: "{tenant}"')
            if status != "ACTIVE":
                raise ApiError(422, f"tenant not active: \"{tenant}\"")
            return name, tenant
        if tenant:
            raise ApiError(422, f"class {name} has multi-tenancy disabled, "
                                f"but request was with tenant")
        return name, ""

    def put_object(self, body: Any, merge: bool = False, must_exist: bool = False,
                   tenant: str | None = None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(422, "invalid object")
        cls = self.classes.get(str(body.get("class", "")))
        if cls is None:
            raise ApiError(422, f"invalid object: class '{body.get('class')}' not present in schema")
        key = self.shard(cls, body.get("tenant") or tenant)
        raw_id = body.get("id") or str(uuidlib.uuid4())
        try:
            oid = str(uuidlib.UUID(str(raw_id)))
        except ValueError:
            raise ApiError(422, f"invalid object: invalid uuid property: {raw_id}") from None
        store = self.objects[key]
        old = store.get(oid)
        if must_exist and old is None:
            raise ApiError(404)
        props = self._props(cls, body.get("properties") or {})
        now = int(time.time() * 1000)
        obj: dict[str, Any] = {"class": cls["class"], "id": oid, "properties": props,
                               "creationTimeUnix": old["creationTimeUnix"] if old else now,
                               "lastUpdateTimeUnix": now}
        if key[1]:
            obj["tenant"] = key[1]
        vectors = self._vectors(cls, key, body)
        if merge and old is not None:
            obj["properties"] = {**old["properties"], **props}
            if not vectors:
                vectors = dict(old.get("_vectors", {}))
        obj["_vectors"] = vectors
        store[oid] = obj
        return obj

    def _props(self, cls: dict[str, Any], props: Any) -> dict[str, Any]:
        if not isinstance(props, dict):
            raise ApiError(422, "invalid object: properties must be an object")
        schema = {p["name"]: p for p in cls["properties"]}
        out = {}
        for k, v in props.items():
            p = schema.get(k)
            if p is None:
                raise ApiError(422, f"invalid object: no such prop with name '{k}' found in class "
                                    f"'{cls['class']}' in the schema. Check your schema files for "
                                    "which properties in this class are available")
            if v is None:
                continue
            out[k] = _value(p, v, k)
        return out

    def _vectors(self, cls: dict[str, Any], key: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
        given: dict[str, Any] = {}
        named = cls.get("vectorConfig") or {}
        if body.get("vector") is not None:
            if named:
                raise ApiError(422, "collection has named vectors: use vectors, not vector")
            given[""] = body["vector"]
        for name, vec in (body.get("vectors") or {}).items():
            if name not in named:
                raise ApiError(422, f"target vector \"{name}\" not found in class {cls['class']}")
            given[name] = vec
        out = {}
        for name, vec in given.items():
            try:
                arr = np.asarray(vec, dtype=np.float32)
            except (TypeError, ValueError):
                raise ApiError(422, "invalid vector") from None
            if arr.ndim not in (1, 2) or arr.size == 0:
                raise ApiError(422, "invalid vector")
            dkey = (cls["class"], name)
            dim = arr.shape[-1]
            if arr.ndim == 1 and self.dims.setdefault(dkey, dim) != dim:
                raise ApiError(500, f"insert to vector index: new node has a vector with length "
                                    f"{dim}. Existing nodes have vectors with length "
                                    f"{self.dims[dkey]}")
            out[name] = arr
        return out

    def render(self, obj: dict[str, Any], with_vector: bool) -> dict[str, Any]:
        out = {k: v for k, v in obj.items() if not k.startswith("_")}
        out["properties"] = _links(copy.deepcopy(obj["properties"]),
                                   self.classes.get(obj["class"]))
        if with_vector:
            vecs = obj.get("_vectors", {})
            if "" in vecs:
                out["vector"] = _floats(vecs[""])
            named = {k: _floats(v) for k, v in vecs.items() if k}
            if named:
                out["vectors"] = named
        return out

    def list_objects(self, q: dict[str, str]) -> dict[str, Any]:
        name = q.get("class")
        if not name:
            raise ApiError(422, "the emulator lists objects of one class only: give class=")
        if q.get("after") is not None and (q.get("offset") or q.get("sort")):
            raise ApiError(422, "cursor api: invalid 'after' parameter: offset or sort "
                                "cannot be set with after and limit parameters")
        cls = self.classes.get(name)
        if cls is None:
            raise ApiError(404)
        key = self.shard(cls, q.get("tenant"))
        try:
            limit = int(q.get("limit", DEFAULT_LIMIT))
            offset = int(q.get("offset", 0))
        except ValueError:
            raise ApiError(422, "limit and offset must be integers") from None
        if limit < 0 or offset < 0 or offset + limit > MAX_RESULTS:
            raise ApiError(422, f"query maximum results exceeded (QUERY_MAXIMUM_RESULTS="
                                f"{MAX_RESULTS})")
        ids = sorted(self.objects[key])
        after = q.get("after")
        if after is not None:
            try:
                after = str(uuidlib.UUID(after))
            except ValueError:
                raise ApiError(422, f"cursor api: invalid 'after' parameter: {after}") from None
            ids = ids[bisect.bisect_right(ids, after):]
        else:
            ids = ids[offset:]
        with_vector = "vector" in (q.get("include") or "").split(",")
        objs = [self.render(self.objects[key][i], with_vector) for i in ids[:limit]]
        return {"objects": objs, "totalResults": len(objs), "deprecations": []}

    def find(self, name: str, oid: str, tenant: str | None) -> tuple[dict, tuple[str, str]]:
        cls = self.classes.get(name)
        if cls is None:
            raise ApiError(404)
        key = self.shard(cls, tenant)
        try:
            oid = str(uuidlib.UUID(oid))
        except ValueError:
            raise ApiError(422, f"invalid uuid {oid}") from None
        obj = self.objects[key].get(oid)
        if obj is None:
            raise ApiError(404)
        return obj, key

    def batch(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
            raise ApiError(422, "objects must be an array")
        out = []
        for o in body["objects"]:
            try:
                stored = self.put_object(o)
                item = self.render(stored, False)
                item["result"] = {}
            except ApiError as e:
                item = {k: v for k, v in (o if isinstance(o, dict) else {}).items()
                        if k in ("class", "id", "tenant", "properties")}
                item["result"] = {"errors": {"error": [{"message": str(e)}]}}
            out.append(item)
        return out

    def near(self, name: str, vector: str, target: str | None, limit: int,
             tenant: str | None) -> list[dict[str, Any]]:
        """The `limit` objects nearest to `vector` by the vector index's distance, exactly."""
        cls = self.classes.get(name)
        if cls is None:
            raise ApiError(422, f'Cannot query field "{name}" on type "GetObjectsObj".')
        target = target or ""
        if target:
            config = ((cls.get("vectorConfig") or {}).get(target) or {}).get("vectorIndexConfig")
            if config is None:
                raise ApiError(422, f"target vector \"{target}\" not found in class {name}")
        else:
            config = cls.get("vectorIndexConfig") or {}
        distance = config.get("distance", "cosine")
        try:
            q = np.asarray([float(x) for x in vector.split(",") if x.strip()], dtype=np.float64)
        except ValueError:
            raise ApiError(422, "nearVector: invalid vector") from None
        scored = []
        for oid, obj in self.objects[self.shard(cls, tenant)].items():
            v = obj.get("_vectors", {}).get(target)
            if v is None or v.ndim != 1 or len(v) != len(q):
                continue
            x = v.astype(np.float64)
            if distance == "dot":
                d = -float(q @ x)
            elif distance == "l2-squared":
                d = float(((q - x) ** 2).sum())
            elif distance == "manhattan":
                d = float(np.abs(q - x).sum())
            else:
                denom = float(np.linalg.norm(q) * np.linalg.norm(x))
                d = 1.0 - (float(q @ x) / denom if denom else 0.0)
            scored.append((d, oid))
        scored.sort()
        return [{"_additional": {"id": oid}} for _, oid in scored[:limit]]

    def count(self, name: str, tenant: str | None) -> int:
        cls = self.classes.get(name)
        if cls is None:
            raise ApiError(422, f'Cannot query field "{name}" on type "AggregateObjectsObj".')
        return len(self.objects[self.shard(cls, tenant)])


def _lower_first(name: str) -> str:
    """The server lower-cases the first letter of a property name (GraphQL convention)."""
    return name[:1].lower() + name[1:]


def _links(props: dict[str, Any], cls: dict[str, Any] | None) -> dict[str, Any]:
    """Reference values come back with an `href` beside each `beacon`, as the server adds."""
    refs = {p["name"] for p in (cls or {}).get("properties", []) if p["dataType"][0] not in PRIMITIVES}
    for name in refs & set(props):
        for ref in props[name]:
            m = re.match(r"^weaviate://localhost/(?:([^/]+)/)?([0-9a-f-]{36})$", ref.get("beacon", ""))
            if m:
                where = f"{m.group(1)}/{m.group(2)}" if m.group(1) else m.group(2)
                ref["href"] = f"/v1/objects/{where}"
    return props


def _floats(arr: np.ndarray) -> list:
    """float32 values written the way Go's encoder writes a float32: shortest round trip."""
    if arr.ndim == 2:
        return [_floats(row) for row in arr]
    return [float(str(x)) for x in arr.astype(np.float32)]


def _go_float(x: float) -> Any:
    """Go's json encoder writes a whole float64 without a fraction: 3.0 -> 3."""
    if x == int(x) and abs(x) < 1e21:
        return int(x)
    return x


def _date(v: Any, name: str) -> str:
    if not isinstance(v, str):
        raise ApiError(422, f"invalid object: invalid date property '{name}' on class: "
                            f"requires a string with a RFC3339 formatted date")
    text = v[:-1] + "+00:00" if v.endswith("Z") else v
    try:
        d = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(422, f"invalid object: invalid date property '{name}' on class: "
                            f"requires a string with a RFC3339 formatted date") from None
    if d.tzinfo is None:
        raise ApiError(422, f"invalid object: invalid date property '{name}': no time zone")
    base = d.strftime("%Y-%m-%dT%H:%M:%S")
    if d.microsecond:
        base += ("." + f"{d.microsecond:06d}").rstrip("0")
    off = d.utcoffset()
    if not off:
        return base + "Z"
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return base + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _value(p: dict[str, Any], v: Any, name: str) -> Any:
    """Validate a property value against its dataType, and store it as the server would."""
    t = p["dataType"][0]
    bad = ApiError(422, f"invalid object: invalid {t} property '{name}' on class")
    if t.endswith("[]"):
        if not isinstance(v, list):
            raise bad
        return [_value({**p, "dataType": [t[:-2]]}, x, name) for x in v]
    if t in ("text", "string", "uuid", "blob"):
        if not isinstance(v, str):
            raise bad
        return str(uuidlib.UUID(v)) if t == "uuid" else v
    if t == "int":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise bad
        if not -2 ** 63 <= int(v) < 2 ** 63:
            raise ApiError(422, f"invalid object: invalid integer property '{name}' on class: "
                                "the JSON number could not be converted to an int")
        # Integers pass through float64 on the way (weaviate/weaviate#1563, #11735):
        # beyond 2^53 they come back rounded.
        return int(float(v))
    if t == "number":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad
        return _go_float(float(v))
    if t == "boolean":
        if not isinstance(v, bool):
            raise bad
        return v
    if t == "date":
        return _date(v, name)
    if t == "object":
        if not isinstance(v, dict):
            raise bad
        nested = {n["name"]: n for n in p.get("nestedProperties") or []}
        out = {}
        for k, x in v.items():
            if k not in nested:
                raise ApiError(422, f"invalid object: nested property '{k}' not found in '{name}'")
            if x is not None:
                out[k] = _value(nested[k], x, k)
        return out
    if t in PRIMITIVES:       # geoCoordinates, phoneNumber: kept as given
        return v
    if not isinstance(v, list) or not all(isinstance(r, dict) and isinstance(r.get("beacon"), str)
                                          for r in v):
        raise ApiError(422, f"invalid object: invalid cref property '{name}': "
                            "expected a list of beacons")
    return [{"beacon": r["beacon"]} for r in v]


class WeaviateEmulator:
    """A Weaviate REST emulator on a loopback port, served from a background thread."""

    def __init__(self, api_keys: list[str] | None = None, host: str = "127.0.0.1",
                 port: int = 0, version: str = VERSION) -> None:
        self.api_keys = list(api_keys or [])
        self.version = version
        self.store = Store()
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []   # (method, path, status)
        self._lock = threading.Lock()
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "WeaviateEmulator":
        self._thread = threading.Thread(target=self._server.serve_forever, name="weaviate-emulator",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "WeaviateEmulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def fail(self, status: int | None = 429, times: int = 1, path: str = "/v1/",
             method: str | None = None, delay: float = 0.0) -> None:
        """Answer the next `times` requests under `path` with `status` (None: only delay)."""
        with self._lock:
            self.faults.append(Fault(status, times, path, method, delay))

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.times > 0 and path.startswith(f.path) and f.method in (None, method):
                    f.times -= 1
                    return f
        return None

    def statuses(self, status: int) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r[2] == status)


class _Handler(BaseHTTPRequestHandler):
    emu: WeaviateEmulator
    protocol_version = "HTTP/1.1"
    server_version = "weaviate-emulator"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # delayed ACKs cost about 40 ms a request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:   # quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, body, headers = 500, None, {}
        try:
            fault = self.emu.take_fault(method, path)
            if fault is not None:
                time.sleep(fault.delay)
                if fault.status is not None:
                    headers = {"Retry-After": "0"} if fault.status == 429 else {}
                    raise ApiError(fault.status, "injected fault: too many requests"
                                   if fault.status == 429 else "injected fault")
            if not path.startswith("/v1/.well-known/"):
                self._authorize()
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                raise ApiError(400, "invalid JSON body") from None
            with self.emu.store.lock:
                status, body = self._route(method, path, query, data)
        except ApiError as e:
            status, body = e.status, e.body
        except Exception as e:     # an emulator bug: a 500 with the official error body
            status, body = 500, {"error": [{"message": f"emulator: {type(e).__name__}: {e}"}]}
        with self.emu._lock:
            self.emu.requests.append((method, path, status))
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def _authorize(self) -> None:
        if not self.emu.api_keys:
            return
        auth = self.headers.get("Authorization") or ""
        if not auth:
            raise ApiError(401, body={"code": 401, "message": "anonymous access not enabled, "
                                      "please provide an auth scheme such as OIDC"})
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or token not in self.emu.api_keys:
            raise ApiError(401, body={"code": 401, "message": "unauthorized: invalid api key"})

    def _route(self, method: str, path: str, q: dict[str, str], data: Any) -> tuple[int, Any]:
        st = self.emu.store
        seg = [unquote(s) for s in path.split("/")[2:]] if path.startswith("/v1/") else []
        if path == "/v1/.well-known/ready" or path == "/v1/.well-known/live":
            return 200, None
        if path == "/v1/.well-known/openid-configuration":
            return 404, None
        if path == "/v1/meta" and method == "GET":
            return 200, {"hostname": "http://[::]:8080", "modules": {}, "version": self.emu.version,
                         "grpcMaxMessageSize": 104858000}
        if seg[:1] == ["schema"]:
            if len(seg) == 1 and method == "GET":
                return 200, {"classes": [copy.deepcopy(c) for c in st.classes.values()]}
            if len(seg) == 1 and method == "POST":
                return 200, st.create_class(data)
            if len(seg) == 2 and method == "GET":
                return 200, copy.deepcopy(st.get_class(seg[1]))
            if len(seg) == 2 and method == "DELETE":
                st.delete_class(seg[1])
                return 200, None
            if len(seg) == 3 and seg[2] == "tenants" and method == "GET":
                return 200, st.list_tenants(seg[1])
            if len(seg) == 3 and seg[2] == "tenants" and method == "POST":
                return 200, st.add_tenants(seg[1], data)
            if len(seg) == 3 and seg[2] == "properties" and method == "POST":
                return 200, st.add_property(seg[1], data)
        if seg == ["objects"] and method == "GET":
            return 200, st.list_objects(q)
        if seg == ["objects"] and method == "POST":
            return 200, st.render(st.put_object(data), True)
        if seg[:1] == ["objects"] and len(seg) == 3:
            cls, oid = seg[1], seg[2]
            tenant = q.get("tenant") or (data.get("tenant") if isinstance(data, dict) else None)
            if method in ("GET", "HEAD"):
                obj, _ = st.find(cls, oid, tenant)
                if method == "HEAD":
                    return 204, None
                return 200, st.render(obj, "vector" in (q.get("include") or ""))
            if method == "DELETE":
                obj, key = st.find(cls, oid, tenant)
                st.objects[key].pop(obj["id"])
                return 204, None
            if method in ("PUT", "PATCH"):
                body = dict(data or {})
                body.update({"class": cls, "id": oid})
                st.find(cls, oid, body.get("tenant") or tenant)
                obj = st.put_object(body, merge=method == "PATCH", must_exist=True, tenant=tenant)
                return (204, None) if method == "PATCH" else (200, st.render(obj, True))
        if seg == ["batch", "objects"] and method == "POST":
            return 200, st.batch(data)
        if seg == ["graphql"] and method == "POST":
            near = NEAR_RE.match((data or {}).get("query", ""))
            if near:
                try:
                    found = st.near(near.group(1), near.group(2), near.group(3), int(near.group(4)),
                                    near.group(5))
                except ApiError as e:
                    return 200, {"errors": [{"message": str(e)}]}
                return 200, {"data": {"Get": {near.group(1): found}}}
            m = AGGREGATE_RE.match((data or {}).get("query", ""))
            if not m:
                return 200, {"errors": [{"message": "the emulator answers only "
                                                    "Aggregate { Class { meta { count } } }"}]}
            try:
                n = st.count(m.group(1), m.group(2))
            except ApiError as e:
                return 200, {"errors": [{"message": str(e)}]}
            return 200, {"data": {"Aggregate": {m.group(1): [{"meta": {"count": n}}]}}}
        raise ApiError(404, body=None)


def main() -> None:   # pragma: no cover - manual use: cd tests && python -m emulators.weaviate_emulator
    import argparse
    import os
    ap = argparse.ArgumentParser(description="Weaviate REST emulator (tests only; in memory)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()
    key = os.environ.get("WEAVIATE_API_KEY")
    emu = WeaviateEmulator([key] if key else None, args.host, args.port)
    print(f"Weaviate emulator on {emu.url} (API key {'required' if key else 'not required'})")
    emu._server.serve_forever()


if __name__ == "__main__":   # pragma: no cover
    main()
