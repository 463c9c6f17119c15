"""`connect` and `assets list|show|remove|rotate|policy`: the credential store (CLI layer).

Secrets come from a hidden prompt at a terminal, from standard input (`--secret-stdin`) or
from an environment variable named by `--secret-env VAR`; never from the command line.
"""
from __future__ import annotations

import getpass
import os
import sys
from typing import Any, List, Optional

import typer
from rich.table import Table

from vdedup.assets.store import (ASSET_TYPE, Asset, AssetStore, check_name, mask, normalize_provider,
                                 secret_env_for)
from vdedup.connectors import parse_url
from vdedup.connectors.registry import refuse_plain_transport
from vdedup.connectors.url import SECRET_KEYS
from vdedup.errors import UsageError, remember_secret

from ..app import app
from ..context import AUDIT, open_repository
from ..output import info, out, print_json

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
                no_secret: bool, default_none: bool = False) -> str | None:
    """The secret from exactly one place; None with --no-secret (or when none is needed)."""
    value = _read_secret(name, env_var, secret_stdin, secret_env, no_secret, default_none)
    remember_secret(value)                   # never in an error message (errors.scrub)
    return value


def _read_secret(name: str, env_var: str, secret_stdin: bool, secret_env: str | None,
                 no_secret: bool, default_none: bool = False) -> str | None:
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
    value = getpass.getpass(f"secret for {name} (what {env_var} would hold; input hidden): ",
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


def connect_asset(provider: str, name: str | None, url: str | None, collections: list[str],
                  secret_stdin: bool, secret_env: str | None, no_secret: bool,
                  policy: dict[str, Any] | None, json_out: bool) -> None:
    provider = normalize_provider(provider)
    tty = sys.stdin.isatty()
    if not name:
        if not tty:
            raise UsageError("no asset name: pass --name (standard input is not a terminal)")
        name = _ask("asset name: ")
    check_name(name)
    if not url:
        if not tty:
            raise UsageError("no URL: pass it (e.g. --url pinecone://INDEX) (standard input is not a terminal)")
        hint = "index name or pinecone://INDEX" if provider == "pinecone" else f"{provider}://..."
        url = _ask(f"URL ({hint}): ")
    stored_url = clean_url(provider, url)
    env_var = secret_env_for(provider)
    embedded = provider == "chroma" and parse_url(stored_url).host is None
    secret = read_secret(name, env_var, secret_stdin, secret_env, no_secret, default_none=embedded)
    if secret:                        # a secret that would later go out in clear text: not stored
        refuse_plain_transport(stored_url, "this asset")
    AUDIT.note(asset=name)
    repo = open_repository()
    try:
        asset = AssetStore(repo).add(name, provider, stored_url, secret, collections, policy)
    finally:
        del secret
        repo.close()
    if json_out:
        print_json({"message_type": "connected", **asset.to_public()})
        return
    out.print(f"connected asset {asset.name} ({asset.provider}, {asset.url})", markup=False)
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
    """Connect a database: store its URL and (encrypted) secret for later backups."""
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
        secret = read_secret(name, asset.secret_env, secret_stdin, secret_env, no_secret)
        if secret:
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
