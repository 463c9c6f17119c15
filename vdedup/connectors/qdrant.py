"""Qdrant connector (connector layer; depends only on model and errors).

    qdrant://HOST[:6333][/COLLECTION][?https=1&grpc=1&grpc_port=6334]  QdrantClient(url=..., api_key=...)
    qdrant+local:///abs/path[?collection=C]                 QdrantClient(path=...) (local mode)

The API key comes from the environment (`QDRANT_API_KEY`), never from the URL. A URL that
names a collection limits `list_collections` (and so a backup) to that collection.

Why the code looks the way it does (qdrant-client 1.20):
- Qdrant has no namespaces: every collection has the single namespace "".
- Records are read with `scroll(limit, offset=next_page_offset)`; the cursor is a point id,
  so the scan is bounded in memory and resumable.
- Point ids are unsigned 64-bit integers or UUIDs: ints stay ints, UUIDs become their
  canonical lowercase string.
- Vectors come back as Python floats. A vector declared `float16` or `uint8` is stored in
  that dtype only when the values convert exactly (a real server has already rounded them;
  local mode keeps float32 whatever the datatype says); otherwise float32, exact either way.
  The decision is per record, so an unchanged record always has the same content.
- Cosine collections normalise vectors on write: what is read (and stored) is already the
  normalised vector, and a restore into a Cosine collection returns those same floats.
- The collection's configuration, payload indexes and aliases go verbatim into
  `schema.extras` (pydantic `model_dump(mode="json")`); `create_collection` validates them
  back through the SDK's own `CreateCollection` model, so a restore into Qdrant recreates
  them. Local mode ignores payload indexes, HNSW parameters and shard settings.
"""
from __future__ import annotations

import contextlib
import math
import os
import re
import uuid
import warnings
from typing import Any, ContextManager, Iterator

import numpy as np

from ..errors import CollectionNotFound, SourceError, UsageError, VdedupError
from ..model import (CollectionSchema, IdType, MetadataField, Metric, Record, RecordBatch,
                     RecordId, SparseField, SparseVector, VectorField)
from .common import (error_detail, json_safe, refuse_credentials, refuse_secret_params,
                     translated_errors)
from .url import SourceURL

DISTANCE_TO_METRIC = {"Cosine": Metric.COSINE, "Euclid": Metric.EUCLIDEAN, "Dot": Metric.DOT,
                      "Manhattan": Metric.MANHATTAN}
METRIC_TO_DISTANCE = {metric: name for name, metric in DISTANCE_TO_METRIC.items()}
DATATYPE_TO_DTYPE = {None: "float32", "float32": "float32", "float16": "float16", "uint8": "uint8"}
EXACT_DTYPES = {"float16": np.float16, "uint8": np.uint8}   # narrower than what the client returns
PAYLOAD_INDEX_TYPES = {"keyword": "str", "integer": "int", "float": "float", "bool": "bool",
                       "geo": "dict", "text": "str", "datetime": "datetime", "uuid": "str"}

DEFAULT_PORT = 6333
API_KEY_ENV = "QDRANT_API_KEY"
REMOTE_QUERY_KEYS = {"https", "grpc", "grpc_port"}
DEFAULT_GRPC_PORT = 6334
LOCAL_QUERY_KEYS = {"collection"}
WRITE_CHUNK = 256          # points per upsert: well below the gRPC 4 MB and REST 32 MB limits
MAX_ID = 2**64 - 1
TIMEOUT = 60
# pydantic echoes offending input after these words; cut them so no record data leaks.
DATA_ECHO_RE = re.compile(r"(\[type=|input_value=|,?\s*\bgot\b).*$")


