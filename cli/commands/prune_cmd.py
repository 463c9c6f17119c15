"""`prune` (CLI layer)."""
from __future__ import annotations

from typing import Optional

import typer

from vdedup.engine.forget import parse_duration
from vdedup.engine.prune import DEFAULT_MAX_UNUSED, PruneResult, prune as run_prune
from vdedup.errors import PartialFailure

from ..app import app
from ..context import open_repository
from ..output import RichReporter, err, human_bytes, info, out, print_json


def print_prune(r: PruneResult) -> None:
    verb = "would" if r.dry_run else "did"
    out.print(f"used data: {human_bytes(r.used_bytes)} in {r.blobs_used} blobs; "
              f"unused: {human_bytes(r.unused_bytes)} in {r.packs} indexed packs")
    out.print(f"{'would delete' if r.dry_run else 'deleted'} {r.packs_deleted} unused pack(s), "
              f"{'would repack' if r.dry_run else 'repacked'} {r.packs_repacked} pack(s)"
              + (f" ({r.blobs_repacked} blobs into {r.packs_written} new packs)" if not r.dry_run and r.packs_repacked else "")
              + f", {'would delete' if r.dry_run else 'deleted'} {r.unindexed_deleted} unindexed pack(s)")
    if r.unindexed_kept:
        info(f"kept {r.unindexed_kept} unindexed pack(s) younger than the grace period (--keep-unindexed-for)")
    if r.temporaries_removed:
        info(f"removed {r.temporaries_removed} temporary file(s) ({human_bytes(r.temporary_bytes_removed)}) "
             "left by saves that never finished")
    out.print(f"{'would free' if r.dry_run else 'freed'} {human_bytes(r.bytes_freed)}; "
              f"unused data left: {human_bytes(r.unused_after)}")
    for x in r.retained:
        err.print(f"  retained {x['object'][:22]} until {x['until']} (Object Lock)", markup=False)
    _ = verb


def _seconds(text: str) -> float:
    if text.strip() in ("0", "0s"):
        return 0.0
    t = text.strip().lower()
    if t.endswith("s") and t[:-1].isdigit():
        return float(t[:-1])
    if t.endswith("min") and t[:-3].isdigit():
        return float(t[:-3]) * 60
    d = parse_duration(t)
    return (d.years * 365 + d.months * 30 + d.days) * 86400.0 + d.hours * 3600.0


@app.command()
def prune(
    max_unused: str = typer.Option(DEFAULT_MAX_UNUSED, "--max-unused",
                                   help="Unused data to tolerate in partly used packs before repacking them: "
                                        "a share (5%), a size (200M) or 'unlimited'."),
    keep_unindexed_for: str = typer.Option("1h", "--keep-unindexed-for",
                                           help="Grace period for packs no index names (left by an interrupted "
                                                "backup): 1h, 30min, 90s, 2d or 0."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only report what would be removed."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, max=64,
                                          help="Threads and processes to use (default: the machine's cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove data no snapshot references (run after forget); repack partly used packs."""
    grace = _seconds(keep_unindexed_for)
    repo = open_repository()
    try:
        with RichReporter(enabled=not json_out) as reporter:
            result = run_prune(repo, max_unused=max_unused, keep_unindexed_for=grace, dry_run=dry_run,
                               reporter=reporter, workers=workers)
    finally:
        repo.close()
    if json_out:
        print_json(result.to_dict())
    else:
        print_prune(result)
    retained_failure(result)


def retained_failure(r: PruneResult) -> None:
    """Exit 3 when Object Lock kept data prune would have removed: a later prune removes it."""
    if r.retained:
        last = max(x["until"] for x in r.retained)
        raise PartialFailure(f"{len(r.retained)} object(s) prune would remove are under retention (Object "
                             f"Lock) until {last} at the latest; they stay until then",
                             hint="run prune again after the retention ends")
