"""Connector registry: URL scheme -> dotted import path + pip extra (connector layer).

Modelled on fsspec's registry: nothing is imported until a connector is asked for, and a
missing SDK is a clear error that names the extra to install.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import MissingDependency, UsageError
from .base import Connector
from .url import SourceURL, parse_url


@dataclass(frozen=True)
class Registration:
    target: str      # "module:Class"
    extra: str       # pip extra that installs its SDK
    sdk: str         # top-level module of the SDK


REGISTRY: dict[str, Registration] = {
    "chroma": Registration("vdedup.connectors.chroma:ChromaConnector", "chroma", "chromadb"),
    "postgresql": Registration("vdedup.connectors.pgvector:PgvectorConnector", "pgvector", "psycopg"),
    "milvus": Registration("vdedup.connectors.milvus:MilvusConnector", "milvus", "pymilvus"),
    "qdrant": Registration("vdedup.connectors.qdrant:QdrantConnector", "qdrant", "qdrant_client"),
    "pinecone": Registration("vdedup.connectors.pinecone:PineconeConnector", "pinecone", "pinecone"),
    "weaviate": Registration("vdedup.connectors.weaviate:WeaviateConnector", "weaviate", "weaviate"),
    "files": Registration("vdedup.connectors.files:FilesConnector", "files", "numpy"),   # numpy: core
}
ALIASES = {"postgres": "postgresql", "pgvector": "postgresql", "npy": "files"}


def register(scheme: str, target: str, extra: str, sdk: str) -> None:
    REGISTRY[scheme] = Registration(target, extra, sdk)


def open_connector(url: str | SourceURL, read_only: bool = False, create_on_write: bool = False) -> Connector:
    """The connector for a URL. Where opening would create the local storage the URL names
    (the connector's `storage_absent(url)` says so): with `read_only` (dry runs, verify) an
    empty stand-in that creates nothing; with `create_on_write` (restores) that stand-in until
    the first write opens the real connector."""
    u = parse_url(url) if isinstance(url, str) else url
    reg = REGISTRY.get(ALIASES.get(u.provider, u.provider))
    if reg is None:
        known = ", ".join(sorted(REGISTRY))
        raise UsageError(f"unknown provider {u.provider!r} (known: {known})")
    try:
        importlib.import_module(reg.sdk)
    except ImportError:
        raise MissingDependency(
            f"the {u.provider} connector needs the {reg.sdk!r} package: pip install 'vdedup[{reg.extra}]'"
        ) from None
    module_name, cls_name = reg.target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    absent = getattr(cls, "storage_absent", None) if read_only or create_on_write else None
    if absent is not None and absent(u):
        from .absent import AbsentTarget, OpenOnWrite
        empty = AbsentTarget(cls.provider, u.redacted(), u.query.get("collection") or None)
        return empty if read_only else OpenOnWrite(empty, lambda: cls.from_url(u))
    return cls.from_url(u)
