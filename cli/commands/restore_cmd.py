"""`restore` (CLI layer)."""
from __future__ import annotations

import datetime as dt
import os
import sys
from typing import List, Optional

import typer

from vdedup.connectors import credentials_for, open_connector, parse_url
from vdedup.engine.backup import backup as run_backup
from vdedup.engine.restore import Selection, TranslationOptions, restore as run_restore, restore_in_place
from vdedup.engine.where import parse_where
from vdedup.errors import UsageError
from vdedup.model import Metric
from vdedup.repository.snapshot import newest_at_or_before

from ..app import app
from ..context import AUDIT, open_repository
from ..output import RichReporter, err, info, out, print_json


def parse_time(text: str) -> dt.datetime:
    """'2026-11-20 03:00', '2026-11-20T03:00:00', '2026-11-20'; naive times are local time."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--at: not a date/time: {text!r} (e.g. \"2026-11-20 03:00\")") from None
    if when.tzinfo is None:
        when = when.astimezone()
    return when


def _read_ids(path: str) -> set:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln.rstrip("\r\n") for ln in f]
    except OSError as e:
        raise UsageError(f"--ids: cannot read {path}: {e.strerror}") from None
    ids: set = set()
    for ln in lines:
        if ln.strip():
            ids.add(ln)
            if ln.strip().lstrip("-").isdigit():
                ids.add(int(ln.strip()))
    if not ids:
        raise UsageError(f"--ids: {path} holds no ids")
    return ids


def _plan_lines(plan) -> None:
    for p in plan:
        where = p.target + (f"/{p.namespace}" if p.namespace else "")
        err.print(f"  {where}: write {p.write}, delete {p.delete}, unchanged {p.unchanged}", markup=False)


@app.command()
def restore(
    snapshot: Optional[str] = typer.Argument(None, help="Snapshot id, unique id prefix, or 'latest'."),
    target: Optional[str] = typer.Option(None, "--target", help="Target URL, e.g. chroma:///path/to/dir."),
    at: Optional[str] = typer.Option(None, "--at", help="Restore the newest snapshot at or before this time."),
    source: Optional[str] = typer.Option(None, "--source", help="With --at or 'latest': only snapshots of this source."),
    collection: Optional[List[str]] = typer.Option(None, "--collection", "-c",
                                                   help="Collection to restore (repeatable; default: all)."),
    namespace: Optional[List[str]] = typer.Option(None, "--namespace", "-n",
                                                  help="Namespace/partition/tenant to restore (repeatable)."),
    ids: Optional[str] = typer.Option(None, "--ids", help="File with the record ids to restore, one per line."),
    where: Optional[str] = typer.Option(None, "--where", help="Metadata filter, e.g. 'source = \"wiki\" and page > 3'."),
    as_name: Optional[str] = typer.Option(None, "--as", help="Restore the (single) collection under this name."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Write into an existing non-empty collection (records are replaced)."),
    in_place: bool = typer.Option(False, "--in-place",
                                  help="Make the source collections equal to the snapshot again (after a safety snapshot)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (in-place restore)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan (and translation); write nothing."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Metric for the target when the backed-up one "
                                         "is unknown or untranslatable: cosine, dot, euclidean, manhattan, ..."),
    vector: Optional[str] = typer.Option(None, "--vector", help="The one vector to keep for a single-vector target."),
    drop_sparse: bool = typer.Option(False, "--drop-sparse", help="Accept losing sparse vectors the target cannot hold."),
    allow_lossy: bool = typer.Option(False, "--allow-lossy", help="Accept the lossy steps a translation plan lists."),
    fold_namespaces: bool = typer.Option(False, "--fold-namespaces", help="Restore collections named "
                                         "C__N as namespace N of collection C (the reverse of a restore "
                                         "into a provider without namespaces)."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=5000, help="Records written per request."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, max=64,
                                          help="Threads and processes to use (default: the machine's cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Restore a snapshot: into new collections (default), in place, or selectively."""
    if (snapshot is None) == (at is None):
        raise UsageError("give a SNAPSHOT (id, prefix or 'latest') or --at TIME, not both")
    if in_place and (as_name or overwrite):
        raise UsageError("--in-place cannot be combined with --as or --overwrite")
    try:
        metric_value = Metric(metric.lower()) if metric else None
    except ValueError:
        raise UsageError(f"--metric: unknown metric {metric!r} "
                         f"({', '.join(m.value for m in Metric if m != Metric.UNKNOWN)})") from None
    translation = TranslationOptions(metric_value, vector, drop_sparse, allow_lossy, fold_namespaces)
    selection = Selection(collection or None, namespace or None, _read_ids(ids) if ids else None,
                          parse_where(where) if where else None)
    repo = open_repository()
    try:
        if at is not None:
            snaps = repo.list_snapshots()
            sources = {s.source for s in snaps}
            if source is None and len(sources) > 1 and not target:
                raise UsageError("--at: the repository holds several sources; choose one with --source")
            snap = newest_at_or_before(snaps, parse_time(at), source or (None if len(sources) <= 1 else target))
        else:
            snap = repo.find_snapshot(snapshot, source)
        if not target:
            if not in_place:
                raise UsageError("--target URL is required (or --in-place to restore into the source)")
            target = snap.source
        url = parse_url(target)
        connector = open_connector(url, credentials_for(url, os.environ))   # the CLI is the edge
        try:
            with RichReporter(enabled=not json_out) as reporter:
                if in_place:
                    def safety(names: list[str]):
                        info("taking a safety snapshot of the current data first")
                        res = run_backup(repo, connector, url.redacted(), names,
                                         ["safety", f"before-restore-{snap.short_id}"], reporter, workers=workers)
                        info(f"safety snapshot {res.snapshot.short_id} saved "
                             f"(restore it to undo: vdedup restore {res.snapshot.short_id} --in-place)")
                        return res.snapshot

                    def confirm(plan) -> bool:
                        err.print(f"in-place restore of snapshot {snap.short_id} into {url.redacted()}:", markup=False)
                        _plan_lines(plan)
                        if yes:
                            return True
                        if not sys.stdin.isatty():
                            raise UsageError("in-place restore replaces data: pass --yes to confirm "
                                             "(standard input is not a terminal)")
                        return typer.confirm("write these changes?", default=False, err=True)

                    result = restore_in_place(repo, snap, connector, url.redacted(), safety, confirm,
                                              selection, reporter, batch_size, dry_run, workers)
                else:
                    result = run_restore(repo, snap, connector, url.redacted(), None, as_name, overwrite,
                                         reporter, batch_size, selection, dry_run, translation, workers)
        finally:
            connector.close()
    finally:
        repo.close()
    AUDIT.note(snapshot=snap.id, records=sum(result.collections.values()),
               safety_snapshot=result.safety_snapshot, dry_run=result.dry_run or None)
    if json_out:
        print_json(result.to_dict())
        return
    for w in result.warnings:
        info(f"warning: {w}")
    if result.dry_run:
        out.print(f"{'dry run' if dry_run else 'cancelled'}: nothing was written. Plan for snapshot {snap.short_id}:")
        for p in result.plan:
            where_ = p.target + (f"/{p.namespace}" if p.namespace else "")
            out.print(f"  {where_}: write {p.write}, delete {p.delete}, unchanged {p.unchanged}")
        return
    for name, n in result.collections.items():
        out.print(f"restored {n} records into {name!r} from snapshot {snap.short_id}")
