"""Provider-neutral collection schema (model layer: values only, no I/O).

What a provider does not tell us is recorded as unknown (`None` or Metric.UNKNOWN),
never guessed. Provider-specific settings with no neutral equivalent are kept verbatim
in `extras` so that a restore to the same provider can reproduce them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Metric(str, Enum):
    COSINE = "cosine"
    DOT = "dot"
    EUCLIDEAN = "euclidean"          # ranking-equivalent to squared L2 (Chroma "l2")
    MANHATTAN = "manhattan"
    HAMMING = "hamming"
    JACCARD = "jaccard"
    UNKNOWN = "unknown"


class IdType(str, Enum):
    STRING = "str"
    INT = "int"
    UUID = "uuid"
    UNKNOWN = "unknown"


VECTOR_DTYPES = ("float32", "float16", "bfloat16", "float64", "int8", "uint8", "binary")


@dataclass(frozen=True)
class VectorField:
    """A dense vector field. `name` is "" for a provider's single unnamed vector."""
    name: str
    dim: int | None
    metric: Metric = Metric.UNKNOWN
    dtype: str = "float32"
    multivector: bool = False
    index: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dtype not in VECTOR_DTYPES:
            raise ValueError(f"unknown vector dtype {self.dtype!r}")
        object.__setattr__(self, "metric", Metric(self.metric))


@dataclass(frozen=True)
class SparseField:
    name: str
    metric: Metric = Metric.DOT
    modifier: str | None = None
    index: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metric", Metric(self.metric))


@dataclass(frozen=True)
class MetadataField:
    """A metadata field; `type` is str/int/float/bool/list/dict/datetime/bytes/json/unknown."""
    name: str
    type: str = "unknown"
    indexed: bool | None = None
    nullable: bool | None = None


@dataclass(frozen=True)
class CollectionSchema:
    provider: str
    name: str
    id_type: IdType = IdType.UNKNOWN
    vectors: tuple[VectorField, ...] = ()
    sparse: tuple[SparseField, ...] = ()
    metadata_fields: tuple[MetadataField, ...] = ()
    namespaces: tuple[str, ...] = ("",)
    has_documents: bool = False
    has_uris: bool = False
    options: dict[str, Any] = field(default_factory=dict)   # e.g. collection-level metadata
    extras: dict[str, Any] = field(default_factory=dict)    # provider-specific, verbatim

    def __post_init__(self) -> None:
        object.__setattr__(self, "id_type", IdType(self.id_type))
        object.__setattr__(self, "vectors", tuple(self.vectors))
        object.__setattr__(self, "sparse", tuple(self.sparse))
        object.__setattr__(self, "metadata_fields", tuple(self.metadata_fields))
        object.__setattr__(self, "namespaces", tuple(self.namespaces))

    def vector(self, name: str = "") -> VectorField | None:
        return next((v for v in self.vectors if v.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["id_type"] = self.id_type.value
        for v in d["vectors"] + d["sparse"]:
            v["metric"] = Metric(v["metric"]).value
        d["namespaces"] = list(self.namespaces)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CollectionSchema":
        d = dict(d)
        d["vectors"] = tuple(VectorField(**v) for v in d.get("vectors", ()))
        d["sparse"] = tuple(SparseField(**v) for v in d.get("sparse", ()))
        d["metadata_fields"] = tuple(MetadataField(**m) for m in d.get("metadata_fields", ()))
        d["namespaces"] = tuple(d.get("namespaces", ("",)))
        return cls(**d)

    def renamed(self, name: str) -> "CollectionSchema":
        d = self.to_dict()
        d["name"] = name
        return CollectionSchema.from_dict(d)
