"""Weaviate connector (connector layer; depends only on model and errors).

    weaviate://HOST:PORT[/Class][?https=1&grpc_port=50051&timeout=60]

The API key comes from the environment (`WEAVIATE_API_KEY`, sent as `Authorization: Bearer`),
never from the URL. A `/Class` path limits a backup to that class.

Why the code looks the way it does (weaviate-client 4.x, Weaviate REST API v1):
- Client v4 does schema over REST but batch writes, `iterator()`, tenant listing and
  aggregation over gRPC. Everything a backup needs exists in the REST API, so this connector
  speaks REST only: the official client for what its REST side offers (connect and
  `/v1/meta`, listing, existence, class creation from a dict, tenant creation, delete by id),
  and plain HTTP with the same bearer token for the rest: the class schema verbatim
  (`GET /v1/schema/{class}`), tenants, the `after` cursor (`GET /v1/objects?include=vector`),
  batch writes (`POST /v1/batch/objects`) and counts (GraphQL `Aggregate meta count`).
  The client is opened with `skip_init_checks=True`: its gRPC channel is never used, so the
  gRPC health check it would run at connect is skipped.
- The cursor returns objects in UUID order, one tenant at a time; it cannot be combined with
  filters, and `limit` is capped by the server's QUERY_MAXIMUM_RESULTS (10,000 by default).
- The schema says nothing of vector dimensions: `dim` stays None and the engine fills it in
  from the data. The class schema is kept verbatim in `extras["class"]` (vectorizer modules,
  cross-references, index settings) and used as is for a restore into Weaviate.
- A whole `number` comes back without a fraction (Go writes 3.0 as `3`): numbers are turned
  back into floats from the property's dataType, so metadata keeps its types.
- Reference values come back as `[{"beacon": ..., "href": ...}]`; they are backed up
  verbatim and written back with their beacons only (`href` is derived by the server).
- Throttling (429) and 5xx answers and timeouts are retried a bounded number of times with
  exponential backoff, honouring `Retry-After`.
- A schema from another provider becomes a class in the *neutral layout*, marked by JSON in
  the class description (`{"vdedup": 1, "layout": "neutral", ...}`) so that describe() and
  scan() give the neutral form back exactly: the namespace "" lives in the reserved tenant
  `_default` (tenant names must match [A-Za-z0-9_-]{1,64}; other names that do not are mapped
  too), the unnamed vector beside named ones (or as a multi-vector) is a named vector, names
  Weaviate refuses are mapped, and dimensions are kept (the schema has none). Each property
  records its metadata key and encoding in its own description; a key gets its property at
  the first write that shows a value (Weaviate adds properties to a class at any time), typed
  from it: text/int/number/boolean, text[]/int[]/number[]/boolean[] for uniform lists,
  JSON text for objects and other lists (nested objects need every nested key declared up
  front, and their nulls would be lost), ISO text for datetimes. What no property holds
  exactly (nulls, which Weaviate does not store; empty lists; a value unlike its property's
  type; ints beyond 2^53) goes as JSON into the one text property `_vdedup`.
"""
from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import json
import math
import os
import re
import time
import uuid as uuidlib
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

from ..errors import CollectionNotFound, SourceError, UsageError, VdedupError
from ..model import (CollectionSchema, IdType, MetadataField, Metric, Record, RecordBatch,
                     RecordId, VectorField)
from .url import SECRET_KEYS, SourceURL

KEY_ENV = "WEAVIATE_API_KEY"
DEFAULT_PORT = 8080
DEFAULT_GRPC_PORT = 50051
URL_QUERY_KEYS = {"https", "grpc_port", "timeout"}
CLASS_RE = re.compile(r"^[A-Z][_0-9A-Za-z]*$")
MAX_LIMIT = 10000            # the server's default QUERY_MAXIMUM_RESULTS
WRITE_CHUNK = 200            # objects per POST /v1/batch/objects
ATTEMPTS = 6                 # tries per request on 429 / 5xx / timeout
BACKOFF = 0.2                # seconds, doubled per retry ...
BACKOFF_CAP = 5.0            # ... up to this
RETRY_STATUS = {429, 500, 502, 503, 504}

