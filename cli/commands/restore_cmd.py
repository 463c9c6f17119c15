"""`restore` (CLI layer)."""
from __future__ import annotations

import datetime as dt
import os
import sys
from typing import List, Optional

import typer

from vdedup.connectors import credentials_for, open_connector, parse_url
from vdedup.engine.restore import (Selection, TranslationOptions, restore as run_restore, restore_in_place,
                                   target_name)
from vdedup.engine.throttle import throttled
from vdedup.engine.where import parse_where
from vdedup.errors import UsageError, VerificationFailed
from vdedup.model import Metric
from vdedup.ratelimit import parse_rate
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


def inexact_lines(result) -> None:
    """The inexact steps (the target's own rounding) and what they were seen to do."""
    seen = set()
    for step in result.inexact:
        line = f"inexact: {step['collection']}: {step['detail']} (bound {step['bound']:g})"
        if line not in seen:
            seen.add(line)
            err.print(line, markup=False)
    for where, dev in result.observed.items():
        if not dev["records"]:
            err.print(f"not measured in {where}: none of the first records read back was written by this "
                      "restore (vdedup verify compares a sample)", markup=False)
            continue
        parts = []
        if dev["max_direction_deviation"] or dev["max_length_change"]:
            parts.append(f"vector directions moved by up to {dev['max_direction_deviation']:.3g}, "
                         f"lengths changed by up to {100 * dev['max_length_change']:.3g}%")
        if dev["max_float_deviation"]:
            parts.append(f"float metadata moved by up to {dev['max_float_deviation']:.3g} (relative)")
        err.print(f"observed in {dev['records']} records read back from {where}: "
                  f"{'; '.join(parts) or 'no value changed'}", markup=False)


def verify_lines(report) -> None:
    """A verify report in words (data: stdout)."""
    for n in report.namespaces:
        where = n.target + (f"/{n.target_namespace}" if n.target_namespace else "")
        found = "missing" if n.found is None else str(n.found)
        recall = "-" if n.recall is None else f"{n.recall:.4f} ({n.queries} queries)"
        out.print(f"  {where}: records {found} of {n.expected}; sampled {n.sample.records + n.missing}, "
                  f"differing {n.sample.differing}, missing {n.missing}; recall@10 {recall}", markup=False)
        for note in n.notes:
            out.print(f"    note: {note}", markup=False)
    for p in report.problems:
        out.print(f"  problem: {p}", markup=False)
    recall = report.recall
    out.print(f"verify {'ok' if report.ok else 'FAILED'}: snapshot {report.snapshot.short_id} against "
              f"{report.target}" + ("" if recall is None else f", recall@10 {recall:.4f}"), markup=False)


