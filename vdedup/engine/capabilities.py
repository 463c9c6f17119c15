"""What each provider can hold, for cross-provider translation (engine layer).

Facts from the providers' documentation (see the project's PROVIDERS.md). Kept here, not in
the connectors, so a plan can be made (and shown with --dry-run) without importing an SDK.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..model import IdType, Metric

M = Metric


@dataclass(frozen=True)
class Capabilities:
    provider: str
    metrics: frozenset
    id_types: frozenset                  # IdType values a record id may have
    max_dense: int | None                # dense vectors per record (None: any number, named)
    named_vectors: bool
    multivector: bool
    sparse: bool
    dtypes: frozenset                    # dense vector dtypes stored exactly
    metadata_types: frozenset            # value kinds stored exactly
    nested_metadata: bool
    null_metadata: bool
    namespace_kind: str | None           # what a namespace is called there, None: no namespaces
    documents: bool                      # a first-class document field
    uris: bool
    max_sparse: int | None = None        # sparse vectors per record (None: any number, named)
    named_sparse: bool = True
    unnamed_sparse: bool = True          # a sparse vector may have the name "" (Qdrant: no)
    int_ids: tuple[int, int] = (-2 ** 63, 2 ** 63 - 1)     # the range of integer ids it holds
    sparse_metrics: frozenset = frozenset({Metric.DOT})
    sparse_modifiers: bool = False       # e.g. Qdrant's idf modifier
    exact_floats: bool = True            # float metadata comes back bit for bit
    exact_cosine: bool = True            # vectors of a cosine index come back bit for bit

    def metric_name(self, metric: Metric) -> str:
        return _METRIC_NAMES.get(self.provider, {}).get(metric, metric.value)


SCALARS = frozenset({"str", "int", "float", "bool"})
JSON_TYPES = frozenset({"str", "int", "float", "bool", "null", "list", "dict"})

CAPABILITIES: dict[str, Capabilities] = {
    "chroma": Capabilities("chroma", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN}), frozenset({IdType.STRING}),
                           1, False, False, False, frozenset({"float32"}), SCALARS | {"list"},
                           False, False, None, True, True, exact_floats=False, exact_cosine=False),
    "pinecone": Capabilities("pinecone", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN}), frozenset({IdType.STRING}),
                             1, False, False, True, frozenset({"float32"}),
                             frozenset({"str", "float", "bool", "list"}), False, False, "namespace", False, False,
                             max_sparse=1, named_sparse=False),
    "qdrant": Capabilities("qdrant", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN, M.MANHATTAN}),
                           frozenset({IdType.INT, IdType.UUID}), None, True, True, True,
                           frozenset({"float32", "float16", "uint8"}),
                           JSON_TYPES, True, True,
                           None, False, False, sparse_modifiers=True, exact_cosine=False,
                           unnamed_sparse=False, int_ids=(0, 2 ** 64 - 1)),
    "milvus": Capabilities("milvus", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN, M.HAMMING, M.JACCARD}),
                           frozenset({IdType.INT, IdType.STRING}), None, True, False, True,
                           frozenset({"float32", "float16", "bfloat16", "binary", "int8"}),
                           JSON_TYPES, True, True,
                           "partition", True, True),
    "postgresql": Capabilities("postgresql", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN, M.MANHATTAN, M.HAMMING,
                                                        M.JACCARD}),
                               frozenset({IdType.INT, IdType.STRING, IdType.UUID}), None, True, False, True,
                               frozenset({"float32", "float16", "binary"}), JSON_TYPES, True, True, None,
                               True, True,
                               sparse_metrics=frozenset({M.DOT, M.COSINE, M.EUCLIDEAN, M.MANHATTAN})),
    "weaviate": Capabilities("weaviate", frozenset({M.COSINE, M.DOT, M.EUCLIDEAN, M.MANHATTAN, M.HAMMING}),
                             frozenset({IdType.UUID}), None, True, True, False, frozenset({"float32"}),
                             frozenset({"str", "int", "float", "bool", "null", "list", "dict", "datetime"}),
                             True, True, "tenant", False, False),
}

_METRIC_NAMES = {
    "chroma": {M.COSINE: "cosine", M.DOT: "ip", M.EUCLIDEAN: "l2"},
    "pinecone": {M.COSINE: "cosine", M.DOT: "dotproduct", M.EUCLIDEAN: "euclidean"},
    "qdrant": {M.COSINE: "Cosine", M.DOT: "Dot", M.EUCLIDEAN: "Euclid", M.MANHATTAN: "Manhattan"},
    "milvus": {M.COSINE: "COSINE", M.DOT: "IP", M.EUCLIDEAN: "L2", M.HAMMING: "HAMMING", M.JACCARD: "JACCARD"},
    "postgresql": {M.COSINE: "vector_cosine_ops", M.DOT: "vector_ip_ops", M.EUCLIDEAN: "vector_l2_ops",
                   M.MANHATTAN: "vector_l1_ops", M.HAMMING: "bit_hamming_ops", M.JACCARD: "bit_jaccard_ops"},
    "weaviate": {M.COSINE: "cosine", M.DOT: "dot", M.EUCLIDEAN: "l2-squared", M.MANHATTAN: "manhattan",
                 M.HAMMING: "hamming"},
}


ALIASES = {"pgvector": "postgresql", "postgres": "postgresql"}


def canonical_provider(provider: str) -> str:
    return ALIASES.get(provider, provider)


def capabilities(provider: str) -> Capabilities:
    from ..errors import UsageError
    try:
        return CAPABILITIES[canonical_provider(provider)]
    except KeyError:
        raise UsageError(f"no translation rules for provider {provider!r}") from None