class QdrantConnector:
    """One Qdrant instance: a server (REST or gRPC) or a local-mode directory."""

    provider = "qdrant"

    def __init__(self, client: Any, where: str, collection: str | None = None) -> None:
        self._client = client
        self._where = where                  # "host:port" or "/path": safe for messages
        self._only = collection              # the collection named in the URL, if any
        self._datatypes: dict[str, dict[str, str | None]] = {}

    # ----------------------------------------------------------------- opening

    @classmethod
    def from_url(cls, u: SourceURL) -> "QdrantConnector":
        refuse_credentials(u, "Qdrant", f"set {API_KEY_ENV} instead")
        refuse_secret_params(u, "Qdrant", f"set {API_KEY_ENV} instead", containing=("key",))
        if u.scheme == "qdrant+local":
            return cls._local(u)
        if u.scheme != "qdrant":
            raise UsageError(f"unknown Qdrant URL scheme {u.scheme!r} (use qdrant:// or qdrant+local://)")
        return cls._remote(u)

    @classmethod
    def storage_absent(cls, u: SourceURL) -> bool:
        """Whether the URL names local storage that opening would create (no meta.json yet)."""
        return (u.scheme == "qdrant+local" and not u.host and os.path.isabs(u.path or "")
                and not os.path.exists(os.path.join(u.path, "meta.json")))

    @classmethod
    def _local(cls, u: SourceURL) -> "QdrantConnector":
        _known_params(u, LOCAL_QUERY_KEYS)
        if u.host:
            raise UsageError("qdrant+local takes a path, not a host: qdrant+local:///abs/path")
        path = u.path
        if not path or not os.path.isabs(path):
            raise UsageError("Qdrant local mode needs an absolute path: qdrant+local:///abs/path")
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(f"Qdrant path {path} is not a directory")
        from qdrant_client import QdrantClient

        try:
            client = QdrantClient(path=path)
        except Exception as e:
            raise SourceError(f"cannot open Qdrant local storage at {path}: {_detail(e)}") from e
        return cls(client, path, u.query.get("collection") or None)

    @classmethod
    def _remote(cls, u: SourceURL) -> "QdrantConnector":
        _known_params(u, REMOTE_QUERY_KEYS)
        if not u.host:
            raise UsageError("qdrant:// needs a host: qdrant://HOST:6333[/collection] "
                             "(or qdrant+local:///abs/path for local mode)")
        collection = u.path.strip("/") or None
        if collection and "/" in collection:
            raise UsageError(f"a Qdrant URL names at most one collection (got path {u.path!r})")
        https = _flag(u.query.get("https"))
        grpc = _flag(u.query.get("grpc"))
        try:
            grpc_port = int(u.query.get("grpc_port") or DEFAULT_GRPC_PORT)
        except ValueError:
            raise UsageError("grpc_port in a Qdrant URL must be a number") from None
        port = u.port or DEFAULT_PORT
        host = u.host if ":" not in u.host else f"[{u.host}]"
        where = f"{host}:{port}"
        from qdrant_client import QdrantClient

        api_key = os.environ.get(API_KEY_ENV) or None
        try:
            with warnings.catch_warnings():
                # "Api key is used with an insecure connection": the user chose http on purpose.
                warnings.simplefilter("ignore", UserWarning)
                client = QdrantClient(url=f"{'https' if https else 'http'}://{where}",
                                      api_key=api_key, prefer_grpc=grpc, grpc_port=grpc_port,
                                      timeout=TIMEOUT,
                                      check_compatibility=False)
        except Exception as e:
            raise SourceError(f"cannot open Qdrant at {where}: {_detail(e)}") from e
        conn = cls(client, where, collection)
        with conn._errors("connect"):
            client.get_collections()          # fail now, with a clear message, if unreachable
        return conn

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    # --------------------------------------------------------------- reading

    @property
    def url_collection(self) -> str | None:
        """The collection the URL names (a restore writes there)."""
        return self._only

    def list_collections(self) -> list[str]:
        if self._only is not None:
            self._require(self._only)
            return [self._only]
        with self._errors("list collections"):
            return [c.name for c in self._live().get_collections().collections]

    def exists(self, collection: str) -> bool:
        with self._errors("look up", collection):
            return bool(self._live().collection_exists(collection))

    def describe(self, collection: str) -> CollectionSchema:
        self._require(collection)
        client = self._live()
        with self._errors("describe", collection):
            info = client.get_collection(collection)
            aliases = [a.alias_name for a in client.get_collection_aliases(collection).aliases]
            first, _ = client.scroll(collection, limit=1, with_payload=False, with_vectors=False)
        config = info.config.model_dump(mode="json")
        params = config["params"]
        shard_keys = None
        if params.get("sharding_method") == "custom":
            with self._errors("list shard keys", collection):
                shard_keys = json_safe(client.list_shard_keys(collection).model_dump(mode="json"))
        vectors_raw = params.get("vectors")
        named = {"": vectors_raw} if _is_vector_params(vectors_raw) else dict(vectors_raw or {})
        vectors = tuple(_vector_field(name, p) for name, p in sorted(named.items()))
        sparse_raw = params.get("sparse_vectors") or {}
        sparse = tuple(SparseField(name=name, metric=Metric.DOT,
                                   modifier=(p or {}).get("modifier"),
                                   index={"index": (p or {}).get("index")})
                       for name, p in sorted(sparse_raw.items()))
        payload_schema = {k: v.model_dump(mode="json") for k, v in
                          sorted((info.payload_schema or {}).items())}
        fields = tuple(MetadataField(name=k, type=PAYLOAD_INDEX_TYPES.get(v.get("data_type"), "unknown"),
                                     indexed=True) for k, v in payload_schema.items())
        self._datatypes[collection] = {v.name: (named[v.name] or {}).get("datatype")
                                       for v in vectors}
        id_type = IdType.UNKNOWN
        if first:
            id_type = IdType.INT if isinstance(first[0].id, int) else IdType.UUID
        return CollectionSchema(
            provider=self.provider, name=collection, id_type=id_type, vectors=vectors,
            sparse=sparse, metadata_fields=fields, namespaces=("",),
            options={"metadata": json_safe(config.get("metadata"))},
            extras={"config": json_safe(config), "payload_schema": json_safe(payload_schema),
                    "aliases": aliases, "shard_keys": shard_keys},
        )

    def count(self, collection: str, namespace: str = "") -> int:
        _no_namespace(namespace)
        self._require(collection)
        with self._errors("count", collection):
            return int(self._live().count(collection, exact=True).count)

    def scan(self, collection: str, namespace: str = "",
             batch_size: int = 1000) -> Iterator[RecordBatch]:
        _no_namespace(namespace)
        if batch_size < 1:
            raise UsageError("batch size must be at least 1")
        if collection not in self._datatypes:
            self.describe(collection)
        datatypes = self._datatypes[collection]
        offset: Any = None
        while True:
            with self._errors("scan", collection, data=True):
                points, offset = self._live().scroll(
                    collection, limit=batch_size, offset=offset,
                    with_payload=True, with_vectors=True)
            if points:
                yield RecordBatch.from_records([_record(p, datatypes) for p in points], "")
            if offset is None:
                return

    def query(self, collection: str, namespace: str, vector: np.ndarray, k: int,
              vector_name: str = "") -> list[RecordId]:
        """The ids of the k nearest points as the collection serves them (`query_points`)."""
        _no_namespace(namespace)
        with self._errors("query", collection, data=True):
            found = self._live().query_points(
                collection, query=[float(x) for x in np.asarray(vector, dtype=np.float32)],
                using=vector_name or None, limit=k, with_payload=False, with_vectors=False)
        return [p.id if isinstance(p.id, int) else str(uuid.UUID(str(p.id))) for p in found.points]

    # --------------------------------------------------------------- writing

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        from qdrant_client import models
        from pydantic import ValidationError

        body = _create_body(schema)
        try:
            req = models.CreateCollection.model_validate(body)
        except ValidationError as e:
            raise UsageError(f"the schema cannot be expressed as a Qdrant collection: "
                             f"{_detail(e, data=True)}") from e
        if req.sharding_method is not None and req.sharding_method.value == "custom":
            raise UsageError("restoring a custom-sharded Qdrant collection is not supported: "
                             "points do not carry their shard key in the backup")
        client = self._live()
        with self._errors("create collection", name):
            if client.collection_exists(name):
                raise SourceError(f"Qdrant collection {name!r} already exists at {self._where}")
            kwargs = {k: getattr(req, f) for k, f in (
                ("shard_number", "shard_number"), ("sharding_method", "sharding_method"),
                ("replication_factor", "replication_factor"),
                ("write_consistency_factor", "write_consistency_factor"),
                ("on_disk_payload", "on_disk_payload"), ("hnsw_config", "hnsw_config"),
                ("optimizers_config", "optimizers_config"), ("wal_config", "wal_config"),
                ("quantization_config", "quantization_config"),
                ("strict_mode_config", "strict_mode_config"), ("metadata", "metadata"))
                if getattr(req, f) is not None}
            client.create_collection(name, vectors_config=req.vectors,
                                     sparse_vectors_config=req.sparse_vectors, **kwargs)
        if schema.provider != self.provider:
            return
        with self._errors("create payload index", name):
            for field, info in (schema.extras.get("payload_schema") or {}).items():
                spec = info.get("params") or info.get("data_type")
                if spec is not None:
                    client.create_payload_index(name, field, field_schema=_payload_index(spec),
                                                wait=True)
        with self._errors("create alias", name):
            taken = {a.alias_name for a in client.get_aliases().aliases}
            ops = [models.CreateAliasOperation(create_alias=models.CreateAlias(
                       collection_name=name, alias_name=alias))
                   for alias in schema.extras.get("aliases") or [] if alias not in taken]
            if ops:
                client.update_collection_aliases(change_aliases_operations=ops)

    def write(self, collection: str, batch: RecordBatch) -> None:
        _no_namespace(batch.namespace)
        if not len(batch):
            return
        from qdrant_client import models
        from pydantic import ValidationError

        points = []
        try:
            for rec in batch.records():
                points.append(models.PointStruct(id=_point_id(rec.id), vector=_point_vector(rec),
                                                 payload=_payload(rec)))
        except ValidationError as e:
            raise UsageError(f"a record cannot be written to Qdrant: {_detail(e, data=True)}") from e
        client = self._live()
        for a in range(0, len(points), WRITE_CHUNK):
            with self._errors("write", collection, data=True):
                client.upsert(collection, points=points[a:a + WRITE_CHUNK], wait=True)

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        _no_namespace(namespace)
        from qdrant_client import models

        keys = [_point_id(i) for i in ids]
        for a in range(0, len(keys), WRITE_CHUNK):
            with self._errors("delete", collection, data=True):
                self._live().delete(collection, wait=True, points_selector=models.PointIdsList(
                    points=keys[a:a + WRITE_CHUNK]))

    # --------------------------------------------------------------- helpers

    def _live(self) -> Any:
        if self._client is None:
            raise SourceError(f"the Qdrant connection to {self._where} is closed")
        return self._client

    def _require(self, collection: str) -> None:
        if not self.exists(collection):
            raise CollectionNotFound(f"Qdrant collection {collection!r} not found at {self._where}")

    def _errors(self, action: str, collection: str | None = None,
                data: bool = False) -> ContextManager[None]:
        """Turn any SDK exception into a one-line SourceError / CollectionNotFound."""
        return translated_errors(lambda e: self._translate(e, action, collection, data))

    def _translate(self, e: Exception, action: str, collection: str | None,
                   data: bool) -> VdedupError:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        if _is_unreachable(e) or isinstance(e, ResponseHandlingException):
            return SourceError(f"cannot reach Qdrant at {self._where}: {_detail(e)}")
        target = f" {collection!r}" if collection is not None else ""
        if isinstance(e, UnexpectedResponse):
            if e.status_code in (401, 403):
                return SourceError(f"Qdrant at {self._where} refused the request ({e.status_code}): "
                                   f"check {API_KEY_ENV}")
            if e.status_code == 404 and collection is not None:
                return CollectionNotFound(f"Qdrant collection {collection!r} not found at {self._where}")
            return SourceError(f"Qdrant {action}{target} at {self._where} failed: "
                               f"HTTP {e.status_code}: {_response_error(e, data)}")
        if (isinstance(e, ValueError) and collection is not None
                and re.fullmatch(r"Collection .* not found", str(e))):
            return CollectionNotFound(f"Qdrant collection {collection!r} not found at {self._where}")
        return SourceError(f"Qdrant {action}{target} at {self._where} failed: {_detail(e, data)}")


