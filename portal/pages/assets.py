"""AI Assets -> Vector Databases: the connected assets, one asset's page, Backup now and
Test connection (portal layer)."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vdedup.assets.store import AssetStore
from vdedup.engine.nightly import asset_connector, backup_asset
from vdedup.errors import VdedupError
from vdedup.repository import Repository

from .. import auditing
from ..jobs import Job, JobReporter
from ..plot import history_svg
from ..schedule import next_run
from ..web import Form, human_bytes, one_line, page, redirect, render, state_of
from .history import History


@page
def home(request: Request, form: Form) -> Response:
    return redirect("/assets")


@page
def assets_list(request: Request, form: Form) -> Response:
    repo = state_of(request).repo
    assets = AssetStore(repo).list()
    history = History.load(repo)
    rows = []
    for a in assets:
        snaps = history.of_asset(a.name)
        rows.append({"asset": a, "last": history.last_backup(a.name), "versions": len(snaps)})
    return render(request, "assets.html", active="assets", rows=rows, next_run=next_run())


def _asset_page(request: Request, name: str, status: int = 200, **extra: Any) -> Response:
    state = state_of(request)
    asset = AssetStore(state.repo).get(name)
    history = History.load(state.repo)
    snaps = history.of_asset(name)
    rows = [{"snap": s, "bytes_added": history.bytes_added.get(s.id),
             "data": s.summary.get("logical_bytes"),
             "collections": [(c["name"], c["count"]) for c in s.collections]} for s in reversed(snaps)]
    return render(request, "asset.html", status, active="assets", asset=asset, rows=rows,
                  last=history.last_backup(name), plot=history_svg(history.points(name)),
                  jobs=state.jobs.recent(name)[:5], next_run=next_run(), **extra)


@page
def asset_detail(request: Request, form: Form) -> Response:
    return _asset_page(request, request.path_params["name"])


@page
def asset_test(request: Request, form: Form) -> Response:
    """Open the asset's connector with its stored secret and list what it reaches."""
    state = state_of(request)
    name = request.path_params["name"]
    store = AssetStore(state.repo)
    asset = store.get(name)
    try:
        with state.working(f"test of {name}"):
            with asset_connector(store, asset) as connector:
                reached = connector.list_collections()
    except VdedupError as e:
        return _asset_page(request, name, 502, test={"ok": False, "message": one_line(e)})
    missing = [c for c in asset.collections if c not in reached]
    if missing:
        message = (f"connected, but {len(missing)} of the asset's indexes are not there: "
                   f"{', '.join(missing)}")
    else:
        message = f"connected: the credentials reach {len(reached)} index(es)"
    return _asset_page(request, name, test={"ok": not missing, "message": message})


def _backup_work(store_name: str):
    def work(repo: Repository, reporter: JobReporter) -> dict[str, Any]:
        store = AssetStore(repo)
        asset = store.get(store_name)
        outcome = backup_asset(repo, store, asset, reporter)
        stats = outcome.result.stats if outcome.result is not None else {}
        lines = [f"snapshot {outcome.snapshot_id[:8]} saved: {outcome.records:,} records "
                 f"({stats.get('added', 0):,} new, {stats.get('changed', 0):,} changed, "
                 f"{stats.get('deleted', 0):,} deleted, {stats.get('unchanged', 0):,} unchanged)",
                 f"added to the repository: {human_bytes(outcome.bytes_added)} in {outcome.seconds:.1f} s"]
        if outcome.forgotten:
            lines.append(f"the asset's forget policy removed {len(outcome.forgotten)} old snapshot(s)")
        return {"lines": lines, "snapshot": outcome.snapshot_id, "records": outcome.records,
                "bytes_added": outcome.bytes_added, "forgotten": len(outcome.forgotten or []),
                "removed": list(outcome.forgotten or [])}
    return work


@page
def asset_backup(request: Request, form: Form) -> Response:
    state = state_of(request)
    name = request.path_params["name"]
    AssetStore(state.repo).get(name)           # an unknown name is refused now, not in the job

    def on_end(job: Job, error: BaseException | None) -> None:
        r = job.result
        auditing.record(state.repo, "backup", error, asset=name, snapshot=r.get("snapshot"),
                        counts={"records": r.get("records"), "bytes_added": r.get("bytes_added"),
                                "forgotten": r.get("forgotten") or None} if error is None else None,
                        removed=r.get("removed") or None)

    job = state.jobs.start("backup", f"backup of {name}", name, f"/assets/{name}", _backup_work(name), on_end)
    return redirect(f"/jobs/{job.id}")


routes = [
    Route("/", home),
    Route("/assets", assets_list),
    Route("/assets/{name}", asset_detail),
    Route("/assets/{name}/test", asset_test, methods=["POST"]),
    Route("/assets/{name}/backup", asset_backup, methods=["POST"]),
]
