"""Connector registry: provider name, alias or URL scheme -> Descriptor (connector layer).

Modelled on fsspec's registry: the built-in providers are declared by their descriptor modules
(`vdedup/connectors/<provider>/descriptor.py`, which import no SDK), third parties add theirs
through the `vdedup.connectors` entry-point group, and nothing of a connector is imported
until one is opened. A missing SDK is a clear error naming the extra to install.

A third-party package registers a connector with, in its pyproject.toml,

    [project.entry-points."vdedup.connectors"]
    mydb = "mydb_vdedup.descriptor:DESCRIPTOR"

where DESCRIPTOR is a `vdedup.connectors.descriptor.Descriptor` (or a function returning
one) whose `connector` names a class implementing `vdedup.connectors.base.Connector`.
"""
from __future__ import annotations

import importlib
import threading
from typing import Any, Mapping

from ..errors import MissingDependency, UsageError
from .base import Connector
from .credentials import NO_CREDENTIALS, Credentials, from_environment
from .descriptor import Capabilities, Descriptor
from .url import SourceURL, parse_url

ENTRY_POINT_GROUP = "vdedup.connectors"
BUILTIN = ("chroma", "pinecone", "qdrant", "weaviate", "milvus", "pgvector", "files")

_lock = threading.Lock()
_by_name: dict[str, Descriptor] = {}       # canonical name -> descriptor
_names: dict[str, str] = {}                # every name, alias and scheme -> canonical name
_builtins_loaded = False
_entry_points_loaded = False
_broken: dict[str, str] = {}               # entry point -> why it could not be loaded
_builtin: list[Descriptor] = []


def register(descriptor: Descriptor) -> None:
    """Add (or replace) a provider: its name, aliases and URL schemes become known."""
    if not isinstance(descriptor, Descriptor):
        raise TypeError(f"not a connector Descriptor: {type(descriptor).__name__}")
    with _lock:
        _add(descriptor)


def _add(d: Descriptor) -> None:
    old = _by_name.get(d.name)
    if old is not None:
        for n in (*old.all_names, *old.schemes):
            _names.pop(n, None)
    _by_name[d.name] = d
    for n in (*d.all_names, *d.schemes):
        _names[n] = d.name


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    with _lock:
        if not _builtins_loaded:
            for pkg in BUILTIN:
                d = importlib.import_module(f"vdedup.connectors.{pkg}.descriptor").DESCRIPTOR
                _builtin.append(d)
                if d.name not in _by_name:       # a registration made first wins
                    _add(d)
            _builtins_loaded = True


def _load_entry_points() -> None:
    global _entry_points_loaded
    _load_builtins()
    if _entry_points_loaded:
        return
    with _lock:
        if _entry_points_loaded:
            return
        from importlib import metadata     # ~20 ms: only when a name is not built in
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                value: Any = ep.load()
                d = value() if callable(value) and not isinstance(value, Descriptor) else value
                if not isinstance(d, Descriptor):
                    raise TypeError(f"{ep.value} is not a Descriptor")
            except Exception as e:        # a broken plug-in must not break vdedup
                _broken[ep.name] = f"{type(e).__name__}: {e}".splitlines()[0][:200]
                continue
            if d.name not in _by_name:    # built-ins cannot be replaced by an entry point
                _add(d)
        _entry_points_loaded = True


def refresh() -> None:
    """Read the entry points again (after installing a plug-in in a running process)."""
    global _entry_points_loaded
    with _lock:
        _entry_points_loaded = False
        _broken.clear()
    _load_entry_points()


def _find(name: str) -> Descriptor | None:
    _load_builtins()
    key = name.strip().lower()
    if key not in _names:
        _load_entry_points()
    canonical = _names.get(key)
    return _by_name.get(canonical) if canonical is not None else None


def descriptors() -> list[Descriptor]:
    """Every known provider: the built-ins in their order, then plug-ins by name."""
    _load_entry_points()
    order = {d.name: i for i, d in enumerate(_builtin)}
    return sorted(_by_name.values(), key=lambda d: (order.get(d.name, len(order)), d.name))


def lookup(name: str) -> Descriptor:
    """The descriptor of a provider name, alias or URL scheme; UsageError when unknown."""
    d = _find(name)
    if d is None:
        known = ", ".join(sorted(_by_name))
        broken = f"; plug-ins that failed to load: {', '.join(sorted(_broken))}" if _broken else ""
        raise UsageError(f"unknown provider {name!r} (known: {known}{broken})")
    return d