# ------------------------------------------------------------------- functions


def _flag(value: str | None) -> bool:
    return (value or "0").lower() in ("1", "true", "yes", "on")


def _known_params(u: SourceURL, known: set[str]) -> None:
    unknown = sorted(set(u.query) - known)
    if unknown:
        raise UsageError(f"unknown Qdrant URL parameter {unknown[0]!r} "
                         f"(known for {u.scheme}: {', '.join(sorted(known))})")


def _no_namespace(namespace: str) -> None:
    if namespace:
        raise UsageError(f"Qdrant collections have no namespaces (got {namespace!r}); "
                         "map each namespace to its own collection")


def _detail(e: BaseException, data: bool = False) -> str:
    """The first line of an SDK message, without echoed values when records were involved."""
    return error_detail(e, DATA_ECHO_RE if data else None)


def _response_error(e: Any, data: bool) -> str:
    """The server's own error text (status.error), cut to one line, no echoed values."""
    text = ""
    with contextlib.suppress(Exception):
        text = str(e.structured()["status"]["error"])
    text = (text.strip().splitlines() or [""])[0] or str(e.reason_phrase or "error")
    if data:
        text = DATA_ECHO_RE.sub("", text).rstrip(" :,") or "rejected (values withheld)"
    return text[:240]


def _is_unreachable(e: BaseException) -> bool:
    try:
        import httpx
        if isinstance(e, httpx.TransportError):
            return True
    except ImportError:   # pragma: no cover - httpx is a qdrant-client dependency
        pass
    try:
        import grpc
        if isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
            return True
    except ImportError:   # pragma: no cover
        pass
    return isinstance(e, (ConnectionError, TimeoutError))


