"""The audit log and its verification (portal layer). Reading it is not itself logged."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vdedup.assets.audit import AuditLog

from ..web import Form, page, render, state_of


@page
def audit_page(request: Request, form: Form) -> Response:
    log = AuditLog(state_of(request).repo)
    result = log.verify()
    entries = result.entries if result.ok else log.read()
    return render(request, "audit.html", active="audit", verify=result, entries=list(reversed(entries)))


routes = [Route("/audit", audit_page)]
