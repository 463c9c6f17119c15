"""What several connectors do alike (connector layer; depends only on model and errors).

Only what is the same in meaning lives here: refusing secrets and unknown parameters in a
source URL, reading an on/off URL parameter, refusing a namespace where a provider has none,
telling an unreachable server from other failures, turning SDK exceptions into one-line vdedup
errors at the connector boundary, the one-line form of an exception's message, and the
JSON-safe copy of settings an SDK reports (kept verbatim in schema extras). Retry loops stay
with their connectors: each provider says differently what is transient and how long to wait.
"""
from __future__ import annotations

import base64
import contextlib
import ipaddress
import math
import re
import sys
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import UsageError, VdedupError, scrub
from .url import SECRET_KEYS, SourceURL

DETAIL_MAX = 240          # characters of an SDK message kept in an error
TRUE_WORDS = ("1", "true", "yes", "on")
INSECURE_KEY = "insecure"  # URL option: send a secret over plain http to another machine anyway


def refuse_credentials(u: SourceURL, provider: str, instead: str, user_allowed: bool = False) -> None:
    """A password (or, unless `user_allowed`, a user name) in the URL: refused, saying where
    the secret goes instead."""
    if user_allowed and u.password:
        raise UsageError(f"a password does not belong in a {provider} URL: {instead}")
    if u.password or (u.username and not user_allowed):
        raise UsageError(f"credentials do not belong in a {provider} URL: {instead}")


def refuse_secret_params(u: SourceURL, provider: str, instead: str,
                         containing: tuple[str, ...] = ()) -> None:
    """A query parameter that names a secret (or whose name contains one of `containing`)."""
    secret = sorted(k for k in u.query
                    if k.lower() in SECRET_KEYS or any(c in k.lower() for c in containing))
    if secret:
        raise UsageError(f"secret {secret[0]!r} in a {provider} URL: {instead}")


def refuse_unknown_params(u: SourceURL, provider: str, known: set[str], form: str = "") -> None:
    """A query parameter the connector does not know (`form` names the URL form, e.g.
    qdrant+local, when the known ones depend on it)."""
    unknown = sorted(set(u.query) - known)
    if unknown:
        which = f"known for {form}" if form else "known"
        raise UsageError(f"unknown {provider} URL parameter {unknown[0]!r} "
                         f"({which}: {', '.join(sorted(known))})")


def flag(value: str | None) -> bool:
    """An on/off URL parameter: 1, true, yes or on (any case) is on; absent is off."""
    return (value or "0").lower() in TRUE_WORDS


def is_loopback(host: str | None) -> bool:
    """Whether a host is this machine: localhost or a loopback address (traffic that never
    leaves it, so a secret sent in clear text crosses no network)."""
    if not host:
        return True
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plain_to_remote(u: SourceURL, secure: bool, tls_option: str) -> tuple[str, str] | None:
    """For a connector's `plain_transport`: (the host, `tls_option`: the URL option that
    turns TLS on) when a secret sent to the URL's host would cross the network in clear
    text, i.e. the connection is plain, the host is not this machine and the URL does not
    say `?insecure=1`; None when it would not."""
    if secure or is_loopback(u.host) or flag(u.query.get(INSECURE_KEY)):
        return None
    return str(u.host), tls_option


def refuse_namespace(namespace: str, message: str) -> None:
    """Providers without namespaces hold only the namespace ""."""
    if namespace:
        raise UsageError(message.format(namespace=namespace))


def is_unreachable(e: BaseException) -> bool:
    """A connection that could not be made or timed out: the OS's own errors, and httpx's
    transport errors (the HTTP library of several SDKs; looked for only if already loaded)."""
    if isinstance(e, (ConnectionError, TimeoutError)):
        return True
    httpx = sys.modules.get("httpx")
    return httpx is not None and isinstance(e, httpx.TransportError)


@contextlib.contextmanager
def translated_errors(translate: Callable[[Exception], VdedupError]) -> Iterator[None]:
    """Let vdedup errors through; raise any other exception as `translate` turns it into a
    vdedup error, chained to it (`raise ... from e`)."""
    try:
        yield
    except VdedupError:
        raise
    except Exception as e:
        raise translate(e) from e


def error_detail(e: BaseException, echo: re.Pattern[str] | None = None,
                 prefer_message: bool = False) -> str:
    """`Type: first line of the message`, at most DETAIL_MAX characters. With `echo`, what it
    matches (values an SDK echoes from the records) is cut and said to be withheld. With
    `prefer_message`, an exception's `message` attribute (SDKs whose str() adds codes and
    decoration) is used instead of its str()."""
    message = getattr(e, "message", None) if prefer_message else None
    text = message if isinstance(message, str) and message else str(e)
    text = scrub(text)           # before cutting: a secret may span lines
    text = (text.strip().splitlines() or [""])[0].strip() or type(e).__name__
    if echo is not None:
        cut = echo.sub("", text)
        if cut != text:
            text = cut.rstrip(" :,") + " (values withheld)"
    if len(text) > DETAIL_MAX:
        text = text[:DETAIL_MAX - 3] + "..."
    return f"{type(e).__name__}: {text}"


def json_safe(value: Any, other: Callable[[Any], Any] = str) -> Any:
    """A JSON-serialisable copy of what an SDK reports: keys become strings, tuples lists,
    non-finite floats their str(), integer enums their name, numpy scalars Python ones, bytes
    {"base64": ...}; any other value becomes what `other` makes of it (by default its str()),
    itself made JSON-safe."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value.name if type(value) is not int and hasattr(value, "name") else int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v, other) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, other) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item(), other)
    if isinstance(value, (bytes, bytearray)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    return json_safe(other(value), other)