def _is_vector_params(value: Any) -> bool:
    return isinstance(value, dict) and "size" in value and "distance" in value


def _vector_field(name: str, p: dict[str, Any]) -> VectorField:
    datatype = p.get("datatype")
    dtype = DATATYPE_TO_DTYPE.get(datatype)
    return VectorField(
        name=name, dim=p.get("size"),
        metric=DISTANCE_TO_METRIC.get(p.get("distance"), Metric.UNKNOWN),
        dtype=dtype or "float32",   # an unknown datatype is kept verbatim in index["datatype"]
        multivector=p.get("multivector_config") is not None,
        index={k: json_safe(p.get(k)) for k in
               ("datatype", "on_disk", "hnsw_config", "quantization_config", "multivector_config")},
    )


def _narrow(arr: np.ndarray, datatype: str | None) -> np.ndarray:
    """float32 values in the declared narrower dtype when that is exact, else float32."""
    target = EXACT_DTYPES.get(datatype or "")
    if target is None or not np.isfinite(arr).all():
        return arr
    if target is np.uint8 and (arr.min(initial=0) < 0 or arr.max(initial=0) > 255):
        return arr
    narrow = arr.astype(target)
    return narrow if narrow.astype(np.float32).tobytes() == arr.tobytes() else arr


def _record(point: Any, datatypes: dict[str, str | None]) -> Record:
    pid = point.id
    rid: RecordId = pid if isinstance(pid, int) else str(uuid.UUID(str(pid)))
    raw = point.vector
    if raw is None:
        named: dict[str, Any] = {}
    elif isinstance(raw, dict):
        named = raw
    else:
        named = {"": raw}
    vectors: dict[str, np.ndarray] = {}
    sparse: dict[str, SparseVector] = {}
    for name, value in named.items():
        if hasattr(value, "indices"):
            sparse[name] = SparseVector(np.asarray(value.indices, dtype=np.uint32),
                                        np.asarray(value.values, dtype=np.float32))
            continue
        arr = np.asarray(value, dtype=np.float32)
        vectors[name] = _narrow(arr, datatypes.get(name))
    return Record(id=rid, vectors=vectors, sparse=sparse,
                  metadata=point.payload if point.payload is not None else None)


