"""Repository health: the last check, sizes and ratios, locks; run a check (portal layer)."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vdedup.engine.check import check
from vdedup.engine.stats import repository_stats
from vdedup.errors import IntegrityError
from vdedup.repository import Repository

from .. import auditing
from ..jobs import Job, JobReporter
from ..web import Form, page, redirect, render, state_of
from .history import History


@page
def health_page(request: Request, form: Form) -> Response:
    state = state_of(request)
    history = History.load(state.repo)
    last_check = next((e for e in reversed(history.entries)
                       if e.get("operation") in auditing.CHECK_OPERATIONS), None)
    with state.working("repository statistics") as repo:
        stats = repository_stats(repo)
    return render(request, "health.html", active="health", stats=stats, last_check=last_check,
                  locks=state.repo.list_locks(), repo_id=state.repo.id,
                  created=state.repo.config.get("created"), jobs=[j for j in state.jobs.recent() if j.kind == "check"][:3])


@page
def health_check(request: Request, form: Form) -> Response:
    state = state_of(request)
    read_data = form.flag("read_data")

    def work(repo: Repository, reporter: JobReporter) -> dict[str, Any]:
        result = check(repo, read_data, reporter)
        c = result.counts
        lines = [f"checked {c.get('snapshots', 0)} snapshots, {c.get('index_files', 0)} index files, "
                 f"{c.get('packs', 0)} packs" + (" (all data read)" if read_data else "")]
        lines += [f"error: {e}" for e in result.errors]
        lines += [f"warning: {w}" for w in result.warnings]
        lines.append("no errors were found" if result.ok else f"check found {len(result.errors)} error(s)")
        return {"lines": lines, "ok": result.ok, "errors": len(result.errors),
                "failed": None if result.ok else f"check found {len(result.errors)} error(s)"}

    def on_end(job: Job, error: BaseException | None) -> None:
        if error is None and job.result.get("failed"):
            error = IntegrityError(job.result["failed"])
        auditing.record(state.repo, "check", error,
                        counts={"errors": job.result.get("errors"), "read_data": 1 if read_data else None})

    job = state.jobs.start("check", "repository check" + (" (reading all data)" if read_data else ""),
                           None, "/health", work, on_end)
    return redirect(f"/jobs/{job.id}")


routes = [
    Route("/health", health_page),
    Route("/health/check", health_check, methods=["POST"]),
]
