"""`diff` (CLI layer)."""
from __future__ import annotations

import typer

from vdedup.engine.diff import KINDS, diff as run_diff

from ..app import app
from ..context import open_repository
from ..output import RichReporter, out, print_json


@app.command()
def diff(
    snapshot_a: str = typer.Argument(..., help="The older snapshot (id, prefix or 'latest')."),
    snapshot_b: str = typer.Argument(..., help="The newer snapshot (id, prefix or 'latest')."),
    ids: bool = typer.Option(False, "--ids", help="Also list the ids of the records added, removed and changed "
                                                  "(they are record data: only printed when asked)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Records added, removed and changed (vector, metadata, document, uri) per collection/namespace."""
    repo = open_repository()
    try:
        a = repo.find_snapshot(snapshot_a)
        b = repo.find_snapshot(snapshot_b)
        with RichReporter(enabled=not json_out) as reporter:
            result = run_diff(repo, a, b, with_ids=ids, reporter=reporter)
    finally:
        repo.close()
    if json_out:
        print_json(result.to_dict())
        return
    out.print(f"comparing snapshot {a.short_id} ({a.time[:19].replace('T', ' ')}) "
              f"with {b.short_id} ({b.time[:19].replace('T', ' ')})")
    for n in result.namespaces:
        where = repr(n.collection) + (f" namespace {n.namespace!r}" if n.namespace else "")
        kinds = ", ".join(f"{k} {n.changed_by[k]}" for k in KINDS if n.changed_by[k])
        out.print(f"  {where} ({n.status}): +{n.added} added, -{n.removed} removed, "
                  f"~{n.changed} changed" + (f" ({kinds})" if kinds else "") + f", {n.unchanged} unchanged"
                  + (", schema changed" if n.schema_changed else ""))
        if n.ids is not None:
            for rid in n.ids["added"]:
                out.print(f"    + {rid}", markup=False)
            for rid in n.ids["removed"]:
                out.print(f"    - {rid}", markup=False)
            for c in n.ids["changed"]:
                out.print(f"    ~ {c['id']} ({', '.join(c['kinds'])})", markup=False)
    t = result.totals()
    out.print(f"total: +{t['added']} -{t['removed']} ~{t['changed']} ={t['unchanged']}")
