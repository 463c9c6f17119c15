"""What several connectors do alike (connector layer; depends only on model and errors).

Only what is the same in meaning lives here: refusing secrets and unknown parameters in a
source URL, turning SDK exceptions into one-line vdedup errors at the connector boundary, the
one-line form of an exception's message, and the JSON-safe copy of settings an SDK reports
(kept verbatim in schema extras). Retry loops stay with their connectors: each
provider says differently what is transient and how long to wait.
"""
from __future__ import annotations

import contextlib
import math
import re
from typing import Any, Callable, Iterator

from ..errors import UsageError, VdedupError
from .url import SECRET_KEYS, SourceURL

DETAIL_MAX = 240          # characters of an SDK message kept in an error


def refuse_credentials(u: SourceURL, provider: str, instead: str) -> None:
    """A user name or password in the URL: refused, saying where the secret goes instead."""
    if u.username or u.password:
        raise UsageError(f"credentials do not belong in a {provider} URL: {instead}")


def refuse_secret_params(u: SourceURL, provider: str, instead: str,
                         containing: tuple[str, ...] = ()) -> None:
    """A query parameter that names a secret (or whose name contains one of `containing`)."""
    secret = sorted(k for k in u.query
                    if k.lower() in SECRET_KEYS or any(c in k.lower() for c in containing))
    if secret:
        raise UsageError(f"secret {secret[0]!r} in a {provider} URL: {instead}")


def refuse_unknown_params(u: SourceURL, provider: str, known: set[str]) -> None:
    unknown = sorted(set(u.query) - known)
    if unknown:
        raise UsageError(f"unknown {provider} URL parameter {unknown[0]!r} "
                         f"(known: {', '.join(sorted(known))})")


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


def error_detail(e: BaseException, echo: re.Pattern[str] | None = None) -> str:
    """`Type: first line of the message`, at most DETAIL_MAX characters. With `echo`, what it
    matches (values an SDK echoes from the records) is cut and said to be withheld."""
    text = (str(e).strip().splitlines() or [""])[0].strip() or type(e).__name__
    if echo is not None:
        cut = echo.sub("", text)
        if cut != text:
            text = cut.rstrip(" :,") + " (values withheld)"
    if len(text) > DETAIL_MAX:
        text = text[:DETAIL_MAX - 3] + "..."
    return f"{type(e).__name__}: {text}"


def json_safe(value: Any, other: Callable[[Any], Any] = str) -> Any:
    """A JSON-serialisable copy of what an SDK reports: keys become strings, tuples lists,
    non-finite floats their str(); any other value becomes what `other` makes of it (by
    default its str()), itself made JSON-safe."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v, other) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, other) for v in value]
    return json_safe(other(value), other)
