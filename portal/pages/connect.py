"""Connect Database: choose the provider, paste the key or connection string, pick the
indexes found (portal layer).

The pasted secret goes from the form into this process's memory, to the connector for
discovery (through discovery.discover), and on "Connect" into the encrypted credential store
(AssetStore.add). It is never put into a page (the second step refers to it by a random id
that is only good in this session for a quarter of an hour), never logged, never in an
audit entry. A connection string that carries a password (postgresql://u:pw@host/db) or a
secret parameter (?api_key=...) is split: the secret is taken out, the rest stored; such a
string may be pasted into the (hidden) secret field instead of the address.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vdedup.assets.store import AssetExists, AssetNotFound, AssetStore, check_name, normalize_provider
from vdedup.connectors import parse_url
from vdedup.connectors.url import SECRET_KEYS
from vdedup.engine.discovery import discover
from vdedup.errors import UsageError, VdedupError

from .. import auditing
from ..web import Form, one_line, page, redirect, render, state_of

# provider -> (label, what the secret is, an example address)
PROVIDERS = {
    "pinecone": ("Pinecone", "API key", "empty: every index of the project (or pinecone://INDEX)"),
    "qdrant": ("Qdrant", "API key", "qdrant://HOST:6333 or qdrant+local:///path"),
    "weaviate": ("Weaviate", "API key", "weaviate://HOST:8080"),
    "milvus": ("Milvus", "token (user:password or API key)", "milvus://HOST:19530"),
    "postgresql": ("pgvector (PostgreSQL)", "password or connection string",
                   "postgresql://USER@HOST:5432/DB (or paste the whole connection string below)"),
    "chroma": ("Chroma", "server token (none for a local directory)", "chroma://HOST:8000 or chroma:///path"),
}
NEEDS_SECRET = {"pinecone"}


def split_connection(provider: str, text: str, secret: str | None) -> tuple[str, str | None]:
    """(the address as stored: no credential in it, the secret): a password or secret
    parameter found in the address becomes the secret."""
    text = text.strip()
    if not text:
        if provider != "pinecone":
            raise UsageError(f"give the address of the {PROVIDERS[provider][0]} database")
        text = "pinecone://"
    elif "://" not in text and provider == "pinecone":
        text = f"pinecone://{text}"          # a bare index name
    u = parse_url(text)
    if normalize_provider(u.provider) != provider:
        raise UsageError(f"that is a {u.provider} address, not {PROVIDERS[provider][0]}")
    found = [u.password] if u.password else []
    found += [v for k, v in u.query.items() if k.lower() in SECRET_KEYS and v]
    if found:
        if len(set(found)) > 1 or (secret and secret != found[0]):
            raise UsageError("the address holds a credential and the secret field another one: give one")
        secret = found[0]
    return u.redacted(), secret or None


def read_connection(provider: str, address: str, secret: str | None) -> tuple[str, str | None]:
    """The address and secret from the form. The secret field may hold a whole connection
    string of the chosen provider (`postgresql://app:pw@db/vectors`), pasted where it is not
    shown: it then stands for the address too, and its password is the secret."""
    if secret and "://" in secret and not address.strip():
        try:
            scheme = parse_url(secret).provider
            same = normalize_provider(scheme) == provider
        except VdedupError:
            same = False
        if same:
            return split_connection(provider, secret, None)
    return split_connection(provider, address, secret)


def _refuse_existing(store: AssetStore, name: str) -> None:
    try:
        store.get(name)
    except AssetNotFound:
        return
    raise AssetExists(f"an asset named {name!r} is already connected")


def _form_page(request: Request, status: int = 200, error: str | None = None, **values) -> Response:
    if values.get("provider") not in PROVIDERS:
        values["provider"] = "pinecone"
    return render(request, "connect.html", status, active="connect", providers=PROVIDERS,
                  error=error, values=values, pending=None)


@page
def connect_form(request: Request, form: Form) -> Response:
    provider = request.query_params.get("provider", "pinecone")
    return _form_page(request, provider=provider if provider in PROVIDERS else "pinecone", name="", url="")


@page
def connect_discover(request: Request, form: Form) -> Response:
    """Step 1 -> 2: test the connection and list the indexes the secret reaches."""
    state = state_of(request)
    name = form.get("name")
    values = {"provider": form.get("provider"), "name": name, "url": ""}
    try:
        provider = normalize_provider(form.get("provider"))
        values["provider"] = provider
        check_name(name)
        url, secret = read_connection(provider, form.get("url"), form.raw("secret") or None)
        values["url"] = url                   # shown again only without its credential
        if secret is None and provider in NEEDS_SECRET:
            raise UsageError(f"paste the {PROVIDERS[provider][1]}")
        _refuse_existing(AssetStore(state.repo), name)
        with state.working(f"connection test of {name}"):
            found = discover(url, secret)
    except VdedupError as e:
        return _form_page(request, 400 if e.exit_code in (2, 13) else 502, one_line(e), **values)
    if not found:
        return _form_page(request, 502, "connected, but the credentials reach no index", **values)
    pending = state.add_pending(request.scope["portal_session"].sid, provider, url, name, secret, found)
    return render(request, "connect.html", active="connect", providers=PROVIDERS, error=None,
                  values=values, pending=pending)


@page
def connect_save(request: Request, form: Form) -> Response:
    """Step 2 -> done: store the asset with the chosen indexes and its encrypted secret."""
    state = state_of(request)
    pending = state.pending(form.get("pending"), request.scope["portal_session"].sid)
    if pending is None:
        return _form_page(request, 400, "This connection form has expired (or was used already): "
                                        "paste the secret again.", provider="pinecone", name="", url="")
    chosen = form.list("index")
    known = {i.name for i in pending.found}
    unknown = [c for c in chosen if c not in known]
    if not chosen or unknown:
        return render(request, "connect.html", 400, active="connect", providers=PROVIDERS,
                      error="choose at least one of the indexes found" if not chosen else
                      f"{unknown[0]!r} is not one of the indexes found",
                      values={"provider": pending.provider, "name": pending.name, "url": pending.url},
                      pending=pending)
    try:
        asset = AssetStore(state.repo).add(pending.name, pending.provider, pending.url, pending.secret, chosen)
    except VdedupError as e:
        auditing.record(state.repo, "connect", e, asset=pending.name)
        state.drop_pending(pending.id)
        return _form_page(request, 409 if e.exit_code == 13 else 400, one_line(e),
                          provider=pending.provider, name=pending.name, url=pending.url)
    state.drop_pending(pending.id)
    auditing.record(state.repo, "connect", asset=asset.name, counts={"indexes": len(chosen)})
    return redirect(f"/assets/{asset.name}?connected=1")


routes = [
    Route("/connect", connect_form),
    Route("/connect", connect_discover, methods=["POST"]),
    Route("/connect/save", connect_save, methods=["POST"]),
]
