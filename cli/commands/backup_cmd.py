"""`backup` (CLI layer)."""
from __future__ import annotations

from typing import List, Optional

import typer

from vdedup.connectors import open_connector, parse_url
from vdedup.engine.backup import backup as run_backup

from ..app import app
from ..context import open_repository
from ..output import RichReporter, human_bytes, info, out, print_json


@app.command()
def backup(
    source: str = typer.Argument(..., help="Source URL, e.g. chroma:///path/to/dir or chroma://host:8000."),
    collection: Optional[List[str]] = typer.Option(None, "--collection", "-c",
                                                   help="Collection to back up (repeatable; default: all)."),
    tag: Optional[List[str]] = typer.Option(None, "--tag", "-t", help="Tag for the snapshot (repeatable)."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=5000, help="Records read per request."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Back up a vector database into a new snapshot (only what changed is stored)."""
    url = parse_url(source)
    repo = open_repository()
    try:
        connector = open_connector(url)
        try:
            with RichReporter(enabled=not json_out) as reporter:
                result = run_backup(repo, connector, url.redacted(), collection or None, tag or [],
                                    reporter, batch_size)
        finally:
            connector.close()
    finally:
        repo.close()
    if json_out:
        print_json(result.to_dict())
        return
    s = result.stats
    info(f"records: {s['records']} ({s['added']} new, {s['changed']} changed, "
         f"{s['deleted']} deleted, {s['unchanged']} unchanged)")
    info(f"added to the repository: {human_bytes(result.bytes_added)} in {result.seconds:.1f} s")
    out.print(f"snapshot {result.snapshot.short_id} saved")
