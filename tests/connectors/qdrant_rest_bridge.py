"""A loopback REST front for qdrant-client's local mode (test tree only; not a Qdrant server).

No Qdrant server binary can run on these machines, yet the connector's `qdrant://` path
(QdrantClient(url=...), REST over httpx, API-key header, HTTP error handling) must be
exercised. This module serves the handful of Qdrant REST endpoints that path calls, with
the request and response shapes of Qdrant's OpenAPI spec, and executes every request on a
real `QdrantClient(":memory:")`: the engine behind it is qdrant-client's own local mode,
with its behaviour (Cosine normalisation, sparse index sorting, ignored HNSW settings and
payload indexes) and its limits.

Request bodies are parsed into the SDK's generated `qdrant_client.http.models` (generated
from the same OpenAPI spec, so a shape the spec does not allow is refused with 422) and
results are dumped from the models local mode returns, inside the spec's envelope
`{"result": ..., "status": "ok", "time": seconds}`. Errors use the spec's `ErrorResponse`:
`{"status": {"error": "..."}, "time": seconds}`.

Only the endpoints below exist; anything else answers 404, so a connector that starts
calling a new endpoint fails loudly here instead of being silently mocked.
"""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

from pydantic import TypeAdapter, ValidationError
from qdrant_client import QdrantClient, models

Handler = Callable[["Bridge", dict[str, str], Any], Any]
ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def add(fn: Handler) -> Handler:
        regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")
        ROUTES.append((method, regex, fn))
        return fn
    return add


class NotFound(Exception):
    pass


@dataclass
class Bridge:
    """The engine (a local-mode client) and what the HTTP layer needs to know."""
    client: QdrantClient
    api_key: str | None = None
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, path, body)

    def collection(self, name: str) -> str:
        if not self.client.collection_exists(name):
            raise NotFound(f"Not found: Collection `{name}` doesn't exist!")
        return name


def _parse(kind: Any, body: Any) -> Any:
    return TypeAdapter(kind).validate_python(body)


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


# ------------------------------------------------------------------ collections


@route("GET", "/collections")
def list_collections(b: Bridge, p: dict[str, str], body: Any) -> Any:
    return b.client.get_collections()


@route("GET", "/collections/{name}/exists")
def collection_exists(b: Bridge, p: dict[str, str], body: Any) -> Any:
    return {"exists": b.client.collection_exists(p["name"])}


@route("GET", "/collections/{name}")
def get_collection(b: Bridge, p: dict[str, str], body: Any) -> Any:
    return b.client.get_collection(b.collection(p["name"]))


@route("PUT", "/collections/{name}")
def create_collection(b: Bridge, p: dict[str, str], body: Any) -> Any:
    req = _parse(models.CreateCollection, body or {})
    if b.client.collection_exists(p["name"]):
        raise ValueError(f"Wrong input: Collection `{p['name']}` already exists!")
    kwargs = {k: getattr(req, k) for k in (
        "shard_number", "sharding_method", "replication_factor", "write_consistency_factor",
        "on_disk_payload", "hnsw_config", "optimizers_config", "wal_config",
        "quantization_config", "strict_mode_config", "metadata")}
    return b.client.create_collection(p["name"], vectors_config=req.vectors,
                                      sparse_vectors_config=req.sparse_vectors, **kwargs)


@route("DELETE", "/collections/{name}")
def delete_collection(b: Bridge, p: dict[str, str], body: Any) -> Any:
    return b.client.delete_collection(p["name"])


@route("PUT", "/collections/{name}/index")
def create_index(b: Bridge, p: dict[str, str], body: Any) -> Any:
    req = _parse(models.CreateFieldIndex, body)
    b.client.create_payload_index(b.collection(p["name"]), req.field_name,
                                  field_schema=req.field_schema)
    return models.UpdateResult(operation_id=0, status=models.UpdateStatus.COMPLETED)


# ---------------------------------------------------------------------- aliases


@route("GET", "/aliases")
def aliases(b: Bridge, p: dict[str, str], body: Any) -> Any:
    return b.client.get_aliases()


@route("GET", "/collections/{name}/aliases")
def collection_aliases(b: Bridge, p: dict[str, str], body: Any) -> Any:
    return b.client.get_collection_aliases(b.collection(p["name"]))


