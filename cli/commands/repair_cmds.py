"""`repair index` and `repair snapshots` (CLI layer)."""
from __future__ import annotations

from typing import Optional

import typer

from vdedup.engine.repair_index import RepairIndexResult, repair_index as run_repair_index
from vdedup.engine.repair_snapshots import RepairSnapshotsResult, repair_snapshots as run_repair_snapshots
from vdedup.errors import PartialFailure, UsageError

from ..app import app
from ..context import AUDIT, open_repository
from ..output import RichReporter, err, info, out, print_json

repair_app = typer.Typer(help="Rebuild the index from the packs; keep what is intact of damaged snapshots.",
                         no_args_is_help=True)
app.add_typer(repair_app, name="repair")


@repair_app.command("index")
def repair_index(
    read_all_packs: bool = typer.Option(False, "--read-all-packs",
                                        help="Read every pack again, not only those no readable index file describes."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only report what would be done."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, max=64,
                                          help="Packs read at once (default: the machine's cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Rebuild the index from the packs: replace damaged index files and those naming missing packs."""
    repo = open_repository()
    try:
        with RichReporter(enabled=not json_out) as reporter:
            r = run_repair_index(repo, read_all_packs, dry_run, reporter, workers)
    finally:
        repo.close()
    AUDIT.note(index_files_written=r.index_files_written, index_files_removed=r.index_files_removed,
               packs_read=r.packs_read, dry_run=dry_run or None)
    if json_out:
        print_json(r.to_dict())
    else:
        _print_index(r)
    if r.unreadable:
        raise PartialFailure(f"{len(r.unreadable)} pack(s) or block(s) could not be read; their data stays "
                             f"unindexed", hint="run 'vdedup check', then 'vdedup repair snapshots'")


def _print_index(r: RepairIndexResult) -> None:
    would = "would " if r.dry_run else ""
    for name in r.damaged_files:
        err.print(f"index {name[:16]} is damaged", markup=False)
    for name in r.stale_files:
        err.print(f"index {name[:16]} names a missing or truncated pack", markup=False)
    for name in r.missing_packs:
        err.print(f"pack {name[:16]} is missing: its data is lost", markup=False)
    for line in r.unreadable:
        err.print(f"cannot read {line}", markup=False)
    if not r.changed:
        out.print(f"the index describes all {r.packs} packs; nothing to repair")
        return
    out.print(f"read {r.packs_read} of {r.packs} packs; {would}index {r.blobs_indexed} blobs of "
              f"{r.packs_indexed} packs in {r.index_files_written} new index file(s), "
              f"{would}remove {r.index_files_removed} index file(s)")


@repair_app.command("snapshots")
def repair_snapshots(
    forget: bool = typer.Option(False, "--forget", help="Remove each original once its repaired copy is saved."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only report what would be done."),
    record_ids: bool = typer.Option(False, "--record-ids",
                                    help="With --json: list the ids of the dropped records (they are user data)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Save new snapshots without the records whose data is lost; move unreadable snapshots to damaged/."""
    if record_ids and not json_out:
        raise UsageError("--record-ids needs --json (record ids are user data: never printed as text)")
    repo = open_repository()
    try:
        with RichReporter(enabled=not json_out) as reporter:
            r = run_repair_snapshots(repo, forget, dry_run, record_ids, reporter)
            if not dry_run:
                AUDIT.removed = r.removed     # in the audit entry: not a rollback
    finally:
        repo.close()
    AUDIT.note(snapshots_repaired=sum(1 for x in r.repairs if x.new_snapshot),
               records_dropped=sum(x.dropped for x in r.repairs), dry_run=dry_run or None)
    if json_out:
        print_json(r.to_dict())
        return
    _print_snapshots(r)


def _print_snapshots(r: RepairSnapshotsResult) -> None:
    would = "would " if r.dry_run else ""
    for x in r.repairs:
        if x.action == "moved aside":
            out.print(f"snapshot {x.snapshot[:8]} cannot be read ({x.reason}); {would}move it to "
                      f"{x.moved_to or 'damaged/'}")
            continue
        new = f" -> {x.new_snapshot[:8]}" if x.new_snapshot else ""
        verb = {"emptied": f"{would}keep nothing (no intact data)",
                "repaired before": "repaired before"}.get(x.action, f"{would}save a copy without {x.dropped} record(s)")
        out.print(f"snapshot {x.snapshot[:8]} ({x.time[:19].replace('T', ' ')}): {verb}{new}"
                  + ("; original removed" if x.forgotten else ""))
        for n in x.namespaces:
            where = f"collection {n.collection!r}" + (f" namespace {n.namespace!r}" if n.namespace else "")
            why = " (manifest lost)" if n.whole else ""
            out.print(f"  {where}: {n.dropped} of {n.records} records dropped{why}", markup=False)
    if not r.repairs:
        out.print(f"all {r.snapshots} snapshots are intact; nothing to repair")
    elif not r.dry_run and any(x.new_snapshot and not x.forgotten for x in r.repairs):
        info("the originals are kept; 'vdedup repair snapshots --forget' (or 'vdedup forget') removes them")