def _create_body(schema: CollectionSchema) -> dict[str, Any]:
    """A CreateCollection request body: vectors from the neutral fields, the rest from extras."""
    own = schema.provider == "qdrant"
    config = (schema.extras.get("config") or {}) if own else {}
    params = config.get("params") or {}
    raw_vectors = params.get("vectors")
    raw_named = {"": raw_vectors} if _is_vector_params(raw_vectors) else dict(raw_vectors or {})
    vectors: dict[str, Any] = {}
    for v in schema.vectors:
        distance = METRIC_TO_DISTANCE.get(v.metric)
        if distance is None:
            raise UsageError(f"metric {v.metric.value!r} of vector {v.name!r} cannot be represented "
                             "in Qdrant (Cosine, Euclid, Dot, Manhattan)")
        if v.dim is None:
            raise UsageError(f"the dimension of vector {v.name!r} is unknown: Qdrant needs one")
        original = dict(raw_named.get(v.name) or {}) if own else {}
        datatype = original.get("datatype") if own else None
        if not own:
            if v.dtype not in ("float32", "float16", "uint8"):
                raise UsageError(f"Qdrant cannot store {v.dtype} vectors exactly (vector {v.name!r})")
            datatype = None if v.dtype == "float32" else v.dtype
        p = {k: val for k, val in original.items() if val is not None}
        p.update(size=v.dim, distance=distance)
        if datatype is not None:
            p["datatype"] = datatype
        if v.multivector and p.get("multivector_config") is None:
            p["multivector_config"] = {"comparator": "max_sim"}
        vectors[v.name] = p
    if set(vectors) == {""}:
        body_vectors: Any = vectors[""]
    elif "" in vectors:
        raise UsageError("a Qdrant collection cannot mix the unnamed vector with named ones")
    else:
        body_vectors = vectors
    raw_sparse = params.get("sparse_vectors") or {}
    sparse: dict[str, Any] = {}
    for s in schema.sparse:
        if s.metric != Metric.DOT:
            raise UsageError(f"Qdrant sparse vectors use dot product, not {s.metric.value} "
                             f"(sparse vector {s.name!r})")
        p = {k: val for k, val in (raw_sparse.get(s.name) or {}).items() if val is not None}
        if s.modifier is not None:
            p["modifier"] = s.modifier
        sparse[s.name] = p
    body: dict[str, Any] = {"vectors": body_vectors}
    if sparse:
        body["sparse_vectors"] = sparse
    for key in ("shard_number", "sharding_method", "replication_factor",
                "write_consistency_factor", "on_disk_payload"):
        if params.get(key) is not None:
            body[key] = params[key]
    for src, dst in (("hnsw_config", "hnsw_config"), ("optimizer_config", "optimizers_config"),
                     ("wal_config", "wal_config"), ("quantization_config", "quantization_config"),
                     ("strict_mode_config", "strict_mode_config")):
        value = config.get(src)
        if isinstance(value, dict):
            value = {k: val for k, val in value.items() if val is not None}
        if value:
            body[dst] = value
    metadata = schema.options.get("metadata")
    if own and metadata:
        body["metadata"] = metadata
    return body