DISTANCE_TO_METRIC = {"cosine": Metric.COSINE, "dot": Metric.DOT, "l2-squared": Metric.EUCLIDEAN,
                      "manhattan": Metric.MANHATTAN, "hamming": Metric.HAMMING}
METRIC_TO_DISTANCE = {m: d for d, m in DISTANCE_TO_METRIC.items()}
TYPE_NAMES = {"text": "str", "string": "str", "uuid": "str", "date": "str", "blob": "str",
              "int": "int", "number": "float", "boolean": "bool", "object": "dict",
              "geoCoordinates": "dict", "phoneNumber": "dict"}
PRIMITIVE_TYPES = set(TYPE_NAMES) | {t + "[]" for t in TYPE_NAMES}
SERVER_COMPUTED = ("actualCount", "actualVirtualCount")
QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"")

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

T = TypeVar("T")


class _HttpStatus(Exception):
    """A non-2xx answer on the plain-HTTP side, with the server's first error message."""

    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class WeaviateConnector:
    """One Weaviate instance (all its classes, or the one class named in the URL)."""

    provider = "weaviate"

    def __init__(self, client: Any, http: Any, where: str, only: str | None = None) -> None:
        self._client = client
        self._http = http
        self._where = where
        self._only = only
        self._classes: dict[str, dict[str, Any]] = {}

    # ----------------------------------------------------------------- opening

    @classmethod
    def from_url(cls, u: SourceURL) -> "WeaviateConnector":
        if u.username or u.password:
            raise UsageError(f"credentials do not belong in a Weaviate URL: set {KEY_ENV} instead")
        secret = sorted(k for k in u.query if k.lower() in SECRET_KEYS)
        if secret:
            raise UsageError(f"secret {secret[0]!r} in a Weaviate URL: set {KEY_ENV} instead")
        unknown = sorted(set(u.query) - URL_QUERY_KEYS)
        if unknown:
            raise UsageError(f"unknown Weaviate URL parameter {unknown[0]!r} "
                             f"(known: {', '.join(sorted(URL_QUERY_KEYS))})")
        if not u.host:
            raise UsageError("a Weaviate URL needs a host: weaviate://HOST:PORT[/Class]")
        only = u.path.strip("/") or None
        if only is not None and not CLASS_RE.match(only):
            raise UsageError(f"invalid Weaviate class name {only!r} in the URL "
                             "(must match ^[A-Z][_0-9A-Za-z]*$)")
        https = u.query.get("https", "0").lower() in ("1", "true", "yes", "on")
        port = u.port or (443 if https else DEFAULT_PORT)
        try:
            grpc_port = int(u.query.get("grpc_port", DEFAULT_GRPC_PORT))
            timeout = float(u.query.get("timeout", 60))
        except ValueError:
            raise UsageError("grpc_port and timeout in a Weaviate URL must be numbers") from None
        if timeout <= 0:
            raise UsageError("timeout in a Weaviate URL must be positive")
        if grpc_port == port:     # the client insists they differ; its gRPC port is never used
            grpc_port = port + 1 if port < 65535 else port - 1
        return cls._connect(u.host, port, https, grpc_port, timeout, only)

    @classmethod
    def _connect(cls, host: str, port: int, https: bool, grpc_port: int, timeout: float,
                 only: str | None) -> "WeaviateConnector":
        import httpx
        import weaviate
        from weaviate.classes.init import AdditionalConfig, Auth, Timeout

        where = f"{host}:{port}"
        key = os.environ.get(KEY_ENV) or None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        scheme = "https" if https else "http"
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        http = httpx.Client(base_url=f"{scheme}://{netloc}/v1", headers=headers,
                            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        conn = cls(None, http, where, only)

        def connect() -> Any:
            return weaviate.connect_to_custom(
                http_host=host, http_port=port, http_secure=https,
                grpc_host=host, grpc_port=grpc_port, grpc_secure=https,
                auth_credentials=Auth.api_key(key) if key else None,
                additional_config=AdditionalConfig(
                    timeout=Timeout(init=min(timeout, 10.0), query=timeout, insert=timeout)),
                skip_init_checks=True)

        try:
            conn._client = conn._retry("connect", None, connect)
        except BaseException:
            http.close()
            raise
        return conn

    def close(self) -> None:
        client, self._client = self._client, None
        http, self._http = self._http, None
        for thing in (client, http):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()

    # --------------------------------------------------------------- reading

    def list_collections(self) -> list[str]:
        if self._only is not None:
            return [self._only]
        return sorted(self._retry("list classes", None,
                                  lambda: self._live().collections.list_all(simple=True)))

    def exists(self, collection: str) -> bool:
        if not isinstance(collection, str) or not CLASS_RE.match(collection):
            return False
        self._classes.pop(collection, None)
        return bool(self._retry("check class", collection,
                                lambda: self._live().collections.exists(collection)))

    def describe(self, collection: str) -> CollectionSchema:
        cls = self._class(collection, fresh=True)
        tenants = self._tenants(collection) if _multi_tenant(cls) else []
        layout = _Layout.of(cls)
        if layout is not None:
            return layout.describe(cls, tenants)
        namespaces = tuple(t["name"] for t in tenants) if _multi_tenant(cls) else ("",)
        fields = []
        for p in cls.get("properties") or []:
            base = p["dataType"][0]
            if base.endswith("[]") or base not in PRIMITIVE_TYPES:
                kind = "list"          # arrays, and cross-references (lists of beacons)
            else:
                kind = TYPE_NAMES.get(base, "unknown")
            fields.append(MetadataField(name=p["name"], type=kind,
                                        indexed=bool(p.get("indexFilterable") or p.get("indexSearchable"))))
        return CollectionSchema(
            provider=self.provider, name=cls["class"], id_type=IdType.UUID,
            vectors=_vector_fields(cls), metadata_fields=tuple(fields), namespaces=namespaces,
            options={"description": cls.get("description")},
            extras={"class": cls, "tenants": tenants})

    def count(self, collection: str, namespace: str = "") -> int:
        cls = self._class(collection)
        namespace = self._tenant(cls, namespace)
        tenant = f'(tenant: "{namespace}")' if namespace else ""
        query = "{ Aggregate { %s%s { meta { count } } } }" % (cls["class"], tenant)
        answer = self._rest("count", collection, "POST", "/graphql", json={"query": query})
        errors = answer.get("errors")
        if errors:
            raise SourceError(f"Weaviate count of {collection!r} at {self._where} failed: "
                              f"{_clean(str(errors[0].get('message', errors[0])))}")
        try:
            return int(answer["data"]["Aggregate"][cls["class"]][0]["meta"]["count"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise SourceError(f"Weaviate count of {collection!r} at {self._where}: "
                              "unexpected answer") from None

    def scan(self, collection: str, namespace: str = "",
             batch_size: int = 1000) -> Iterator[RecordBatch]:
        if batch_size < 1:
            raise UsageError("batch size must be at least 1")
        cls = self._class(collection)
        tenant = self._tenant(cls, namespace)
        layout = _Layout.of(cls)
        types = _property_types(cls)
        limit = min(batch_size, MAX_LIMIT)
        after: str | None = None
        while True:
            params: dict[str, Any] = {"class": cls["class"], "limit": limit, "include": "vector"}
            if tenant:
                params["tenant"] = tenant
            if after is not None:
                params["after"] = after
            page = self._rest("scan", collection, "GET", "/objects", params=params)
            objects = page.get("objects") or []
            if objects:
                records = [layout.record(o) if layout is not None else _record(o, types)
                           for o in objects]
                yield RecordBatch.from_records(records, namespace)
                after = objects[-1]["id"]
            if len(objects) < limit:
                return

    # --------------------------------------------------------------- writing

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        if not isinstance(name, str) or not CLASS_RE.match(name):
            raise UsageError(f"invalid Weaviate class name {name!r} "
                             "(must match ^[A-Z][_0-9A-Za-z]*$)")
        body, tenants = _class_for(schema, name)
        self._retry("create class", name, lambda: self._live().collections.create_from_dict(body))
        self._classes.pop(name, None)
        if tenants:
            from weaviate.classes.tenants import Tenant

            handle = self._live().collections.use(name)
            for a in range(0, len(tenants), 100):
                chunk = [Tenant(name=t) for t in tenants[a:a + 100]]
                self._retry("create tenants", name, lambda: handle.tenants.create(chunk))

    def write(self, collection: str, batch: RecordBatch) -> None:
        if not len(batch):
            return
        cls = self._class(collection)
        tenant = self._tenant(cls, batch.namespace)
        records = list(batch.records())
        layout = _Layout.of(cls)
        if layout is not None:
            new = layout.new_properties(records)
            if new:
                for prop in new:
                    self._rest("add property", collection, "POST",
                               f"/schema/{cls['class']}/properties", json=prop)
                cls = self._class(collection, fresh=True)
                layout = _Layout.of(cls)
                assert layout is not None
            objects = [layout.object(rec, cls, tenant) for rec in records]
        else:
            refs = {p["name"] for p in cls.get("properties") or [] if p["dataType"][0] not in PRIMITIVE_TYPES}
            named = bool(cls.get("vectorConfig"))
            objects = [_object(rec, cls["class"], tenant, refs, named) for rec in records]
        for a in range(0, len(objects), WRITE_CHUNK):
            chunk = objects[a:a + WRITE_CHUNK]
            answer = self._rest("write", collection, "POST", "/batch/objects",
                                json={"objects": chunk, "fields": ["ALL"]})
            failed = [o for o in answer if ((o.get("result") or {}).get("errors") or {}).get("error")]
            if failed:
                first = failed[0]["result"]["errors"]["error"][0].get("message", "")
                raise SourceError(f"Weaviate rejected {len(failed)} of {len(chunk)} objects written "
                                  f"to {collection!r} at {self._where}: {_clean(first)}")

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        cls = self._class(collection)
        namespace = self._tenant(cls, namespace)
        handle = self._live().collections.use(cls["class"])
        if namespace:
            handle = handle.with_tenant(namespace)
        for rid in ids:
            oid = _uuid(rid)
            self._retry("delete", collection, lambda: handle.data.delete_by_id(oid))

    # --------------------------------------------------------------- helpers

    def _live(self) -> Any:
        if self._client is None:
            raise SourceError(f"the Weaviate connection to {self._where} is closed")
        return self._client

    def _class(self, name: str, fresh: bool = False) -> dict[str, Any]:
        if not isinstance(name, str) or not CLASS_RE.match(name):
            raise CollectionNotFound(f"Weaviate class {name!r} not found at {self._where} "
                                     "(class names match ^[A-Z][_0-9A-Za-z]*$)")
        if fresh or name not in self._classes:
            self._classes[name] = self._rest("describe", name, "GET", f"/schema/{name}")
        return self._classes[name]

    def _tenants(self, name: str) -> list[dict[str, Any]]:
        found = self._rest("list tenants", name, "GET", f"/schema/{name}/tenants")
        return sorted(({"name": t["name"], "activityStatus": t.get("activityStatus")}
                       for t in found), key=lambda t: t["name"])

    def _tenant(self, cls: dict[str, Any], namespace: str) -> str:
        """The tenant that holds a namespace ("" for a class without multi-tenancy)."""
        layout = _Layout.of(cls)
        if layout is not None and _multi_tenant(cls):
            namespace = layout.tenants.get(namespace, namespace)
        if _multi_tenant(cls) and not namespace:
            raise UsageError(f"Weaviate class {cls['class']!r} is multi-tenant: "
                             "every namespace must name a tenant")
        if not _multi_tenant(cls) and namespace:
            raise UsageError(f"Weaviate class {cls['class']!r} is not multi-tenant "
                             f"(got namespace {namespace!r})")
        return namespace

    def _rest(self, action: str, collection: str | None, method: str, path: str,
              **kwargs: Any) -> Any:
        if self._http is None:
            raise SourceError(f"the Weaviate connection to {self._where} is closed")

        def call() -> Any:
            res = self._http.request(method, path, **kwargs)
            if res.status_code >= 300:
                raise _HttpStatus(res.status_code, _server_message(res),
                                  _retry_after(res.headers.get("Retry-After")))
            return res.json() if res.content else None

        return self._retry(action, collection, call)

    def _retry(self, action: str, collection: str | None, fn: Callable[[], T]) -> T:
        """Call fn, retrying throttling, 5xx and timeouts with bounded backoff."""
        for attempt in range(ATTEMPTS):
            try:
                return fn()
            except VdedupError:
                raise
            except Exception as e:
                status, retry_after = _status(e)
                transient = status in RETRY_STATUS or (status is None and _is_timeout(e))
                if not transient or attempt == ATTEMPTS - 1:
                    raise self._translate(e, status, action, collection) from e
                wait = min(BACKOFF_CAP, BACKOFF * 2 ** attempt)
                if retry_after is not None:
                    wait = min(BACKOFF_CAP, max(wait, retry_after))
                time.sleep(wait)
        raise AssertionError("unreachable")   # pragma: no cover

    def _translate(self, e: Exception, status: int | None, action: str,
                   collection: str | None) -> VdedupError:
        target = f" {collection!r}" if collection else ""
        if status == 401:
            how = "check" if os.environ.get(KEY_ENV) else "set"
            return SourceError(f"Weaviate at {self._where} refused the credentials (401 "
                               f"unauthorized): {how} {KEY_ENV}")
        if status == 403:
            return SourceError(f"Weaviate at {self._where} forbids {action}{target} for this "
                               "API key (403)")
        if status == 404 and collection is not None:
            self._classes.pop(collection, None)
            return CollectionNotFound(f"Weaviate class {collection!r} not found at {self._where}")
        if status is None and _is_unreachable(e):
            return SourceError(f"cannot reach Weaviate at {self._where}: {type(e).__name__}")
        if status in RETRY_STATUS:
            return SourceError(f"Weaviate {action}{target} at {self._where} failed after "
                               f"{ATTEMPTS} attempts: HTTP {status}")
        if _is_timeout(e):
            return SourceError(f"Weaviate {action}{target} at {self._where} timed out "
                               f"{ATTEMPTS} times")
        return SourceError(f"Weaviate {action}{target} at {self._where} failed: {_detail(e)}")


# ------------------------------------------------------------------- functions


def _multi_tenant(cls: dict[str, Any]) -> bool:
    return bool((cls.get("multiTenancyConfig") or {}).get("enabled"))


def _status(e: BaseException) -> tuple[int | None, float | None]:
    if isinstance(e, _HttpStatus):
        return e.status, e.retry_after
    code = getattr(e, "status_code", None)
    if isinstance(code, int):
        return code, None
    cause = e.__cause__ or e.__context__
    return _status(cause) if isinstance(cause, _HttpStatus) else (None, None)


def _is_timeout(e: BaseException) -> bool:
    import httpx
    from weaviate.exceptions import WeaviateTimeoutError

    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, (httpx.TimeoutException, WeaviateTimeoutError, TimeoutError)):
            return True
        seen = seen.__cause__
    return False


def _is_unreachable(e: BaseException) -> bool:
    import httpx
    from weaviate.exceptions import WeaviateConnectionError, WeaviateStartUpError

    return isinstance(e, (httpx.TransportError, WeaviateConnectionError, WeaviateStartUpError,
                          ConnectionError))


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _server_message(res: Any) -> str:
    try:
        body = res.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        if isinstance(body.get("error"), list) and body["error"]:
            return _clean(str(body["error"][0].get("message", "")))
        if "message" in body:
            return _clean(str(body["message"]))
    return ""


def _clean(text: str) -> str:
    """One line, quoted values withheld (they may be record data), at most 240 characters."""
    text = QUOTED_RE.sub("'…'", (text.strip().splitlines() or [""])[0])
    return text if len(text) <= 240 else text[:237] + "..."


def _detail(e: BaseException) -> str:
    message = getattr(e, "message", None) or str(e)
    return f"{type(e).__name__}: {_clean(message) or type(e).__name__}"


def _vector_fields(cls: dict[str, Any]) -> tuple[VectorField, ...]:
    configs: dict[str, dict[str, Any]] = {}
    if cls.get("vectorConfig"):
        configs.update(cls["vectorConfig"])
    # The legacy unnamed vector exists when the class has a top-level vectorIndexConfig (a
    # named-vector class may still carry a top-level "vectorizer": "none").
    if "vectorIndexConfig" in cls:
        configs[""] = {"vectorizer": cls.get("vectorizer"),
                       "vectorIndexType": cls.get("vectorIndexType"),
                       "vectorIndexConfig": cls.get("vectorIndexConfig") or {}}
    out = []
    for name in sorted(configs):
        conf = configs[name]
        index_conf = conf.get("vectorIndexConfig") or {}
        distance = index_conf.get("distance")
        multi = bool((index_conf.get("multivector") or {}).get("enabled"))
        out.append(VectorField(
            name=name, dim=None, metric=DISTANCE_TO_METRIC.get(distance, Metric.UNKNOWN),
            dtype="float32", multivector=multi,
            index={"type": conf.get("vectorIndexType"), "distance": distance,
                   "vectorizer": conf.get("vectorizer")}))
    return tuple(out)


def _property_types(cls: dict[str, Any]) -> dict[str, Any]:
    """name -> dataType (or, for objects, (dataType, nested types)) for value fixing."""
    def walk(props: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in props:
            base = p["dataType"][0]
            out[p["name"]] = (base, walk(p["nestedProperties"])) if p.get("nestedProperties") else base
        return out
    return walk(cls.get("properties") or [])


def _fix(value: Any, kind: Any) -> Any:
    """Give values the type their dataType says (a whole number arrives as an int)."""
    if isinstance(kind, tuple):
        base, nested = kind
        if isinstance(value, list):
            return [_fix(v, kind) for v in value]
        if isinstance(value, dict):
            return {k: _fix(v, nested.get(k)) for k, v in value.items()}
        return value
    if kind in ("number", "number[]"):
        if isinstance(value, list):
            return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
    return value


def _record(obj: dict[str, Any], types: dict[str, Any]) -> Record:
    vectors: dict[str, np.ndarray] = {}
    if obj.get("vector"):
        vectors[""] = np.asarray(obj["vector"], dtype=np.float32)
    for name, vec in (obj.get("vectors") or {}).items():
        if vec is not None and len(vec):
            vectors[name] = np.asarray(vec, dtype=np.float32)
    props = obj.get("properties") or {}
    metadata = {k: _fix(v, types.get(k)) for k, v in props.items()}
    return Record(id=str(obj["id"]), vectors=vectors, metadata=metadata)


def _uuid(rid: RecordId) -> str:
    try:
        return str(uuidlib.UUID(str(rid)))
    except ValueError:
        raise UsageError("Weaviate object ids are UUIDs: map other ids to UUIDs first") from None


def _object(rec: Record, cls: str, tenant: str, refs: set[str], named: bool) -> dict[str, Any]:
    if rec.sparse:
        raise UsageError("Weaviate cannot store sparse vectors "
                         f"({', '.join(repr(n) for n in rec.sparse)})")
    props = dict(rec.metadata or {})
    for name in refs & set(props):
        if isinstance(props[name], list):
            props[name] = [{"beacon": r["beacon"]} if isinstance(r, dict) and "beacon" in r else r
                           for r in props[name]]
    obj: dict[str, Any] = {"class": cls, "id": _uuid(rec.id), "properties": props}
    if tenant:
        obj["tenant"] = tenant
    vectors = {}
    for name, vec in rec.vectors.items():
        arr = np.asarray(vec)
        exact = arr.astype(np.float32)
        if arr.dtype != np.float32 and not np.array_equal(exact.astype(arr.dtype), arr):
            raise UsageError(f"{arr.dtype} vectors cannot be stored exactly in Weaviate (float32)")
        if not np.isfinite(exact).all():
            raise UsageError("Weaviate rejects NaN or infinite vector values")
        vectors[name] = exact.tolist()
    if "" in vectors:
        if named:
            raise UsageError(f"Weaviate class {cls!r} has named vectors only: "
                             "map the unnamed vector to a name first")
        obj["vector"] = vectors.pop("")
    if vectors:
        obj["vectors"] = vectors
    return obj


def _class_for(schema: CollectionSchema, name: str) -> tuple[dict[str, Any], list[str]]:
    """The class definition to create, and the tenants to create in it."""
    original = schema.extras.get("class") if schema.provider == "weaviate" else None
    if isinstance(original, dict):
        body = copy.deepcopy(original)
        body["class"] = name
        for computed in SERVER_COMPUTED:      # the server works these out itself
            (body.get("shardingConfig") or {}).pop(computed, None)
        tenants = [t["name"] for t in schema.extras.get("tenants") or []]
        if not tenants and _multi_tenant(body):
            layout = _Layout.of(body)
            mapping = layout.tenants if layout is not None else {}
            tenants = [mapping.get(n, n) for n in schema.namespaces]
        return body, [t for t in tenants if t]
    return _neutral_class(schema, name)


def _neutral_class(schema: CollectionSchema, name: str) -> tuple[dict[str, Any], list[str]]:
    """A class in the neutral layout for a schema from another provider: its vectors (the
    unnamed one too), metadata fields, namespaces as tenants ("" as a reserved tenant), and a
    marker in the description so describe() and scan() give the neutral form back."""
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
        distance = METRIC_TO_DISTANCE.get(v.metric)
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


class _Layout:
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
    def of(cls, wclass: dict[str, Any]) -> "_Layout | None":
        try:
            marker = json.loads(wclass.get("description") or "")
        except ValueError:
            return None
        if isinstance(marker, dict) and marker.get(MARKER) == 1 and marker.get("layout") == LAYOUT:
            return cls(marker, wclass)
        return None

    def describe(self, cls: dict[str, Any], tenants: list[dict[str, Any]]) -> CollectionSchema:
        back_t = {t: n for n, t in self.tenants.items()}
        back_v = {w: n for n, w in self.vectors.items()}
        dims = self.marker.get("dims") or {}
        vectors = []
        for v in _vector_fields(cls):
            name = back_v.get(v.name, v.name)
            vectors.append(VectorField(name=name, dim=dims.get(name), metric=v.metric,
                                       dtype=v.dtype, multivector=v.multivector, index=v.index))
        namespaces = (tuple(sorted(back_t.get(t["name"], t["name"]) for t in tenants))
                      if _multi_tenant(cls) else ("",))
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

    def object(self, rec: Record, cls: dict[str, Any], tenant: str) -> dict[str, Any]:
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
        named = bool(cls.get("vectorConfig"))
        renamed = {self.vectors.get(n, n): v for n, v in rec.vectors.items()}
        return _object(Record(rec.id, renamed, rec.sparse, props), cls["class"], tenant, set(), named)

    def record(self, obj: dict[str, Any]) -> Record:
        raw = _record(obj, {})
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
