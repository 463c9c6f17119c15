"""Milvus connector (connector layer; depends only on model and errors).

    milvus://HOST:PORT[/DB[/COLLECTION]][?secure=1]

One connector talks to one database (default "default"). With a collection in the URL,
only that collection is listed. Credentials come from the environment, never the URL:
`MILVUS_TOKEN`, or `MILVUS_USER` (or the URL's user name) with `MILVUS_PASSWORD`.

How Milvus maps onto the model (pymilvus 3.0.2):
- A record is one entity: the primary key (INT64 -> int, VARCHAR -> str) is the id; every
  dense vector field is a named vector (FLOAT_VECTOR float32, FLOAT16_VECTOR float16,
  BFLOAT16_VECTOR raw uint16 bit patterns, INT8_VECTOR int8, BINARY_VECTOR one 0/1 byte per
  bit as the format's "binary" dtype, unpacked most significant bit first as `np.packbits`
  packs); SPARSE_FLOAT_VECTOR fields are sparse vectors; every scalar, JSON and ARRAY field
  and every dynamic-field key is a metadata key. Keys that are not schema fields are dynamic,
  so a restore puts them back into the dynamic field.
- Namespaces are partitions (`_default` included). A partition-key collection has one
  namespace "": its partitions belong to Milvus, which routes rows by the key.
- The metric lives on the index, not the field: a vector field without an index has
  Metric.UNKNOWN. Everything Milvus says of the collection (fields verbatim, functions,
  indexes with their parameters, partitions, aliases, consistency level, shards,
  properties) is kept in `extras` so a restore recreates it.
- Reading uses `query_iterator` (plain queries stop at 16,384 rows) after loading the
  collection; a collection this connector loaded is released again on close().
- Writing uses upsert: inserting an existing primary key makes a duplicate in Milvus.
  A restored collection always has auto_id off, so original primary keys are kept
  (`extras["auto_id"]` says the source generated them).
- Counting uses `count(*)` with Strong consistency (the default level may not see
  recent deletes).
- Another provider's schema (anything without Milvus `fields` in extras) gets the neutral
  layout: `id` (INT64 for int ids, else VARCHAR), one field per dense and sparse vector (the
  unnamed ones are `vector` and `sparse`; names Milvus refuses or that clash are derived),
  `metadata` JSON, `document`/`uri` VARCHAR when declared, and `_vdedup` JSON with what Milvus
  cannot say itself (int ids in a VARCHAR key, absent or empty vectors, which Milvus cannot
  store as null). A JSON marker in the collection description and in the collection property
  `vdedup.layout` (milvus-lite drops descriptions) maps fields back to vector names, so
  describe() and scan() read it back neutrally and a restore of that recreates it.
  Namespaces are partitions: "" is `_default`; names Milvus refuses are hex-encoded.
"""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..errors import CollectionNotFound, SourceError, UsageError, VdedupError
from ..model import (CollectionSchema, IdType, MetadataField, Metric, Record, RecordBatch,
                     RecordId, SparseColumn, SparseField, SparseVector, VectorField)
from .url import SECRET_KEYS, SourceURL

DEFAULT_PORT = 19530
DEFAULT_DB = "default"
DEFAULT_PARTITION = "_default"
URL_QUERY_KEYS = {"secure"}
TOKEN_ENV = "MILVUS_TOKEN"
USER_ENV = "MILVUS_USER"
PASSWORD_ENV = "MILVUS_PASSWORD"
WRITE_ROWS = 1000            # rows per upsert call (keeps requests far below gRPC limits)
MAX_ITER_BATCH = 16384       # Milvus refuses larger query pages
COLLECTION_NOT_FOUND = 100   # Milvus error code

METRICS = {"L2": Metric.EUCLIDEAN, "IP": Metric.DOT, "COSINE": Metric.COSINE,
           "HAMMING": Metric.HAMMING, "JACCARD": Metric.JACCARD}
# Vector field type -> (neutral dtype, numpy dtype of one stored element)
DENSE_TYPES = {"FLOAT_VECTOR": ("float32", np.float32), "FLOAT16_VECTOR": ("float16", np.float16),
               "BFLOAT16_VECTOR": ("bfloat16", np.uint16), "INT8_VECTOR": ("int8", np.int8),
               "BINARY_VECTOR": ("binary", np.uint8)}
SPARSE_TYPE = "SPARSE_FLOAT_VECTOR"
PK_TYPES = {"INT64": IdType.INT, "VARCHAR": IdType.STRING}
SCALAR_KINDS = {"BOOL": "bool", "INT8": "int", "INT16": "int", "INT32": "int", "INT64": "int",
                "FLOAT": "float", "DOUBLE": "float", "VARCHAR": "str", "STRING": "str",
                "TEXT": "str", "GEOMETRY": "str", "JSON": "json", "ARRAY": "list",
                "TIMESTAMPTZ": "datetime"}
# describe_index keys that describe progress, not the index
INDEX_BOOKKEEPING = {"field_name", "index_name", "total_rows", "indexed_rows",
                     "pending_index_rows", "state", "index_type", "metric_type", "params"}
# SDK messages may echo offending values after these words; cut them.
DATA_ECHO_RE = re.compile(r"(\bDetail:|,?\s*\b(got|Got|but got|value)\b).*$")

# The neutral layout (a collection made from another provider's schema; see _neutral_plan)
NEUTRAL_LAYOUT = "neutral"          # extras key and marker "layout" value
NEUTRAL_VERSION = 1
MARKER_PROPERTY = "vdedup.layout"   # the marker also goes here: milvus-lite drops descriptions
N_ID, N_META, N_DOC, N_URI, N_STATE = "id", "metadata", "document", "uri", "_vdedup"
N_FIXED = (N_ID, N_META, N_DOC, N_URI, N_STATE)
N_DENSE, N_SPARSE = "vector", "sparse"     # field names of the unnamed vectors
MAX_VARCHAR = 65535                 # bytes in a Milvus VARCHAR
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")    # Milvus field and partition names
NS_PREFIX = "_vdns_"                # a namespace Milvus refuses as a partition name: hex of UTF-8
DTYPE_FIELDS = {"float32": "FLOAT_VECTOR", "float16": "FLOAT16_VECTOR",
                "bfloat16": "BFLOAT16_VECTOR", "int8": "INT8_VECTOR", "binary": "BINARY_VECTOR"}
FLOAT_METRICS = {Metric.EUCLIDEAN: "L2", Metric.DOT: "IP", Metric.COSINE: "COSINE"}
BINARY_METRICS = {Metric.HAMMING: "HAMMING", Metric.JACCARD: "JACCARD"}
INT64_RANGE = (-2 ** 63, 2 ** 63 - 1)
DECIMAL_RE = re.compile(r"^-?[0-9]+$")
ID_CLASH = ("an int id and a str id with the same decimal text cannot both be kept in this "
            "collection's VARCHAR primary key")


@dataclass(frozen=True)
class _Field:
    """What write/scan need to know of one Milvus field."""
    name: str
    type: str
    dim: int | None
    nullable: bool
    primary: bool
    function_output: bool


