"""`verify`: compare a live collection with a snapshot (CLI layer)."""
from __future__ import annotations

import os
from typing import List, Optional

import typer

from vdedup.connectors import credentials_for, open_connector, parse_url
from vdedup.engine.restore import TranslationOptions, target_name
from vdedup.engine.verify import VerifyOptions, verify as run_verify
from vdedup.errors import UsageError
from vdedup.model import Metric

from ..app import app
from ..context import AUDIT, open_repository
from ..output import RichReporter, print_json
from .restore_cmd import verify_lines, verify_outcome


@app.command()
def verify(
    snapshot: str = typer.Argument(..., help="Snapshot id, unique id prefix, or 'latest'."),
    target: Optional[str] = typer.Option(None, "--target", help="The live database to compare "
                                         "(default: the snapshot's source)."),
    source: Optional[str] = typer.Option(None, "--source", help="With 'latest': only snapshots of this source."),
    collection: Optional[List[str]] = typer.Option(None, "--collection", "-c",
                                                   help="Collection of the snapshot to compare (repeatable; default: all)."),
    namespace: Optional[List[str]] = typer.Option(None, "--namespace", "-n", help="Only these namespaces (repeatable)."),
    as_name: Optional[str] = typer.Option(None, "--as", help="The name the (single) collection has in the target."),
    sample: int = typer.Option(1000, "--sample", min=0, help="Records compared bit for bit (spread over the namespaces)."),
    queries: int = typer.Option(100, "--queries", min=0, help="Nearest-neighbour queries per namespace and vector."),
    min_recall: float = typer.Option(0.95, "--min-recall", min=0.0, max=1.0,
                                     help="Lowest acceptable recall@10 (approximate indexes rarely reach 1.0 "
                                     "on large collections)."),
    metric: Optional[str] = typer.Option(None, "--metric", help="As given to the restore, if it was."),
    vector: Optional[str] = typer.Option(None, "--vector", help="As given to the restore, if it was."),
    drop_sparse: bool = typer.Option(False, "--drop-sparse", help="As given to the restore, if it was."),
    fold_namespaces: bool = typer.Option(False, "--fold-namespaces", help="As given to the restore, if it was."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the sample (default: a new one each run)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Compare a live collection with a snapshot (exit 17 when they differ).

    Counts per namespace, sampled records bit for bit (or within the plan's inexact bounds),
    and recall@10 of the target's nearest-neighbour answers against exact answers computed
    from the snapshot. Exit 0 when everything matches, 17 when it does not."""
    try:
        metric_value = Metric(metric.lower()) if metric else None
    except ValueError:
        raise UsageError(f"--metric: unknown metric {metric!r}") from None
    translation = TranslationOptions(metric_value, vector, drop_sparse, False, fold_namespaces)
    repo = open_repository()
    try:
        snap = repo.find_snapshot(snapshot, source)
        AUDIT.note(snapshot=snap.id)
        url = parse_url(target or snap.source)
        connector = open_connector(url, credentials_for(url, os.environ), read_only=True)
        try:
            name = target_name(snap, collection or None, as_name, connector.url_collection, fold_namespaces)
            with RichReporter(enabled=not json_out) as reporter:
                report = run_verify(repo, snap, connector, url.redacted(), collection or None, name,
                                    namespace or None, translation,
                                    VerifyOptions(sample, queries, min_recall, seed), reporter)
        finally:
            connector.close()
    finally:
        repo.close()
    AUDIT.note(problems=len(report.problems))
    if json_out:
        print_json(report.to_dict())
    else:
        verify_lines(report)
    verify_outcome(report)
