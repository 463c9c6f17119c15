"""How the Weaviate connector reads failures (connector layer): HTTP statuses and Retry-After
of its plain-HTTP calls, timeouts and unreachable servers from httpx and the client, and the
server's message cut to one line with quoted values withheld (they may be record data).
"""
from __future__ import annotations

import re
from typing import Any

QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"")


class HttpStatus(Exception):
    """A non-2xx answer on the plain-HTTP side, with the server's first error message."""

    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(f"HTTP {status}: {message}" if message else f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def status_of(e: BaseException) -> tuple[int | None, float | None]:
    if isinstance(e, HttpStatus):
        return e.status, e.retry_after
    code = getattr(e, "status_code", None)
    if isinstance(code, int):
        return code, None
    cause = e.__cause__ or e.__context__
    return status_of(cause) if isinstance(cause, HttpStatus) else (None, None)


def is_timeout(e: BaseException) -> bool:
    import httpx
    from weaviate.exceptions import WeaviateTimeoutError

    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, (httpx.TimeoutException, WeaviateTimeoutError, TimeoutError)):
            return True
        seen = seen.__cause__
    return False


def is_unreachable(e: BaseException) -> bool:
    import httpx
    from weaviate.exceptions import WeaviateConnectionError, WeaviateStartUpError

    return isinstance(e, (httpx.TransportError, WeaviateConnectionError, WeaviateStartUpError,
                          ConnectionError))


def retry_after_of(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def server_message(res: Any) -> str:
    try:
        body = res.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        if isinstance(body.get("error"), list) and body["error"]:
            return clean(str(body["error"][0].get("message", "")))
        if "message" in body:
            return clean(str(body["message"]))
    return ""


def clean(text: str) -> str:
    """One line, quoted values withheld (they may be record data), at most 240 characters."""
    text = QUOTED_RE.sub("'…'", (text.strip().splitlines() or [""])[0])
    return text if len(text) <= 240 else text[:237] + "..."


def detail(e: BaseException) -> str:
    message = getattr(e, "message", None) or str(e)
    return f"{type(e).__name__}: {clean(message) or type(e).__name__}"
