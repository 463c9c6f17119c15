"""Discovery: the indexes a set of credentials reaches, with their sizes (engine layer).

A minimal version over today's connector protocol (list_collections, describe, count), so
that the portal can show what a pasted key reaches before anything is stored. The secret
is handed to the connector the way connected assets hand it over (nightly.secret_in_env):
in this process only, for as long as the connector is open.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

from ..assets.store import PROVIDER_ALIASES, SECRET_ENV
from ..connectors import open_connector, parse_url
from .nightly import secret_in_env


@dataclass(frozen=True)
class DiscoveredIndex:
    provider: str
    name: str
    count: int | None                 # records in every namespace together
    dims: int | None                  # of the first dense vector, when the provider says
    metric: str | None
    namespaces: tuple[str, ...]


def discover(url: str, secret: str | None = None) -> list[DiscoveredIndex]:
    """Every collection (index, class, table) at `url` that the secret can read."""
    u = parse_url(url)
    var = SECRET_ENV.get(PROVIDER_ALIASES.get(u.provider, u.provider))
    with secret_in_env(var, secret) if var else contextlib.nullcontext():
        connector = open_connector(u)
        try:
            found = []
            for name in connector.list_collections():
                schema = connector.describe(name)
                dense = schema.vectors[0] if schema.vectors else None
                metric = dense.metric.value if dense is not None else None
                found.append(DiscoveredIndex(
                    connector.provider, name,
                    sum(connector.count(name, ns) for ns in schema.namespaces),
                    dense.dim if dense is not None else None,
                    None if metric == "unknown" else metric, tuple(schema.namespaces)))
            return found
        finally:
            connector.close()
