"""`sources`: what a set of credentials reaches at a URL, with sizes (CLI layer).

    vdedup sources pinecone://                 every index of the project (PINECONE_API_KEY)
    vdedup sources qdrant://HOST:6333 --json
    vdedup sources --asset NAME                what a connected asset's stored secret reaches

The secret comes from the provider's usual variable (PINECONE_API_KEY, QDRANT_API_KEY,
PGPASSWORD...), from `--secret-stdin` / `--secret-env VAR`, from a connected asset
(`--asset`), or, at a terminal when none of these gives one, from a hidden prompt (an empty
answer: no secret). It is handed to the connector and to nothing else.
"""
from __future__ import annotations

import getpass
import os
import sys
from typing import Optional

import typer

from vdedup.assets.store import AssetStore
from vdedup.connectors import Credentials, credentials_for, parse_url
from vdedup.connectors.registry import descriptor_of
from vdedup.connectors.url import SourceURL
from vdedup.engine.discovery import discover, discover_asset
from vdedup.errors import UsageError
from vdedup.model import DiscoveredIndex

from ..app import app
from ..context import AUDIT, open_repository
from ..output import info, out, print_json
from ..picking import discovered_table
from .asset_cmds import SECRET_ENV_OPT, SECRET_STDIN, read_secret


def local_storage(u: SourceURL) -> bool:
    """A URL of an embedded database on this machine (no server, no secret)."""
    return u.host is None and u.scheme in ("chroma", "qdrant+local", "files", "npy")


def credentials_at_cli(u: SourceURL, secret_stdin: bool, secret_env: str | None) -> Credentials:
    """--secret-stdin / --secret-env, else the provider's variables, else (at a terminal, for a
    provider that takes a secret) a hidden prompt; NO secret is a valid answer."""
    d = descriptor_of(u)
    var = d.primary_secret_env or "a secret"
    given = read_secret(u.redacted(), var, secret_stdin, secret_env, False, default_none=True)
    if given is not None:
        return Credentials(given, f"--secret-env {secret_env}" if secret_env else "standard input")
    found = credentials_for(u, os.environ)
    if found.present or not d.secret_env or local_storage(u) or not sys.stdin.isatty():
        return found
    value = getpass.getpass(f"{d.secret_label} for {u.redacted()} (what {var} would hold; input hidden, "
                            "empty for none): ", stream=sys.stderr)
    return Credentials(value, "the prompt") if value else found


def show(found: list[DiscoveredIndex], where: str, json_out: bool) -> None:
    if json_out:
        print_json({"message_type": "sources", "url": where, "indexes": [d.to_dict() for d in found]})
        return
    if not found:
        info(f"no collections found at {where}")
        return
    out.print(discovered_table(found))
    total = sum(d.count or 0 for d in found)
    info(f"{len(found)} collection(s) at {where}, {total:,} records")


@app.command()
def sources(
    url: Optional[str] = typer.Argument(None, help="Where to look, e.g. pinecone://, qdrant://HOST:6333, "
                                                   "postgresql://USER@HOST/DB (no credential in it)."),
    asset: Optional[str] = typer.Option(None, "--asset", "-a", help="Use a connected asset's URL and stored secret."),
    secret_stdin: bool = SECRET_STDIN,
    secret_env: Optional[str] = SECRET_ENV_OPT,
    json_out: bool = typer.Option(False, "--json", help="Print JSON: the URL and every index found."),
) -> None:
    """List the collections (indexes, classes, tables with a vector column) the credentials
    reach, with record counts, dimensions, metric and namespaces."""
    if (url is None) == (asset is None):
        raise UsageError("give a URL or --asset NAME (exactly one)")
    if asset is not None:
        if secret_stdin or secret_env:
            raise UsageError("--asset uses the asset's stored secret: no --secret-stdin or --secret-env")
        AUDIT.note(asset=asset)
        repo = open_repository()
        try:
            store = AssetStore(repo)
            a = store.get(asset)
            found = discover_asset(store, a)
        finally:
            repo.close()
        show(found, a.url, json_out)
        return
    u = parse_url(url)
    if u.password:
        raise UsageError("a credential in the URL would end up in the shell history: give the URL "
                         "without it (the secret comes from the provider's variable or a prompt)")
    found = discover(url, credentials=credentials_at_cli(u, secret_stdin, secret_env))
    show(found, u.redacted(), json_out)
