"""`audit`: list the audit log and verify its hash chain (CLI layer)."""
from __future__ import annotations

import typer
from rich.table import Table

from vdedup.assets.audit import AuditLog
from vdedup.engine.rollback import audit_problems
from vdedup.errors import IntegrityError
from vdedup.repository.state_memory import StateMemory

from ..app import app
from ..context import AUDIT, open_repository
from ..output import err, out, print_json


def _counts(c: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in (c or {}).items())


@app.command()
def audit(
    verify: bool = typer.Option(False, "--verify", help="Verify the hash chain; exit 17 if it is broken."),
    json_out: bool = typer.Option(False, "--json", help="Print the entries (and the verification) as JSON."),
) -> None:
    """Show the audit log: who did what to this repository, and when."""
    AUDIT.skip = True          # reading the log is not itself logged
    repo = open_repository()
    problems: list[str] = []
    try:
        log = AuditLog(repo)
        result = log.verify() if verify else None
        entries = result.entries if result is not None and result.ok else log.read()
        if result is not None and result.ok:
            # a valid chain may still be cut short: compare with what this machine saw and
            # with the audit heads the snapshots recorded
            names = set(repo.snapshot_names())
            problems = audit_problems(repo, entries, repo.list_snapshots(), names, StateMemory.load(repo.id))
    finally:
        repo.close()
    if json_out:
        d = {"message_type": "audit", "entries": entries}
        if result is not None:
            d["verify"] = {**result.to_dict(), "ok": result.ok and not problems, "problems": problems}
        print_json(d)
    else:
        table = Table(box=None, pad_edge=False)
        for col in ("#", "Time (UTC)", "User", "Host", "Operation", "Asset", "Snapshot", "Counts", "Outcome"):
            table.add_column(col, overflow="fold")
        for e in entries:
            outcome = e.get("outcome", "")
            if e.get("exit_code"):
                outcome += f" {e['exit_code']}" + (f" {e['error']}" if e.get("error") else "")
            table.add_row(str(e.get("seq")), str(e.get("time", ""))[:19].replace("T", " "), e.get("user") or "",
                          e.get("host") or "", e.get("operation") or "", e.get("asset") or "",
                          (e.get("snapshot") or "")[:8], _counts(e.get("counts")), outcome)
        out.print(table)
        if result is not None and result.ok and not problems:
            out.print(f"audit chain verified: {len(result.entries)} entries, head {result.head[:16]}")
    for p in problems:
        err.print(f"error: {p}", markup=False)
    if problems:
        raise IntegrityError(f"audit log: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                             hint="entries or snapshots were removed outside vdedup; see docs/assets.md")
    if result is not None and not result.ok:
        raise IntegrityError(f"audit log: {result.problem} (position {result.position})",
                             hint="the audit log was altered: an entry was removed, changed or reordered")
