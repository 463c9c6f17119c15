"""`restore` (CLI layer)."""
from __future__ import annotations

from typing import List, Optional

import typer

from vdedup.connectors import open_connector, parse_url
from vdedup.engine.restore import restore as run_restore

from ..app import app
from ..context import open_repository
from ..output import RichReporter, info, out, print_json


@app.command()
def restore(
    snapshot: str = typer.Argument(..., help="Snapshot id, unique id prefix, or 'latest'."),
    target: str = typer.Option(..., "--target", help="Target URL, e.g. chroma:///path/to/dir."),
    collection: Optional[List[str]] = typer.Option(None, "--collection", "-c",
                                                   help="Collection to restore (repeatable; default: all)."),
    as_name: Optional[str] = typer.Option(None, "--as", help="Restore the (single) collection under this name."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Write into an existing non-empty collection (records are upserted)."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=5000, help="Records written per request."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Restore a snapshot into a database, by default as new collections."""
    url = parse_url(target)
    repo = open_repository()
    try:
        snap = repo.find_snapshot(snapshot)
        connector = open_connector(url)
        try:
            with RichReporter(enabled=not json_out) as reporter:
                result = run_restore(repo, snap, connector, url.redacted(), collection or None, as_name,
                                     overwrite, reporter, batch_size)
        finally:
            connector.close()
    finally:
        repo.close()
    if json_out:
        print_json(result.to_dict())
        return
    for w in result.warnings:
        info(f"warning: {w}")
    for name, n in result.collections.items():
        out.print(f"restored {n} records into {name!r} from snapshot {snap.short_id}")
