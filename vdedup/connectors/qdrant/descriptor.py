"""Qdrant's declared facts (connector layer; imports no SDK). See descriptor.py."""
from __future__ import annotations

from ..descriptor import JSON_TYPES, Capabilities, Descriptor, IdType, Metric as M

CAPABILITIES = Capabilities(
    "qdrant", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN, M.MANHATTAN}),
    frozenset({IdType.INT, IdType.UUID}), max_dense=None, named_vectors=True, multivector=True,
    sparse=True, dtypes=frozenset({"float32", "float16", "uint8"}), metadata_types=JSON_TYPES,
    nested_metadata=True, null_metadata=True, namespace_kind=None, documents=False, uris=False,
    sparse_modifiers=True, exact_cosine=False, unnamed_sparse=False, int_ids=(0, 2 ** 64 - 1),
    metric_names={M.COSINE: "Cosine", M.DOT: "Dot", M.EUCLIDEAN: "Euclid",
                  M.MANHATTAN: "Manhattan"})

DESCRIPTOR = Descriptor(
    name="qdrant", title="Qdrant", connector="vdedup.connectors.qdrant.connector:QdrantConnector",
    extra="qdrant", sdk="qdrant_client", schemes=("qdrant+local",),
    secret_env=("QDRANT_API_KEY",), secret_label="API key", account_url="qdrant://HOST:6333",
    url_forms=("qdrant://HOST[:6333][/COLLECTION][?https=1&grpc=1&grpc_port=6334]",
               "qdrant+local:///abs/path[?collection=C]"),
    capabilities=CAPABILITIES)