class MilvusConnector:
    """One Milvus database (optionally narrowed to one collection by the URL)."""

    provider = "milvus"

    def __init__(self, client: Any, where: str, db: str, collection: str | None = None) -> None:
        self._client = client
        self._where = where                  # "host:port/db": safe for messages
        self._db = db
        self._only = collection
        self._fields: dict[str, list[_Field]] = {}
        self._partition_key: dict[str, bool] = {}
        self._loaded_by_us: set[str] = set()
        self._ready: set[str] = set()
        self._dynamic_flag: dict[str, bool] = {}
        self._lite: bool | None = None
        self._markers: dict[str, dict[str, Any] | None] = {}

    # ----------------------------------------------------------------- opening

    @classmethod
    def from_url(cls, u: SourceURL) -> "MilvusConnector":
        if u.password:
            raise UsageError(f"a password does not belong in a Milvus URL: set {PASSWORD_ENV} "
                             f"(with {USER_ENV}) or {TOKEN_ENV} instead")
        secret = sorted(k for k in u.query if k.lower() in SECRET_KEYS)
        if secret:
            raise UsageError(f"secret {secret[0]!r} in a Milvus URL: set {TOKEN_ENV} instead")
        unknown = sorted(set(u.query) - URL_QUERY_KEYS)
        if unknown:
            raise UsageError(f"unknown Milvus URL parameter {unknown[0]!r} (known: secure)")
        if u.scheme != "milvus":
            raise UsageError(f"unknown Milvus URL scheme {u.scheme!r}: use milvus://HOST:PORT")
        if not u.host:
            raise UsageError("a Milvus URL needs a host: milvus://HOST:PORT[/DB[/COLLECTION]]")
        parts = [p for p in u.path.split("/") if p]
        if len(parts) > 2:
            raise UsageError(f"too many path parts in Milvus URL (got {u.path!r}): "
                             "milvus://HOST:PORT[/DB[/COLLECTION]]")
        db = parts[0] if parts else DEFAULT_DB
        collection = parts[1] if len(parts) == 2 else None
        secure = u.query.get("secure", "0").lower() in ("1", "true", "yes", "on")
        port = u.port or DEFAULT_PORT
        return cls._open(u.host, port, secure, db, collection, u.username)

    @classmethod
    def _open(cls, host: str, port: int, secure: bool, db: str, collection: str | None,
              url_user: str | None) -> "MilvusConnector":
        from pymilvus import MilvusClient

        # The SDK logs every failed call with a traceback to stderr; errors are ours to report.
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL + 1)
        netloc = f"[{host}]" if ":" in host else host
        where = f"{netloc}:{port}/{db}"
        auth: dict[str, str] = {}
        token = os.environ.get(TOKEN_ENV)
        user = os.environ.get(USER_ENV) or url_user
        if token:
            auth["token"] = token
        elif user:
            auth["user"] = user
            auth["password"] = os.environ.get(PASSWORD_ENV, "")
        uri = f"{'https' if secure else 'http'}://{netloc}:{port}"
        try:
            client = MilvusClient(uri=uri, db_name=db, **auth)
        except Exception as e:
            raise _translate(e, "connect", where, None) from e
        conn = cls(client, where, db, collection)
        with conn._errors("open database"):
            client.list_collections()      # a missing database or bad credentials fail here
        return conn

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        for name in sorted(self._loaded_by_us):
            with contextlib.suppress(Exception):
                client.release_collection(name)
        self._loaded_by_us.clear()
        with contextlib.suppress(Exception):
            client.close()

    # --------------------------------------------------------------- reading

    @property
    def url_collection(self) -> str | None:
        """The collection the URL names (a restore writes there)."""
        return self._only

    def list_collections(self) -> list[str]:
        if self._only is not None:
            return [self._only]
        with self._errors("list collections"):
            return sorted(self._live().list_collections())

    def exists(self, collection: str) -> bool:
        with self._errors("look up", collection):
            return bool(self._live().has_collection(collection))

    def describe(self, collection: str) -> CollectionSchema:
        client = self._live()
        with self._errors("describe", collection):
            info = client.describe_collection(collection)
            partitions = sorted(client.list_partitions(collection))
        marker = _read_marker(info)
        if marker is not None:
            return self._neutral_schema(collection, info, marker, partitions)
        with self._errors("describe", collection):
            index_names = client.list_indexes(collection)
            indexes = [_index_info(client.describe_index(collection, n), n) for n in index_names]
            aliases = sorted(client.list_aliases(collection_name=collection).get("aliases") or [])
            load_state = str(client.get_load_state(collection).get("state"))
        fields = [_field_json(f) for f in _declared(info)]
        by_field = {ix["field_name"]: ix for ix in indexes if ix.get("field_name")}
        vectors, sparse, meta = [], [], []
        id_type = IdType.UNKNOWN
        for f in fields:
            t = f["type"]
            ix = by_field.get(f["name"])
            index = {k: ix[k] for k in ("index_type", "metric_type", "params")} if ix else {}
            metric = METRICS.get(str(ix.get("metric_type", "")).upper(), Metric.UNKNOWN) if ix \
                else Metric.UNKNOWN
            if f.get("is_primary"):
                id_type = PK_TYPES.get(t, IdType.UNKNOWN)
            elif f.get("is_function_output"):
                continue        # computed by a function (e.g. BM25): in extras, never in records
            elif t in DENSE_TYPES:
                dim = f["params"].get("dim")
                vectors.append(VectorField(name=f["name"], dim=None if dim is None else int(dim),
                                           metric=metric, dtype=DENSE_TYPES[t][0], index=index))
            elif t == SPARSE_TYPE:
                sparse.append(SparseField(name=f["name"], metric=metric, index=index))
            else:
                meta.append(MetadataField(name=f["name"], type=SCALAR_KINDS.get(t, "unknown"),
                                          indexed=ix is not None, nullable=bool(f.get("nullable"))))
        partition_key = any(f.get("is_partition_key") for f in fields)
        extras = {
            "database": self._db,
            "fields": fields,
            "auto_id": bool(info.get("auto_id")),
            "enable_dynamic_field": bool(info.get("enable_dynamic_field")),
            "description": info.get("description") or "",
            "consistency_level": info.get("consistency_level_name")
            or str(info.get("consistency_level", "")),
            "num_shards": info.get("num_shards"),
            "num_partitions": info.get("num_partitions"),
            "partition_key": partition_key,
            "partitions": partitions,
            "properties": _json_safe(info.get("properties") or {}),
            "functions": [_function_json(fn) for fn in info.get("functions") or []],
            "indexes": indexes,
            "aliases": aliases,
            "load_state": load_state,
        }
        return CollectionSchema(
            provider=self.provider, name=collection, id_type=id_type, vectors=tuple(vectors),
            sparse=tuple(sparse), metadata_fields=tuple(meta),
            namespaces=("",) if partition_key else tuple(partitions),
            options={}, extras=extras)

    def count(self, collection: str, namespace: str = "") -> int:
        try:
            self._load(collection)
        except CollectionNotFound:
            raise
        except SourceError:
            # Real Milvus loads only collections whose vector fields all have an index;
            # without one, the (flushed) row statistics are the best count there is.
            return self._count_from_stats(collection, namespace)
        try:
            parts = self._partitions_arg(collection, namespace)
        except CollectionNotFound:
            if not self.exists(collection):
                raise
            return 0                    # a partition that does not exist holds no records
        if parts and self._is_lite():
            return self._count_by_ids(collection, parts)
        with self._errors("count", collection):
            got = self._live().query(collection, filter="", output_fields=["count(*)"],
                                     partition_names=parts, consistency_level="Strong")
        return int(got[0]["count(*)"])

    def _count_from_stats(self, collection: str, namespace: str) -> int:
        self._schema_fields(collection)
        client = self._live()
        if self._markers.get(collection) is not None:
            namespace = _partition_name(namespace)
        with self._errors("count", collection):
            if namespace and not self._partition_key.get(collection):
                if not client.has_partition(collection, namespace):
                    return 0
                stats = client.get_partition_stats(collection, namespace)
            else:
                stats = client.get_collection_stats(collection)
        return int(stats.get("row_count", 0))

    def _count_by_ids(self, collection: str, parts: list[str]) -> int:
        """milvus-lite answers count(*) for the whole collection whatever partition is
        asked, so there a partition is counted by paging its primary keys."""
        pk = next(f.name for f in self._schema_fields(collection) if f.primary)
        total = 0
        with self._errors("count", collection):
            it = self._live().query_iterator(collection, batch_size=MAX_ITER_BATCH, filter="",
                                             output_fields=[pk], partition_names=parts)
            try:
                while True:
                    rows = it.next()
                    if not rows:
                        return total
                    total += len(rows)
            finally:
                with contextlib.suppress(Exception):
                    it.close()

    def _is_lite(self) -> bool:
        if self._lite is None:
            with self._errors("read the server version"):
                self._lite = str(self._live().get_server_version()).startswith("milvus_lite")
        return self._lite

    def scan(self, collection: str, namespace: str = "",
             batch_size: int = 1000) -> Iterator[RecordBatch]:
        if batch_size < 1:
            raise UsageError("batch size must be at least 1")
        fields = self._schema_fields(collection)
        marker = self._markers.get(collection)
        self._load(collection)
        parts = self._partitions_arg(collection, namespace)
        with self._errors("scan", collection):
            # A Strong query first: the iterator reads at a timestamp of its own (client-side
            # when the server gives none, as Milvus 2.3 does), which may not yet see writes
            # and deletes made just before; this waits until they are visible.
            self._live().query(collection, filter="", output_fields=["count(*)"],
                               partition_names=parts, consistency_level="Strong")
            it = self._live().query_iterator(
                collection, batch_size=min(batch_size, MAX_ITER_BATCH), filter="",
                output_fields=["*"], partition_names=parts, consistency_level="Strong")
        try:
            while True:
                with self._errors("scan", collection, data=True):
                    rows = it.next()
                if not rows:
                    return
                if marker is not None:
                    yield _neutral_batch(rows, fields, marker, namespace)
                else:
                    yield _batch(rows, fields, namespace, self._where, collection)
        finally:
            with contextlib.suppress(Exception):
                it.close()

    def query(self, collection: str, namespace: str, vector: np.ndarray, k: int,
              vector_name: str = "") -> list[RecordId]:
        """The ids of the k nearest entities as the collection's index serves them (`search`)."""
        fields = self._schema_fields(collection)
        marker = self._markers.get(collection)
        field = vector_name if marker is None else \
            next((v["field"] for v in marker["vectors"] if v["name"] == vector_name), vector_name)
        pk = next(f for f in fields if f.primary)
        self._load(collection)
        parts = self._partitions_arg(collection, namespace)
        with self._errors("query", collection, data=True):
            hits = self._live().search(
                collection, data=[[float(x) for x in np.asarray(vector, dtype=np.float32)]],
                anns_field=field, limit=k, partition_names=parts,
                output_fields=[N_STATE] if marker is not None else [], consistency_level="Strong")[0]
        out: list[RecordId] = []
        for h in hits:
            rid = h.get("id", h.get(pk.name))
            state = (h.get("entity") or {}).get(N_STATE) or {}
            out.append(int(rid) if pk.type == "INT64" or state.get("int_id") else str(rid))
        return out

    # --------------------------------------------------------------- writing

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        if schema.provider != self.provider or "fields" not in schema.extras \
                or _is_marker(schema.extras.get(NEUTRAL_LAYOUT)):
            self._create_neutral(schema, name)
            return
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        ex = schema.extras
        client = self._live()
        with self._errors("create collection", name):
            if client.has_collection(name):
                raise SourceError(f"Milvus collection {name!r} already exists at {self._where}")
            ms = MilvusClient.create_schema(
                auto_id=False, enable_dynamic_field=bool(ex.get("enable_dynamic_field")),
                description=ex.get("description") or "")
            for f in ex["fields"]:
                ms.add_field(f["name"], DataType[f["type"]], **_field_kwargs(f, DataType))
            for fn in ex.get("functions") or []:
                ms.add_function(Function(fn["name"], FunctionType[fn["type"]],
                                         input_field_names=fn["input_field_names"],
                                         output_field_names=fn["output_field_names"],
                                         description=fn.get("description") or "",
                                         params=fn.get("params") or None))
            kwargs: dict[str, Any] = {}
            if ex.get("consistency_level"):
                kwargs["consistency_level"] = ex["consistency_level"]
            if ex.get("num_shards"):
                kwargs["num_shards"] = int(ex["num_shards"])
            if ex.get("partition_key") and ex.get("num_partitions"):
                kwargs["num_partitions"] = int(ex["num_partitions"])
            if ex.get("properties"):
                kwargs["properties"] = ex["properties"]
            client.create_collection(name, schema=ms, **kwargs)
            if not ex.get("partition_key"):
                wanted = set(ex.get("partitions") or []) | set(schema.namespaces)
                for p in sorted(wanted - {"", DEFAULT_PARTITION}):
                    client.create_partition(name, p)
            indexes = ex.get("indexes") or []
            if indexes:
                params = client.prepare_index_params()
                for ix in indexes:
                    extra = {"metric_type": ix["metric_type"]} if ix.get("metric_type") and \
                        ix["metric_type"] != "NONE" else {}
                    params.add_index(ix["field_name"], index_type=ix.get("index_type") or "",
                                     index_name=ix.get("index_name") or "",
                                     params=dict(ix.get("params") or {}), **extra)
                client.create_index(name, params)
            existing = set(_all_aliases(client))
            for alias in ex.get("aliases") or []:
                if alias not in existing:      # never move an alias away from another collection
                    client.create_alias(name, alias)
            indexed = {ix["field_name"] for ix in indexes}
            vector_fields = {f["name"] for f in ex["fields"]
                             if f["type"] in DENSE_TYPES or f["type"] == SPARSE_TYPE}
            if vector_fields <= indexed:
                client.load_collection(name)
        self._forget(name)

    def _create_neutral(self, schema: CollectionSchema, name: str) -> None:
        """Another provider's schema (or a neutral collection read back): the neutral layout,
        described by the JSON marker in the collection description (see _neutral_plan)."""
        from pymilvus import DataType, MilvusClient

        marker = _neutral_plan(schema)          # refuses what Milvus cannot hold, before creating
        partitions = [_partition_name(ns) for ns in schema.namespaces]
        client = self._live()
        with self._errors("create collection", name):
            if client.has_collection(name):
                raise SourceError(f"Milvus collection {name!r} already exists at {self._where}")
            text = json.dumps(marker, separators=(",", ":"))
            ms = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                            description=text)
            if marker["id_type"] == IdType.INT.value:
                ms.add_field(N_ID, DataType.INT64, is_primary=True, auto_id=False)
            else:
                ms.add_field(N_ID, DataType.VARCHAR, is_primary=True, auto_id=False,
                             max_length=MAX_VARCHAR)
            for v in marker["vectors"]:
                ms.add_field(v["field"], DataType[v["type"]], dim=int(v["dim"]))
            for sp in marker["sparse"]:
                ms.add_field(sp["field"], DataType.SPARSE_FLOAT_VECTOR)
            ms.add_field(N_META, DataType.JSON, nullable=True)
            if marker["documents"]:
                ms.add_field(N_DOC, DataType.VARCHAR, max_length=MAX_VARCHAR, nullable=True)
            if marker["uris"]:
                ms.add_field(N_URI, DataType.VARCHAR, max_length=MAX_VARCHAR, nullable=True)
            ms.add_field(N_STATE, DataType.JSON, nullable=True)
            client.create_collection(name, schema=ms, properties={MARKER_PROPERTY: text})
            for p in sorted(set(partitions) - {DEFAULT_PARTITION}):
                client.create_partition(name, p)
            if marker["vectors"] or marker["sparse"]:
                params = client.prepare_index_params()
                for v in marker["vectors"]:
                    params.add_index(v["field"], index_type="AUTOINDEX",
                                     metric_type=_milvus_metric(v["type"], Metric(v["metric"])))
                for sp in marker["sparse"]:
                    params.add_index(sp["field"], index_type="SPARSE_INVERTED_INDEX",
                                     metric_type="IP")
                client.create_index(name, params)
                client.load_collection(name)
        self._forget(name)

    def _check_id_kinds(self, collection: str, fields: list[_Field],
                        rows: list[dict[str, Any]]) -> None:
        """A VARCHAR key holds int ids as decimal text: refuse an int id and a str id with the
        same text (in the batch, or one already stored), which would be one Milvus entity."""
        if next(f for f in fields if f.primary).type != "VARCHAR":
            return
        kinds: dict[str, bool] = {}
        for r in rows:
            pk = r[N_ID]
            if DECIMAL_RE.match(pk):
                is_int = bool((r[N_STATE] or {}).get("int_id"))
                if kinds.setdefault(pk, is_int) != is_int:
                    raise UsageError(ID_CLASH)
        if not kinds:
            return
        self._load(collection)
        with self._errors("look up ids", collection, data=True):
            stored = self._live().query(collection, ids=list(kinds), output_fields=[N_STATE],
                                        consistency_level="Strong")
        for r in stored:
            if bool((r.get(N_STATE) or {}).get("int_id")) != kinds.get(str(r[N_ID])):
                raise UsageError(ID_CLASH)

    def _neutral_schema(self, collection: str, info: dict[str, Any], marker: dict[str, Any],
                        partitions: list[str]) -> CollectionSchema:
        fields = {f["name"]: _field_json(f) for f in _declared(info)}
        vectors = []
        for v in marker["vectors"]:
            f = fields.get(v["field"])
            if f is None or f["type"] not in DENSE_TYPES:
                raise SourceError(f"Milvus collection {collection!r} at {self._where} has lost "
                                  f"the vector field {v['field']!r} its vdedup marker names")
            vectors.append(VectorField(v["name"], int(f["params"]["dim"]), Metric(v["metric"]),
                                       DENSE_TYPES[f["type"]][0]))
        sparse = [SparseField(sp["name"], Metric(sp["metric"]), sp.get("modifier"))
                  for sp in marker["sparse"]]
        meta = [MetadataField(m[0], m[1], m[2], m[3]) for m in marker["metadata_fields"]]
        present = [_namespace_of(p) for p in partitions]
        declared = [ns for ns in marker["namespaces"] if ns in present]
        namespaces = declared + sorted(ns for ns in present if ns not in declared and ns)
        return CollectionSchema(
            provider=self.provider, name=collection, id_type=IdType(marker["id_type"]),
            vectors=tuple(vectors), sparse=tuple(sparse), metadata_fields=tuple(meta),
            namespaces=tuple(namespaces) or ("",), has_documents=bool(marker["documents"]),
            has_uris=bool(marker["uris"]), options=dict(marker.get("options") or {}),
            extras={NEUTRAL_LAYOUT: marker, "database": self._db})

    def write(self, collection: str, batch: RecordBatch) -> None:
        if not len(batch):
            return
        fields = self._schema_fields(collection)
        marker = self._markers.get(collection)
        if marker is not None:
            rows = _neutral_rows(batch, fields, marker)
            partition = _partition_name(batch.namespace)
            self._check_id_kinds(collection, fields, rows)
        else:
            rows = _rows(batch, fields, self._dynamic(collection))
            partition = "" if self._partition_key.get(collection) else batch.namespace
        if partition and partition != DEFAULT_PARTITION:
            with self._errors("create partition", collection):
                if not self._live().has_partition(collection, partition):
                    self._live().create_partition(collection, partition)
        for a in range(0, len(rows), WRITE_ROWS):
            with self._errors("write", collection, data=True):
                self._live().upsert(collection, rows[a:a + WRITE_ROWS], partition_name=partition)

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        partition = "" if self._partition_key.get(collection) else namespace
        for a in range(0, len(ids), WRITE_ROWS):
            with self._errors("delete", collection, data=True):
                self._live().delete(collection, ids=list(ids[a:a + WRITE_ROWS]),
                                    partition_name=partition)

    # --------------------------------------------------------------- helpers

    def _live(self) -> Any:
        if self._client is None:
            raise SourceError(f"the Milvus connection to {self._where} is closed")
        return self._client

    def _forget(self, collection: str) -> None:
        self._fields.pop(collection, None)
        self._partition_key.pop(collection, None)
        self._dynamic_flag.pop(collection, None)
        self._markers.pop(collection, None)
        self._ready.discard(collection)

    def _schema_fields(self, collection: str) -> list[_Field]:
        if collection not in self._fields:
            with self._errors("describe", collection):
                info = self._live().describe_collection(collection)
            fields = []
            for raw in _declared(info):
                f = _field_json(raw)
                dim = f["params"].get("dim")
                fields.append(_Field(f["name"], f["type"], int(dim) if dim is not None else None,
                                     bool(f.get("nullable")), bool(f.get("is_primary")),
                                     bool(f.get("is_function_output"))))
            self._fields[collection] = fields
            self._partition_key[collection] = any(r.get("is_partition_key")
                                                  for r in info.get("fields", []))
            self._dynamic_flag[collection] = bool(info.get("enable_dynamic_field"))
            self._markers[collection] = _read_marker(info)
        return self._fields[collection]

    def _dynamic(self, collection: str) -> bool:
        self._schema_fields(collection)
        return self._dynamic_flag[collection]

    def _partitions_arg(self, collection: str, namespace: str) -> list[str] | None:
        self._schema_fields(collection)
        if self._markers.get(collection) is not None:
            namespace = _partition_name(namespace)     # "" is the _default partition there
        elif not namespace:
            return None
        if self._partition_key.get(collection):
            raise UsageError(f"Milvus collection {collection!r} has a partition key: "
                             "it has one namespace, ''")
        with self._errors("look up partition", collection):
            if not self._live().has_partition(collection, namespace):
                raise CollectionNotFound(f"Milvus partition {namespace!r} of {collection!r} "
                                         f"not found at {self._where}")
        return [namespace]

    def _load(self, collection: str) -> None:
        """Load the collection for reading; remember to release it if we loaded it."""
        if collection in self._ready:
            return
        client = self._live()
        with self._errors("load", collection):
            state = str(client.get_load_state(collection).get("state"))
            if "NotLoad" in state:
                client.load_collection(collection)
                self._loaded_by_us.add(collection)
        self._ready.add(collection)

    @contextlib.contextmanager
    def _errors(self, action: str, collection: str | None = None,
                data: bool = False) -> Iterator[None]:
        """Turn any SDK exception into a one-line SourceError / CollectionNotFound."""
        try:
            yield
        except VdedupError:
            raise
        except Exception as e:
            if collection is not None and _code(e) == COLLECTION_NOT_FOUND:
                self._forget(collection)
            raise _translate(e, action, self._where, collection, data) from e


