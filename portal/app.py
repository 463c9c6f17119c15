"""The portal's Starlette application (portal layer).

`create_app(state)` returns the ASGI callable the server runs: the Guard middleware
(security.py) around a Starlette app whose routes come from pages/. `routes(app)` lists
every path and method, for the tests that knock on each without a session.
"""
from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from .pages import assets, audit, connect, health, jobs, restore, snapshots
from .security import Guard
from .state import PortalState
from .web import HERE


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    text = {404: "Not found", 405: "Method not allowed"}.get(status, "Error")
    return HTMLResponse(f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status}</title>"
                        f"</head><body><h1>{status} {text}</h1><p><a href=\"/assets\">Back to the portal</a></p>"
                        f"</body></html>", status_code=status)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug: a plain page that says so, without the exception's text (Guard logs its type)."""
    return HTMLResponse("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>500</title></head>"
                        "<body><h1>500 Internal error</h1><p>Set VDEDUP_DEBUG=1 where the portal runs for "
                        "details.</p><p><a href=\"/assets\">Back to the portal</a></p></body></html>",
                        status_code=500)


def create_app(state: PortalState) -> Guard:
    app = Starlette(routes=[*assets.routes, *connect.routes, *snapshots.routes, *restore.routes,
                            *jobs.routes, *audit.routes, *health.routes,
                            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")],
                    exception_handlers={HTTPException: _http_error, Exception: _internal_error})
    app.state.portal = state
    return Guard(app, state)


def routes(guard: Guard) -> list[tuple[str, str]]:
    """(method, path) of every route, path parameters as written (`/assets/{name}`)."""
    out = []
    for r in guard.app.routes:
        if isinstance(r, Mount):
            out.append(("GET", r.path + "/portal.css"))
            continue
        for m in sorted(getattr(r, "methods", None) or {"GET"}):
            if m != "HEAD":
                out.append((m, r.path))
    return out
