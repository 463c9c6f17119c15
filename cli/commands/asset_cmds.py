"""`connect` and `assets list|show|remove|rotate|policy`: the credential store (CLI layer).

Secrets come from a hidden prompt at a terminal, from standard input (`--secret-stdin`) or
from an environment variable named by `--secret-env VAR`; never from the command line. At a
terminal `connect` tries the secret at once (engine.discovery) and asks which of the indexes
found to back up (cli/picking.py); `--collection` picks without asking.
"""
from __future__ import annotations

import getpass
import os
import sys
from typing import Any, List, Optional

import typer
from rich.table import Table

from vdedup.assets.store import (ASSET_TYPE, Asset, AssetExists, AssetNotFound, AssetStore, check_name,
                                 mask, normalize_provider, secret_env_for)
from vdedup.connectors import lookup, parse_url
from vdedup.connectors.registry import refuse_plain_transport
from vdedup.connectors.url import SECRET_KEYS
from vdedup.engine.discovery import discover
from vdedup.errors import SourceError, UsageError, remember_secret

from ..app import app
from ..context import AUDIT, open_repository
from ..output import err, info, out, print_json
from ..picking import ask_choice, discovered_table

assets_app = typer.Typer(help="Connected assets: the databases whose credentials the repository keeps.",
                         no_args_is_help=True)
app.add_typer(assets_app, name="assets")


# ---- shared helpers (also used by `ai-assets` and `backup --asset`) ---------------------------
def _ask(prompt: str) -> str:
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise UsageError(f"no answer to {prompt.strip()!r}")
    return line.strip()


def read_secret(name: str, env_var: str, secret_stdin: bool, secret_env: str | None,
                no_secret: bool, default_none: bool = False, provider: str | None = None) -> str | None:
    """The secret from exactly one place; None with --no-secret (or when none is needed)."""
    value = _read_secret(name, env_var, secret_stdin, secret_env, no_secret, default_none, provider)
    remember_secret(value)                   # never in an error message (errors.scrub)
    return value


def _read_secret(name: str, env_var: str, secret_stdin: bool, secret_env: str | None,
                 no_secret: bool, default_none: bool = False, provider: str | None = None) -> str | None:
    chosen = sum(bool(x) for x in (secret_stdin, secret_env, no_secret))
    if chosen > 1:
        raise UsageError("give at most one of --secret-stdin, --secret-env, --no-secret")
    if no_secret:
        return None
    if secret_env:
        value = os.environ.get(secret_env)
        if not value:
            raise UsageError(f"--secret-env: the environment variable {secret_env} is not set or empty")
        return value
    if secret_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise UsageError("--secret-stdin: standard input holds no secret")
        return value
    if default_none:
        return None
    if not sys.stdin.isatty():
        raise UsageError("no secret: standard input is not a terminal; use --secret-stdin, "
                         "--secret-env VAR or --no-secret")
    label = lookup(provider).secret_label if provider else "secret"
    value = getpass.getpass(f"{label} for {name} (what {env_var} would hold; input hidden): ",
                            stream=sys.stderr)
    if not value:
        raise UsageError("empty secret (use --no-secret for a database that needs none)")
    return value


def clean_url(provider: str, text: str) -> str:
    """The URL as stored: parsed, same provider, and refused if it carries a credential."""
    if "://" not in text and provider == "pinecone":
        text = f"pinecone://{text}"               # a bare Pinecone index name
    u = parse_url(text)
    if normalize_provider(u.provider) != provider:
        raise UsageError(f"the URL is a {u.provider} URL, not {provider}")
    if u.password or any(k.lower() in SECRET_KEYS for k in u.query):
        raise UsageError("a credential in the URL would end up in the shell history: give the URL "
                         "without it; the secret is asked for separately")
    return u.redacted()


def policy_dict(keep_last: int, keep_daily: int, keep_weekly: int, keep_monthly: int,
                keep_yearly: int, keep_within: str | None) -> dict[str, Any] | None:
    if keep_within:
        from vdedup.engine.forget import parse_duration
        parse_duration(keep_within)                # a bad duration is refused now, not at night
    d = {"last": keep_last, "daily": keep_daily, "weekly": keep_weekly, "monthly": keep_monthly,
         "yearly": keep_yearly, "within": keep_within}
    return d if any(d.values()) else None


def ask_url(provider: str) -> str:
    """The URL at a terminal; for Pinecone an empty answer is the whole project."""
    if provider == "pinecone":
        return _ask("URL (empty: every index of the project; or an index name, pinecone://INDEX): ") \
            or "pinecone://"
    return _ask(f"URL ({lookup(provider).account_url or provider + '://...'}; no credential in it): ")


