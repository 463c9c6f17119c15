"""Milvus's declared facts (connector layer; imports no SDK). See descriptor.py."""
from __future__ import annotations

from ..descriptor import JSON_TYPES, Capabilities, Descriptor, IdType, Metric as M

CAPABILITIES = Capabilities(
    "milvus", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN, M.HAMMING, M.JACCARD}),
    frozenset({IdType.INT, IdType.STRING}), max_dense=None, named_vectors=True, multivector=False,
    sparse=True, dtypes=frozenset({"float32", "float16", "bfloat16", "binary", "int8"}),
    metadata_types=JSON_TYPES, nested_metadata=True, null_metadata=True,
    namespace_kind="partition", documents=True, uris=True, sparse_positive=True,
    id_forbidden_chars='"\\',          # pymilvus pages by key unescaped (milvus/reader.py)
    ids_per_namespace=False,             # a primary key is unique across partitions
    metric_names={M.COSINE: "COSINE", M.DOT: "IP", M.EUCLIDEAN: "L2", M.HAMMING: "HAMMING",
                  M.JACCARD: "JACCARD"})

DESCRIPTOR = Descriptor(
    name="milvus", title="Milvus", connector="vdedup.connectors.milvus.connector:MilvusConnector",
    extra="milvus", sdk="pymilvus", secret_env=("MILVUS_TOKEN",), user_env="MILVUS_USER",
    password_env="MILVUS_PASSWORD", secret_label="token", account_url="milvus://HOST:19530",
    url_forms=("milvus://[USER@]HOST:PORT[/DB[/COLLECTION]][?secure=1]",),
    capabilities=CAPABILITIES)
