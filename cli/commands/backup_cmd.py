"""`backup`: a source URL, one connected asset (`--asset`), or every one (`--all`) (CLI layer)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, List, Optional

import typer

from vdedup.connectors import credentials_for, open_connector, parse_url
from vdedup.engine.backup import PARTITION_SIZE, backup as run_backup
from vdedup.engine.throttle import throttled
from vdedup.errors import PartialFailure, UsageError, VdedupError
from vdedup.ratelimit import Rate, parse_rate

from ..app import app
from ..context import AUDIT, open_repository
from ..output import RichReporter, err, human_bytes, info, out, print_json

if TYPE_CHECKING:                     # imported where used: a plain backup does not load them
    from vdedup.assets.store import Asset, AssetStore
    from vdedup.engine.scaleout import Scatter


def run_asset_backups(choose: Callable[[AssetStore], list[Asset]], batch_size: int, json_out: bool,
                      rate: Rate | None = None) -> None:
    """Back up the chosen assets one after another; a failing one does not stop the others,
    and the run ends with PartialFailure (exit 3) naming the failed ones."""
    from vdedup.assets.store import AssetStore
    from vdedup.engine.nightly import backup_assets
    repo = open_repository()
    try:
        store = AssetStore(repo)
        assets = choose(store)
        if not assets:
            raise UsageError("no connected assets to back up (add one with 'vdedup connect')")
        with RichReporter(enabled=not json_out) as reporter:
            outcomes = backup_assets(repo, store, assets, reporter, batch_size, rate)
    finally:
        repo.close()
    for o in outcomes:
        AUDIT.items.append({"asset": o.asset, "snapshot": o.snapshot_id,
                            "counts": {"records": o.records, "bytes_added": o.bytes_added,
                                       **({"forgotten": len(o.forgotten)} if o.forgotten else {})},
                            "outcome": "ok" if o.ok else "error", "exit_code": o.exit_code,
                            "error": o.error_class,
                            **({"removed": list(o.forgotten)} if o.forgotten is not None else {})})
    failed = [o for o in outcomes if not o.ok]
    if json_out:
        print_json({"message_type": "summary", "assets": [o.to_dict() for o in outcomes],
                    "ok": len(outcomes) - len(failed), "failed": [o.asset for o in failed]})
    else:
        for o in outcomes:
            if o.ok:
                extra = f", forgot {len(o.forgotten)} old snapshot(s)" if o.forgotten else ""
                dups = o.to_dict()["duplicates"]
                extra += f", {dups} repeated id(s): the last record of each kept" if dups else ""
                out.print(f"{o.asset}: snapshot {o.snapshot_id[:8]} saved ({o.records} records, "
                          f"{human_bytes(o.bytes_added)} added{extra})", markup=False)
            elif len(outcomes) > 1:
                err.print(f"{o.asset}: failed (exit {o.exit_code}): {o.error}", markup=False)
    if failed:
        if len(failed) == len(outcomes) and len(outcomes) == 1:
            raise _single_failure(failed[0])
        raise PartialFailure(f"{len(failed)} of {len(outcomes)} asset backups failed: "
                             f"{', '.join(o.asset for o in failed)}")


def make_scatter(ray: Optional[str], workers: Optional[int], url: str, credentials) -> Optional[Scatter]:
    """--ray: tasks on Ray; --workers N > 1: tasks in N local processes; else None (one
    process, the same partition plan)."""
    if not ray and not (workers and workers > 1):
        return None
    from vdedup.engine.scaleout import LocalProcesses, RayCluster, Scatter, SourceHandle
    handle = SourceHandle(url, credentials)
    if ray:
        return Scatter(RayCluster(None if ray == "local" else ray), handle)
    if workers and workers > 1:
        local = LocalProcesses(workers)
        local.start(url)                     # the processes import while the coordinator plans
        return Scatter(local, handle)
    return None


def _single_failure(o) -> VdedupError:
    e = VdedupError(f"backup of asset {o.asset} failed: {o.error}")
    e.exit_code = o.exit_code or 1
    return e


@app.command()
def backup(
    source: Optional[str] = typer.Argument(None, help="Source URL, e.g. chroma:///path/to/dir or chroma://host:8000."),
    asset: Optional[List[str]] = typer.Option(None, "--asset", "-a",
                                              help="Back up this connected asset (repeatable)."),
    all_assets: bool = typer.Option(False, "--all", help="Back up every connected asset."),
    collection: Optional[List[str]] = typer.Option(None, "--collection", "-c",
                                                   help="Collection to back up (repeatable; default: all)."),
    tag: Optional[List[str]] = typer.Option(None, "--tag", "-t", help="Tag for the snapshot (repeatable)."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=5000, help="Records read per request."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, max=64,
                                          help="Threads and processes to use (default: the machine's cores)."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="[ADDRESS]",
                                      help="Run one task per partition on a Ray cluster (ADDRESS as ray.init "
                                           "takes it; none: a local Ray instance). Needs vdedup[ray]."),
    partition_size: int = typer.Option(PARTITION_SIZE, "--partition-size", min=1,
                                       help="Records per partition of a namespace (a task each with --ray "
                                            "or --workers)."),
    limit_rate: Optional[str] = typer.Option(None, "--limit-rate",
                                             help="Read the source no faster than this: records (500r/s) "
                                                  "or bytes (20MB/s) per second."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Back up a vector database into a new snapshot (only what changed is stored)."""
    if sum((source is not None, bool(asset), all_assets)) != 1:
        raise UsageError("give a SOURCE URL, --asset NAME or --all (exactly one)")
    rate = parse_rate(limit_rate) if limit_rate else None
    if rate is not None and ray:
        raise UsageError("--limit-rate reads the source from this process: not with --ray")
    if source is None:
        if collection or tag or workers or ray:
            raise UsageError("--collection, --tag, --workers and --ray go with a SOURCE URL; a connected asset "
                             "names its own collections and is tagged asset:NAME")
        names = list(asset or [])

        def choose(store: AssetStore) -> list[Asset]:
            return store.list() if all_assets else [store.get(n) for n in names]

        if len(names) == 1:
            AUDIT.note(asset=names[0])
        run_asset_backups(choose, batch_size, json_out, rate)
        return
    url = parse_url(source)
    credentials = credentials_for(url, os.environ)                         # the CLI is the edge
    # a rate limit reads in this process (the same partition plan, one after the other)
    scatter = None if rate is not None else make_scatter(ray, workers, source, credentials)
    try:
        repo = open_repository()
        try:
            connector = throttled(open_connector(url, credentials, must_exist=True), rate)
            try:
                with RichReporter(enabled=not json_out) as reporter:
                    result = run_backup(repo, connector, url.redacted(), collection or None, tag or [],
                                        reporter, batch_size, workers, partition_size, scatter)
            finally:
                connector.close()
        finally:
            repo.close()
    finally:
        if scatter is not None:
            scatter.close()
    AUDIT.note(snapshot=result.snapshot.id, records=result.stats["records"], bytes_added=result.bytes_added)
    if json_out:
        print_json(result.to_dict())
        return
    s = result.stats
    info(f"records: {s['records']} ({s['added']} new, {s['changed']} changed, "
         f"{s['deleted']} deleted, {s['unchanged']} unchanged)")
    if s.get("duplicates"):
        err.print(f"vdedup: warning: {s['duplicates']} record(s) repeated an id already read from the "
                  "source; the last record read with each id was kept", markup=False)
    info(f"added to the repository: {human_bytes(result.bytes_added)} in {result.seconds:.1f} s")
    out.print(f"snapshot {result.snapshot.short_id} saved")