def _payload_index(spec: Any) -> Any:
    from qdrant_client import models
    from pydantic import TypeAdapter

    if isinstance(spec, str):
        return models.PayloadSchemaType(spec)
    return TypeAdapter(models.PayloadSchemaParams).validate_python(spec)


def _point_id(rid: RecordId) -> int | str:
    if isinstance(rid, bool):
        raise UsageError("Qdrant point ids are unsigned integers or UUIDs, not booleans")
    if isinstance(rid, int):
        if not 0 <= rid <= MAX_ID:
            raise UsageError("Qdrant integer point ids must be between 0 and 2**64-1")
        return rid
    if isinstance(rid, uuid.UUID):
        return str(rid)
    try:
        return str(uuid.UUID(str(rid)))
    except ValueError:
        raise UsageError("Qdrant point ids are unsigned integers or UUIDs: "
                         "map other string ids first") from None


def _point_vector(rec: Record) -> Any:
    from qdrant_client import models

    out: dict[str, Any] = {}
    for name, arr in rec.vectors.items():
        if arr.dtype.kind not in "fiu":
            raise UsageError(f"vector {name!r} has dtype {arr.dtype}, which Qdrant cannot store")
        if not np.isfinite(arr).all():
            raise UsageError(f"vector {name!r} holds NaN or infinite values")
        out[name] = arr.astype(np.float64).tolist()
    for name, sv in rec.sparse.items():
        out[name] = models.SparseVector(indices=sv.indices.tolist(),
                                        values=sv.values.astype(np.float64).tolist())
    if set(out) == {""}:
        return out[""]
    return out


def _payload(rec: Record) -> dict[str, Any] | None:
    if rec.metadata is None:
        return None
    if not isinstance(rec.metadata, dict):
        raise UsageError("Qdrant payloads are JSON objects")
    for key, value in rec.metadata.items():
        _check_json(value, key)
    return rec.metadata


def _check_json(value: Any, key: str) -> None:
    """Qdrant payloads are JSON: refuse what would not come back as the same type."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not -2**63 <= value < 2**63:
            raise UsageError(f"payload key {key!r}: integers beyond 64 bits cannot be stored in Qdrant")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError(f"payload key {key!r}: NaN or infinite floats cannot be stored in Qdrant")
        return
    if isinstance(value, list):
        for v in value:
            _check_json(v, key)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise UsageError(f"payload key {key!r}: nested keys must be strings")
            _check_json(v, key)
        return
    raise UsageError(f"payload key {key!r}: a {type(value).__name__} value cannot be stored in "
                     "Qdrant's JSON payload")
