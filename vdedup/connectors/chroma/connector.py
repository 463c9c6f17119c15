"""Chroma connector (connector layer; depends only on model and errors).

    chroma:///abs/path/to/persist-dir         chromadb.PersistentClient (in-process)
    chroma://HOST:PORT[?tenant=T&database=D&ssl=1]   chromadb.HttpClient
    ...&collection=C (either form)            names one collection: a backup reads only it,
                                              a restore writes into it

A server token, when one is needed, is the secret of the credentials the connector is opened
with (sent as the `x-chroma-token` header; at the command line `CHROMA_API_KEY` holds it),
never the URL.

The package: connector.py (URL, clients, read, write, errors), schema.py (space, metric,
index configuration <-> the neutral schema), values.py (embeddings and ids <-> batches).

Why the code looks the way it does (chromadb 1.5.9):
- Collections are always opened with `embedding_function=None`: the default one downloads
  an ONNX model, which fails offline and is never needed to move stored vectors.
- Chroma has no cursor and `get` returns rows in storage order, whatever order the ids were
  asked in. `scan` pages ids only (`include=[]`), then fetches full rows by id in chunks that
  stay far below SQLite's 32766-variable cap, and reorders each chunk to the paged order.
- Embeddings come back as float64; they were stored as float32, so `astype(float32)` is exact.
- A record without metadata may come back as `{}` (when it has a document or uri), and
  Chroma refuses `{}` on write: both sides treat an empty dict as "no metadata".
- `upsert` merges into an existing record: metadata keys and documents it does not mention
  survive. `write` must replace, so it deletes the ids that already exist before upserting.
- Chroma has one unnamed vector per record, no namespaces, string ids, and requires an
  embedding for every record (without one the SDK tries to download a model to make it).

What no connector can fix, and the engine should report as lossy: a cosine collection hands
its vectors back a few float32 ulps off what was written (l2 and ip are exact), and a float
metadata value may come back one ulp off after any write (about 1 value in 8), embedded or
server alike. A metadata key set to None, or to NaN, is dropped.
"""
from __future__ import annotations

import contextlib
import os
import re
import warnings
from typing import Any, ContextManager, Iterator

import numpy as np

from ...errors import CollectionNotFound, SourceError, UsageError, VdedupError
from ...model import CollectionSchema, Partition, RecordBatch, RecordId
from ...model.partition import row_ranges
from ..common import (INSECURE_KEY, error_detail, flag, is_unreachable, plain_to_remote, refuse_credentials,
                      refuse_namespace, refuse_secret_params, refuse_unknown_params,
                      translated_errors)
from ..credentials import NO_CREDENTIALS, Credentials
from ..base import ConnectorBase
from ..url import SourceURL
from .descriptor import DESCRIPTOR
from .schema import chroma_json, configuration_for, configuration_of, schema_of, single_vector
from .values import dense_rows, embeddings_of, string_ids

MAX_IDS_PER_CALL = 5000      # ids per get/delete: SQLite allows 32766 bound variables
ID_PAGE_BATCHES = 10         # scan pages this many batches' worth of ids at a time
DEFAULT_PORT = 8000
URL_QUERY_KEYS = {"tenant", "database", "ssl", "collection", INSECURE_KEY}
TOKEN_ENV = DESCRIPTOR.secret_env[0]
TOKEN_HEADER = "x-chroma-token"
NO_NAMESPACES = ("Chroma collections have no namespaces (got {namespace!r}); "
                 "map each namespace to its own collection")

NAME_RE = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9._-]*[a-zA-Z0-9])?")
# SDK messages echo offending values after these words; cut them so no record data leaks.
DATA_ECHO_RE = re.compile(r"(,?\s*\b(got|Got|found duplicates of|but got)\b).*$")


