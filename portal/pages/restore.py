"""Restore wizard: a version (or a point in time), a mode and target, what to restore; then
the plan (the engine's dry run: translation steps, records to write) before anything is
written; then the restore itself as a job (portal layer).

Modes: a new index in the asset's own database; another database (a connected asset, whose
stored secret is used, or an address that needs no secret, such as qdrant+local:///path or
chroma:///path; a database that needs a secret is connected as an asset first, so that a
secret is never typed into the restore form); in place, after a safety snapshot of the
current data. Every mode can be narrowed to some indexes, namespaces, ids or a filter.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterator

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vdedup.assets.store import Asset, AssetStore
from vdedup.connectors import open_connector, parse_url
from vdedup.connectors.base import Connector
from vdedup.connectors.url import SECRET_KEYS
from vdedup.engine.backup import backup
from vdedup.engine.events import Reporter
from vdedup.engine.nightly import asset_connector, asset_snapshots, asset_tag
from vdedup.engine.restore import (RestoreResult, Selection, TranslationOptions, restore, restore_in_place,
                                   target_name)
from vdedup.engine.where import parse_where
from vdedup.errors import SnapshotNotFound, UsageError, VdedupError
from vdedup.model import Metric
from vdedup.repository import Repository, Snapshot
from vdedup.repository.snapshot import find, newest_at_or_before

from .. import auditing
from ..jobs import Job, JobReporter
from ..web import Form, one_line, page, redirect, render, state_of

MODES = {"new": "New index in the same database",
         "other": "Another database (a connected asset or an address)",
         "inplace": "In place: make the database equal to this version again"}
METRICS = [m.value for m in Metric if m != Metric.UNKNOWN]


@dataclass
class Choice:
    """Everything the wizard asked; carried from the plan page to the confirmation as hidden fields."""
    snapshot: str
    mode: str = "new"
    as_name: str = ""
    target_asset: str = ""
    target_url: str = ""
    overwrite: bool = False
    collections: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    ids: str = ""
    where: str = ""
    metric: str = ""
    drop_sparse: bool = False
    allow_lossy: bool = False

    @classmethod
    def from_form(cls, form: Form) -> "Choice":
        return cls(form.get("snapshot"), form.get("mode") or "new", form.get("as_name"),
                   form.get("target_asset"), form.get("target_url"), form.flag("overwrite"),
                   form.list("collection"), form.list("namespace"), form.get("ids"), form.get("where"),
                   form.get("metric"), form.flag("drop_sparse"), form.flag("allow_lossy"))

    def hidden(self) -> list[tuple[str, str]]:
        out = [("snapshot", self.snapshot), ("mode", self.mode), ("as_name", self.as_name),
               ("target_asset", self.target_asset), ("target_url", self.target_url),
               ("ids", self.ids), ("where", self.where), ("metric", self.metric)]
        out += [("overwrite", "1")] if self.overwrite else []
        out += [("drop_sparse", "1")] if self.drop_sparse else []
        out += [("allow_lossy", "1")] if self.allow_lossy else []
        out += [("collection", c) for c in self.collections]
        out += [("namespace", n) for n in self.namespaces]
        return out

    def selection(self, snap: Snapshot) -> Selection:
        if not self.collections:
            raise UsageError("choose at least one index to restore")
        ids = None
        if self.ids:
            ids = set()
            for line in self.ids.splitlines():
                if line.strip():
                    ids.add(line.strip())
                    if line.strip().lstrip("-").isdigit():
                        ids.add(int(line.strip()))
        where = None
        if self.where:
            try:
                where = parse_where(self.where)
            except UsageError as e:
                raise UsageError("filter: " + one_line(e).removeprefix("--where: ")) from None
        return Selection(self.collections, self.namespaces or None, ids, where)

    def translation(self) -> TranslationOptions:
        if self.metric and self.metric not in METRICS:
            raise UsageError(f"unknown metric {self.metric!r}")
        return TranslationOptions(Metric(self.metric) if self.metric else None, None,
                                  self.drop_sparse, self.allow_lossy)


def pick_snapshot(snaps: list[Snapshot], version: str, at: str) -> Snapshot:
    """A version by id (or 'latest'), or the newest at or before a time (UTC)."""
    when = None
    if at:
        try:
            when = dt.datetime.fromisoformat(at)
        except ValueError:
            raise UsageError(f"not a date and time: {at!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)    # the pages show and take UTC
    if not snaps:
        raise SnapshotNotFound("the asset has no versions yet: back it up first")
    if when is not None:
        return newest_at_or_before(snaps, when)
    return find(snaps, version or "latest")


@contextlib.contextmanager
def target_connector(store: AssetStore, asset: Asset, choice: Choice,
                     dry_run: bool = False) -> Iterator[tuple[Connector, str, str]]:
    """(connector, its address without credentials, what to call it on the page); a dry run
    creates nothing (a local target that does not exist yet is read as empty), a restore
    creates it at its first write."""
    if choice.mode in ("new", "inplace") or (choice.mode == "other" and choice.target_asset):
        target = asset if choice.mode != "other" else store.get(choice.target_asset)
        with asset_connector(store, target, read_only=dry_run, create_on_write=True) as c:
            yield c, parse_url(target.url).redacted(), f"asset {target.name} ({target.url})"
        return
    if choice.mode != "other":
        raise UsageError(f"unknown restore mode {choice.mode!r}")
    if not choice.target_url:
        raise UsageError("choose a connected asset or give the target's address")
    u = parse_url(choice.target_url)
    if u.password or any(k.lower() in SECRET_KEYS for k in u.query):
        raise UsageError("the address holds a credential: connect that database as an asset first "
                         "(Connect Database), then choose it as the target")
    c = open_connector(u, read_only=dry_run, create_on_write=True)
    try:
        yield c, u.redacted(), u.redacted()
    finally:
        c.close()


def run_restore(repo: Repository, store: AssetStore, asset: Asset, choice: Choice, snap: Snapshot,
                reporter: Reporter, dry_run: bool) -> tuple[RestoreResult, str]:
    selection = choice.selection(snap)
    if choice.mode == "inplace" and (choice.as_name or choice.overwrite):
        raise UsageError("an in-place restore writes into the asset's own indexes (no new name, no overwrite option)")
    with target_connector(store, asset, choice, dry_run) as (connector, address, label):
        if choice.mode == "inplace":
            def safety(names: list[str]) -> Snapshot:
                return backup(repo, connector, address, names,
                              ["safety", f"before-restore-{snap.short_id}", asset_tag(asset.name)],
                              reporter).snapshot
            result = restore_in_place(repo, snap, connector, address, safety, lambda plan: True,
                                      selection, reporter, dry_run=dry_run)
        else:
            # another database whose address names an index: that is where the data goes
            named = connector.url_collection if choice.mode == "other" else None
            as_name = target_name(snap, selection.collections, choice.as_name or None, named)
            result = restore(repo, snap, connector, address, None, as_name, choice.overwrite,
                             reporter, selection=selection, dry_run=dry_run, translation=choice.translation())
    return result, label


@page
def restore_wizard(request: Request, form: Form) -> Response:
    """Step 1 (no version chosen yet) and step 2 (mode, target, selection)."""
    state = state_of(request)
    name = request.path_params["name"]
    store = AssetStore(state.repo)
    asset = store.get(name)
    snaps = asset_snapshots(state.repo, name)
    q = request.query_params
    version, at = q.get("snapshot", ""), q.get("at", "")
    if not version and not at:
        return render(request, "restore.html", active="assets", asset=asset, step=1,
                      snaps=list(reversed(snaps)))
    snap = pick_snapshot(snaps, version, at)
    namespaces = sorted({e["name"] for c in snap.collections for e in c["namespaces"] if e["name"]})
    others = [a for a in store.list() if a.name != name]
    return render(request, "restore.html", active="assets", asset=asset, step=2, snap=snap, modes=MODES,
                  namespaces=namespaces, others=others, metrics=METRICS, at=at,
                  choice=Choice(snap.id, collections=[c["name"] for c in snap.collections]))


@page
def restore_plan(request: Request, form: Form) -> Response:
    """Step 3: the dry run. Nothing is written or created (an in-place restore takes its safety
    snapshot only when it runs)."""
    state = state_of(request)
    name = request.path_params["name"]
    store = AssetStore(state.repo)
    asset = store.get(name)
    choice = Choice.from_form(form)
    snap = find(asset_snapshots(state.repo, name), choice.snapshot)
    try:
        with state.working(f"restore plan for {name}") as repo:
            result, label = run_restore(repo, store, asset, choice, snap, Reporter(), dry_run=True)
    except VdedupError as e:
        if e.exit_code != 2:              # bad input is not an operation (as in the CLI)
            auditing.record(state.repo, "restore", e, asset=name, snapshot=snap.id, counts={"dry_run": 1})
        namespaces = sorted({e2["name"] for c in snap.collections for e2 in c["namespaces"] if e2["name"]})
        return render(request, "restore.html", 400 if e.exit_code == 2 else 409 if e.exit_code in (16, 19) else 502,
                      active="assets", asset=asset, step=2, snap=snap, modes=MODES, namespaces=namespaces,
                      others=[a for a in store.list() if a.name != name], metrics=METRICS, at="",
                      choice=choice, error=one_line(e), hint=e.hint)
    auditing.record(state.repo, "restore", asset=name, snapshot=snap.id,
                    counts={"dry_run": 1, "records": sum(p.write for p in result.plan),
                            "safety_snapshot": 1 if result.safety_snapshot else None})
    refused = [err for t in result.translations for err in t["errors"]]
    return render(request, "restore.html", active="assets", asset=asset, step=3, snap=snap, choice=choice,
                  mode_label=MODES.get(choice.mode, choice.mode), target_label=label, result=result,
                  refused=refused, total=sum(p.write for p in result.plan),
                  deletes=sum(p.delete for p in result.plan))


@page
def restore_run(request: Request, form: Form) -> Response:
    """Step 4: the restore, as a job."""
    state = state_of(request)
    name = request.path_params["name"]
    store = AssetStore(state.repo)
    asset = store.get(name)
    choice = Choice.from_form(form)
    snap = find(asset_snapshots(state.repo, name), choice.snapshot)
    choice.selection(snap)                 # bad input is refused now, not in the job
    choice.translation()

    def work(repo: Repository, reporter: JobReporter) -> dict[str, Any]:
        result, label = run_restore(repo, AssetStore(repo), asset, choice, snap, reporter, dry_run=False)
        lines = [f"restored {n:,} records into {t}" for t, n in result.collections.items()]
        if result.safety_snapshot:
            lines.insert(0, f"safety snapshot {result.safety_snapshot[:8]} taken first (restore it to undo)")
        lines += [f"warning: {w}" for w in result.warnings]
        return {"lines": lines or ["nothing to restore"], "records": sum(result.collections.values()),
                "safety_snapshot": result.safety_snapshot, "target": label}

    def on_end(job: Job, error: BaseException | None) -> None:
        r = job.result
        auditing.record(state.repo, "restore", error, asset=name, snapshot=snap.id,
                        counts=None if error else {"records": r.get("records"),
                                                   "safety_snapshot": 1 if r.get("safety_snapshot") else None})

    job = state.jobs.start("restore", f"restore of {name} {snap.short_id}", name, f"/assets/{name}", work, on_end)
    return redirect(f"/jobs/{job.id}")


routes = [
    Route("/assets/{name}/restore", restore_wizard),
    Route("/assets/{name}/restore/plan", restore_plan, methods=["POST"]),
    Route("/assets/{name}/restore/run", restore_run, methods=["POST"]),
]
