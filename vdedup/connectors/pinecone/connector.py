"""Pinecone connector (connector layer; depends only on model and errors).

    pinecone://INDEX[?host=URL][&controller=URL]   one index (its data-plane host from
                                                   describe, or `host=` to skip that)
    pinecone://[?controller=URL]                   every index of the project

The API key is the secret of the credentials the connector is opened with (at the command
line `PINECONE_API_KEY` holds it), never the URL or argv. The control-plane URL is
`controller=` or `PINECONE_CONTROLLER_HOST` (not a secret; both only needed for an emulator or
a private deployment); the default is Pinecone's own, https://api.pinecone.io.

Why the code looks the way it does (`pinecone` SDK 10.x, REST API 2026-07):
- Only indexes whose schema is the classic vector one (fields `_values` and/or
  `_sparse_values`) are served by the vectors API; document indexes with named fields are
  refused. The dense vector is recorded as `""`, the sparse one also as `""` (in `sparse`).
- Reading: namespaces from `describe_index_stats` (the default one is reported as
  `__default__`, recorded as `""`), then per namespace the ids through the paginated `list`
  (serverless only: a pod-based index is refused rather than half backed up) and the records
  through `fetch`, 1,000 ids a call, a few calls in flight (well below the documented
  100 fetch requests/s per index).
- Partitions (docs/scale-out.md) are ranges of ids in code point order, bounds chosen from
  the sorted list of ids (partition.py `string_ranges`). A range is read by listing the
  prefixes that cover it (`list` takes an ASCII `prefix`; `id_cover`) and
  keeping the ids inside it, so every id lands in exactly one range, those listed after the
  plan included; a range no small set of prefixes covers (the first and last: open) is read
  from a listing of the whole namespace.
- Every call is retried on 429, 5xx and connection errors with exponential backoff and
  jitter, a bounded number of times (on top of the SDK's own three quick retries); the last
  failure is a SourceError (exit 15).
- Numbers in metadata are float64 in Pinecone: an int written comes back as a float, and is
  kept as returned. Writes refuse what Pinecone cannot hold (null, nested objects, lists of
  non-strings, integers beyond 2**53) instead of changing it silently.
- Writes are eventually consistent. `write` remembers a digest of every record it wrote in
  the namespace, and `count` (which the restore engine calls after each namespace) first
  waits until all of them read back as written, then until the stats count them: a restore
  is not reported complete before its data is readable (`settle` does the same explicitly).
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import dataclasses
import os
import random
import re
import time
from collections import deque
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlsplit

import numpy as np

from ...errors import CollectionNotFound, SourceError, UsageError, VdedupError
from ...model import (CollectionSchema, DiscoveredIndex, IdType, Metric, Partition, RecordBatch,
                     RecordId, SparseColumn, SparseField, SparseVector, VectorField)
from ...model.partition import WHOLE, whole
from ..common import (INSECURE_KEY, error_detail, flag, is_loopback, refuse_credentials, refuse_secret_params,
                      refuse_unknown_params)
from ..credentials import NO_CREDENTIALS, Credentials
from ..base import ConnectorBase
from ..url import SourceURL
from .descriptor import DESCRIPTOR
from .schema import (API_VERSION, DEFAULT_NAMESPACE_ALIAS, DENSE_FIELD, METRIC_FROM, SPARSE_FIELD,
                     deployment_for, fields_for, index_info, json_safe, ns_name, refuse_pod,
                     spec_of, vector_index_only)
from .ranges import id_cover, plan_ranges
from .values import as_upsert, chunks, digest, string_ids, to_vectors

T = TypeVar("T")

KEY_ENV = DESCRIPTOR.secret_env[0]
CONTROLLER_ENV = "PINECONE_CONTROLLER_HOST"
URL_QUERY_KEYS = {"host", "controller", INSECURE_KEY}


LIST_LIMIT = 100                 # ids per list page (the API's default and maximum)
FETCH_IDS = 1000                 # ids per fetch call (the API's maximum)
FETCH_URL_BYTES = 16 * 1024      # and at most this much of ids in one fetch URL
FETCH_WORKERS = 4                # fetch calls in flight per scan
MAX_ATTEMPTS = 6                 # tries per call, each including the SDK's own retries
BACKOFF_BASE = 0.5               # seconds; doubled per attempt, with jitter
BACKOFF_CAP = 20.0
READY_TIMEOUT = 600.0            # seconds to wait for a new index to be ready
SETTLE_TIMEOUT = 300.0           # seconds to wait for written records to be readable
POLL_INTERVAL = 0.2

NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,43}[a-z0-9])?")


class PineconeConnector(ConnectorBase):
    """One Pinecone project (optionally pinned to one index by the URL)."""

    provider = "pinecone"
    descriptor = DESCRIPTOR

    def __init__(self, client: Any, where: str, index: str | None = None,
                 data_host: str | None = None, key_origin: str = KEY_ENV) -> None:
        self._pc = client
        self._key_origin = key_origin             # where the API key came from, for messages
        self._where = where                       # control-plane URL: safe for messages
        self._index = index
        self._hosts: dict[str, str] = {index: data_host} if index and data_host else {}
        self._handles: dict[str, Any] = {}
        self._written: dict[tuple[str, str], dict[str, bytes]] = {}

    # ----------------------------------------------------------------- opening

    @classmethod
    def plain_transport(cls, u: SourceURL) -> tuple[str, str] | None:
        """Pinecone itself is https only; a private deployment named by ?host= or ?controller=
        may be plain http."""
        if flag(u.query.get(INSECURE_KEY)):
            return None
        for key in ("host", "controller"):
            parts = urlsplit(u.query.get(key) or "")
            if parts.scheme == "http" and not is_loopback(parts.hostname):
                return parts.hostname or "?", f"?{key}=https://..."
        return None

    @classmethod
    def validate_url(cls, u: SourceURL) -> None:
        refuse_credentials(u, "Pinecone", f"set {KEY_ENV} instead")
        refuse_secret_params(u, "Pinecone", f"set {KEY_ENV} instead")
        refuse_unknown_params(u, "Pinecone", URL_QUERY_KEYS)
        if u.port is not None or u.path not in ("", "/"):
            raise UsageError("a Pinecone URL is pinecone://INDEX (an index name, no port or path); "
                             "give a data-plane host with ?host=URL")
        index = u.host or None
        if index is not None and not NAME_RE.fullmatch(index):
            raise UsageError(f"invalid Pinecone index name {index!r}: 1-45 lower-case letters, "
                             "digits and '-', starting and ending with a letter or digit")
        if u.query.get("host") and index is None:
            raise UsageError("?host= needs an index: pinecone://INDEX?host=URL")

    @classmethod
    def from_url(cls, u: SourceURL, credentials: Credentials = NO_CREDENTIALS) -> "PineconeConnector":
        cls.validate_url(u)
        index = u.host or None
        key = credentials.secret or ""
        if not key.strip():
            raise UsageError(f"no Pinecone API key: set {KEY_ENV}, or store one with the "
                             "connected asset ('vdedup assets rotate NAME')")
        controller = u.query.get("controller") or os.environ.get(CONTROLLER_ENV) or None
        from pinecone import Pinecone, RetryConfig

        try:
            client = Pinecone(api_key=key, host=controller, source_tag="vdedup",
                              retry_config=RetryConfig(max_retries=2, backoff_factor=0.1, max_wait=2.0))
        except Exception as e:
            raise SourceError(f"cannot open the Pinecone client: {_detail(e)}") from e
        return cls(client, controller or "https://api.pinecone.io", index, u.query.get("host"),
                   credentials.origin)

    def close(self) -> None:
        for handle in self._handles.values():
            with contextlib.suppress(Exception):
                handle.close()
        self._handles.clear()
        client, self._pc = self._pc, None
        with contextlib.suppress(Exception):
            if client is not None:
                client.close()

    # --------------------------------------------------------------- reading

    @property
    def url_collection(self) -> str | None:
        """The index the URL names (a restore writes there)."""
        return self._index

    def list_collections(self) -> list[str]:
        if self._index is not None:
            return [self._index]
        models = self._call(lambda: list(self._live().indexes.list()), "list indexes")
        return sorted(m.name for m in models)

    def exists(self, collection: str) -> bool:
        if not NAME_RE.fullmatch(collection or ""):
            return False
        try:
            self._model(collection)
        except CollectionNotFound:
            return False
        return True

    def describe(self, collection: str) -> CollectionSchema:
        model = self._model(collection)
        info = index_info(model)
        refuse_pod(collection, info)
        fields = info["schema"].get("fields") or {}
        vector_index_only(collection, fields)
        vectors: tuple[VectorField, ...] = ()
        sparse: tuple[SparseField, ...] = ()
        dense = fields.get(DENSE_FIELD)
        if dense is not None:
            vectors = (VectorField(name="", dim=int(dense["dimension"]),
                                   metric=METRIC_FROM.get(dense.get("metric"), Metric.UNKNOWN),
                                   dtype="float32"),)
        if SPARSE_FIELD in fields:
            sparse = (SparseField(name="", metric=Metric.DOT),)
        stats = self._stats(collection)
        namespaces = sorted(ns_name(n) for n in stats.namespaces) or [""]
        extras = {
            "api_version": API_VERSION,
            "schema": info["schema"],
            "deployment": info["deployment"],
            "read_capacity": info.get("read_capacity"),
            "deletion_protection": info.get("deletion_protection"),
            "tags": info.get("tags"),
            "vector_type": "dense" if dense is not None else "sparse",
            "metric": dense.get("metric") if dense is not None else "dotproduct",
            "spec": spec_of(info),
        }
        return CollectionSchema(
            provider=self.provider, name=collection, id_type=IdType.STRING, vectors=vectors,
            sparse=sparse, namespaces=tuple(namespaces), extras=json_safe(extras))

    def count(self, collection: str, namespace: str = "") -> int:
        written = self._written.get((collection, namespace))
        if written:
            self.settle(collection, namespace)
            return self._count_at_least(collection, namespace, len(written))
        return self._count(collection, namespace)

    def scan(self, collection: str, namespace: str = "",
             batch_size: int = 1000) -> Iterator[RecordBatch]:
        return self._scan(collection, namespace, batch_size, None, None)

    def partitions(self, collection: str, namespace: str = "",
                   target_size: int = 100_000) -> list[Partition]:
        refuse_pod(collection, index_info(self._model(collection)))
        count = self._count(collection, namespace)
        if count <= target_size:
            return [whole(namespace, count)]
        handle = self._handle(collection)
        return plan_ranges(lambda: self._list_ids(collection, handle, namespace, ""), target_size, namespace)

    def scan_partition(self, collection: str, partition: Partition,
                       batch_size: int = 1000) -> Iterator[RecordBatch]:
        if partition.key == WHOLE:
            return self.scan(collection, partition.namespace, batch_size)
        lo, hi = partition.spec.get("lo"), partition.spec.get("hi")
        if not all(b is None or isinstance(b, str) for b in (lo, hi)) or lo is hi is None:
            raise UsageError(f"not a Pinecone partition: {partition.key!r}")
        return self._scan(collection, partition.namespace, batch_size, lo, hi)

    def _scan(self, collection: str, namespace: str, batch_size: int,
              lo: str | None, hi: str | None) -> Iterator[RecordBatch]:
        if batch_size < 1:
            raise UsageError("batch size must be at least 1")
        refuse_pod(collection, index_info(self._model(collection)))
        handle = self._handle(collection)
        size = min(batch_size, FETCH_IDS)
        with futures.ThreadPoolExecutor(FETCH_WORKERS, thread_name_prefix="pinecone-fetch") as pool:
            inflight: deque[futures.Future[RecordBatch]] = deque()
            for chunk in self._id_chunks(collection, handle, namespace, size, lo, hi):
                inflight.append(pool.submit(self._fetch, collection, handle, namespace, chunk))
                while len(inflight) >= FETCH_WORKERS * 2:
                    batch = inflight.popleft().result()
                    if len(batch):
                        yield batch
            while inflight:
                batch = inflight.popleft().result()
                if len(batch):
                    yield batch

    def _id_chunks(self, collection: str, handle: Any, namespace: str, size: int,
                   lo: str | None = None, hi: str | None = None) -> Iterator[list[str]]:
        """The ids in [lo, hi) (None: open), in chunks a fetch takes."""
        chunk: list[str] = []
        url_bytes = 0
        for prefix in id_cover(lo, hi):
            for rid in self._list_ids(collection, handle, namespace, prefix):
                if (lo is not None and rid < lo) or (hi is not None and rid >= hi):
                    continue
                cost = len(rid.encode()) * 3 + 5          # worst case once URL-encoded
                if chunk and (len(chunk) >= size or url_bytes + cost > FETCH_URL_BYTES):
                    yield chunk
                    chunk, url_bytes = [], 0
                chunk.append(rid)
                url_bytes += cost
        if chunk:
            yield chunk

    def _list_ids(self, collection: str, handle: Any, namespace: str, prefix: str) -> Iterator[str]:
        token: str | None = None
        while True:
            page = self._call(
                lambda: handle.list_paginated(prefix=prefix or None, namespace=namespace,
                                              limit=LIST_LIMIT, pagination_token=token),
                "list ids of", collection)
            for item in page.vectors:
                yield item.id
            token = page.pagination.next if page.pagination else None
            if not token:
                return

    def _fetch(self, collection: str, handle: Any, namespace: str, ids: list[str]) -> RecordBatch:
        got = self._call(lambda: handle.fetch(ids=ids, namespace=namespace), "fetch from",
                         collection).vectors
        # Records deleted since their id was listed are skipped, not invented.
        kept = [rid for rid in ids if rid in got]
        rows = [got[rid] for rid in kept]
        batch = RecordBatch(ids=list(kept), namespace=namespace,
                            metadata=[dict(r.metadata) if r.metadata else None for r in rows])
        dims = {len(r.values) for r in rows if r.values}
        if len(dims) > 1:
            raise SourceError(f"Pinecone index {collection!r} returned vectors of different lengths")
        if dims:
            dim = dims.pop()
            dense = np.zeros((len(rows), dim), dtype=np.float32)
            present = np.zeros(len(rows), dtype=bool)
            for i, r in enumerate(rows):
                if r.values:
                    dense[i] = np.asarray(r.values, dtype=np.float64).astype(np.float32)
                    present[i] = True
            batch.dense[""] = dense
            if not present.all():
                batch.dense_present[""] = present
        if any(r.sparse_values is not None for r in rows):
            batch.sparse[""] = SparseColumn.from_rows([
                None if r.sparse_values is None else
                SparseVector(np.asarray(r.sparse_values.indices, dtype=np.uint32),
                             np.asarray(r.sparse_values.values, dtype=np.float64).astype(np.float32))
                for r in rows])
        return batch

    def discover(self) -> list[DiscoveredIndex]:
        """Every index with its counts per namespace: the index list already holds each
        schema and host, and one describe_index_stats per index gives every namespace's
        count (the default discover() would ask for the stats once per namespace)."""
        if self._index is not None:
            models = [self._model(self._index)]
        else:
            models = self._call(lambda: list(self._live().indexes.list()), "list indexes")
        found = []
        for model in sorted(models, key=lambda m: m.name):
            name, info = model.name, index_info(model)
            fields = info["schema"].get("fields") or {}
            dense = fields.get(DENSE_FIELD) or {}
            dims = int(dense["dimension"]) if dense.get("dimension") else None
            metric = METRIC_FROM.get(dense.get("metric") or "dotproduct")
            entry = DiscoveredIndex(self.descriptor.name, name, None, dims,
                                    metric.value if metric is not None else None)
            try:
                refuse_pod(name, info)
                vector_index_only(name, fields)
                if model.host:
                    self._hosts.setdefault(name, model.host)
                spaces = self._stats(name).namespaces
            except VdedupError as e:
                found.append(dataclasses.replace(entry, problem=e.message))
                continue
            counts = {ns_name(n): int(s.vector_count) for n, s in spaces.items()}
            found.append(dataclasses.replace(entry, count=sum(counts.values()),
                                             namespaces=tuple(sorted(counts)) or ("",)))
        return found

    def query(self, collection: str, namespace: str, vector: np.ndarray, k: int,
              vector_name: str = "") -> list[RecordId]:
        """The ids of the k nearest records as the index serves them (`query`)."""
        handle = self._handle(collection)
        values = [float(x) for x in np.asarray(vector, dtype=np.float32)]
        found = self._call(lambda: handle.query(vector=values, top_k=k, namespace=namespace),
                           "query", collection)
        return [m.id for m in found.matches]

    # --------------------------------------------------------------- writing

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        if not NAME_RE.fullmatch(name or ""):
            raise UsageError(f"invalid Pinecone index name {name!r}: 1-45 lower-case letters, "
                             "digits and '-', starting and ending with a letter or digit")
        fields = fields_for(schema)
        same = schema.provider == self.provider
        extras = schema.extras if same else {}
        deployment = extras.get("deployment") if isinstance(extras.get("deployment"), dict) else None
        deployment = deployment_for(deployment)
        kwargs: dict[str, Any] = {"name": name, "schema": {"fields": fields},
                                  "deployment": deployment, "timeout": -1}
        if extras.get("deletion_protection") in ("enabled", "disabled"):
            kwargs["deletion_protection"] = extras["deletion_protection"]
        if isinstance(extras.get("tags"), dict) and extras["tags"]:
            kwargs["tags"] = {str(k): str(v) for k, v in extras["tags"].items()}
        if self.exists(name):
            raise SourceError(f"Pinecone index {name!r} already exists at {self._where}")
        self._call(lambda: self._live().indexes.create(**kwargs), "create index", name,
                   usage=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            model = self._model(name)
            if model.status.ready and model.host:
                self._hosts[name] = model.host
                return
            if time.monotonic() > deadline:
                raise SourceError(f"Pinecone index {name!r} was not ready after {READY_TIMEOUT:.0f} s")
            time.sleep(POLL_INTERVAL)

    def write(self, collection: str, batch: RecordBatch) -> None:
        if not len(batch):
            return
        vectors = to_vectors(batch)
        handle = self._handle(collection)
        written = self._written.setdefault((collection, batch.namespace), {})
        for chunk in chunks(vectors):
            self._call(lambda: handle.upsert(vectors=chunk, namespace=batch.namespace),
                       "upsert into", collection)
            for v in chunk:
                written[v["id"]] = digest(v)

    def settle(self, collection: str, namespace: str = "") -> None:
        """Wait until every record written to the namespace reads back as written."""
        written = self._written.get((collection, namespace))
        if not written:
            return
        handle = self._handle(collection)
        waiting = list(written)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while waiting:
            late: list[str] = []
            for a in range(0, len(waiting), FETCH_IDS):
                ids = waiting[a:a + FETCH_IDS]
                got = self._call(lambda: handle.fetch(ids=ids, namespace=namespace),
                                 "fetch from", collection).vectors
                late.extend(rid for rid in ids
                            if rid not in got or digest(as_upsert(got[rid])) != written[rid])
            waiting = late
            if waiting:
                if time.monotonic() > deadline:
                    raise SourceError(f"{len(waiting)} records written to Pinecone index "
                                      f"{collection!r} were still not readable after "
                                      f"{SETTLE_TIMEOUT:.0f} s")
                time.sleep(POLL_INTERVAL)

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        keys = string_ids(ids)
        handle = self._handle(collection)
        for a in range(0, len(keys), FETCH_IDS):
            part = keys[a:a + FETCH_IDS]
            self._call(lambda: handle.delete(ids=part, namespace=namespace), "delete from", collection)
            written = self._written.get((collection, namespace))
            if written:
                for rid in part:
                    written.pop(rid, None)

    # --------------------------------------------------------------- helpers

    def _live(self) -> Any:
        if self._pc is None:
            raise SourceError(f"the Pinecone connection to {self._where} is closed")
        return self._pc

    def _model(self, collection: str) -> Any:
        return self._call(lambda: self._live().indexes.describe(collection), "describe", collection)

    def _handle(self, collection: str) -> Any:
        handle = self._handles.get(collection)
        if handle is None:
            host = self._hosts.get(collection)
            if host is None:
                model = self._model(collection)
                if not model.host:
                    raise SourceError(f"Pinecone index {collection!r} has no host yet "
                                      "(still initializing?)")
                host = self._hosts[collection] = model.host
            handle = self._call(lambda: self._live().index(host=host), "open", collection)
            self._handles[collection] = handle
        return handle

    def _stats(self, collection: str) -> Any:
        handle = self._handle(collection)
        return self._call(lambda: handle.describe_index_stats(), "read stats of", collection)

    def _count(self, collection: str, namespace: str) -> int:
        spaces = self._stats(collection).namespaces
        for key in ((namespace,) if namespace else ("", DEFAULT_NAMESPACE_ALIAS)):
            if key in spaces:
                return int(spaces[key].vector_count)
        return 0

    def _count_at_least(self, collection: str, namespace: str, want: int) -> int:
        """The stats count, once it has caught up with `want` (it may lag behind fetch)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            have = self._count(collection, namespace)
            if have >= want or time.monotonic() > deadline:
                return have
            time.sleep(POLL_INTERVAL)

    def _call(self, fn: Callable[[], T], action: str, collection: str | None = None,
              usage: bool = False) -> T:
        """Run one SDK call, retrying throttling and transient failures with backoff."""
        from pinecone.errors.exceptions import (ApiError, PineconeConnectionError,
                                                PineconeTimeoutError)
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except VdedupError:
                raise
            except Exception as e:
                status = getattr(e, "status_code", None) if isinstance(e, ApiError) else None
                transient = (isinstance(e, (PineconeConnectionError, PineconeTimeoutError))
                             or status in (408, 429) or (status is not None and status >= 500))
                if transient and attempt < MAX_ATTEMPTS:
                    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
                    time.sleep(delay * random.uniform(0.5, 1.5))
                    continue
                raise self._translate(e, action, collection, status, attempt, usage) from e

    def _translate(self, e: Exception, action: str, collection: str | None, status: int | None,
                   attempts: int, usage: bool) -> VdedupError:
        target = f" {collection!r}" if collection else ""
        if status == 401:
            return SourceError(f"Pinecone at {self._where} rejected the API key from {self._key_origin} "
                               f"(401 Unauthorized)")
        if status == 404 and action in ("describe", "open") and collection:
            return CollectionNotFound(f"Pinecone index {collection!r} not found at {self._where}")
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        message = f"Pinecone {action}{target} failed{tries}: {_detail(e)}"
        if usage and status is not None and 400 <= status < 500 and status != 429:
            return UsageError(message)
        return SourceError(message)


# ------------------------------------------------------------------- functions


def _detail(e: BaseException) -> str:
    """One line of an SDK message; record values are never echoed by the calls we make."""
    return error_detail(e)
