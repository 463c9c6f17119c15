"""Rendering and the shape of every route (portal layer).

`page` turns a plain function `(request, form) -> Response` into a Starlette endpoint: it
reads a POSTed form, runs the function in a worker thread (the engine blocks), and turns
the errors it raises into plain pages with one line each: a vdedup error shows its message
and hint (messages never hold secrets or record data), other work running shows who holds
the repository, anything else shows only that an internal error happened.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from vdedup.errors import VdedupError

from .state import Busy, PortalState

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))

# an error's exit code -> HTTP status of the page that shows it
STATUS_BY_EXIT = {2: 400, 10: 500, 11: 409, 12: 500, 13: 409, 14: 404, 15: 502, 16: 409, 17: 500,
                  18: 500, 19: 409}


class Form:
    """A submitted form: single values stripped, lists for checkboxes; absent means empty."""

    def __init__(self, data: FormData | None):
        self._data = data

    def get(self, key: str, default: str = "") -> str:
        if self._data is None:
            return default
        v = self._data.get(key)
        return v.strip() if isinstance(v, str) else default

    def raw(self, key: str) -> str:
        """Only line ends trimmed (a secret's spaces may be part of it)."""
        if self._data is None:
            return ""
        v = self._data.get(key)
        return v.strip("\r\n") if isinstance(v, str) else ""

    def list(self, key: str) -> list[str]:
        if self._data is None:
            return []
        return [v for v in self._data.getlist(key) if isinstance(v, str) and v]

    def flag(self, key: str) -> bool:
        return self.get(key) in ("1", "on", "yes", "true")


Handler = Callable[[Request, Form], Response]


def page(fn: Handler) -> Callable:
    async def endpoint(request: Request) -> Response:
        data = await request.form() if request.method == "POST" else None
        try:
            return await run_in_threadpool(_call, fn, request, Form(data))
        finally:
            if data is not None:
                await data.close()
    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint


def _call(fn: Handler, request: Request, form: Form) -> Response:
    try:
        return fn(request, form)
    except Busy as e:
        return render(request, "error.html", 409, title="Busy",
                      message=f"The repository is busy: {e.what or 'another operation'} is running.",
                      hint="Try again when it has finished (see its progress under Jobs).")
    except VdedupError as e:
        return error_page(request, e)


def error_page(request: Request, e: VdedupError) -> Response:
    status = STATUS_BY_EXIT.get(e.exit_code, 500)
    title = {400: "Bad input", 404: "Not found", 409: "Cannot do that now", 502: "Database error"}.get(status, "Error")
    return render(request, "error.html", status, title=title, message=one_line(e), hint=e.hint)


def one_line(e: VdedupError) -> str:
    return (e.message.splitlines() or [""])[0]


def internal_error_message(e: BaseException) -> str:
    if os.environ.get("VDEDUP_DEBUG"):
        traceback.print_exc(file=sys.stderr)
    return f"internal error ({type(e).__name__}); set VDEDUP_DEBUG=1 where the portal runs for details"


def state_of(request: Request) -> PortalState:
    return request.app.state.portal


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    state = state_of(request)
    session = request.scope.get("portal_session")
    context.setdefault("active", "")
    return TEMPLATES.TemplateResponse(request, template, {
        "csrf": session.csrf if session else "", "location": state.location,
        "jobs_running": state.jobs.active(), **context}, status_code=status)


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)


# ---- filters --------------------------------------------------------------------------
def human_bytes(n: float | int | None) -> str:
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def when(text: str | dt.datetime | float | None) -> str:
    """`2026-12-01 10:20:31 UTC` (from ISO text, a datetime or seconds since the epoch)."""
    if isinstance(text, (int, float)):
        text = dt.datetime.fromtimestamp(text, dt.timezone.utc)
    t = text if isinstance(text, dt.datetime) else parse_time(text)
    if t is None:
        return "–"
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(text: str | dt.datetime | None, now: dt.datetime | None = None) -> str:
    t = text if isinstance(text, dt.datetime) else parse_time(text)
    if t is None:
        return ""
    s = ((now or dt.datetime.now(dt.timezone.utc)) - t).total_seconds()
    if s < 60:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if s >= size:
            k = int(s // size)
            return f"{k} {unit}{'s' if k != 1 else ''} ago"
    return ""


def number(n: int | None) -> str:
    return "–" if n is None else f"{n:,}"


def counts_text(c: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (c or {}).items())


TEMPLATES.env.filters.update(human_bytes=human_bytes, when=when, ago=ago, number=number,
                             counts_text=counts_text)
TEMPLATES.env.globals["Markup"] = Markup