def pick_collections(url: str, secret: str | None) -> list[str]:
    """At a terminal: list what the secret reaches at `url` and ask which to back up ([] is
    every one, those created later too)."""
    found = discover(url, secret)
    usable = [d for d in found if d.problem is None]
    if not found:
        info(f"no collections found at {url}: the asset will back up every collection created there")
        return []
    err.print(discovered_table(found, numbered=True))
    if len(found) == 1 and usable:
        info(f"one index found: {found[0].name}")
        return []
    if not usable:
        raise SourceError(f"none of the {len(found)} collections at {url} can be backed up")
    return ask_choice(found)


def refuse_taken(store: AssetStore, name: str) -> None:
    try:
        store.get(name)
    except AssetNotFound:
        return
    raise AssetExists(f"an asset named {name!r} is already connected")


def connect_asset(provider: str, name: str | None, url: str | None, collections: list[str],
                  secret_stdin: bool, secret_env: str | None, no_secret: bool,
                  policy: dict[str, Any] | None, json_out: bool) -> None:
    """Store an asset. At a terminal without --collection: the secret is tried at once, the
    indexes it reaches are listed with their counts, and the user picks which to back up."""
    provider = normalize_provider(provider)
    tty = sys.stdin.isatty()
    if not name:
        if not tty:
            raise UsageError("no asset name: pass --name (standard input is not a terminal)")
        name = _ask("asset name: ")
    check_name(name)
    if url is None and not tty:
        raise UsageError("no URL: pass it (e.g. --url pinecone://INDEX) (standard input is not a terminal)")
    AUDIT.note(asset=name)
    # at a terminal the repository is opened first, so a name already taken is said before
    # the URL and the key are asked for
    repo = open_repository() if tty else None
    try:
        if repo is not None:
            refuse_taken(AssetStore(repo), name)
        if url is None:
            url = ask_url(provider)
        stored_url = clean_url(provider, url)
        embedded = provider in ("chroma", "qdrant") and parse_url(stored_url).host is None
        secret = read_secret(name, secret_env_for(provider), secret_stdin, secret_env, no_secret,
                             default_none=embedded, provider=provider)
        if secret:                    # a secret that would later go out in clear text: not stored
            refuse_plain_transport(stored_url, "this asset")
        try:
            if tty and not collections and not secret_stdin:
                collections = pick_collections(stored_url, secret)
            repo = repo or open_repository()
            asset = AssetStore(repo).add(name, provider, stored_url, secret, collections, policy)
        finally:
            del secret
    finally:
        if repo is not None:
            repo.close()
    if json_out:
        print_json({"message_type": "connected", **asset.to_public()})
        return
    out.print(f"connected asset {asset.name} ({asset.provider}, {asset.url}; "
              f"{', '.join(asset.collections) or 'every collection'})", markup=False)
    info(f"secret stored encrypted in the repository; the connector gets it as {asset.secret_env}"
         if asset.has_secret else "no secret stored")


def asset_rows(assets: list[Asset]) -> Table:
    table = Table(box=None, pad_edge=False)
    for col in ("Name", "Type", "Provider", "URL", "Collections", "Secret", "Forget policy"):
        table.add_column(col, overflow="fold", no_wrap=col in ("Name", "Type", "Provider", "Secret"))
    for a in assets:
        pol = ",".join(f"{k}={v}" for k, v in (a.forget_policy or {}).items() if v) or "-"
        table.add_row(a.name, a.type, a.provider, a.url, ",".join(a.collections) or "(all)",
                      "stored" if a.has_secret else "none", pol)
    return table


def list_assets(type_: str | None, provider: str | None, json_out: bool) -> None:
    if type_ is not None and type_ != ASSET_TYPE:
        raise UsageError(f"unknown asset type {type_!r} (known: {ASSET_TYPE})")
    repo = open_repository()
    try:
        assets = AssetStore(repo).list()
    finally:
        repo.close()
    if provider:
        p = normalize_provider(provider)
        assets = [a for a in assets if a.provider == p]
    AUDIT.note(assets=len(assets))
    if json_out:
        print_json([a.to_public() for a in assets])
        return
    if not assets:
        info("no connected assets (add one with 'vdedup connect')")
        return
    out.print(asset_rows(assets))


# ---- commands ------------------------------------------------------------------------------
SECRET_STDIN = typer.Option(False, "--secret-stdin", help="Read the secret from the first line of standard input.")
SECRET_ENV_OPT = typer.Option(None, "--secret-env", metavar="VAR",
                              help="Read the secret from this environment variable.")
NO_SECRET = typer.Option(False, "--no-secret", help="The database needs no secret (e.g. embedded Chroma).")


