"""Who may use the portal, and from where (portal layer; plain ASGI middleware).

- Every request needs a session; without one every path answers 403, static files too.
- The first visit brings the one-time token (`/?token=...`, printed by `vdedup portal`): it
  becomes a session cookie (HttpOnly, SameSite=Strict) and the browser is sent to the same
  page without the token, so it stays out of history, bookmarks and Referer headers.
- The Host header must be 127.0.0.1:PORT or localhost:PORT (no DNS rebinding).
- A request that changes something (any method but GET/HEAD) must come from the portal's
  own pages: its Origin must be the portal's (or, without Origin, Sec-Fetch-Site must say
  same-origin), and it must carry the session's CSRF token, as the form field `csrf` or the
  header X-CSRF-Token. The middleware checks this before any route runs, so no route can
  forget it.
- Every response says: no caching, no framing, no referrer to other sites, scripts and styles
  only from the portal itself.
"""
from __future__ import annotations

import hmac
import os
import sys
import traceback
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import parse_qs, urlencode

if TYPE_CHECKING:
    from .state import PortalState, Session

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SAFE_METHODS = {"GET", "HEAD"}
MAX_BODY = 4 * 1024 * 1024
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
]

FORBIDDEN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>403 Forbidden</title></head>
<body><h1>403 Forbidden</h1><p>{why}</p></body></html>"""

WHY_NO_SESSION = ("Open the portal with the link that <code>vdedup portal</code> printed when it "
                  "started. The link works once; to open the portal in another browser, start it again.")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class Guard:
    def __init__(self, app: Callable, state: "PortalState"):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":                 # no websockets here
            return
        send = _with_security_headers(send)
        headers = _headers(scope)
        if headers.get("host") not in self.state.hosts:
            await _forbidden(send, "This portal answers only at " + self.state.origin + ".")
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        session = self.state.session(_cookie(headers, self.state.cookie))
        if "token" in query and scope["method"] in SAFE_METHODS:
            await self._exchange(scope, send, query, session)
            return
        if session is None:
            await _forbidden(send, WHY_NO_SESSION)
            return
        if scope["method"] not in SAFE_METHODS:
            why = _cross_site(headers, self.state.origin)
            if why:
                await _forbidden(send, why)
                return
            body = await _read_body(receive)
            if body is None:
                await _plain(send, 413, "Request too large.")
                return
            if not _csrf_ok(headers, body, session):
                await _forbidden(send, "The form is out of date or did not come from this portal "
                                       "(missing or wrong CSRF token). Reload the page and try again.")
                return
            receive = _replay(body)
        scope["portal_session"] = session
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as e:          # the page already says so (or says it now); one line here
            print(f"vdedup portal: error: internal error ({type(e).__name__})", file=sys.stderr)
            if os.environ.get("VDEDUP_DEBUG"):
                traceback.print_exc()
            if not started:
                await _plain(send, 500, "Internal error. Set VDEDUP_DEBUG=1 where the portal runs for details.")

    async def _exchange(self, scope: Scope, send: Send, query: dict[str, list[str]],
                        session: "Session | None") -> None:
        """?token=...: turn it into a session (once), then drop it from the URL."""
        cookie = None
        if session is None:
            session = self.state.take_token(query["token"][0])
            if session is None:
                await _forbidden(send, "This link is not valid (it works only once). " + WHY_NO_SESSION)
                return
            cookie = session.sid
        rest = {k: v for k, v in query.items() if k != "token"}
        location = scope.get("path", "/") + (("?" + urlencode(rest, doseq=True)) if rest else "")
        headers = [(b"location", location.encode("latin-1")), (b"content-length", b"0")]
        if cookie is not None:
            headers.append((b"set-cookie", f"{self.state.cookie}={cookie}; Path=/; HttpOnly; "
                                           f"SameSite=Strict".encode("latin-1")))
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _cookie(headers: dict[str, str], name: str) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _cross_site(headers: dict[str, str], origin: str) -> str | None:
    """Why a state-changing request is refused as cross-site, or None."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return "Refused a request from another site (Sec-Fetch-Site)."
    sent = headers.get("origin")
    if sent == "null" and site == "same-origin":
        return None                 # what a browser sends when a page's referrer policy hides it
    if sent is not None:
        if sent != origin:
            return "Refused a request from another origin."
        return None
    if site == "same-origin":
        return None
    return "Refused a request that does not say where it comes from (no Origin header)."


def _csrf_ok(headers: dict[str, str], body: bytes, session: "Session") -> bool:
    offered = headers.get("x-csrf-token")
    if offered is None and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("latin-1"), keep_blank_values=True).get("csrf")
        offered = values[0] if values else None
    return offered is not None and hmac.compare_digest(offered.encode("latin-1", "replace"),
                                                       session.csrf.encode("latin-1"))


async def _read_body(receive: Receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}
    return receive


def _with_security_headers(send: Send) -> Send:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            message = {**message, "headers": list(message.get("headers", [])) +
                       [(k, v) for k, v in SECURITY_HEADERS if k not in present]}
        await send(message)
    return wrapped


async def _plain(send: Send, status: int, text: str) -> None:
    body = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status}</title>"
            f"</head><body><h1>{status}</h1><p>{text}</p></body></html>").encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _forbidden(send: Send, why: str) -> None:
    body = FORBIDDEN_PAGE.format(why=why).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
