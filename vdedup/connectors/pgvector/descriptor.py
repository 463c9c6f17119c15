"""PostgreSQL + pgvector's declared facts (connector layer; imports no SDK). See descriptor.py."""
from __future__ import annotations

from ..descriptor import JSON_TYPES, Capabilities, Descriptor, IdType, Metric as M

CAPABILITIES = Capabilities(
    "postgresql", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN, M.MANHATTAN, M.HAMMING, M.JACCARD}),
    frozenset({IdType.INT, IdType.STRING, IdType.UUID}), max_dense=None, named_vectors=True,
    multivector=False, sparse=True, dtypes=frozenset({"float32", "float16", "binary"}),
    metadata_types=JSON_TYPES, nested_metadata=True, null_metadata=True, namespace_kind=None,
    documents=True, uris=True,
    sparse_metrics=frozenset({M.DOT, M.COSINE, M.EUCLIDEAN, M.MANHATTAN}),
    sparse_max_index=999_999_999,            # sparsevec: at most 1,000,000,000 dimensions
    metric_names={M.COSINE: "vector_cosine_ops", M.DOT: "vector_ip_ops",
                  M.EUCLIDEAN: "vector_l2_ops", M.MANHATTAN: "vector_l1_ops",
                  M.HAMMING: "bit_hamming_ops", M.JACCARD: "bit_jaccard_ops"})

DESCRIPTOR = Descriptor(
    name="postgresql", title="pgvector (PostgreSQL)",
    connector="vdedup.connectors.pgvector.connector:PgvectorConnector",
    extra="pgvector", sdk="psycopg", aliases=("postgres", "pgvector"),
    secret_env=("PGPASSWORD",), secret_label="password",
    account_url="postgresql://USER@HOST:5432/DB",
    url_forms=("postgresql://USER@HOST:PORT/DB[?table=T|schema.T][&sslmode=...]",),
    capabilities=CAPABILITIES)