def canonical_provider(name: str) -> str:
    """The registry name for a provider name or alias (e.g. pgvector -> postgresql); a name
    nobody registered is returned unchanged."""
    d = _find(name)
    return d.name if d is not None else name


def capabilities(provider: str) -> Capabilities:
    """What the provider can hold, for the translation planner (no SDK imported)."""
    d = _find(provider)
    if d is None or d.capabilities is None or not d.capabilities.translation_target:
        raise UsageError(f"no translation rules for provider {provider!r}")
    return d.capabilities


def all_capabilities() -> dict[str, Capabilities]:
    return {d.name: d.capabilities for d in descriptors()
            if d.capabilities is not None and d.capabilities.translation_target}


def connector_class(d: Descriptor) -> type:
    """Import the SDK (a clear error naming the extra when it is missing), then the class."""
    if d.sdk:
        try:
            importlib.import_module(d.sdk)
        except ImportError:
            raise MissingDependency(
                f"the {d.name} connector needs the {d.sdk!r} package: pip install 'vdedup[{d.extra}]'"
            ) from None
    module_name, cls_name = d.connector.split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def descriptor_of(url: str | SourceURL) -> Descriptor:
    """The provider a URL names, by its scheme (e.g. qdrant+local) or the part before "+"."""
    u = parse_url(url) if isinstance(url, str) else url
    return lookup(u.scheme if _find(u.scheme) else u.provider)


def open_connector(url: str | SourceURL, credentials: Credentials = NO_CREDENTIALS,
                   read_only: bool = False, create_on_write: bool = False,
                   must_exist: bool = False) -> Connector:
    """Open the connector for a URL with exactly these credentials: none by default. Where a
    secret comes from is the caller's choice (the credential store, or `credentials_for` at
    the command line); a connector never looks for one itself.

    Where opening would create the local storage the URL names (the connector's
    `storage_absent(url)` says so): with `read_only` (dry runs, verify) an empty stand-in that
    creates nothing; with `create_on_write` (restores) that stand-in until the first write
    opens the real connector; with `must_exist` (backups, discovery: reading a database that
    is not there) a SourceError, and nothing is created."""
    u = parse_url(url) if isinstance(url, str) else url
    if not isinstance(credentials, Credentials):
        raise TypeError("credentials must be a vdedup.connectors.Credentials")
    cls = connector_class(descriptor_of(u))
    if credentials.present:
        refuse_plain_transport(u, credentials.origin)
    if must_exist and cls.storage_absent(u):
        validate = getattr(cls, "validate_url", None)
        if validate is not None:
            validate(u)                       # a bad URL is a usage error first
        from ..errors import SourceError
        raise SourceError(f"no {descriptor_of(u).name} database at {u.redacted()}: nothing to read "
                          "(and nothing was created)")
    if (read_only or create_on_write) and cls.storage_absent(u):
        from .absent import AbsentTarget, OpenOnWrite
        empty = AbsentTarget(cls, u.redacted(), u.query.get("collection") or None)
        return empty if read_only else OpenOnWrite(empty, lambda: cls.from_url(u, credentials))
    return cls.from_url(u, credentials)


def refuse_plain_transport(url: str | SourceURL, origin: str = "the secret") -> None:
    """InsecureTransport when a secret for `url` would go to another machine over plain http
    (the connector's `plain_transport`), unless the URL says `?insecure=1`. Called before any
    connection is made, and by `connect` before a secret is stored."""
    u = parse_url(url) if isinstance(url, str) else url
    cls = connector_class(descriptor_of(u))
    validate = getattr(cls, "validate_url", None)        # a bad URL is a usage error first
    if validate is not None:
        validate(u)
    check = getattr(cls, "plain_transport", None)          # ConnectorBase has it
    found = check(u) if check is not None else None
    if found is None:
        return
    host, option = found
    from ..errors import InsecureTransport
    raise InsecureTransport(
        f"refusing to send the secret from {origin} to {host} over plain http: it would cross "
        "the network in clear text",
        hint=f"use TLS (add {option} to the URL), or add ?insecure=1 to the URL to send it anyway")


def credentials_for(url: str | SourceURL, environ: Mapping[str, str]) -> Credentials:
    """The credentials the provider's documented environment variables hold, for a URL given
    on the command line (`environ` is os.environ there; see credentials.from_environment)."""
    u = parse_url(url) if isinstance(url, str) else url
    return from_environment(descriptor_of(u), u, environ)
