"""What a connector declares about its provider, readable without importing an SDK
(connector layer; depends only on model).

Each provider package holds one `Descriptor` (`vdedup/connectors/<provider>/descriptor.py`):
its registry name (also its URL scheme), aliases, pip extra, SDK module, the environment
variables its secret is read from at the command line, the URL that reaches everything a set
of credentials can see, and its `Capabilities` (what a record there can hold, metric names),
which the translation planner uses to make a plan, with --dry-run, without an SDK installed.
The registry, the planner, the credential store and the docs all read these; nothing else
repeats them. A third-party connector publishes a Descriptor through the `vdedup.connectors`
entry-point group (see registry.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..model import IdType, Metric

SCALARS = frozenset({"str", "int", "float", "bool"})
JSON_TYPES = frozenset({"str", "int", "float", "bool", "null", "list", "dict"})


@dataclass(frozen=True)
class Capabilities:
    """What a provider can hold, for cross-provider translation (facts from its docs)."""
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
    metric_names: Mapping[Metric, str] = field(default_factory=dict, hash=False)   # the provider's own
    # False: another provider's snapshot is never translated into it (a files export); the
    # facts above still say what it holds (the connector contract reads them).
    translation_target: bool = True
    empty_dims: bool = True              # an empty collection knows its vectors' dimension
    sparse_max_index: int = 2 ** 32 - 2  # the largest index a sparse vector may use
    sparse_positive: bool = False        # sparse values must be >= 0, one at least > 0 (Milvus)
    sparse_dense_metrics: frozenset | None = None   # dense metrics beside sparse ones (None: any)
    ascii_ids: bool = False              # string ids must be ASCII (Pinecone)
    id_forbidden_chars: str = ""         # characters a string id cannot hold there
    ids_per_namespace: bool = True       # one id may be in several namespaces (Milvus: no, a
                                         # key is collection-wide; such a write is refused)

    def metric_name(self, metric: Metric) -> str:
        """The provider's name for a metric (e.g. Milvus "IP" for dot), else the neutral one."""
        return self.metric_names.get(metric, metric.value)


@dataclass(frozen=True)
class Descriptor:
    """Everything about a provider that is known without talking to it or importing its SDK."""
    name: str                            # registry key and URL scheme, e.g. "postgresql"
    title: str                           # for people, e.g. "pgvector (PostgreSQL)"
    connector: str                       # "module:Class", imported when a connector is opened
    extra: str                           # pip extra that installs the SDK: vdedup[<extra>]
    sdk: str | None                      # top-level module of the SDK (None: vdedup's own deps)
    aliases: tuple[str, ...] = ()        # other names, accepted as provider names and URL schemes
    schemes: tuple[str, ...] = ()        # further URL schemes of this connector (qdrant+local)
    secret_env: tuple[str, ...] = ()     # variables the CLI reads the secret from; first set wins
    user_env: str | None = None          # with password_env: a user/password pair as the secret
    password_env: str | None = None
    secret_label: str = "API key"        # what the secret is called there
    account_url: str = ""                # the URL that reaches all the credentials can see
    url_forms: tuple[str, ...] = ()      # the URL grammar, for docs and prompts
    capabilities: Capabilities | None = None   # what a record there holds (see translation_target)
    asset: bool = True                   # may be a connected asset (a database, not an export)

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def primary_secret_env(self) -> str | None:
        """The variable named for the secret in prompts and the credential store."""
        return self.secret_env[0] if self.secret_env else None


__all__ = ["Capabilities", "Descriptor", "IdType", "Metric", "SCALARS", "JSON_TYPES"]