def verify_outcome(report) -> None:
    if not report.ok:
        raise VerificationFailed(f"the target differs from snapshot {report.snapshot.short_id}: "
                                 f"{len(report.problems)} problem(s), first: {report.problems[0]}")


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
    exact: bool = typer.Option(False, "--exact", help="Refuse the inexact steps too (the target's own float "
                               "rounding, e.g. cosine vectors normalised): exit 19."),
    verify: bool = typer.Option(False, "--verify", help="After the restore, compare the target with the "
                                "snapshot (as vdedup verify does); exit 17 when they differ."),
    fold_namespaces: bool = typer.Option(False, "--fold-namespaces", help="Restore collections named "
                                         "C__N as namespace N of collection C (the reverse of a restore "
                                         "into a provider without namespaces)."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=5000, help="Records written per request."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, max=64,
                                          help="Threads and processes to use (default: the machine's cores)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]",
                                      help="Write each namespace by tasks on a Ray cluster (ADDRESS as ray.init "
                                           "takes it; none: a local Ray instance). Needs vdedup[ray]."),
    limit_rate: Optional[str] = typer.Option(None, "--limit-rate",
                                             help="Write to the target no faster than this: records (500r/s) "
                                                  "or bytes (20MB/s) per second."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Restore a snapshot: into new collections (default), in place, or selectively."""
    if snapshot is None and at is None:
        raise UsageError("which snapshot? give a SNAPSHOT (id, prefix or 'latest') or --at TIME")
    if snapshot is not None and at is not None:
        raise UsageError("give a SNAPSHOT or --at TIME, not both")
    if in_place and ray:
        raise UsageError("--ray writes restores into new collections: not with --in-place")
    if in_place and (as_name or overwrite):
        raise UsageError("--in-place cannot be combined with --as or --overwrite")
    try:
        metric_value = Metric(metric.lower()) if metric else None
    except ValueError:
        raise UsageError(f"--metric: unknown metric {metric!r} "
                         f"({', '.join(m.value for m in Metric if m != Metric.UNKNOWN)})") from None
    rate = parse_rate(limit_rate) if limit_rate else None
    if rate is not None and ray:
        raise UsageError("--limit-rate writes the target from this process: not with --ray")
    translation = TranslationOptions(metric_value, vector, drop_sparse, allow_lossy, fold_namespaces, exact)
    selection = Selection(collection or None, namespace or None, _read_ids(ids) if ids else None,
                          parse_where(where) if where else None)
    if verify and (ids or where):
        raise UsageError("--verify compares whole namespaces: not with --ids or --where")
    if verify and dry_run:
        raise UsageError("--verify checks what a restore wrote: not with --dry-run (use vdedup verify)")
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
        # a target that does not exist yet is created by the first write, not by a dry run nor
        # by a restore refused for its arguments or its plan
        credentials = credentials_for(url, os.environ)                     # the CLI is the edge
        connector = throttled(open_connector(url, credentials, read_only=dry_run, create_on_write=True), rate)
        report = None
        try:
            named = connector.url_collection
            if in_place and named:
                if snap.collection(named) is None:
                    raise UsageError(f"an in-place restore writes into the snapshot's own collections; "
                                     f"the target URL names {named!r}, which snapshot {snap.short_id} does "
                                     "not hold (restore into it without --in-place)")
                selection.collections = selection.collections or [named]
            elif not in_place:
                as_name = target_name(snap, collection or None, as_name, named, fold_namespaces)
            with RichReporter(enabled=not json_out) as reporter:
                if in_place:
                    def safety(names: list[str]):
                        from vdedup.engine.backup import backup as run_backup
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
                    scatter = None
                    if not dry_run and rate is None and (ray or (workers or 0) > 1):
                        from .backup_cmd import make_scatter     # (its imports: only when used)
                        scatter = make_scatter(ray, workers, target, credentials)
                    try:
                        result = run_restore(repo, snap, connector, url.redacted(), None, as_name, overwrite,
                                             reporter, batch_size, selection, dry_run, translation, workers,
                                             scatter)
                    finally:
                        if scatter is not None:
                            scatter.close()
                if verify and not result.dry_run:
                    from vdedup.engine.verify import VerifyOptions, verify as run_verify
                    report = run_verify(repo, snap, connector, url.redacted(), selection.collections,
                                        None if in_place else as_name, namespace or None, translation,
                                        VerifyOptions(), reporter)
        finally:
            connector.close()
    finally:
        repo.close()
    AUDIT.note(snapshot=snap.id, records=sum(result.collections.values()),
               safety_snapshot=result.safety_snapshot, dry_run=result.dry_run or None)
    if json_out:
        print_json({**result.to_dict(), **({"verify": report.to_dict()} if report else {})})
        if report:
            verify_outcome(report)
        return
    for w in result.warnings:
        info(f"warning: {w}")
    inexact_lines(result)
    if result.dry_run:
        out.print(f"{'dry run' if dry_run else 'cancelled'}: nothing was written. Plan for snapshot {snap.short_id}:")
        for p in result.plan:
            where_ = p.target + (f"/{p.namespace}" if p.namespace else "")
            out.print(f"  {where_}: write {p.write}, delete {p.delete}, unchanged {p.unchanged}")
        return
    for name, n in result.collections.items():
        out.print(f"restored {n} records into {name!r} from snapshot {snap.short_id}")
    if report:
        verify_lines(report)
        verify_outcome(report)
