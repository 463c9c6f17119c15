"""What discovery finds: one collection a set of credentials reaches (model layer: values only).

Everything but the provider and name is optional: a connector fills in what is cheap to learn
(one call or so per collection) and leaves the rest unknown (None; no namespaces) rather than
reading the collection.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .schema import CollectionSchema, Metric


@dataclass(frozen=True)
class DiscoveredIndex:
    provider: str                        # registry name, e.g. "pinecone", "postgresql"
    name: str                            # collection / index / class / table
    count: int | None = None             # records, all namespaces together
    dims: int | None = None              # of the dense vector (the first by name if several)
    metric: str | None = None            # a vdedup.model.Metric value, e.g. "cosine"; None: unknown
    namespaces: tuple[str, ...] = ()     # "" is the default namespace; () when not known
    problem: str | None = None           # why it cannot be backed up as it is, if it cannot

    @classmethod
    def of(cls, provider: str, schema: CollectionSchema, count: int | None) -> "DiscoveredIndex":
        """The entry for a described collection."""
        first = min(schema.vectors, key=lambda v: v.name) if schema.vectors else None
        metric = first.metric if first is not None else \
            (schema.sparse[0].metric if schema.sparse else None)
        return cls(provider, schema.name, count, first.dim if first is not None else None,
                   metric.value if metric is not None and metric != Metric.UNKNOWN else None,
                   tuple(schema.namespaces))

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "name": self.name, "count": self.count,
                "dims": self.dims, "metric": self.metric,
                "namespaces": list(self.namespaces),
                "problem": self.problem}
