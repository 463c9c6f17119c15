"""Weaviate connector (connector layer; depends only on model and errors).

    weaviate://HOST:PORT[/Class][?https=1&grpc_port=50051&timeout=60]

The API key is the secret of the credentials the connector is opened with (sent as
`Authorization: Bearer`; at the command line `WEAVIATE_API_KEY` holds it), never the URL. A `/Class` path limits a backup to that class.

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
- Partitions (docs/scale-out.md) are ranges of the UUID space inside a tenant: the cursor
  seeks to `after` (an id that need not exist, as Weaviate's shard cursor seeks its LSM
  bucket), so a range starts after its lower bound minus one; the largest id is found by
  bisection with one-object pages; bounds at power-of-two strides, the last range open.
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
- A schema from another provider becomes a class in the *neutral layout* (layout.py),
  marked by JSON in the class description (`{"vdedup": 1, "layout": "neutral", ...}`) so that
  describe() and scan() give the neutral form back exactly: the namespace "" lives in the
  reserved tenant `_default` (tenant names must match [A-Za-z0-9_-]{1,64}; other names that do
  not are mapped too), the unnamed vector beside named ones (or as a multi-vector) is a named
  vector, names Weaviate refuses are mapped, and dimensions are kept (the schema has none).
  Each property records its metadata key and encoding in its own description; a key gets its
  property at the first write that shows a value (Weaviate adds properties to a class at any
  time), typed from it: text/int/number/boolean, text[]/int[]/number[]/boolean[] for uniform
  lists, JSON text for objects and other lists (nested objects need every nested key declared
  up front, and their nulls would be lost), ISO text for datetimes. What no property holds
  exactly (nulls, which Weaviate does not store; empty lists; a value unlike its property's
  type; ints beyond 2^53) goes as JSON into the one text property `_vdedup`.
"""
from __future__ import annotations

import contextlib
import re
import time
import uuid
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

from ...errors import CollectionNotFound, SourceError, UsageError, VdedupError
from ...model import (CollectionSchema, DiscoveredIndex, IdType, MetadataField, Partition, RecordBatch,
                      RecordId)
from ...model.partition import WHOLE, last_key, stride_ranges, whole
from ..common import (INSECURE_KEY, flag, plain_to_remote, refuse_credentials, refuse_secret_params,
                      refuse_unknown_params)
from ..credentials import NO_CREDENTIALS, Credentials
from ..base import ConnectorBase
from ..url import SourceURL
from .descriptor import DESCRIPTOR
from .discovery import one_object, with_dims
from .failures import (HttpStatus, clean, detail, is_timeout, is_unreachable, retry_after_of,
                       server_message, status_of)
from .layout import Layout
from .schema import (PRIMITIVE_TYPES, TYPE_NAMES, class_for, multi_tenant, property_types,
                     vector_fields)
from .values import object_id, to_object, to_record

KEY_ENV = DESCRIPTOR.secret_env[0]
DEFAULT_PORT = 8080
DEFAULT_GRPC_PORT = 50051
URL_QUERY_KEYS = {"https", "grpc_port", "timeout", INSECURE_KEY}
CLASS_RE = re.compile(r"^[A-Z][_0-9A-Za-z]*$")
MAX_LIMIT = 10000            # the server's default QUERY_MAXIMUM_RESULTS
UUID_MAX = 2 ** 128 - 1
WRITE_CHUNK = 200            # objects per POST /v1/batch/objects
ATTEMPTS = 6                 # tries per request on 429 / 5xx / timeout
BACKOFF = 0.2                # seconds, doubled per retry ...
BACKOFF_CAP = 5.0            # ... up to this
RETRY_STATUS = {429, 500, 502, 503, 504}


T = TypeVar("T")