# ------------------------------------------------------------------- functions


def _declared(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The collection's fields without the hidden dynamic field ($meta), which
    enable_dynamic_field recreates and whose keys are read and written as metadata keys."""
    return [f for f in info.get("fields", []) if not f.get("is_dynamic")]


def _code(e: BaseException) -> int | None:
    code = getattr(e, "code", None)
    return code if isinstance(code, int) else None


def _is_unreachable(e: BaseException) -> bool:
    if isinstance(e, (ConnectionError, TimeoutError)) or "Fail connecting" in str(e):
        return True
    status = getattr(e, "code", None)          # a raw grpc.RpcError has code() -> StatusCode
    if callable(status):
        with contextlib.suppress(Exception):
            return getattr(status(), "name", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    return False


def _translate(e: BaseException, action: str, where: str, collection: str | None,
               data: bool = False) -> VdedupError:
    text = _detail(e, data)
    if _is_unreachable(e):
        return SourceError(f"cannot reach Milvus at {where}: {text}")
    if collection is not None and _code(e) == COLLECTION_NOT_FOUND:
        return CollectionNotFound(f"Milvus collection {collection!r} not found at {where}")
    target = f" {collection!r}" if collection is not None else ""
    return SourceError(f"Milvus {action}{target} at {where} failed: {text}")


def _detail(e: BaseException, data: bool = False) -> str:
    """The first line of an SDK message, without echoed values when records were involved."""
    text = str(getattr(e, "message", "") or e).strip()
    text = (text.splitlines() or [""])[0].strip() or type(e).__name__
    if data:
        cut = DATA_ECHO_RE.sub("", text)
        if cut != text:
            text = cut.rstrip(" :,") + " (values withheld)"
    if len(text) > 240:
        text = text[:237] + "..."
    return f"{type(e).__name__}: {text}"


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return getattr(value, "name", None) if type(value) is not int and hasattr(value, "name") \
            else int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if hasattr(value, "__len__") and hasattr(value, "__getitem__"):   # protobuf repeated fields
        return [_json_safe(v) for v in list(value)]
    return str(value)


def _default_value(dv: Any) -> Any:
    """A protobuf ValueField as {"kind": oneof name, "value": JSON-safe value}, or None."""
    if dv is None:
        return None
    if isinstance(dv, dict):
        return dv
    which = dv.WhichOneof("data") if hasattr(dv, "WhichOneof") else None
    if which is None:
        return None
    return {"kind": which, "value": _json_safe(getattr(dv, which))}


def _field_json(f: dict[str, Any]) -> dict[str, Any]:
    """One describe_collection field, JSON-safe, with type names instead of numbers."""
    from pymilvus import DataType

    out: dict[str, Any] = {}
    for k, v in f.items():
        if k in ("field_id",):
            continue
        if k in ("type", "element_type"):
            out[k] = DataType(int(v)).name
        elif k == "default_value":
            dv = _default_value(v)
            if dv is not None:
                out[k] = dv
        else:
            out[k] = _json_safe(v)
    out.setdefault("params", {})
    return out


def _function_json(fn: dict[str, Any]) -> dict[str, Any]:
    out = {k: _json_safe(v) for k, v in fn.items()
           if k not in ("id", "input_field_ids", "output_field_ids")}
    t = fn.get("type")
    out["type"] = getattr(t, "name", str(t))
    return out


def _index_info(desc: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """index_type, metric_type and params of one index, whatever shape the server answers."""
    desc = dict(desc or {})
    params = desc.get("params")
    params = dict(params) if isinstance(params, dict) else {}
    for k, v in desc.items():
        if k not in INDEX_BOOKKEEPING:
            params[k] = v            # Milvus 2.4+ flattens index params into the answer
    return {"index_name": desc.get("index_name") or name,
            "field_name": desc.get("field_name") or "",
            "index_type": desc.get("index_type") or "",
            "metric_type": desc.get("metric_type") or "",
            "params": _json_safe(params)}


def _all_aliases(client: Any) -> list[str]:
    try:
        return list(client.list_aliases().get("aliases") or [])
    except Exception:
        return []


def _field_kwargs(f: dict[str, Any], DataType: Any) -> dict[str, Any]:
    """add_field keyword arguments that recreate a field as described (auto_id always off)."""
    kw: dict[str, Any] = dict(f.get("params") or {})
    kw["description"] = f.get("description") or ""
    for key in ("is_primary", "is_partition_key", "is_clustering_key", "nullable"):
        if f.get(key):
            kw[key] = True
    if f.get("is_primary"):
        kw["auto_id"] = False
    if f.get("element_type"):
        kw["element_type"] = DataType[f["element_type"]]
    dv = f.get("default_value")
    if isinstance(dv, dict) and "value" in dv:
        value = dv["value"]
        kw["default_value"] = value
    return kw


# --------------------------------------------------------- values: Milvus -> model


def _dense_value(value: Any, ftype: str, dim: int | None) -> np.ndarray:
    """One vector as pymilvus returns it, as a numpy array in the model's representation."""
    np_dtype = DENSE_TYPES[ftype][1]
    if ftype == "FLOAT_VECTOR":
        return np.asarray(value, dtype=np.float32)
    raw = _as_bytes(value, np_dtype)
    if ftype == "BINARY_VECTOR":
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))
        return bits[:dim].astype(np.bool_) if dim is not None else bits.astype(np.bool_)
    return np.frombuffer(raw, dtype=np.dtype(np_dtype).newbyteorder("<")).astype(np_dtype)


