"""`snapshots` and `ls` (CLI layer)."""
from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from ..app import app
from ..context import open_repository
from ..output import human_bytes, out, print_json


def _snapshot_json(s) -> dict:
    return {"id": s.id, "short_id": s.short_id, "time": s.time, "hostname": s.hostname,
            "username": s.username, "source": s.source, "provider": s.provider, "tags": s.tags,
            "parent": s.parent, "records": s.record_count(),
            "collections": {c["name"]: c["count"] for c in s.collections},
            "logical_bytes": s.summary.get("logical_bytes")}


@app.command()
def snapshots(
    source: Optional[str] = typer.Option(None, "--source", help="Only snapshots of this source URL."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array, oldest first."),
) -> None:
    """List snapshots, oldest first."""
    repo = open_repository()
    try:
        snaps = [s for s in repo.list_snapshots() if source is None or s.source == source]
    finally:
        repo.close()
    if json_out:
        print_json([_snapshot_json(s) for s in snaps])
        return
    table = Table(box=None, pad_edge=False)
    for col in ("ID", "Time", "Host", "Source", "Tags", "Collections", "Records"):
        table.add_column(col, overflow="fold")
    for s in snaps:
        table.add_row(s.short_id, s.time[:19].replace("T", " "), s.hostname, s.source, ",".join(s.tags),
                      ",".join(c["name"] for c in s.collections), str(s.record_count()))
    out.print(table)
    out.print(f"{len(snaps)} snapshot(s)")


@app.command()
def ls(
    snapshot: str = typer.Argument(..., help="Snapshot id, unique id prefix, or 'latest'."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show a snapshot's collections, namespaces, record counts and schema."""
    repo = open_repository()
    try:
        s = repo.find_snapshot(snapshot)
    finally:
        repo.close()
    if json_out:
        d = _snapshot_json(s)
        d["collections"] = [{"name": c["name"], "count": c["count"], "schema": c["schema"],
                             "namespaces": [{"name": n["name"], "count": n["count"],
                                             "logical_bytes": n["logical_bytes"],
                                             "ordered": n.get("ordered", True)} for n in c["namespaces"]]}
                            for c in s.collections]
        d["summary"] = s.summary
        print_json(d)
        return
    out.print(f"snapshot {s.short_id} of {s.source} at {s.time[:19].replace('T', ' ')} "
              f"({s.record_count()} records, {human_bytes(s.summary.get('logical_bytes'))} logical)")
    for c in s.collections:
        sc = c["schema"]
        out.print(f"  collection {c['name']!r}: {c['count']} records, id type {sc['id_type']}")
        for v in sc["vectors"]:
            out.print(f"    vector {v['name'] or '(default)'}: dim {v['dim']}, {v['dtype']}, metric {v['metric']}")
        for v in sc["sparse"]:
            out.print(f"    sparse vector {v['name']}: metric {v['metric']}")
        if sc["metadata_fields"]:
            out.print("    metadata: " + ", ".join(f"{m['name']}:{m['type']}" for m in sc["metadata_fields"]))
        for n in c["namespaces"]:
            if n["name"] or len(c["namespaces"]) > 1:
                out.print(f"    namespace {n['name']!r}: {n['count']} records")
