"""An emulator of Pinecone's REST API, API version 2026-07 (tests and benchmarks only; not part of the installed package).

No Pinecone server runs outside Pinecone's cloud (Pinecone Local is a Docker image), so the
connector is tested through the official `pinecone` SDK (10.x, which speaks 2026-07) against
this small threaded HTTP server on a loopback port. It implements exactly what the SDK and
the connector call, with the request and response shapes of pinecone-io's published OpenAPI
specifications (db_control / db_data 2026-07):

control plane (the emulator's own port)
    GET /indexes, POST /indexes, GET /indexes/{name}, PATCH /indexes/{name},
    DELETE /indexes/{name}; errors are `{"error": {"code", "message"}, "status"}`.
data plane (one port per index, its `host`)
    POST /vectors/upsert, POST /vectors/update, POST /vectors/delete, GET /vectors/fetch,
    GET /vectors/list (serverless only), POST /describe_index_stats, POST /query (dense
    vectors, exact: every stored vector scored by the index's metric); errors are rpcStatus
    `{"code", "message", "details"}`, and a bad key is a text/plain 401.

Faithful where it matters to a backup: every request needs the `Api-Key` header and the
`X-Pinecone-Api-Version` header; dense values are stored as float32 and numbers in metadata
as float64 (so an int written comes back as a float); ids are listed in bitwise order with an
opaque pagination token; writes become visible only `visibility_delay` seconds later (eventual
consistency); and faults can be injected: a number of 429 or 5xx answers, and slow answers.

One file of about 600 lines on purpose: it is read side by side with the API specification it
follows, endpoint by endpoint.
"""
from __future__ import annotations

import base64
import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

API_VERSION = "2026-07"
DEFAULT_NAMESPACE = "__default__"      # how 2026-07 names the default namespace in stats
MAX_UPSERT_VECTORS = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_FETCH_IDS = 1000
MAX_LIST_LIMIT = 100
DEFAULT_LIST_LIMIT = 100
MAX_METADATA_BYTES = 40 * 1024
DENSE_FIELD = "_values"
SPARSE_FIELD = "_sparse_values"
METRICS = ("cosine", "euclidean", "dotproduct")

# gRPC status codes used in data-plane error bodies (rpcStatus.code).
INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE = 3, 5, 8, 13, 14


