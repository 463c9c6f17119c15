"""Background jobs: a backup, a restore or a check runs in a thread while the browser polls
its progress (portal layer).

The engine reports progress through a Reporter (phases with totals, advances, warnings,
translation plans); JobReporter keeps those as plain values a page can show. Jobs run one
at a time (PortalState.working): a second one waits in the queue.
"""
from __future__ import annotations

import os
import secrets
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from vdedup.engine.events import Reporter
from vdedup.errors import VdedupError

if TYPE_CHECKING:
    from vdedup.repository import Repository

    from .state import PortalState

KEEP_JOBS = 50


@dataclass
class Phase:
    name: str
    total: int | None
    done: int = 0
    finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        pct = None
        if self.total:
            pct = min(100, round(100 * self.done / self.total))
        elif self.finished:
            pct = 100
        return {"name": self.name, "total": self.total, "done": self.done,
                "finished": self.finished, "percent": pct}


class JobReporter(Reporter):
    """Progress as data: the engine calls it from the job's thread, pages read it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.phases: list[Phase] = []
        self.warnings: list[str] = []
        self.translations: list[dict] = []

    def phase(self, name: str, total: int | None = None) -> None:
        with self._lock:
            if self.phases and not self.phases[-1].finished:
                self.phases[-1].finished = True
            self.phases.append(Phase(name, total))

    def advance(self, n: int = 1) -> None:
        with self._lock:
            if self.phases:
                self.phases[-1].done += n

    def warn(self, message: str) -> None:
        with self._lock:
            self.warnings.append(message)

    def translation(self, plan: dict) -> None:
        with self._lock:
            self.translations.append(plan)

    def done(self) -> None:
        with self._lock:
            if self.phases:
                self.phases[-1].finished = True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"phases": [p.to_dict() for p in self.phases], "warnings": list(self.warnings)}


@dataclass
class Job:
    id: str
    kind: str                     # backup | restore | check
    title: str
    asset: str | None
    back: str                     # where the page links back to
    status: str = "queued"        # queued | running | ok | error
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    message: str | None = None    # the error's one-line message
    hint: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    reporter: JobReporter = field(default_factory=JobReporter)
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.status in ("ok", "error")

    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.time()) - self.started

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "title": self.title, "status": self.status,
                "finished": self.finished, "seconds": round(self.seconds(), 1),
                "message": self.message, **self.reporter.snapshot()}


Work = Callable[["Repository", JobReporter], dict[str, Any]]


class Jobs:
    def __init__(self, state: "PortalState"):
        self._state = state
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, title: str, asset: str | None, back: str, work: Work,
              on_end: Callable[[Job, BaseException | None], None] | None = None) -> Job:
        job = Job(secrets.token_hex(8), kind, title, asset, back)
        with self._lock:
            self._jobs[job.id] = job
            for old in list(self._jobs.values())[:-KEEP_JOBS]:
                if old.finished:
                    del self._jobs[old.id]
        job.thread = threading.Thread(target=self._run, args=(job, work, on_end),
                                      name=f"portal-{kind}-{job.id}", daemon=True)
        job.thread.start()
        return job

    def wait(self) -> None:
        """Until every job has ended."""
        for job in self.recent():
            if job.thread is not None:
                job.thread.join()

    def _run(self, job: Job, work: Work, on_end) -> None:
        error: BaseException | None = None
        try:
            with self._state.working(job.title, wait=None) as repo:
                job.status, job.started = "running", time.time()
                job.result = work(repo, job.reporter) or {}
            failed = job.result.get("failed")       # done, but what it found is bad (a check)
            job.status, job.message = ("error", failed) if failed else ("ok", None)
        except VdedupError as e:
            error = e
            job.status, job.message, job.hint = "error", e.message.splitlines()[0] if e.message else "", e.hint
        except Exception as e:                  # a bug: its type only, never its text
            error = e
            job.status, job.message = "error", f"internal error ({type(e).__name__})"
            if os.environ.get("VDEDUP_DEBUG"):
                traceback.print_exc()
        finally:
            job.ended = time.time()
            job.reporter.done()
        if on_end is not None:
            try:
                on_end(job, error)
            except Exception as e:
                print(f"vdedup portal: warning: after {job.kind}: {type(e).__name__}", file=sys.stderr)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def recent(self, asset: str | None = None) -> list[Job]:
        with self._lock:
            jobs = list(self._jobs.values())
        return [j for j in reversed(jobs) if asset is None or j.asset == asset]

    def active(self) -> list[Job]:
        return [j for j in self.recent() if not j.finished]
