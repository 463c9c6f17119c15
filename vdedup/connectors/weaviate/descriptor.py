"""Weaviate's declared facts (connector layer; imports no SDK). See descriptor.py."""
from __future__ import annotations

from ..descriptor import Capabilities, Descriptor, IdType, Metric as M

CAPABILITIES = Capabilities(
    "weaviate", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN, M.MANHATTAN, M.HAMMING}),
    frozenset({IdType.UUID}), max_dense=None, named_vectors=True, multivector=True, sparse=False,
    dtypes=frozenset({"float32"}),
    metadata_types=frozenset({"str", "int", "float", "bool", "null", "list", "dict", "datetime"}),
    nested_metadata=True, null_metadata=True, namespace_kind="tenant", documents=False,
    uris=False,
    metric_names={M.COSINE: "cosine", M.DOT: "dot", M.EUCLIDEAN: "l2-squared",
                  M.MANHATTAN: "manhattan", M.HAMMING: "hamming"})

DESCRIPTOR = Descriptor(
    name="weaviate", title="Weaviate",
    connector="vdedup.connectors.weaviate.connector:WeaviateConnector",
    extra="weaviate", sdk="weaviate", secret_env=("WEAVIATE_API_KEY",), secret_label="API key",
    account_url="weaviate://HOST:8080",
    url_forms=("weaviate://HOST:PORT[/Class][?https=1&grpc_port=P&timeout=S]",),
    capabilities=CAPABILITIES)