class ApiFailure(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class StoredVector:
    values: np.ndarray | None                 # float32
    sparse: tuple[list[int], np.ndarray] | None
    metadata: dict[str, Any] | None

    def to_json(self, rid: str) -> dict[str, Any]:
        out: dict[str, Any] = {"id": rid}
        out["values"] = [] if self.values is None else [float(x) for x in self.values]
        if self.sparse is not None:
            out["sparseValues"] = {"indices": list(self.sparse[0]),
                                   "values": [float(x) for x in self.sparse[1]]}
        if self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass
class EmulatedIndex:
    name: str
    fields: dict[str, dict[str, Any]]
    deployment: dict[str, Any]
    deletion_protection: str = "disabled"
    tags: dict[str, str] | None = None
    read_capacity: dict[str, Any] | None = None
    ready_at: float = 0.0
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None
    namespaces: dict[str, dict[str, StoredVector]] = field(default_factory=dict)
    pending: list[tuple[float, str, str, Any]] = field(default_factory=list)  # (when, op, ns, arg)

    @property
    def pod(self) -> bool:
        return self.deployment.get("deployment_type") == "pod"

    @property
    def dense(self) -> dict[str, Any] | None:
        return self.fields.get(DENSE_FIELD)

    @property
    def sparse(self) -> bool:
        return SPARSE_FIELD in self.fields

    @property
    def host(self) -> str | None:
        return None if self.server is None else f"http://127.0.0.1:{self.server.server_address[1]}"


class PineconeEmulator:
    """The control plane on one port; each index gets its own data-plane port.

    Knobs (attributes, safe to change while running):
      visibility_delay  seconds before a write is visible to fetch, list and stats
      ready_delay       seconds a new index reports `Initializing` before `Ready`
      slow              seconds every request waits before it is answered
    and `inject(status, count)` makes the next `count` data-plane requests fail.
    Counters: `faults_served` (injected failures answered), `requests` (method, path).
    """

    def __init__(self, api_key: str, visibility_delay: float = 0.0, ready_delay: float = 0.0) -> None:
        self.api_key = api_key
        self.visibility_delay = visibility_delay
        self.ready_delay = ready_delay
        self.slow = 0.0
        self.faults_served = 0
        self.requests: list[tuple[str, str]] = []
        self.indexes: dict[str, EmulatedIndex] = {}
        self._faults: list[tuple[int, int, str]] = []     # (status, remaining, plane)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "PineconeEmulator":
        self._server, self._thread = _serve(self, None)
        return self

    def stop(self) -> None:
        with self._lock:
            servers = [(i.server, i.thread) for i in self.indexes.values()]
            for idx in self.indexes.values():
                idx.server = None
        servers.append((self._server, self._thread))
        for server, thread in servers:
            if server is not None:
                server.shutdown()
                server.server_close()
            if thread is not None:
                thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> "PineconeEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "emulator not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ------------------------------------------------------------ faults

    def inject(self, status: int, count: int, plane: str = "data") -> None:
        """The next `count` requests to `plane` ("data", "control" or "any") get `status`."""
        with self._lock:
            self._faults.append((status, count, plane))

    def _take_fault(self, plane: str) -> int | None:
        with self._lock:
            for i, (status, remaining, where) in enumerate(self._faults):
                if where in (plane, "any") and remaining > 0:
                    if remaining == 1:
                        del self._faults[i]
                    else:
                        self._faults[i] = (status, remaining - 1, where)
                    self.faults_served += 1
                    return status
        return None

    def settle(self) -> None:
        """Make every pending write visible now (for test set-up)."""
        with self._lock:
            for idx in self.indexes.values():
                _apply(idx, math.inf)

    # ------------------------------------------------------------ control plane

    def control(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["indexes"]:
            if method == "GET":
                with self._lock:
                    return 200, {"indexes": [self._model(i) for i in self.indexes.values()]}
            if method == "POST":
                return 201, self._create(body)
        if len(parts) == 2 and parts[0] == "indexes":
            name = parts[1]
            with self._lock:
                idx = self.indexes.get(name)
                if idx is None:
                    raise ApiFailure(404, "NOT_FOUND", f"Resource {name} not found")
                if method == "GET":
                    return 200, self._model(idx)
                if method == "PATCH":
                    return 200, self._configure(idx, body)
                if method == "DELETE":
                    if idx.deletion_protection == "enabled":
                        raise ApiFailure(403, "FORBIDDEN", f"Deletion protection is enabled for "
                                         f"this index. Disable deletion protection before retrying.")
                    del self.indexes[name]
            if method == "DELETE":
                _close(idx)
                return 202, None
        raise ApiFailure(404, "NOT_FOUND", f"no route {method} {path}")

    def _create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiFailure(400, "INVALID_ARGUMENT", "request body must be a JSON object")
        name = body.get("name")
        if not isinstance(name, str) or not name or len(name) > 45:
            raise ApiFailure(400, "INVALID_ARGUMENT", "name must be 1-45 characters")
        fields = ((body.get("schema") or {}).get("fields")) or {}
        if not fields or set(fields) - {DENSE_FIELD, SPARSE_FIELD}:
            raise ApiFailure(400, "INVALID_ARGUMENT", "the emulator serves vector indexes only: "
                             f"schema fields must be {DENSE_FIELD} and/or {SPARSE_FIELD}")
        dense = fields.get(DENSE_FIELD)
        if dense is not None:
            if dense.get("type") != "dense_vector" or not isinstance(dense.get("dimension"), int):
                raise ApiFailure(400, "INVALID_ARGUMENT", f"{DENSE_FIELD} must be a dense_vector "
                                 "with a dimension")
            dense.setdefault("metric", "cosine")
            if dense["metric"] not in METRICS:
                raise ApiFailure(400, "INVALID_ARGUMENT", f"unknown metric {dense['metric']}")
        deployment = body.get("deployment") or {"deployment_type": "managed", "cloud": "aws",
                                                "region": "us-east-1"}
        with self._lock:
            if name in self.indexes:
                raise ApiFailure(409, "ALREADY_EXISTS", f"Resource {name} already exists")
            idx = EmulatedIndex(
                name=name, fields={k: dict(v) for k, v in fields.items()}, deployment=dict(deployment),
                deletion_protection=body.get("deletion_protection") or "disabled",
                tags=body.get("tags") or None, read_capacity=body.get("read_capacity"),
                ready_at=time.monotonic() + self.ready_delay)
            idx.server, idx.thread = _serve(self, idx)
            self.indexes[name] = idx
            return self._model(idx)

    def _configure(self, idx: EmulatedIndex, body: Any) -> dict[str, Any]:
        body = body if isinstance(body, dict) else {}
        if body.get("deletion_protection") in ("enabled", "disabled"):
            idx.deletion_protection = body["deletion_protection"]
        if isinstance(body.get("tags"), dict):
            tags = dict(idx.tags or {})
            for k, v in body["tags"].items():
                if v == "":
                    tags.pop(k, None)
                else:
                    tags[k] = v
            idx.tags = tags or None
        return self._model(idx)

    def _model(self, idx: EmulatedIndex) -> dict[str, Any]:
        ready = time.monotonic() >= idx.ready_at
        deployment = dict(idx.deployment)
        if deployment.get("deployment_type") == "managed":
            deployment.setdefault("environment", f"{deployment.get('region')}-emulator")
        out: dict[str, Any] = {
            "name": idx.name,
            "host": idx.host,
            "status": {"ready": ready, "state": "Ready" if ready else "Initializing"},
            "schema": {"fields": idx.fields},
            "deployment": deployment,
            "deletion_protection": idx.deletion_protection,
            "tags": idx.tags,
        }
        if not idx.pod:
            out["read_capacity"] = idx.read_capacity or {"mode": "OnDemand",
                                                         "status": {"state": "Ready"}}
        return out

    # ------------------------------------------------------------ data plane

    def data(self, idx: EmulatedIndex, method: str, path: str, query: dict[str, list[str]],
             body: Any) -> tuple[int, Any]:
        with self._lock:
            if self.indexes.get(idx.name) is not idx:
                raise ApiFailure(404, "NOT_FOUND", "index not found")
            now = time.monotonic()
            _apply(idx, now)
            if (method, path) == ("POST", "/vectors/upsert"):
                return 200, self._upsert(idx, body, now)
            if (method, path) == ("POST", "/vectors/update"):
                return 200, self._update(idx, body, now)
            if (method, path) == ("POST", "/vectors/delete"):
                return 200, self._delete(idx, body, now)
            if (method, path) == ("GET", "/vectors/fetch"):
                return 200, self._fetch(idx, query)
            if (method, path) == ("GET", "/vectors/list"):
                return 200, self._list(idx, query)
            if (method, path) == ("POST", "/describe_index_stats"):
                return 200, self._stats(idx)
            if (method, path) == ("POST", "/query"):
                return 200, self._query(idx, body)
        raise ApiFailure(404, "NOT_FOUND", f"no route {method} {path}")

    def _later(self, idx: EmulatedIndex, now: float, op: str, ns: str, arg: Any) -> None:
        idx.pending.append((now + self.visibility_delay, op, ns, arg))
        if self.visibility_delay <= 0:
            _apply(idx, now)

    def _upsert(self, idx: EmulatedIndex, body: Any, now: float) -> dict[str, Any]:
        vectors = body.get("vectors") if isinstance(body, dict) else None
        if not isinstance(vectors, list) or not vectors:
            raise ApiFailure(400, "INVALID_ARGUMENT", "vectors must be a non-empty array")
        if len(vectors) > MAX_UPSERT_VECTORS:
            raise ApiFailure(400, "INVALID_ARGUMENT", f"Upsert batch size of {len(vectors)} exceeds "
                             f"the maximum of {MAX_UPSERT_VECTORS} vectors")
        ns = _namespace(body.get("namespace"))
        parsed = [(v.get("id"), _parse_vector(idx, v)) for v in vectors]
        for rid, _ in parsed:
            if not isinstance(rid, str) or not rid or len(rid) > 512:
                raise ApiFailure(400, "INVALID_ARGUMENT", "vector id must be 1-512 characters")
        self._later(idx, now, "upsert", ns, parsed)
        return {"upsertedCount": len(parsed)}

    def _update(self, idx: EmulatedIndex, body: Any, now: float) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise ApiFailure(400, "INVALID_ARGUMENT", "update needs an id")
        ns = _namespace(body.get("namespace"))
        values = None
        if body.get("values"):
            values = _dense_values(idx, body["values"])
        sparse = _sparse_values(idx, body["sparseValues"]) if body.get("sparseValues") else None
        meta = _metadata(body["setMetadata"]) if body.get("setMetadata") else None
        self._later(idx, now, "update", ns, (body["id"], values, sparse, meta))
        return {"matchedRecords": 1 if body["id"] in idx.namespaces.get(ns, {}) else 0}

    def _delete(self, idx: EmulatedIndex, body: Any, now: float) -> dict[str, Any]:
        body = body if isinstance(body, dict) else {}
        ns = _namespace(body.get("namespace"))
        if body.get("deleteAll"):
            self._later(idx, now, "delete_all", ns, None)
        elif isinstance(body.get("ids"), list):
            self._later(idx, now, "delete", ns, list(body["ids"]))
        else:
            raise ApiFailure(400, "INVALID_ARGUMENT", "delete needs ids or deleteAll")
        return {}

    def _fetch(self, idx: EmulatedIndex, query: dict[str, list[str]]) -> dict[str, Any]:
        ids = query.get("ids") or []
        if not ids:
            raise ApiFailure(400, "INVALID_ARGUMENT", "No IDs provided")
        if len(ids) > MAX_FETCH_IDS:
            raise ApiFailure(400, "INVALID_ARGUMENT", f"Cannot fetch more than {MAX_FETCH_IDS} ids")
        ns = _namespace((query.get("namespace") or [""])[0])
        store = idx.namespaces.get(ns, {})
        found = {rid: store[rid].to_json(rid) for rid in ids if rid in store}
        return {"vectors": found, "namespace": ns if ns else "",
                "usage": {"readUnits": max(1, len(found) // 10)}}

    def _list(self, idx: EmulatedIndex, query: dict[str, list[str]]) -> dict[str, Any]:
        if idx.pod:
            raise ApiFailure(400, "INVALID_ARGUMENT",
                             "The list operation is only supported for serverless indexes")
        ns = _namespace((query.get("namespace") or [""])[0])
        prefix = (query.get("prefix") or [""])[0]
        try:
            limit = int((query.get("limit") or [DEFAULT_LIST_LIMIT])[0])
        except ValueError:
            raise ApiFailure(400, "INVALID_ARGUMENT", "limit must be an integer") from None
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ApiFailure(400, "INVALID_ARGUMENT", f"limit must be between 1 and {MAX_LIST_LIMIT}")
        token = (query.get("paginationToken") or [None])[0]
        after = b""
        if token:
            try:
                after = base64.urlsafe_b64decode(token.encode()).removeprefix(b"after:")
            except ValueError:
                raise ApiFailure(400, "INVALID_ARGUMENT", "invalid pagination token") from None
        keys = sorted((k.encode() for k in idx.namespaces.get(ns, {})
                       if k.startswith(prefix)))          # bitwise ("C") order
        page = [k for k in keys if k > after][:limit + 1]
        out: dict[str, Any] = {"vectors": [{"id": k.decode()} for k in page[:limit]],
                               "namespace": ns, "usage": {"readUnits": 1}}
        if len(page) > limit:
            out["pagination"] = {"next": base64.urlsafe_b64encode(b"after:" + page[limit - 1]).decode()}
        return out

    def _query(self, idx: EmulatedIndex, body: Any) -> dict[str, Any]:
        """Exact nearest neighbours of a dense query vector (score: cosine similarity, dot
        product, or squared euclidean distance, ascending for euclidean as Pinecone orders it)."""
        body = body if isinstance(body, dict) else {}
        top_k = body.get("topK")
        if not isinstance(top_k, int) or not 1 <= top_k <= 10000:
            raise ApiFailure(400, "INVALID_ARGUMENT", "topK must be between 1 and 10000")
        if idx.dense is None or not body.get("vector"):
            raise ApiFailure(400, "INVALID_ARGUMENT", "the emulator answers dense vector queries only")
        q = _dense_values(idx, body["vector"]).astype(np.float64)
        ns = _namespace(body.get("namespace"))
        items = [(rid, v.values) for rid, v in idx.namespaces.get(ns, {}).items() if v.values is not None]
        metric = idx.dense.get("metric", "cosine")
        scored = []
        for rid, values in items:
            x = values.astype(np.float64)
            if metric == "euclidean":
                score = float(((q - x) ** 2).sum())
            elif metric == "dotproduct":
                score = float(q @ x)
            else:
                denom = float(np.linalg.norm(q) * np.linalg.norm(x))
                score = float(q @ x) / denom if denom else 0.0
            scored.append((score, rid))
        scored.sort(key=lambda t: (t[0] if metric == "euclidean" else -t[0], t[1]))
        return {"matches": [{"id": rid, "score": score} for score, rid in scored[:top_k]],
                "namespace": ns, "usage": {"readUnits": 1}}

    def _stats(self, idx: EmulatedIndex) -> dict[str, Any]:
        spaces = {(ns or DEFAULT_NAMESPACE): {"vectorCount": len(store)}
                  for ns, store in sorted(idx.namespaces.items()) if store}
        dense = idx.dense
        return {"namespaces": spaces, "dimension": dense["dimension"] if dense else None,
                "indexFullness": 0.0, "totalVectorCount": sum(len(s) for s in idx.namespaces.values()),
                "metric": dense["metric"] if dense else "dotproduct",
                "vectorType": "dense" if dense else "sparse"}


# -------------------------------------------------------------------- helpers


def _namespace(ns: Any) -> str:
    if ns is None or ns == DEFAULT_NAMESPACE:
        return ""
    if not isinstance(ns, str):
        raise ApiFailure(400, "INVALID_ARGUMENT", "namespace must be a string")
    return ns


def _apply(idx: EmulatedIndex, now: float) -> None:
    """Make the writes whose visibility time has come visible, in the order they were made."""
    keep = []
    for item in idx.pending:
        when, op, ns, arg = item
        if when > now:
            keep.append(item)
            continue
        store = idx.namespaces.setdefault(ns, {})
        if op == "upsert":
            for rid, vec in arg:
                store[rid] = vec
        elif op == "update":
            rid, values, sparse, meta = arg
            old = store.get(rid)
            if old is not None:
                if values is not None:
                    old.values = values
                if sparse is not None:
                    old.sparse = sparse
                if meta is not None:
                    old.metadata = {**(old.metadata or {}), **meta}
        elif op == "delete":
            for rid in arg:
                store.pop(rid, None)
        elif op == "delete_all":
            store.clear()
        if not store:
            idx.namespaces.pop(ns, None)
    idx.pending = keep


def _parse_vector(idx: EmulatedIndex, v: Any) -> StoredVector:
    if not isinstance(v, dict):
        raise ApiFailure(400, "INVALID_ARGUMENT", "each vector must be an object")
    values = v.get("values") or []
    dense = _dense_values(idx, values) if values or idx.dense else None
    sparse = _sparse_values(idx, v["sparseValues"]) if v.get("sparseValues") else None
    if dense is None and sparse is None:
        raise ApiFailure(400, "INVALID_ARGUMENT", "Vector must have dense or sparse values")
    meta = _metadata(v["metadata"]) if v.get("metadata") else None
    return StoredVector(dense, sparse, meta)


def _dense_values(idx: EmulatedIndex, values: Any) -> np.ndarray:
    dense = idx.dense
    if dense is None:
        raise ApiFailure(400, "INVALID_ARGUMENT", "Sparse index does not accept dense values")
    if not isinstance(values, list) or len(values) != dense["dimension"]:
        n = len(values) if isinstance(values, list) else 0
        raise ApiFailure(400, "INVALID_ARGUMENT", f"Vector dimension {n} does not match the "
                         f"dimension of the index {dense['dimension']}")
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ApiFailure(400, "INVALID_ARGUMENT", "vector values must be finite")
    return arr.astype(np.float32)


def _sparse_values(idx: EmulatedIndex, sv: Any) -> tuple[list[int], np.ndarray]:
    if not idx.sparse:
        raise ApiFailure(400, "INVALID_ARGUMENT", "Index does not support sparse values: declare "
                         f"a {SPARSE_FIELD} sparse_vector field")
    if not isinstance(sv, dict):
        raise ApiFailure(400, "INVALID_ARGUMENT", "sparseValues must be an object")
    indices, values = sv.get("indices") or [], sv.get("values") or []
    if len(indices) != len(values) or len(indices) > 2048:
        raise ApiFailure(400, "INVALID_ARGUMENT", "sparse indices and values must have equal "
                         "length (at most 2048)")
    if any(not isinstance(i, int) or i < 0 or i > 2**32 - 1 for i in indices):
        raise ApiFailure(400, "INVALID_ARGUMENT", "sparse indices must be unsigned 32-bit integers")
    if len(set(indices)) != len(indices):
        raise ApiFailure(400, "INVALID_ARGUMENT", "sparse indices must be unique")
    return list(indices), np.asarray(values, dtype=np.float32)


def _metadata(meta: Any) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise ApiFailure(400, "INVALID_ARGUMENT", "metadata must be an object")
    out: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, bool) or isinstance(value, str):
            out[key] = value
        elif isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise ApiFailure(400, "INVALID_ARGUMENT", f"Metadata value for field {key} must be finite")
            out[key] = float(value)                  # Pinecone keeps numbers as float64
        elif isinstance(value, list) and all(isinstance(x, str) for x in value):
            out[key] = list(value)
        else:
            raise ApiFailure(400, "INVALID_ARGUMENT", f"Metadata value for field {key} must be a "
                             "string, number, boolean or list of strings")
    if len(json.dumps(out).encode()) > MAX_METADATA_BYTES:
        raise ApiFailure(400, "INVALID_ARGUMENT", "Metadata size exceeds the limit of 40960 bytes")
    return out


def _close(idx: EmulatedIndex) -> None:
    server, thread = idx.server, idx.thread
    idx.server = None
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(timeout=5)


def _serve(emu: PineconeEmulator, idx: EmulatedIndex | None) -> tuple[ThreadingHTTPServer, threading.Thread]:
    handler = type("Handler", (_Handler,), {"emu": emu, "index": idx})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="pinecone-emulator", daemon=True)
    thread.start()
    return server, thread


class _Handler(BaseHTTPRequestHandler):
    emu: PineconeEmulator
    index: EmulatedIndex | None
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:   # quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        emu, plane = self.emu, "control" if self.index is None else "data"
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with emu._lock:
            emu.requests.append((method, parts.path))
        if emu.slow:
            time.sleep(emu.slow)
        if self.headers.get("Api-Key") != emu.api_key:
            if plane == "data":
                return self._send(401, b"Invalid API Key", "text/plain")
            return self._error(plane, ApiFailure(401, "UNAUTHENTICATED", "Invalid API Key"))
        if not self.headers.get("X-Pinecone-Api-Version"):
            return self._error(plane, ApiFailure(400, "INVALID_ARGUMENT",
                                                 "missing X-Pinecone-Api-Version header"))
        fault = emu._take_fault(plane)
        if fault is not None:
            code = "RESOURCE_EXHAUSTED" if fault == 429 else "INTERNAL"
            text = ("Request failed. You've reached the max request rate for this index."
                    if fault == 429 else "Internal error (injected)")
            return self._error(plane, ApiFailure(fault, code, text))
        if len(raw) > MAX_REQUEST_BYTES:
            return self._error(plane, ApiFailure(400, "INVALID_ARGUMENT", f"Request size "
                                                 f"{len(raw)} exceeds the maximum of {MAX_REQUEST_BYTES}"))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._error(plane, ApiFailure(400, "INVALID_ARGUMENT", "malformed JSON body"))
        try:
            if self.index is None:
                status, payload = emu.control(method, parts.path, body)
            else:
                query = parse_qs(parts.query, keep_blank_values=True)
                status, payload = emu.data(self.index, method, parts.path, query, body)
        except ApiFailure as e:
            return self._error(plane, e)
        data = b"" if payload is None else json.dumps(payload).encode()
        self._send(status, data, "application/json")

    def _error(self, plane: str, e: ApiFailure) -> None:
        if plane == "control":
            body = {"error": {"code": e.code, "message": e.message}, "status": e.status}
        else:
            grpc = {400: INVALID_ARGUMENT, 404: NOT_FOUND, 429: RESOURCE_EXHAUSTED,
                    503: UNAVAILABLE}.get(e.status, INTERNAL)
            body = {"code": grpc, "message": e.message, "details": []}
        self._send(e.status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, data: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)