def _as_bytes(value: Any, np_dtype: Any) -> bytes:
    """The raw little-endian bytes of a byte-based vector (pymilvus answers bytes, or a list
    holding one bytes object in query results)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (bytes, bytearray, memoryview)) for v in value):
        return b"".join(bytes(v) for v in value)
    want = np.dtype(np_dtype)
    if isinstance(value, np.ndarray) and value.dtype.itemsize == want.itemsize:
        return value.view(want).astype(want.newbyteorder("<")).tobytes()   # e.g. bfloat16 bits
    if isinstance(value, (list, tuple, np.ndarray)) and want.kind in "iu" and want != np.uint16:
        return np.asarray(value, dtype=want).tobytes()
    raise SourceError(f"unexpected vector value of type {type(value).__name__} from Milvus")


def _sparse_value(value: Any) -> SparseVector:
    if isinstance(value, dict):
        keys = list(value.keys())
        return SparseVector(np.array(keys, dtype=np.uint32),
                            np.array([value[k] for k in keys], dtype=np.float32))
    raise SourceError(f"unexpected sparse vector value of type {type(value).__name__} from Milvus")


def _scalar_value(value: Any, ftype: str) -> Any:
    if value is None:
        return None
    if ftype == "TIMESTAMPTZ" and isinstance(value, str):
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if ftype in ("FLOAT", "DOUBLE"):
        return float(value)
    if ftype in ("INT8", "INT16", "INT32", "INT64"):
        return int(value)
    if ftype == "BOOL":
        return bool(value)
    if isinstance(value, np.generic):
        return value.item()
    if ftype == "ARRAY" and not isinstance(value, list):
        return [v.item() if isinstance(v, np.generic) else v for v in value]
    return value


def _batch(rows: list[dict[str, Any]], fields: list[_Field], namespace: str, where: str,
           collection: str) -> RecordBatch:
    pk = next(f for f in fields if f.primary)
    dense_fields = [f for f in fields if f.type in DENSE_TYPES and not f.function_output]
    sparse_fields = [f for f in fields if f.type == SPARSE_TYPE and not f.function_output]
    scalar_fields = [f for f in fields if not f.primary and f.type not in DENSE_TYPES
                     and f.type != SPARSE_TYPE]
    known = {f.name for f in fields}
    n = len(rows)
    ids: list[RecordId] = []
    for r in rows:
        rid = r[pk.name]
        ids.append(int(rid) if pk.type == "INT64" else str(rid))
    dense: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for f in dense_fields:
        vals = [r.get(f.name) for r in rows]
        got = [None if v is None else _dense_value(v, f.type, f.dim) for v in vals]
        width = next((g.shape[0] for g in got if g is not None), f.dim or 0)
        dtype = next((g.dtype for g in got if g is not None), np.dtype(DENSE_TYPES[f.type][1]))
        arr = np.zeros((n, width), dtype=dtype)
        mask = np.zeros(n, dtype=bool)
        for i, g in enumerate(got):
            if g is not None:
                if g.shape[0] != width:
                    raise SourceError(f"Milvus returned vectors of different lengths in field "
                                      f"{f.name!r} of {collection!r} at {where}")
                arr[i] = g
                mask[i] = True
        dense[f.name] = arr
        if not mask.all():
            present[f.name] = mask
    sparse = {f.name: SparseColumn.from_rows(
        [None if r.get(f.name) is None else _sparse_value(r[f.name]) for r in rows])
        for f in sparse_fields}
    metadata: list[dict[str, Any] | None] = []
    for r in rows:
        m: dict[str, Any] = {}
        for f in scalar_fields:
            if f.function_output or f.name not in r:
                continue
            m[f.name] = _scalar_value(r[f.name], f.type)
        for k, v in r.items():           # dynamic-field keys, in the order Milvus gives
            if k not in known and k != "$meta":
                m[k] = v
        metadata.append(m or None)
    return RecordBatch(ids=ids, dense=dense, dense_present=present, sparse=sparse,
                       metadata=metadata, namespace=namespace)


# --------------------------------------------------------- values: model -> Milvus


def _vector_out(arr: np.ndarray, ftype: str, name: str) -> Any:
    if ftype == "FLOAT_VECTOR":
        out = np.asarray(arr, dtype=np.float32)
        if arr.dtype != np.float32 and not np.array_equal(out.astype(arr.dtype), arr):
            raise UsageError(f"vector {name!r} ({arr.dtype}) cannot be stored exactly as "
                             "FLOAT_VECTOR")
        return out
    if ftype == "BINARY_VECTOR":
        bits = np.asarray(arr)
        if bits.dtype == np.uint8 and bits.size and bits.max() > 1:
            raise UsageError(f"binary vector {name!r} must hold one 0/1 value per bit")
        return np.packbits(bits.astype(np.uint8)).tobytes()
    if ftype == "FLOAT16_VECTOR":
        if arr.dtype != np.float16:
            raise UsageError(f"vector {name!r} is {arr.dtype}, the field is FLOAT16_VECTOR")
        return arr.astype("<f2").tobytes()
    if ftype == "BFLOAT16_VECTOR":
        if arr.dtype != np.uint16:
            raise UsageError(f"vector {name!r} is {arr.dtype}, the field is BFLOAT16_VECTOR "
                             "(raw bfloat16 bits as uint16)")
        return arr.astype("<u2").tobytes()
    if ftype == "INT8_VECTOR":
        if arr.dtype != np.int8:
            raise UsageError(f"vector {name!r} is {arr.dtype}, the field is INT8_VECTOR")
        return np.ascontiguousarray(arr, dtype=np.int8)
    raise UsageError(f"unsupported Milvus vector type {ftype}")


def _scalar_out(value: Any, ftype: str) -> Any:
    if value is None:
        return None
    if ftype == "TIMESTAMPTZ" and isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _rows(batch: RecordBatch, fields: list[_Field], dynamic: bool) -> list[dict[str, Any]]:
    pk = next(f for f in fields if f.primary)
    by_name = {f.name: f for f in fields}
    out: list[dict[str, Any]] = []
    for f in fields:
        if f.type in DENSE_TYPES and not f.function_output and f.name not in batch.dense \
                and f.name not in batch.multi and not f.nullable:
            raise UsageError(f"the batch has no vectors for Milvus field {f.name!r}")
    for name in list(batch.dense) + list(batch.multi) + list(batch.sparse):
        f = by_name.get(name)
        if f is None or f.primary or (f.type not in DENSE_TYPES and f.type != SPARSE_TYPE):
            raise UsageError(f"the target collection has no vector field {name!r}")
    if batch.multi:
        raise UsageError("Milvus vector fields hold one vector per record, not multivectors")
    for i, rec in enumerate(batch.records()):
        if pk.type == "INT64" and not isinstance(rec.id, int):
            raise UsageError("the target collection has an INT64 primary key: ids must be ints")
        if pk.type == "VARCHAR" and not isinstance(rec.id, str):
            raise UsageError("the target collection has a VARCHAR primary key: ids must be "
                             "strings")
        row: dict[str, Any] = {pk.name: rec.id}
        for f in fields:
            if f.primary or f.function_output:
                continue
            if f.type in DENSE_TYPES:
                vec = rec.vectors.get(f.name)
                if vec is None and not f.nullable:
                    raise UsageError(f"a record has no vector for non-nullable field {f.name!r}")
                row[f.name] = None if vec is None else _vector_out(vec, f.type, f.name)
            elif f.type == SPARSE_TYPE:
                sv = rec.sparse.get(f.name)
                if sv is None and not f.nullable:
                    raise UsageError(f"a record has no sparse vector for field {f.name!r}")
                row[f.name] = None if sv is None else {
                    int(k): float(v) for k, v in zip(sv.indices.tolist(), sv.values.tolist())}
        for k, v in (rec.metadata or {}).items():
            f = by_name.get(k)
            if f is not None:
                if f.primary or f.type in DENSE_TYPES or f.type == SPARSE_TYPE:
                    raise UsageError(f"metadata key {k!r} clashes with a Milvus "
                                     "primary key or vector field")
                if not f.function_output:
                    row[k] = _scalar_out(v, f.type)
            elif dynamic:
                row[k] = v
            else:
                raise UsageError(f"metadata key {k!r} is not a field of the target collection "
                                 "and it has no dynamic field")
        out.append(row)
    return out


# ------------------------------------------------------------------ neutral layout


def _is_marker(value: Any) -> bool:
    return isinstance(value, dict) and value.get("vdedup") == NEUTRAL_VERSION \
        and value.get("layout") == NEUTRAL_LAYOUT


def _read_marker(info: dict[str, Any]) -> dict[str, Any] | None:
    """The neutral-layout marker (in the collection description, and in a collection property
    where the description is not kept), or None: a native collection."""
    props = info.get("properties") or {}
    for text in (props.get(MARKER_PROPERTY) if isinstance(props, dict) else None,
                 info.get("description")):
        if isinstance(text, str) and text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if _is_marker(value):
                return value
    return None


def _partition_name(namespace: str) -> str:
    """The partition of a namespace in a neutral collection: "" is `_default`; a name Milvus
    refuses (or one that would read back as something else) is hex-encoded behind a prefix."""
    if namespace == "":
        return DEFAULT_PARTITION
    if NAME_RE.match(namespace) and namespace != DEFAULT_PARTITION \
            and not namespace.startswith(NS_PREFIX):
        return namespace
    encoded = NS_PREFIX + namespace.encode("utf-8").hex()
    if len(encoded) > 255:
        raise UsageError(f"namespace {namespace[:40]!r} cannot be a Milvus partition name: "
                         "Milvus allows 255 characters of letters, digits and underscores, and "
                         f"other names are hex-encoded ({(255 - len(NS_PREFIX)) // 2} bytes at most)")
    return encoded


def _namespace_of(partition: str) -> str:
    if partition == DEFAULT_PARTITION:
        return ""
    if partition.startswith(NS_PREFIX):
        with contextlib.suppress(ValueError):
            return bytes.fromhex(partition[len(NS_PREFIX):]).decode("utf-8")
    return partition


def _milvus_metric(ftype: str, metric: Metric) -> str:
    table = BINARY_METRICS if ftype == "BINARY_VECTOR" else FLOAT_METRICS
    if metric not in table:
        raise UsageError(f"Milvus has no {metric.value} metric for {ftype} fields "
                         f"(it has {', '.join(m.value for m in table)}): give --metric")
    return table[metric]


def _field_names(names: list[str], used: set[str], unnamed: str) -> list[str]:
    """Milvus field names for vector names: the name itself where Milvus allows it and no
    other field has it, else one derived from it (the marker maps it back)."""
    out = []
    for name in names:
        base = name or unnamed
        if not NAME_RE.match(base):
            base = "v_" + re.sub(r"[^A-Za-z0-9_]", "_", base)[:200]
        cand, k = base, 2
        while cand in used:
            cand, k = f"{base}_{k}", k + 1
        used.add(cand)
        out.append(cand)
    return out


def _neutral_plan(schema: CollectionSchema) -> dict[str, Any]:
    """The marker of a neutral collection for a schema: field name of each vector, its metric
    and type, declared metadata fields and namespaces. Deterministic, so a neutral collection
    read back and restored into Milvus again gets the same layout."""
    own = schema.extras.get(NEUTRAL_LAYOUT)
    for v in schema.vectors:
        label = v.name or "(default)"
        if v.multivector:
            raise UsageError(f"vector {label!r} is a multivector, which Milvus cannot hold")
        if v.dtype not in DTYPE_FIELDS:
            raise UsageError(f"vector {label!r}: Milvus has no {v.dtype} vector type")
        if v.dim is None or v.dim < 1:
            raise UsageError(f"vector {label!r} has no known dimension: Milvus needs one")
        if v.dtype == "binary" and v.dim % 8:
            raise UsageError(f"binary vector {label!r}: Milvus needs a dimension that is a "
                             "multiple of 8")
        if v.metric == Metric.UNKNOWN:
            raise UsageError(f"vector {label!r} has no known metric: Milvus needs one for its "
                             "index (give --metric)")
        _milvus_metric(DTYPE_FIELDS[v.dtype], v.metric)
    for sp in schema.sparse:
        if sp.metric != Metric.DOT:
            raise UsageError(f"sparse vector {sp.name or '(default)'!r}: Milvus has only the "
                             f"dot (IP) metric for sparse vectors, not {sp.metric.value}")
    if len({v.name for v in schema.vectors}) != len(schema.vectors) or \
            len({s.name for s in schema.sparse}) != len(schema.sparse):
        raise UsageError("the schema names a vector twice")
    if len(set(schema.namespaces)) != len(schema.namespaces):
        raise UsageError("the schema names a namespace twice")
    for ns in schema.namespaces:
        _partition_name(ns)
    used = set(N_FIXED)
    dense = _field_names([v.name for v in schema.vectors], used, N_DENSE)
    sparse = _field_names([s.name for s in schema.sparse], used, N_SPARSE)
    origin = own.get("translated_from") if _is_marker(own) else None
    if origin is None:
        origin = schema.extras.get("translated_from") or \
            {"provider": schema.provider, "collection": schema.name}
    return {
        "vdedup": NEUTRAL_VERSION, "layout": NEUTRAL_LAYOUT, "id_type": schema.id_type.value,
        "vectors": [{"name": v.name, "field": f, "type": DTYPE_FIELDS[v.dtype], "dim": v.dim,
                     "metric": v.metric.value} for v, f in zip(schema.vectors, dense)],
        "sparse": [{"name": sp.name, "field": f, "metric": sp.metric.value,
                    "modifier": sp.modifier} for sp, f in zip(schema.sparse, sparse)],
        "metadata_fields": [[m.name, m.type, m.indexed, m.nullable]
                            for m in schema.metadata_fields],
        "namespaces": list(schema.namespaces), "documents": bool(schema.has_documents),
        "uris": bool(schema.has_uris), "options": _json_safe(dict(schema.options)),
        "translated_from": _json_safe(origin)}


def _check_json(value: Any, depth: int = 0) -> None:
    """Refuse metadata a Milvus JSON field would not give back exactly (one-line errors,
    without the values)."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
            raise UsageError("a metadata integer is outside the 64-bit range, which Milvus JSON "
                             "fields cannot hold")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UsageError("a metadata float is NaN or infinite, which Milvus JSON fields "
                             "cannot hold")
        return
    if depth > 64:
        raise UsageError("metadata is nested too deeply for a Milvus JSON field")
    if isinstance(value, list):
        for x in value:
            _check_json(x, depth + 1)
        return
    if isinstance(value, dict):
        for k, x in value.items():
            if not isinstance(k, str):
                raise UsageError("metadata keys must be strings in a Milvus JSON field")
            _check_json(x, depth + 1)
        return
    raise UsageError(f"metadata values of type {type(value).__name__} cannot be stored in a "
                     "Milvus JSON field (a cross-provider restore converts them first)")


