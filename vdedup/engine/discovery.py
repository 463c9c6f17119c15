"""Discovery: the indexes a set of credentials reaches, with their sizes (engine layer).

Each connector lists what it can see (`Connector.discover`: collections, indexes, classes or
tables with a vector column, with record count, dimensions, metric and namespaces where they
are cheap to learn). The secret is an argument handed to the connector when it is opened, the
way connected assets hand theirs over; nothing is stored and the environment is not read:
`discover(url)` without a secret uses none. Discovery only reads: a local database that does
not exist yet (a Chroma or Qdrant directory) is reported empty, not created.
"""
from __future__ import annotations

from ..assets.store import Asset, AssetStore
from ..connectors import NO_CREDENTIALS, Credentials, open_connector, parse_url
from ..model import DiscoveredIndex
from .nightly import asset_connector

__all__ = ["DiscoveredIndex", "discover", "discover_asset"]


def discover(url: str, secret: str | None = None, *,
             credentials: Credentials | None = None) -> list[DiscoveredIndex]:
    """Every collection (index, class, table) at `url` that the secret can read. `url` may name
    a whole account or server (e.g. `pinecone://`, `qdrant://HOST:6333`; docs/urls.md) or one
    collection. `credentials` (instead of `secret`) says where a secret came from, for messages."""
    if credentials is None:
        credentials = Credentials(secret, "the given secret") if secret is not None else NO_CREDENTIALS
    # read-only: a local path that does not exist is read as empty, never created
    connector = open_connector(parse_url(url), credentials, read_only=True)
    try:
        return connector.discover()
    finally:
        connector.close()


def discover_asset(store: AssetStore, asset: Asset) -> list[DiscoveredIndex]:
    """What a connected asset's stored secret reaches now."""
    with asset_connector(store, asset, read_only=True) as connector:
        return connector.discover()
