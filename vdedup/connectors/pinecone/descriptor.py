"""Pinecone's declared facts (connector layer; imports no SDK). See descriptor.py."""
from __future__ import annotations

from ..descriptor import Capabilities, Descriptor, IdType, Metric as M

CAPABILITIES = Capabilities(
    "pinecone", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN}), frozenset({IdType.STRING}),
    max_dense=1, named_vectors=False, multivector=False, sparse=True,
    dtypes=frozenset({"float32"}), metadata_types=frozenset({"str", "float", "bool", "list"}),
    nested_metadata=False, null_metadata=False, namespace_kind="namespace", documents=False,
    uris=False, max_sparse=1, named_sparse=False, ascii_ids=True,
    sparse_dense_metrics=frozenset({M.DOT}),     # a hybrid index is a dotproduct index
    metric_names={M.COSINE: "cosine", M.DOT: "dotproduct", M.EUCLIDEAN: "euclidean"})

DESCRIPTOR = Descriptor(
    name="pinecone", title="Pinecone",
    connector="vdedup.connectors.pinecone.connector:PineconeConnector",
    extra="pinecone", sdk="pinecone", secret_env=("PINECONE_API_KEY",), secret_label="API key",
    account_url="pinecone://",
    url_forms=("pinecone://INDEX[?host=URL][&controller=URL]", "pinecone://[?controller=URL]"),
    capabilities=CAPABILITIES)