def _text_field(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"a record's {what} is not a string")
    if len(value.encode("utf-8")) > MAX_VARCHAR:
        raise UsageError(f"a record's {what} is longer than {MAX_VARCHAR} bytes, the most a "
                         "Milvus VARCHAR field holds")
    return value


def _placeholder(ftype: str, dim: int) -> Any:
    """What an absent dense vector is stored as (Milvus vector fields cannot be null)."""
    zeros = {"FLOAT_VECTOR": np.float32, "FLOAT16_VECTOR": np.float16,
             "BFLOAT16_VECTOR": np.uint16, "INT8_VECTOR": np.int8, "BINARY_VECTOR": np.uint8}
    return _vector_out(np.zeros(dim, dtype=zeros[ftype]), ftype, "")


SPARSE_PLACEHOLDER = {0: 1.0}       # Milvus refuses empty and null sparse vectors


def _neutral_rows(batch: RecordBatch, fields: list[_Field],
                  marker: dict[str, Any]) -> list[dict[str, Any]]:
    by_name = {f.name: f for f in fields}
    pk = by_name[N_ID]
    dense = [(v["name"], by_name[v["field"]]) for v in marker["vectors"]]
    sparse = [(sp["name"], by_name[sp["field"]]) for sp in marker["sparse"]]
    if batch.multi:
        raise UsageError("Milvus vector fields hold one vector per record, not multivectors")
    for name in batch.dense:
        if name not in {n for n, _ in dense}:
            raise UsageError(f"the target collection has no vector {name!r}")
    for name in batch.sparse:
        if name not in {n for n, _ in sparse}:
            raise UsageError(f"the target collection has no sparse vector {name!r}")
    out: list[dict[str, Any]] = []
    for rec in batch.records():
        state: dict[str, Any] = {}
        rid = rec.id
        if isinstance(rid, bool) or not isinstance(rid, (int, str)):
            raise UsageError("record ids must be integers or strings")
        if pk.type == "INT64":
            if not isinstance(rid, int) or not INT64_RANGE[0] <= rid <= INT64_RANGE[1]:
                raise UsageError("the target collection has an INT64 primary key: ids must be "
                                 "integers in the 64-bit range")
        elif isinstance(rid, int):
            rid, state["int_id"] = str(rid), True
        else:
            _text_field(rid, "id")
        row: dict[str, Any] = {N_ID: rid}
        absent: list[str] = []
        for name, f in dense:
            vec = rec.vectors.get(name)
            if vec is None:
                absent.append(f.name)
                row[f.name] = _placeholder(f.type, int(f.dim or 0))
                continue
            if vec.ndim != 1 or vec.shape[0] != f.dim:
                raise UsageError(f"vector {name or '(default)'!r} has {vec.shape[-1]} dimensions, "
                                 f"the Milvus field {f.dim}")
            row[f.name] = _vector_out(vec, f.type, name)
        empty: list[str] = []
        for name, f in sparse:
            sv = rec.sparse.get(name)
            if sv is None or not len(sv.indices):
                (absent if sv is None else empty).append(f.name)
                row[f.name] = dict(SPARSE_PLACEHOLDER)
                continue
            if not (np.isfinite(sv.values).all() and (sv.values >= 0).all()
                    and (sv.values > 0).any()):
                raise UsageError(f"sparse vector {name or '(default)'!r}: Milvus holds only finite, "
                                 "non-negative sparse values with at least one above zero")
            values = dict(zip(sv.indices.tolist(), sv.values.tolist()))
            if len(values) != len(sv.indices):
                raise UsageError(f"sparse vector {name or '(default)'!r} repeats an index")
            row[f.name] = values
        meta = rec.metadata
        if meta is not None:
            if not isinstance(meta, dict):
                raise UsageError("record metadata must be a dict")
            _check_json(meta)
        row[N_META] = meta
        for field, value, what in ((N_DOC, rec.document, "document"), (N_URI, rec.uri, "uri")):
            if field in by_name:
                row[field] = _text_field(value, what)
            elif value is not None:
                raise UsageError(f"the target collection has no {what} field")
        if absent:
            state["absent"] = absent
        if empty:
            state["empty"] = empty
        row[N_STATE] = state or None
        out.append(row)
    return out


def _neutral_batch(rows: list[dict[str, Any]], fields: list[_Field], marker: dict[str, Any],
                   namespace: str) -> RecordBatch:
    by_name = {f.name: f for f in fields}
    pk = by_name[N_ID]
    recs = []
    for r in rows:
        state = r.get(N_STATE) or {}
        skip = set(state.get("absent") or ())
        empty = set(state.get("empty") or ())
        rid = r[N_ID]
        rid = int(rid) if pk.type == "INT64" or state.get("int_id") else str(rid)
        vectors = {}
        for v in marker["vectors"]:
            f = by_name[v["field"]]
            if f.name not in skip:
                vectors[v["name"]] = _dense_value(r[f.name], f.type, f.dim)
        sparse = {}
        for sp in marker["sparse"]:
            field = sp["field"]
            if field in empty:
                sparse[sp["name"]] = SparseVector(np.zeros(0, np.uint32), np.zeros(0, np.float32))
            elif field not in skip and r.get(field) is not None:
                sparse[sp["name"]] = _sparse_value(r[field])
        recs.append(Record(rid, vectors, sparse, r.get(N_META), r.get(N_DOC), r.get(N_URI)))
    return RecordBatch.from_records(recs, namespace=namespace)
