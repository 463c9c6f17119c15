"""`forget` (CLI layer)."""
from __future__ import annotations

from typing import List, Optional

import typer

from vdedup.engine.forget import Policy, forget as run_forget, parse_duration, parse_group_by
from vdedup.engine.prune import DEFAULT_MAX_UNUSED, prune as run_prune
from vdedup.errors import PartialFailure

from ..app import app
from ..context import AUDIT, open_repository
from ..output import RichReporter, err, info, out, print_json
from .prune_cmd import print_prune, retained_failure


@app.command()
def forget(
    keep_last: int = typer.Option(0, "--keep-last", min=0, help="Keep the N newest snapshots."),
    keep_hourly: int = typer.Option(0, "--keep-hourly", min=0, help="Keep the newest snapshot of each of the last N hours."),
    keep_daily: int = typer.Option(0, "--keep-daily", min=0, help="... of each of the last N days (UTC)."),
    keep_weekly: int = typer.Option(0, "--keep-weekly", min=0, help="... of each of the last N ISO weeks."),
    keep_monthly: int = typer.Option(0, "--keep-monthly", min=0, help="... of each of the last N months."),
    keep_yearly: int = typer.Option(0, "--keep-yearly", min=0, help="... of each of the last N years."),
    keep_within: Optional[str] = typer.Option(None, "--keep-within",
                                              help="Keep snapshots younger than this, relative to the newest (e.g. 2d3h, 1y6m)."),
    keep_tag: Optional[List[str]] = typer.Option(None, "--keep-tag", help="Keep snapshots with this tag (repeatable; a,b = both)."),
    group_by: str = typer.Option("source", "--group-by", help="Group snapshots by source, host, tags, or a comma list."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only show what would be removed and kept."),
    prune: bool = typer.Option(False, "--prune", help="Run prune afterwards to free the space."),
    max_unused: str = typer.Option(DEFAULT_MAX_UNUSED, "--max-unused", help="With --prune: see 'vdedup prune'."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove snapshots a retention policy does not keep (the data stays until prune)."""
    policy = Policy(keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly,
                    parse_duration(keep_within) if keep_within else None, tuple(keep_tag or ()))
    groups = parse_group_by(group_by)
    repo = open_repository()
    try:
        with RichReporter(enabled=not json_out) as reporter:
            result = run_forget(repo, policy, groups, dry_run, reporter)
            AUDIT.removed = list(result.removed)       # in the audit entry: not a rollback
            pruned = None
            if prune:
                pruned = run_prune(repo, max_unused=max_unused, dry_run=dry_run, reporter=reporter)
    finally:
        repo.close()
    if json_out:
        d = result.to_dict()
        if pruned is not None:
            d["prune"] = pruned.to_dict()
        print_json(d)
        _retained(result, pruned)
        return
    for g in result.groups:
        label = ", ".join(f"{k} {v if not isinstance(v, list) else ','.join(v) or '(none)'}" for k, v in g.key.items())
        out.print(f"group: {label or 'all snapshots'}")
        for s, reasons in g.keep:
            out.print(f"  keep   {s.short_id}  {s.time[:19].replace('T', ' ')}  ({', '.join(reasons)})")
        for s in g.remove:
            out.print(f"  {'would remove' if dry_run else 'remove'} {s.short_id}  {s.time[:19].replace('T', ' ')}")
    n = len(result.to_remove)
    out.print(f"{'would remove' if dry_run else 'removed'} {n} snapshot(s), "
              f"kept {sum(len(g.keep) for g in result.groups)}")
    if pruned is not None:
        print_prune(pruned)
    elif n and not dry_run:
        info("run 'vdedup prune' to free the space these snapshots used")
    for r in result.retained:
        err.print(f"  retained {r['snapshot'][:8]} until {r['until']} (Object Lock)", markup=False)
    _retained(result, pruned)


def _retained(result, pruned) -> None:
    """Exit 3 when Object Lock kept snapshots the policy removes: they go on a later run."""
    if pruned is not None and not result.retained:
        retained_failure(pruned)
    if result.retained:
        last = max(r["until"] for r in result.retained)
        raise PartialFailure(f"{len(result.retained)} snapshot(s) the policy removes are under retention "
                             f"(Object Lock) until {last} at the latest; they stay until then",
                             hint="run forget again after the retention ends")
