"""Qdrant connector (connector layer; depends only on model and errors).

    qdrant://HOST[:6333][/COLLECTION][?https=1&grpc=1&grpc_port=6334]  QdrantClient(url=..., api_key=...)
    qdrant+local:///abs/path[?collection=C]                 QdrantClient(path=...) (local mode)

The API key is the secret of the credentials the connector is opened with (at the command
line `QDRANT_API_KEY` holds it), never the URL. A URL that
names a collection limits `list_collections` (and so a backup) to that collection.

Why the code looks the way it does (qdrant-client 1.20):
- Qdrant has no namespaces: every collection has the single namespace "".
- Records are read with `scroll(limit, offset=next_page_offset)`; the cursor is a point id,
  so the scan is bounded in memory and resumable.
- Point ids are unsigned 64-bit integers or UUIDs: ints stay ints, UUIDs become their
  canonical lowercase string.
- Partitions (docs/scale-out.md) are id ranges: `scroll` returns points in id order (every
  integer before every UUID, UUIDs by their 128-bit value, in local mode as on a server) from
  `offset` on, an id that need not exist. The largest id is found by bisection with one-point
  scrolls (Qdrant has no max); bounds lie at power-of-two strides of the integer or UUID
  space, the first range open below and the last open above.
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
import os
import re
import sys
import uuid
from typing import Any, ContextManager, Iterator

import numpy as np

from ...errors import CollectionNotFound, SourceError, UsageError, VdedupError
from ...model import (CollectionSchema, IdType, MetadataField, Metric, Partition, RecordBatch,
                      RecordId, SparseField)
from ...model.partition import WHOLE, last_key, stride_ranges, whole
from ..common import (INSECURE_KEY, error_detail, flag, is_unreachable, json_safe, plain_to_remote,
                      refuse_credentials,
                      refuse_namespace, refuse_secret_params, refuse_unknown_params,
                      translated_errors)
from ..credentials import NO_CREDENTIALS, Credentials
from ..base import ConnectorBase
from ..url import SourceURL
from .descriptor import DESCRIPTOR
from .schema import PAYLOAD_INDEX_TYPES, create_body, is_vector_params, payload_index, vector_field
from .values import point_id, point_vector, to_payload, to_record

DEFAULT_PORT = 6333
API_KEY_ENV = DESCRIPTOR.secret_env[0]
REMOTE_QUERY_KEYS = {"https", "grpc", "grpc_port", INSECURE_KEY}
DEFAULT_GRPC_PORT = 6334
LOCAL_QUERY_KEYS = {"collection"}
WRITE_CHUNK = 256          # points per upsert: well below the gRPC 4 MB and REST 32 MB limits
TIMEOUT = 60
NO_NAMESPACES = ("Qdrant collections have no namespaces (got {namespace!r}); "
                 "map each namespace to its own collection")
# pydantic echoes offending input after these words; cut them so no record data leaks.
DATA_ECHO_RE = re.compile(r"(\[type=|input_value=|,?\s*\bgot\b).*$")


class QdrantConnector(ConnectorBase):
    """One Qdrant instance: a server (REST or gRPC) or a local-mode directory."""

    provider = "qdrant"
    descriptor = DESCRIPTOR

    def __init__(self, client: Any, where: str, collection: str | None = None,
                 key_origin: str = API_KEY_ENV) -> None:
        self._client = client
        self._key_origin = key_origin        # where the API key came from, for messages
        self._where = where                  # "host:port" or "/path": safe for messages
        self._only = collection              # the collection named in the URL, if any
        self._datatypes: dict[str, dict[str, str | None]] = {}

    # ----------------------------------------------------------------- opening

    @classmethod
    def from_url(cls, u: SourceURL, credentials: Credentials = NO_CREDENTIALS) -> "QdrantConnector":
        refuse_credentials(u, "Qdrant", f"set {API_KEY_ENV} instead")
        refuse_secret_params(u, "Qdrant", f"set {API_KEY_ENV} instead", containing=("key",))
        if u.scheme == "qdrant+local":
            return cls._local(u)
        if u.scheme != "qdrant":
            raise UsageError(f"unknown Qdrant URL scheme {u.scheme!r} (use qdrant:// or qdrant+local://)")
        return cls._remote(u, credentials)

    @classmethod
    def plain_transport(cls, u: SourceURL) -> tuple[str, str] | None:
        if u.scheme != "qdrant":
            return None                       # local mode: no network
        return plain_to_remote(u, flag(u.query.get("https")), "?https=1")

    @classmethod
    def storage_absent(cls, u: SourceURL) -> bool:
        """Whether the URL names local storage that opening would create (no meta.json yet)."""
        return (u.scheme == "qdrant+local" and not u.host and os.path.isabs(u.path or "")
                and not os.path.exists(os.path.join(u.path, "meta.json")))

    @classmethod
    def validate_url(cls, u: SourceURL) -> None:
        refuse_credentials(u, "Qdrant", f"set {API_KEY_ENV} instead")
        refuse_secret_params(u, "Qdrant", f"set {API_KEY_ENV} instead", containing=("key",))
        if u.scheme == "qdrant+local":
            cls._check_local(u)

    @classmethod
    def _check_local(cls, u: SourceURL) -> str:
        refuse_unknown_params(u, "Qdrant", LOCAL_QUERY_KEYS, u.scheme)
        if u.host:
            raise UsageError("qdrant+local takes a path, not a host: qdrant+local:///abs/path")
        path = u.path
        if not path or not os.path.isabs(path):
            raise UsageError("Qdrant local mode needs an absolute path: qdrant+local:///abs/path")
        return path

    @classmethod
    def _local(cls, u: SourceURL) -> "QdrantConnector":
        path = cls._check_local(u)
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(f"Qdrant path {path} is not a directory")
        from qdrant_client import QdrantClient

        try:
            client = QdrantClient(path=path)
        except Exception as e:
            raise SourceError(f"cannot open Qdrant local storage at {path}: {_detail(e)}") from e
        conn = cls(client, path, u.query.get("collection") or None)
        # local mode locks its directory: one process at a time reads or writes it
        conn.concurrent_reads = conn.concurrent_writes = False
        return conn

    @classmethod
    def _remote(cls, u: SourceURL, credentials: Credentials) -> "QdrantConnector":
        refuse_unknown_params(u, "Qdrant", REMOTE_QUERY_KEYS, u.scheme)
        if not u.host:
            raise UsageError("qdrant:// needs a host: qdrant://HOST:6333[/collection] "
                             "(or qdrant+local:///abs/path for local mode)")
        collection = u.path.strip("/") or None
        if collection and "/" in collection:
            raise UsageError(f"a Qdrant URL names at most one collection (got path {u.path!r})")
        https = flag(u.query.get("https"))
        grpc = flag(u.query.get("grpc"))
        try:
            grpc_port = int(u.query.get("grpc_port") or DEFAULT_GRPC_PORT)
        except ValueError:
            raise UsageError("grpc_port in a Qdrant URL must be a number") from None
        port = u.port or DEFAULT_PORT
        host = u.host if ":" not in u.host else f"[{u.host}]"
        where = f"{host}:{port}"
        from qdrant_client import QdrantClient

        api_key = credentials.secret or None
        try:
            # the client's own warning about an API key over http is left to be seen: a key
            # reaches here over http only for this machine or with ?insecure=1
            client = QdrantClient(url=f"{'https' if https else 'http'}://{where}",
                                  api_key=api_key, prefer_grpc=grpc, grpc_port=grpc_port,
                                  timeout=TIMEOUT,
                                  check_compatibility=False)
        except Exception as e:
            raise SourceError(f"cannot open Qdrant at {where}: {_detail(e)}") from e
        conn = cls(client, where, collection,
                   credentials.origin if api_key else f"{API_KEY_ENV} (none was given)")
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
        named = {"": vectors_raw} if is_vector_params(vectors_raw) else dict(vectors_raw or {})
        vectors = tuple(vector_field(name, p) for name, p in sorted(named.items()))
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
        refuse_namespace(namespace, NO_NAMESPACES)
        self._require(collection)
        with self._errors("count", collection):
            return int(self._live().count(collection, exact=True).count)

    def scan(self, collection: str, namespace: str = "",
             batch_size: int = 1000) -> Iterator[RecordBatch]:
        refuse_namespace(namespace, NO_NAMESPACES)
        return self._scroll(collection, batch_size, None, None)

    def _scroll(self, collection: str, batch_size: int, offset: Any,
                stop: tuple[int, int] | None) -> Iterator[RecordBatch]:
        """Points from `offset` on (None: the first), up to the sort key `stop` (excluded)."""
        if batch_size < 1:
            raise UsageError("batch size must be at least 1")
        if collection not in self._datatypes:
            self.describe(collection)
        datatypes = self._datatypes[collection]
        while True:
            with self._errors("scan", collection, data=True):
                points, offset = self._live().scroll(
                    collection, limit=batch_size, offset=offset,
                    with_payload=True, with_vectors=True)
            if stop is not None:
                points = [p for p in points if _order(p.id) < stop]
                if offset is not None and _order(offset) >= stop:
                    offset = None
            if points:
                yield RecordBatch.from_records([to_record(p, datatypes) for p in points], "")
            if offset is None:
                return

    def partitions(self, collection: str, namespace: str = "",
                   target_size: int = 100_000) -> list[Partition]:
        refuse_namespace(namespace, NO_NAMESPACES)
        count = self.count(collection, namespace)
        if count <= target_size:
            return [whole(namespace, count)]
        first = self._first_from(collection, None)
        if first is None:
            return [whole(namespace, count)]
        # the plan follows the first id's kind; ids of the other kind (a collection may mix
        # them) fall in the range open towards them: integers sort before every UUID
        kind = "int" if first[0] == 0 else "uuid"
        top = U64_MAX if kind == "int" else U128_MAX

        def exists_from(x: int) -> bool:
            got = self._first_from(collection, x if kind == "int" else str(uuid.UUID(int=x)))
            return got is not None and got[0] == first[0]
        last = last_key(exists_from, first[1], top)
        fmt = str if kind == "int" else (lambda x: str(uuid.UUID(int=x)))
        parts = stride_ranges(first[1], last, count, target_size, f"id-{kind}", namespace, fmt)
        return [p if p.key == WHOLE else Partition(p.namespace, p.key, {**p.spec, "kind": kind}, p.estimate)
                for p in parts]

    def scan_partition(self, collection: str, partition: Partition,
                       batch_size: int = 1000) -> Iterator[RecordBatch]:
        if partition.key == WHOLE:
            return self.scan(collection, partition.namespace, batch_size)
        refuse_namespace(partition.namespace, NO_NAMESPACES)
        kind, lo, hi = partition.spec.get("kind"), partition.spec.get("lo"), partition.spec.get("hi")
        if kind not in ("int", "uuid"):
            raise UsageError(f"not a Qdrant partition: {partition.key!r}")
        as_id = (lambda x: x) if kind == "int" else (lambda x: str(uuid.UUID(int=x)))
        stop = None if hi is None else (0 if kind == "int" else 1, hi)
        return self._scroll(collection, batch_size, None if lo is None else as_id(lo), stop)

    def _first_from(self, collection: str, offset: Any) -> tuple[int, int] | None:
        """The sort key of the first point at or after `offset`, or None."""
        with self._errors("scan", collection):
            points, _ = self._live().scroll(collection, limit=1, offset=offset,
                                            with_payload=False, with_vectors=False)
        return _order(points[0].id) if points else None

    def query(self, collection: str, namespace: str, vector: np.ndarray, k: int,
              vector_name: str = "") -> list[RecordId]:
        """The ids of the k nearest points as the collection serves them (`query_points`)."""
        refuse_namespace(namespace, NO_NAMESPACES)
        with self._errors("query", collection, data=True):
            found = self._live().query_points(
                collection, query=[float(x) for x in np.asarray(vector, dtype=np.float32)],
                using=vector_name or None, limit=k, with_payload=False, with_vectors=False)
        return [p.id if isinstance(p.id, int) else str(uuid.UUID(str(p.id))) for p in found.points]

    # --------------------------------------------------------------- writing

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        from qdrant_client import models
        from pydantic import ValidationError

        body = create_body(schema)
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
                    client.create_payload_index(name, field, field_schema=payload_index(spec),
                                                wait=True)
        with self._errors("create alias", name):
            taken = {a.alias_name for a in client.get_aliases().aliases}
            ops = [models.CreateAliasOperation(create_alias=models.CreateAlias(
                       collection_name=name, alias_name=alias))
                   for alias in schema.extras.get("aliases") or [] if alias not in taken]
            if ops:
                client.update_collection_aliases(change_aliases_operations=ops)

    def write(self, collection: str, batch: RecordBatch) -> None:
        refuse_namespace(batch.namespace, NO_NAMESPACES)
        if not len(batch):
            return
        from qdrant_client import models
        from pydantic import ValidationError

        points = []
        try:
            for rec in batch.records():
                points.append(models.PointStruct(id=point_id(rec.id), vector=point_vector(rec),
                                                 payload=to_payload(rec)))
        except ValidationError as e:
            raise UsageError(f"a record cannot be written to Qdrant: {_detail(e, data=True)}") from e
        client = self._live()
        for a in range(0, len(points), WRITE_CHUNK):
            with self._errors("write", collection, data=True):
                client.upsert(collection, points=points[a:a + WRITE_CHUNK], wait=True)

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        refuse_namespace(namespace, NO_NAMESPACES)
        from qdrant_client import models

        keys = [point_id(i) for i in ids]
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
                                   f"check {self._key_origin}")
            if e.status_code == 404 and collection is not None:
                return CollectionNotFound(f"Qdrant collection {collection!r} not found at {self._where}")
            return SourceError(f"Qdrant {action}{target} at {self._where} failed: "
                               f"HTTP {e.status_code}: {_response_error(e, data)}")
        if (isinstance(e, ValueError) and collection is not None
                and re.fullmatch(r"Collection .* not found", str(e))):
            return CollectionNotFound(f"Qdrant collection {collection!r} not found at {self._where}")
        return SourceError(f"Qdrant {action}{target} at {self._where} failed: {_detail(e, data)}")


# ------------------------------------------------------------------- functions

U64_MAX = 2 ** 64 - 1
U128_MAX = 2 ** 128 - 1


def _order(point_id: Any) -> tuple[int, int]:
    """A point id's place in Qdrant's id order: every integer before every UUID."""
    if isinstance(point_id, int):
        return (0, point_id)
    return (1, uuid.UUID(str(point_id)).int)








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
    if is_unreachable(e):
        return True
    grpc = sys.modules.get("grpc")          # loaded if the client speaks gRPC
    return grpc is not None and isinstance(e, grpc.RpcError) \
        and e.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