@app.command()
def connect(
    url: Optional[str] = typer.Argument(None, help="Database URL without credentials, e.g. pinecone://INDEX."),
    provider: str = typer.Option(..., "--provider", "-p", help="chroma, pinecone, qdrant, weaviate, milvus, postgresql."),
    name: Optional[str] = typer.Option(None, "--name", help="Unique asset name (asked for at a terminal)."),
    url_opt: Optional[str] = typer.Option(None, "--url", help="The URL (instead of the argument)."),
    collection: Optional[List[str]] = typer.Option(None, "--collection", "-c",
                                                   help="Collection/index to back up (repeatable; default: all)."),
    secret_stdin: bool = SECRET_STDIN,
    secret_env: Optional[str] = SECRET_ENV_OPT,
    no_secret: bool = NO_SECRET,
    keep_last: int = typer.Option(0, "--keep-last", min=0, help="Forget policy after each backup: keep N newest."),
    keep_daily: int = typer.Option(0, "--keep-daily", min=0, help="... keep one per day for N days."),
    keep_weekly: int = typer.Option(0, "--keep-weekly", min=0, help="... one per ISO week for N weeks."),
    keep_monthly: int = typer.Option(0, "--keep-monthly", min=0, help="... one per month for N months."),
    keep_yearly: int = typer.Option(0, "--keep-yearly", min=0, help="... one per year for N years."),
    keep_within: Optional[str] = typer.Option(None, "--keep-within", help="... everything younger than this (e.g. 30d)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Connect a database: store its URL and (encrypted) secret for later backups. At a terminal
    it lists the indexes the secret reaches and asks which to back up (or give --collection)."""
    if url and url_opt:
        raise UsageError("give the URL once (argument or --url)")
    connect_asset(provider, name, url or url_opt, list(collection or []), secret_stdin, secret_env,
                  no_secret, policy_dict(keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly,
                                         keep_within), json_out)


@assets_app.command("list")
def assets_list(
    type_: Optional[str] = typer.Option(None, "--type", help=f"Only assets of this type ({ASSET_TYPE})."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Only assets of this provider."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List the connected assets (never their secrets)."""
    list_assets(type_, provider, json_out)


@assets_app.command("show")
def assets_show(name: str = typer.Argument(..., help="Asset name."),
                json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show one asset, its secret masked."""
    AUDIT.note(asset=name)
    repo = open_repository()
    try:
        store = AssetStore(repo)
        asset = store.get(name)
        masked = mask(store.secret(asset))
    finally:
        repo.close()
    d = {**asset.to_public(), "secret": masked}
    if json_out:
        print_json(d)
        return
    for k, v in d.items():
        if isinstance(v, list):
            v = ",".join(v) or "(all)"
        elif isinstance(v, dict):
            v = ",".join(f"{a}={b}" for a, b in v.items() if b) or "-"
        out.print(f"{k + ':':14} {v if v is not None else '-'}", markup=False)


@assets_app.command("remove")
def assets_remove(name: str = typer.Argument(..., help="Asset name.")) -> None:
    """Forget an asset and its secret (its snapshots stay)."""
    AUDIT.note(asset=name)
    repo = open_repository()
    try:
        AssetStore(repo).remove(name)
    finally:
        repo.close()
    out.print(f"removed asset {name}", markup=False)


@assets_app.command("rotate")
def assets_rotate(
    name: str = typer.Argument(..., help="Asset name."),
    secret_stdin: bool = SECRET_STDIN,
    secret_env: Optional[str] = SECRET_ENV_OPT,
    no_secret: bool = NO_SECRET,
) -> None:
    """Replace an asset's secret (read the same ways as for connect)."""
    AUDIT.note(asset=name)
    repo = open_repository()
    try:
        store = AssetStore(repo)
        asset = store.get(name)
        secret = read_secret(name, asset.secret_env, secret_stdin, secret_env, no_secret,
                             provider=asset.provider)
        if secret:                    # a secret that would go out in clear text: not stored
            refuse_plain_transport(asset.url, "this asset")
        store.rotate(name, secret)
        del secret
    finally:
        repo.close()
    out.print(f"rotated the secret of asset {name}", markup=False)


@assets_app.command("policy")
def assets_policy(
    name: str = typer.Argument(..., help="Asset name."),
    keep_last: int = typer.Option(0, "--keep-last", min=0),
    keep_daily: int = typer.Option(0, "--keep-daily", min=0),
    keep_weekly: int = typer.Option(0, "--keep-weekly", min=0),
    keep_monthly: int = typer.Option(0, "--keep-monthly", min=0),
    keep_yearly: int = typer.Option(0, "--keep-yearly", min=0),
    keep_within: Optional[str] = typer.Option(None, "--keep-within"),
    clear: bool = typer.Option(False, "--clear", help="Remove the policy."),
) -> None:
    """Set (or --clear) the forget policy applied after each backup of this asset."""
    policy = policy_dict(keep_last, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within)
    if clear == (policy is not None):
        raise UsageError("give --keep-* options or --clear")
    AUDIT.note(asset=name)
    repo = open_repository()
    try:
        AssetStore(repo).set_policy(name, policy)
    finally:
        repo.close()
    out.print(f"{'cleared' if clear else 'set'} the forget policy of asset {name}", markup=False)
