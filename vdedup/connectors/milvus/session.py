"""An open Milvus database: the client, what is cached of each collection, loading, and
SDK errors turned into vdedup errors (connector layer; pymilvus is imported on open).

Reading needs the collection loaded; a collection this session loaded is released again on
close(). Counting and scanning use Strong consistency (the default level may not see recent
deletes).
"""
from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, Iterator

from ...errors import CollectionNotFound, SourceError, UsageError, VdedupError
from ..common import error_detail, is_unreachable
from ..credentials import Credentials
from .layout import partition_name, read_marker
from .schema import Field, fields_of
from .url import Address, auth

COLLECTION_NOT_FOUND = 100   # Milvus error code
# SDK messages may echo offending values after these words; cut them.
DATA_ECHO_RE = re.compile(r"(\bDetail:|,?\s*\b(got|Got|but got|value)\b).*$")


class Session:
    """One Milvus database and what is known of its collections."""

    def __init__(self, client: Any, address: Address) -> None:
        self.client_or_none = client
        self.address = address
        self.where = address.where            # "host:port/db": safe for messages
        self.db = address.db
        self._fields: dict[str, list[Field]] = {}
        self._partition_key: dict[str, bool] = {}
        self._loaded_by_us: set[str] = set()
        self._ready: set[str] = set()
        self._dynamic_flag: dict[str, bool] = {}
        self._lite: bool | None = None
        self._markers: dict[str, dict[str, Any] | None] = {}

    @classmethod
    def open(cls, address: Address, credentials: Credentials) -> "Session":
        from pymilvus import MilvusClient

        # The SDK logs every failed call with a traceback to stderr; errors are ours to report.
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL + 1)
        try:
            client = MilvusClient(uri=address.uri, db_name=address.db, **auth(address, credentials))
        except Exception as e:
            raise translate(e, "connect", address.where, None) from e
        session = cls(client, address)
        with session.errors("open database"):
            client.list_collections()      # a missing database or bad credentials fail here
        return session

    def close(self) -> None:
        client, self.client_or_none = self.client_or_none, None
        if client is None:
            return
        for name in sorted(self._loaded_by_us):
            with contextlib.suppress(Exception):
                client.release_collection(name)
        self._loaded_by_us.clear()
        with contextlib.suppress(Exception):
            client.close()

    @property
    def client(self) -> Any:
        if self.client_or_none is None:
            raise SourceError(f"the Milvus connection to {self.where} is closed")
        return self.client_or_none

    # ------------------------------------------------------------ what is cached

    def forget(self, collection: str) -> None:
        self._fields.pop(collection, None)
        self._partition_key.pop(collection, None)
        self._dynamic_flag.pop(collection, None)
        self._markers.pop(collection, None)
        self._ready.discard(collection)

    def fields(self, collection: str) -> list[Field]:
        if collection not in self._fields:
            with self.errors("describe", collection):
                info = self.client.describe_collection(collection)
            self._fields[collection] = fields_of(info)
            self._partition_key[collection] = any(r.get("is_partition_key")
                                                  for r in info.get("fields", []))
            self._dynamic_flag[collection] = bool(info.get("enable_dynamic_field"))
            self._markers[collection] = read_marker(info)
        return self._fields[collection]

    def marker(self, collection: str) -> dict[str, Any] | None:
        """The neutral-layout marker of a collection (None: a native one)."""
        self.fields(collection)
        return self._markers.get(collection)

    def dynamic(self, collection: str) -> bool:
        self.fields(collection)
        return self._dynamic_flag[collection]

    def partition_key(self, collection: str, look: bool = True) -> bool:
        """Whether the collection has a partition key (without `look`: only if known)."""
        if look:
            self.fields(collection)
        return bool(self._partition_key.get(collection))

    def is_lite(self) -> bool:
        if self._lite is None:
            with self.errors("read the server version"):
                self._lite = str(self.client.get_server_version()).startswith("milvus_lite")
        return self._lite

    def partitions_arg(self, collection: str, namespace: str) -> list[str] | None:
        """The partition_names argument that reads one namespace (None: all of them)."""
        self.fields(collection)
        if self._markers.get(collection) is not None:
            namespace = partition_name(namespace)     # "" is the _default partition there
        elif not namespace:
            return None
        if self._partition_key.get(collection):
            raise UsageError(f"Milvus collection {collection!r} has a partition key: "
                             "it has one namespace, ''")
        with self.errors("look up partition", collection):
            if not self.client.has_partition(collection, namespace):
                raise CollectionNotFound(f"Milvus partition {namespace!r} of {collection!r} "
                                         f"not found at {self.where}")
        return [namespace]

    def load(self, collection: str) -> None:
        """Load the collection for reading; remember to release it if we loaded it."""
        if collection in self._ready:
            return
        client = self.client
        with self.errors("load", collection):
            state = str(client.get_load_state(collection).get("state"))
            if "NotLoad" in state:
                client.load_collection(collection)
                self._loaded_by_us.add(collection)
        self._ready.add(collection)

    @contextlib.contextmanager
    def errors(self, action: str, collection: str | None = None,
               data: bool = False) -> Iterator[None]:
        """Turn any SDK exception into a one-line SourceError / CollectionNotFound."""
        try:
            yield
        except VdedupError:
            raise
        except Exception as e:
            if collection is not None and code(e) == COLLECTION_NOT_FOUND:
                self.forget(collection)
            raise translate(e, action, self.where, collection, data) from e


# ------------------------------------------------------------------- errors


def code(e: BaseException) -> int | None:
    value = getattr(e, "code", None)
    return value if isinstance(value, int) else None


def _is_unreachable(e: BaseException) -> bool:
    if is_unreachable(e) or "Fail connecting" in str(e):
        return True
    status = getattr(e, "code", None)          # a raw grpc.RpcError has code() -> StatusCode
    if callable(status):
        with contextlib.suppress(Exception):
            return getattr(status(), "name", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    return False


def translate(e: BaseException, action: str, where: str, collection: str | None,
              data: bool = False) -> VdedupError:
    text = error_detail(e, DATA_ECHO_RE if data else None, prefer_message=True)
    if _is_unreachable(e):
        return SourceError(f"cannot reach Milvus at {where}: {text}")
    if collection is not None and code(e) == COLLECTION_NOT_FOUND:
        return CollectionNotFound(f"Milvus collection {collection!r} not found at {where}")
    target = f" {collection!r}" if collection is not None else ""
    return SourceError(f"Milvus {action}{target} at {where} failed: {text}")