class WeaviateConnector(ConnectorBase):
    """One Weaviate instance (all its classes, or the one class named in the URL)."""

    provider = "weaviate"
    descriptor = DESCRIPTOR

    def __init__(self, client: Any, http: Any, where: str, only: str | None = None,
                 key_origin: str | None = None) -> None:
        self._client = client
        self._key_origin = key_origin        # where the API key came from (None: no key)
        self._http = http
        self._where = where
        self._only = only
        self._classes: dict[str, dict[str, Any]] = {}

    # ----------------------------------------------------------------- opening

    @classmethod
    def from_url(cls, u: SourceURL, credentials: Credentials = NO_CREDENTIALS) -> "WeaviateConnector":
        refuse_credentials(u, "Weaviate", f"set {KEY_ENV} instead")
        refuse_secret_params(u, "Weaviate", f"set {KEY_ENV} instead")
        refuse_unknown_params(u, "Weaviate", URL_QUERY_KEYS)
        if not u.host:
            raise UsageError("a Weaviate URL needs a host: weaviate://HOST:PORT[/Class]")
        only = u.path.strip("/") or None
        if only is not None and not CLASS_RE.match(only):
            raise UsageError(f"invalid Weaviate class name {only!r} in the URL "
                             "(must match ^[A-Z][_0-9A-Za-z]*$)")
        https = flag(u.query.get("https"))
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
        return cls._connect(u.host, port, https, grpc_port, timeout, only, credentials)

    @classmethod
    def plain_transport(cls, u: SourceURL) -> tuple[str, str] | None:
        return plain_to_remote(u, flag(u.query.get("https")), "?https=1")

    @classmethod
    def _connect(cls, host: str, port: int, https: bool, grpc_port: int, timeout: float,
                 only: str | None, credentials: Credentials) -> "WeaviateConnector":
        import httpx
        import weaviate
        from weaviate.classes.init import AdditionalConfig, Auth, Timeout

        where = f"{host}:{port}"
        key = credentials.secret or None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        scheme = "https" if https else "http"
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        http = httpx.Client(base_url=f"{scheme}://{netloc}/v1", headers=headers,
                            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)))
        conn = cls(None, http, where, only, credentials.origin if key else None)

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

    @property
    def url_collection(self) -> str | None:
        """The class the URL names (a restore writes there)."""
        return self._only

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
        tenants = self._tenants(collection) if multi_tenant(cls) else []
        layout = Layout.of(cls)
        if layout is not None:
            return layout.describe(cls, tenants, vector_fields(cls), multi_tenant(cls))
        namespaces = tuple(t["name"] for t in tenants) if multi_tenant(cls) else ("",)
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
            vectors=vector_fields(cls), metadata_fields=tuple(fields), namespaces=namespaces,
            options={"description": cls.get("description")},
            extras={"class": cls, "tenants": tenants})

    def discover(self) -> list[DiscoveredIndex]:
        """The default, with the dimensions the schema does not hold (weaviate/discovery.py)."""
        fetch = one_object(self._rest)
        return [d if d.problem else with_dims(d, self._class(d.name), fetch) for d in super().discover()]

    def count(self, collection: str, namespace: str = "") -> int:
        cls = self._class(collection)
        namespace = self._tenant(cls, namespace)
        tenant = f'(tenant: "{namespace}")' if namespace else ""
        query = "{ Aggregate { %s%s { meta { count } } } }" % (cls["class"], tenant)
        answer = self._rest("count", collection, "POST", "/graphql", json={"query": query})
        errors = answer.get("errors")
        if errors:
            raise SourceError(f"Weaviate count of {collection!r} at {self._where} failed: "
                              f"{clean(str(errors[0].get('message', errors[0])))}")
        try:
            return int(answer["data"]["Aggregate"][cls["class"]][0]["meta"]["count"])
        except (KeyError, IndexError, TypeError, ValueError):
            raise SourceError(f"Weaviate count of {collection!r} at {self._where}: "
                              "unexpected answer") from None

    def scan(self, collection: str, namespace: str = "",
             batch_size: int = 1000) -> Iterator[RecordBatch]:
        return self._scan(collection, namespace, batch_size, None, None)

    def partitions(self, collection: str, namespace: str = "",
                   target_size: int = 100_000) -> list[Partition]:
        count = self.count(collection, namespace)
        if count <= target_size:
            return [whole(namespace, count)]
        first = self._first_after(collection, namespace, None)
        if first is None:
            return [whole(namespace, count)]
        # "some object >= x": the cursor starts after x - 1 (it seeks; x - 1 need not exist)
        last = last_key(lambda x: self._first_after(collection, namespace, x - 1) is not None,
                        first, UUID_MAX)
        return stride_ranges(first, last, count, target_size, "uuid", namespace,
                             lambda x: str(uuid.UUID(int=x)))

    def scan_partition(self, collection: str, partition: Partition,
                       batch_size: int = 1000) -> Iterator[RecordBatch]:
        if partition.key == WHOLE:
            return self.scan(collection, partition.namespace, batch_size)
        lo, hi = partition.spec.get("lo"), partition.spec.get("hi")
        if not all(b is None or (isinstance(b, int) and 0 < b <= UUID_MAX) for b in (lo, hi)):
            raise UsageError(f"not a Weaviate partition: {partition.key!r}")
        return self._scan(collection, partition.namespace, batch_size,
                          None if lo is None else str(uuid.UUID(int=lo - 1)), hi)

    def _first_after(self, collection: str, namespace: str, after: int | None) -> int | None:
        """The first object id after `after` (None: the first of all), as an integer."""
        cls = self._class(collection)
        tenant = self._tenant(cls, namespace)
        params: dict[str, Any] = {"class": cls["class"], "limit": 1}
        if tenant:
            params["tenant"] = tenant
        if after is not None:
            params["after"] = str(uuid.UUID(int=after))
        objects = self._rest("scan", collection, "GET", "/objects", params=params).get("objects") or []
        return uuid.UUID(objects[0]["id"]).int if objects else None

    def _scan(self, collection: str, namespace: str, batch_size: int,
              after: str | None, stop: int | None) -> Iterator[RecordBatch]:
        """Objects after the id `after` (None: from the first) below the id `stop` (None: all)."""
        if batch_size < 1:
            raise UsageError("batch size must be at least 1")
        cls = self._class(collection)
        tenant = self._tenant(cls, namespace)
        layout = Layout.of(cls)
        types = property_types(cls)
        limit = min(batch_size, MAX_LIMIT)
        while True:
            params: dict[str, Any] = {"class": cls["class"], "limit": limit, "include": "vector"}
            if tenant:
                params["tenant"] = tenant
            if after is not None:
                params["after"] = after
            page = self._rest("scan", collection, "GET", "/objects", params=params)
            objects = page.get("objects") or []
            full = len(objects) == limit
            if stop is not None:
                kept = [o for o in objects if uuid.UUID(o["id"]).int < stop]
                full = full and len(kept) == len(objects)
                objects = kept
            if objects:
                records = [layout.record(o, to_record(o, {})) if layout is not None
                           else to_record(o, types)
                           for o in objects]
                yield RecordBatch.from_records(records, namespace)
                after = objects[-1]["id"]
            if not full:
                return

    def query(self, collection: str, namespace: str, vector: np.ndarray, k: int,
              vector_name: str = "") -> list[RecordId]:
        """The ids of the k nearest objects as the class's vector index serves them
        (GraphQL `Get` with `nearVector`, over REST like everything else here)."""
        cls = self._class(collection)
        tenant = self._tenant(cls, namespace)
        layout = Layout.of(cls)
        wname = layout.vectors.get(vector_name, vector_name) if layout is not None else vector_name
        values = ", ".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32))
        target = f', targetVectors: ["{wname}"]' if wname else ""
        where = f', tenant: "{tenant}"' if tenant else ""
        gql = "{ Get { %s(nearVector: {vector: [%s]%s}, limit: %d%s) { _additional { id } } } }" % (
            cls["class"], values, target, int(k), where)
        answer = self._rest("query", collection, "POST", "/graphql", json={"query": gql})
        errors = answer.get("errors")
        if errors:
            raise SourceError(f"Weaviate query of {collection!r} at {self._where} failed: "
                              f"{clean(str(errors[0].get('message', errors[0])))}")
        try:
            return [str(o["_additional"]["id"]) for o in answer["data"]["Get"][cls["class"]]]
        except (KeyError, TypeError):
            raise SourceError(f"Weaviate query of {collection!r} at {self._where}: "
                              "unexpected answer") from None

    # --------------------------------------------------------------- writing

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        if not isinstance(name, str) or not CLASS_RE.match(name):
            raise UsageError(f"invalid Weaviate class name {name!r} "
                             "(must match ^[A-Z][_0-9A-Za-z]*$)")
        body, tenants = class_for(schema, name)
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
        layout = Layout.of(cls)
        if layout is not None:
            new = layout.new_properties(records)
            if new:
                for prop in new:
                    self._rest("add property", collection, "POST",
                               f"/schema/{cls['class']}/properties", json=prop)
                cls = self._class(collection, fresh=True)
                layout = Layout.of(cls)
                assert layout is not None
            named = bool(cls.get("vectorConfig"))
            objects = [to_object(layout.to_write(rec, cls), cls["class"], tenant, set(), named)
                       for rec in records]
        else:
            refs = {p["name"] for p in cls.get("properties") or [] if p["dataType"][0] not in PRIMITIVE_TYPES}
            named = bool(cls.get("vectorConfig"))
            objects = [to_object(rec, cls["class"], tenant, refs, named) for rec in records]
        for a in range(0, len(objects), WRITE_CHUNK):
            chunk = objects[a:a + WRITE_CHUNK]
            answer = self._rest("write", collection, "POST", "/batch/objects",
                                json={"objects": chunk, "fields": ["ALL"]})
            failed = [o for o in answer if ((o.get("result") or {}).get("errors") or {}).get("error")]
            if failed:
                first = failed[0]["result"]["errors"]["error"][0].get("message", "")
                raise SourceError(f"Weaviate rejected {len(failed)} of {len(chunk)} objects written "
                                  f"to {collection!r} at {self._where}: {clean(first)}")

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        cls = self._class(collection)
        namespace = self._tenant(cls, namespace)
        handle = self._live().collections.use(cls["class"])
        if namespace:
            handle = handle.with_tenant(namespace)
        for rid in ids:
            oid = object_id(rid)
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
        layout = Layout.of(cls)
        if layout is not None and multi_tenant(cls):
            namespace = layout.tenants.get(namespace, namespace)
        if multi_tenant(cls) and not namespace:
            raise UsageError(f"Weaviate class {cls['class']!r} is multi-tenant: "
                             "every namespace must name a tenant")
        if not multi_tenant(cls) and namespace:
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
                raise HttpStatus(res.status_code, server_message(res),
                                  retry_after_of(res.headers.get("Retry-After")))
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
                status, retry_after = status_of(e)
                transient = status in RETRY_STATUS or (status is None and is_timeout(e))
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
            how = f"check {self._key_origin}" if self._key_origin else f"set {KEY_ENV}"
            return SourceError(f"Weaviate at {self._where} refused the credentials (401 "
                               f"unauthorized): {how}")
        if status == 403:
            return SourceError(f"Weaviate at {self._where} forbids {action}{target} for this "
                               "API key (403)")
        if status == 404 and collection is not None:
            self._classes.pop(collection, None)
            return CollectionNotFound(f"Weaviate class {collection!r} not found at {self._where}")
        if status is None and is_unreachable(e):
            return SourceError(f"cannot reach Weaviate at {self._where}: {type(e).__name__}")
        if status in RETRY_STATUS:
            return SourceError(f"Weaviate {action}{target} at {self._where} failed after "
                               f"{ATTEMPTS} attempts: HTTP {status}")
        if is_timeout(e):
            return SourceError(f"Weaviate {action}{target} at {self._where} timed out "
                               f"{ATTEMPTS} times")
        return SourceError(f"Weaviate {action}{target} at {self._where} failed: {detail(e)}")
