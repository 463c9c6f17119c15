"""A job's page and its progress as JSON for the page's poller (portal layer)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vdedup.errors import VdedupError

from ..web import Form, page, render, state_of


class JobNotFound(VdedupError):
    exit_code = 14
    hint = "jobs are kept while the portal runs; this one is gone or never was"


def _job(request: Request):
    job = state_of(request).jobs.get(request.path_params["id"])
    if job is None:
        raise JobNotFound("no such job")
    return job


@page
def job_page(request: Request, form: Form) -> Response:
    job = _job(request)
    return render(request, "job.html", active="jobs", job=job, progress=job.to_dict())


@page
def job_status(request: Request, form: Form) -> Response:
    return JSONResponse(_job(request).to_dict())


@page
def jobs_list(request: Request, form: Form) -> Response:
    return render(request, "jobs.html", active="jobs", jobs=state_of(request).jobs.recent())


routes = [
    Route("/jobs", jobs_list),
    Route("/jobs/{id}", job_page),
    Route("/jobs/{id}/status", job_status),
]
