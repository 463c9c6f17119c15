"""The difference between two versions of an asset (portal layer).

Counts only, per index and namespace (records added, removed, changed and how): the ids
are record data and stay out of the page, as `vdedup diff` prints them only when asked.
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vdedup.assets.store import AssetStore
from vdedup.engine.diff import KINDS, diff
from vdedup.engine.nightly import asset_snapshots
from vdedup.repository.snapshot import find

from ..web import Form, page, render, state_of


@page
def snapshot_diff(request: Request, form: Form) -> Response:
    state = state_of(request)
    name = request.path_params["name"]
    asset = AssetStore(state.repo).get(name)
    snaps = asset_snapshots(state.repo, name)
    q = request.query_params
    if len(snaps) < 2 and not (q.get("a") and q.get("b")):
        return render(request, "diff.html", active="assets", asset=asset, snaps=list(reversed(snaps)),
                      result=None, a=None, b=None, kinds=KINDS)
    a = find(snaps, q.get("a") or snaps[-2].id)
    b = find(snaps, q.get("b") or snaps[-1].id)
    if a.time > b.time:
        a, b = b, a
    with state.working(f"diff of {name}") as repo:
        result = diff(repo, a, b)
    return render(request, "diff.html", active="assets", asset=asset, snaps=list(reversed(snaps)),
                  result=result, totals=result.totals(), a=a, b=b, kinds=KINDS)


routes = [Route("/assets/{name}/diff", snapshot_diff)]