class ChromaConnector(ConnectorBase):
    """One Chroma database (a persist directory, or a server's tenant and database)."""

    provider = "chroma"
    descriptor = DESCRIPTOR
    key_ordered_scan = False      # rows come in insertion order
    url_collection: str | None = None     # the collection the URL names (?collection=C)

    def __init__(self, client: Any, where: str) -> None:
        self._client = client
        self._where = where            # "/path" or "host:port": safe for messages
        self._collections: dict[str, Any] = {}
        self._max_batch: int | None = None

    # ----------------------------------------------------------------- opening

    @classmethod
    def validate_url(cls, u: SourceURL) -> None:
        refuse_credentials(u, "Chroma", f"set {TOKEN_ENV} instead")
        refuse_secret_params(u, "Chroma", f"set {TOKEN_ENV} instead")
        refuse_unknown_params(u, "Chroma", URL_QUERY_KEYS)
        if not u.host and (not u.path or not os.path.isabs(u.path)):
            raise UsageError("embedded Chroma needs an absolute path: chroma:///abs/path/to/dir")

    @classmethod
    def from_url(cls, u: SourceURL, credentials: Credentials = NO_CREDENTIALS) -> "ChromaConnector":
        cls.validate_url(u)
        tenancy = {k: u.query[k] for k in ("tenant", "database") if u.query.get(k)}
        if not u.host:
            conn = cls._persistent(u.path, tenancy)
        else:
            if u.path not in ("", "/"):
                raise UsageError(f"chroma://HOST:PORT takes no path (got {u.path!r}); "
                                 "use ?tenant=T&database=D")
            ssl = flag(u.query.get("ssl"))
            conn = cls._http(u.host, u.port or (443 if ssl else DEFAULT_PORT), ssl, tenancy,
                             credentials.secret)
        conn.url_collection = u.query.get("collection") or None
        return conn

    @classmethod
    def plain_transport(cls, u: SourceURL) -> tuple[str, str] | None:
        if not u.host:
            return None                       # embedded: no network
        return plain_to_remote(u, flag(u.query.get("ssl")), "?ssl=1")

    @classmethod
    def storage_absent(cls, u: SourceURL) -> bool:
        """Whether the URL names a persist directory that opening would create (no database)."""
        return (not u.host and os.path.isabs(u.path or "")
                and not os.path.exists(os.path.join(u.path, "chroma.sqlite3")))

    @classmethod
    def _persistent(cls, path: str, tenancy: dict[str, str]) -> "ChromaConnector":
        if not path or not os.path.isabs(path):
            raise UsageError("embedded Chroma needs an absolute path: chroma:///abs/path/to/dir")
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(f"Chroma path {path} is not a directory")
        import chromadb
        from chromadb.config import Settings

        try:
            client = chromadb.PersistentClient(
                path=path, settings=Settings(anonymized_telemetry=False), **tenancy)
        except Exception as e:
            raise SourceError(f"cannot open Chroma at {path}: {_detail(e)}") from e
        return cls(client, path)

    @classmethod
    def _http(cls, host: str, port: int, ssl: bool, tenancy: dict[str, str],
              token: str | None) -> "ChromaConnector":
        import chromadb
        from chromadb.config import Settings

        where = f"{host}:{port}"
        headers = {TOKEN_HEADER: token} if token else None
        try:
            client = chromadb.HttpClient(
                host=host, port=port, ssl=ssl, headers=headers,
                settings=Settings(anonymized_telemetry=False), **tenancy)
        except Exception as e:
            if _is_unreachable(e):
                raise SourceError(f"cannot reach Chroma at {where}: {_detail(e)}") from e
            raise SourceError(f"cannot open Chroma at {where}: {_detail(e)}") from e
        return cls(client, where)

    def close(self) -> None:
        self._collections.clear()
        client, self._client = self._client, None
        closer = getattr(client, "close", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                closer()

    # --------------------------------------------------------------- reading

    def list_collections(self) -> list[str]:
        if self.url_collection is not None:
            return [self.url_collection]
        names: list[str] = []
        seen: set[str] = set()
        page = 1000
        offset = 0
        with self._errors("list collections"):
            while True:
                found = self._live().list_collections(limit=page, offset=offset)
                fresh = [n for n in (getattr(c, "name", c) for c in found) if n not in seen]
                names.extend(fresh)
                seen.update(fresh)
                offset += len(found)
                if len(found) < page or not fresh:
                    return names

    def exists(self, collection: str) -> bool:
        if not _valid_name(collection):
            return False
        self._collections.pop(collection, None)   # ask the database, not the cache
        try:
            self._collection(collection)
        except CollectionNotFound:
            return False
        return True

    def describe(self, collection: str) -> CollectionSchema:
        col = self._collection(collection)
        with self._errors("describe", collection):
            configuration = chroma_json(configuration_of(col))
            metadata = chroma_json(col.metadata) or None
            first = col.get(limit=1, include=["embeddings"])
            schema_obj = getattr(col, "schema", None)
            index_schema = chroma_json(schema_obj.serialize_to_json()) if schema_obj else None
        embeddings = first.get("embeddings")
        dim = len(embeddings[0]) if embeddings is not None and len(embeddings) else None
        return schema_of(self.provider, collection, configuration, metadata, dim, index_schema)

    def count(self, collection: str, namespace: str = "") -> int:
        refuse_namespace(namespace, NO_NAMESPACES)
        col = self._collection(collection)
        with self._errors("count", collection):
            return int(col.count())

    def partitions(self, collection: str, namespace: str = "", target_size: int = 100_000) -> list[Partition]:
        """Offset pages of target_size records in Chroma's own (insertion) order, the last one
        open. Chroma filters ids only by exact match, so there are no id ranges: a record
        deleted before a page moves the later ones one page down (they are then recorded
        as leaving one partition and joining the next)."""
        return row_ranges(self.count(collection, namespace), target_size, "offset", namespace)

    def scan_partition(self, collection: str, partition: Partition, batch_size: int = 1000) -> Iterator[RecordBatch]:
        spec = partition.spec
        return self._scan(collection, partition.namespace, batch_size, int(spec.get("start") or 0),
                          None if spec.get("stop") is None else int(spec["stop"]))

    def scan(self, collection: str, namespace: str = "",
             batch_size: int = 1000) -> Iterator[RecordBatch]:
        return self._scan(collection, namespace, batch_size)

    def _scan(self, collection: str, namespace: str, batch_size: int, start: int = 0,
              stop: int | None = None) -> Iterator[RecordBatch]:
        refuse_namespace(namespace, NO_NAMESPACES)
        if batch_size < 1:
            raise UsageError("batch size must be at least 1")
        size = min(batch_size, MAX_IDS_PER_CALL)
        page = size * ID_PAGE_BATCHES
        col = self._collection(collection)
        offset = start
        while True:
            limit = page if stop is None else min(page, stop - offset)
            if limit <= 0:
                return
            with self._errors("scan", collection, data=True):
                ids = col.get(include=[], limit=limit, offset=offset)["ids"]
            offset += len(ids)
            for start in range(0, len(ids), size):
                batch = self._fetch(col, collection, ids[start:start + size])
                if len(batch):
                    yield batch
            if len(ids) < limit:
                return

    def _fetch(self, col: Any, collection: str, ids: list[str]) -> RecordBatch:
        with self._errors("scan", collection, data=True):
            got = col.get(ids=ids, include=["embeddings", "metadatas", "documents", "uris"])
        where = {rid: i for i, rid in enumerate(got["ids"])}
        # Records deleted since their id was paged are skipped, not invented.
        order = [where[rid] for rid in ids if rid in where]
        kept = [got["ids"][i] for i in order]
        dense, present = dense_rows(got.get("embeddings"), order)
        metadatas = got.get("metadatas") or [None] * len(got["ids"])
        documents = got.get("documents") or [None] * len(got["ids"])
        uris = got.get("uris") or [None] * len(got["ids"])
        docs = [documents[i] for i in order]
        links = [uris[i] for i in order]
        return RecordBatch(
            ids=kept,
            dense={"": dense},
            dense_present={} if present is None else {"": present},
            metadata=[metadatas[i] or None for i in order],
            documents=docs if any(d is not None for d in docs) else None,
            uris=links if any(x is not None for x in links) else None,
        )

    def query(self, collection: str, namespace: str, vector: np.ndarray, k: int,
              vector_name: str = "") -> list[RecordId]:
        """The ids of the k nearest records as the collection's index serves them."""
        refuse_namespace(namespace, NO_NAMESPACES)
        col = self._collection(collection)
        with self._errors("query", collection, data=True):
            got = col.query(query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=k, include=[])
        return list(got["ids"][0])

    # --------------------------------------------------------------- writing

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        if not _valid_name(name):
            raise UsageError(f"invalid Chroma collection name {name!r}: 3-512 characters from "
                             "[a-zA-Z0-9._-], starting and ending with a letter or digit")
        vector = single_vector(schema)
        configuration = configuration_for(schema, vector)
        metadata = schema.options.get("metadata") or None
        if metadata is not None and not isinstance(metadata, dict):
            raise UsageError(f"collection metadata for Chroma must be a mapping, not "
                             f"{type(metadata).__name__}")
        with self._errors("create collection", name):
            if self.exists(name):
                raise SourceError(f"Chroma collection {name!r} already exists at {self._where}")
            with _quiet():
                col = self._live().create_collection(
                    name=name, configuration=configuration, metadata=metadata,
                    embedding_function=None)
        self._collections[name] = col

    def write(self, collection: str, batch: RecordBatch) -> None:
        self._put(collection, batch, replace=True)

    def write_new(self, collection: str, batch: RecordBatch) -> None:
        """Records the caller guarantees are not in the collection yet: Chroma's plain `add`,
        without the look-up and delete `write` needs (`add` would silently keep an old record)."""
        self._put(collection, batch, replace=False)

    def _put(self, collection: str, batch: RecordBatch, replace: bool) -> None:
        refuse_namespace(batch.namespace, NO_NAMESPACES)
        if not len(batch):
            return
        ids = string_ids(batch.ids)
        embeddings = embeddings_of(batch)
        metadatas = None
        if batch.metadata is not None and any(batch.metadata):
            metadatas = [dict(m) if m else None for m in batch.metadata]
        documents = batch.documents if batch.documents and any(
            d is not None for d in batch.documents) else None
        uris = batch.uris if batch.uris and any(x is not None for x in batch.uris) else None
        col = self._collection(collection)
        step = self._chunk_size()
        for a in range(0, len(ids), step):
            b = a + step
            extra: dict[str, Any] = {}
            if metadatas is not None:
                extra["metadatas"] = metadatas[a:b]
            if documents is not None:
                extra["documents"] = list(documents[a:b])
            if uris is not None:
                extra["uris"] = list(uris[a:b])
            with self._errors("write", collection, data=True):
                if not replace:
                    col.add(ids=ids[a:b], embeddings=embeddings[a:b], **extra)
                    continue
                # upsert merges into existing records; delete them first so they are replaced.
                existing = col.get(ids=ids[a:b], include=[])["ids"]
                if existing:
                    col.delete(ids=existing)
                col.upsert(ids=ids[a:b], embeddings=embeddings[a:b], **extra)

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        refuse_namespace(namespace, NO_NAMESPACES)
        keys = string_ids(ids)
        col = self._collection(collection)
        for a in range(0, len(keys), MAX_IDS_PER_CALL):
            with self._errors("delete", collection, data=True):
                col.delete(ids=keys[a:a + MAX_IDS_PER_CALL])

    # --------------------------------------------------------------- helpers

    def _live(self) -> Any:
        if self._client is None:
            raise SourceError(f"the Chroma connection to {self._where} is closed")
        return self._client

    def _collection(self, name: str) -> Any:
        col = self._collections.get(name)
        if col is None:
            with self._errors("open collection", name), _quiet():
                col = self._live().get_collection(name=name, embedding_function=None)
            self._collections[name] = col
        return col

    def _chunk_size(self) -> int:
        if self._max_batch is None:
            with self._errors("read the maximum batch size"):
                self._max_batch = int(self._live().get_max_batch_size())
        return max(1, min(self._max_batch, MAX_IDS_PER_CALL))

    def _errors(self, action: str, collection: str | None = None,
                data: bool = False) -> ContextManager[None]:
        """Turn any SDK exception into a one-line SourceError / CollectionNotFound."""
        return translated_errors(lambda e: self._translate(e, action, collection, data))

    def _translate(self, e: Exception, action: str, collection: str | None,
                   data: bool) -> VdedupError:
        from chromadb.errors import InvalidArgumentError, NotFoundError

        if _is_unreachable(e):
            return SourceError(f"cannot reach Chroma at {self._where}: {_detail(e)}")
        if isinstance(e, NotFoundError) and collection is not None and "ollection" in str(e):
            self._collections.pop(collection, None)
            return CollectionNotFound(
                f"Chroma collection {collection!r} not found at {self._where}")
        target = f" {collection!r}" if collection is not None else ""
        message = f"Chroma {action}{target} at {self._where} failed: {_detail(e, data)}"
        if isinstance(e, (InvalidArgumentError, ValueError)) and action == "create collection":
            return UsageError(message)
        return SourceError(message)


# ------------------------------------------------------------------- functions


def _detail(e: BaseException, data: bool = False) -> str:
    """The first line of an SDK message, without echoed values when records were involved."""
    return error_detail(e, DATA_ECHO_RE if data else None)


def _is_unreachable(e: BaseException) -> bool:
    return is_unreachable(e) or "Could not connect" in str(e)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # Opening a collection with embedding_function=None warns about a "legacy" config.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _valid_name(name: str) -> bool:
    return isinstance(name, str) and 3 <= len(name) <= 512 and NAME_RE.fullmatch(name) is not None