@route("POST", "/collections/aliases")
def change_aliases(b: Bridge, p: dict[str, str], body: Any) -> Any:
    req = _parse(models.ChangeAliasesOperation, body)
    return b.client.update_collection_aliases(change_aliases_operations=req.actions)


# ----------------------------------------------------------------------- points


@route("POST", "/collections/{name}/points/scroll")
def scroll(b: Bridge, p: dict[str, str], body: Any) -> Any:
    req = _parse(models.ScrollRequest, body or {})
    points, nxt = b.client.scroll(
        b.collection(p["name"]), scroll_filter=req.filter, limit=req.limit or 10,
        offset=req.offset, with_payload=req.with_payload if req.with_payload is not None else True,
        with_vectors=req.with_vector if req.with_vector is not None else False,
        order_by=req.order_by)
    return models.ScrollResult(points=points, next_page_offset=nxt)


@route("POST", "/collections/{name}/points/count")
def count(b: Bridge, p: dict[str, str], body: Any) -> Any:
    req = _parse(models.CountRequest, body or {})
    return b.client.count(b.collection(p["name"]), count_filter=req.filter,
                          exact=req.exact if req.exact is not None else True)


@route("POST", "/collections/{name}/points/query")
def query_points(b: Bridge, p: dict[str, str], body: Any) -> Any:
    req = _parse(models.QueryRequest, body or {})
    return b.client.query_points(b.collection(p["name"]), query=req.query, using=req.using,
                                 limit=req.limit or 10, with_payload=req.with_payload or False,
                                 with_vectors=req.with_vector or False)


@route("PUT", "/collections/{name}/points")
def upsert(b: Bridge, p: dict[str, str], body: Any) -> Any:
    req = _parse(models.PointInsertOperations, body)
    if isinstance(req, models.PointsBatch):
        points: Any = req.batch
    else:
        points = req.points
    return b.client.upsert(b.collection(p["name"]), points=points, wait=True)


@route("POST", "/collections/{name}/points/payload")
def set_payload(b: Bridge, p: dict[str, str], body: Any) -> Any:
    req = _parse(models.SetPayload, body)
    return b.client.set_payload(b.collection(p["name"]), payload=req.payload, points=req.points,
                                key=req.key, wait=True)


@route("POST", "/collections/{name}/points/delete")
def delete_points(b: Bridge, p: dict[str, str], body: Any) -> Any:
    req = _parse(models.PointsSelector, body)
    return b.client.delete(b.collection(p["name"]), points_selector=req, wait=True)


# ----------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    bridge: Bridge
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:   # keep test output clean
        pass

    def _serve(self, method: str) -> None:
        started = time.monotonic()
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._send(400, {"status": {"error": "Json deserialize error"}}, started)
        self.bridge.requests.append((method, path, body))
        if self.bridge.api_key is not None and self.headers.get("api-key") != self.bridge.api_key:
            return self._send(401, {"status": {"error": "Must provide an API key or an "
                                               "Authorization bearer token"}}, started)
        for verb, regex, fn in ROUTES:
            match = regex.match(path)
            if verb == method and match:
                break
        else:
            return self._send(404, {"status": {"error": f"no route {method} {path}"}}, started)
        try:
            result = fn(self.bridge, match.groupdict(), body)
        except NotFound as e:
            return self._send(404, {"status": {"error": str(e)}}, started)
        except ValidationError as e:
            return self._send(422, {"status": {"error": f"Json deserialize error: "
                                               f"{e.error_count()} validation errors"}}, started)
        except (ValueError, KeyError, TypeError, AssertionError) as e:
            return self._send(400, {"status": {"error": f"Wrong input: {e}"}}, started)
        return self._send(200, {"result": _dump(result), "status": "ok"}, started)

    def _send(self, code: int, payload: dict[str, Any], started: float) -> None:
        payload["time"] = time.monotonic() - started
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


class RestBridge:
    """Serve the bridge on 127.0.0.1 in a background thread; one request at a time."""

    def __init__(self, api_key: str | None = None) -> None:
        self.bridge = Bridge(QdrantClient(":memory:"), api_key)
        handler = type("BoundHandler", (_Handler,), {"bridge": self.bridge})
        self._server = HTTPServer(("127.0.0.1", 0), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"qdrant-rest-bridge-{self.port}")

    @property
    def url(self) -> str:
        return f"qdrant://127.0.0.1:{self.port}"

    def __enter__(self) -> "RestBridge":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self.bridge.client.close()
