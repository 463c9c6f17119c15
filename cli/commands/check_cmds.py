"""`check` and `stats` (CLI layer)."""
from __future__ import annotations

from typing import Optional

import typer

from vdedup.engine.check import check as run_check
from vdedup.engine.stats import repository_stats
from vdedup.errors import IntegrityError

from ..app import app
from ..context import open_repository
from ..output import RichReporter, err, human_bytes, info, out, print_json


@app.command()
def check(
    read_data: bool = typer.Option(False, "--read-data", help="Also decrypt and verify every block of every pack."),
    read_data_subset: Optional[str] = typer.Option(None, "--read-data-subset",
                                                   help="Read only part of the packs: n/t (group n of t, by pack id) "
                                                        "or x% (a random sample)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, max=64,
                                          help="Threads and processes to use (default: the machine's cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Verify the repository's structure (and with --read-data, all of its data)."""
    repo = open_repository()
    try:
        with RichReporter(enabled=not json_out) as reporter:
            result = run_check(repo, read_data, reporter, subset=read_data_subset, workers=workers)
    finally:
        repo.close()
    if json_out:
        print_json(result.to_dict())
    else:
        for w in result.warnings:
            info(f"warning: {w}")
        for e in result.errors:
            err.print(f"error: {e}", markup=False)
        if result.affected:
            err.print("damaged or missing data affects:")
            for a in result.affected:
                err.print(f"  snapshot {a['snapshot'][:8]} ({a['time'][:19].replace('T', ' ')}) collection "
                          f"{a['collection']!r}" + (f" namespace {a['namespace']!r}" if a["namespace"] else "")
                          + f": {a['records_affected']} of {a['records']} records", markup=False)
            info("run 'vdedup repair index' if an index file is damaged, then 'vdedup repair snapshots' "
                 "to keep what is intact in new snapshots")
        c = result.counts
        read = (" (all data read)" if read_data_subset is None else
                f" ({c['packs_read']} of {c['packs']} packs read)") if (read_data or read_data_subset) else ""
        out.print(f"checked {c['snapshots']} snapshots, {c['index_files']} index files, {c['packs']} packs" + read)
    if not result.ok:
        raise IntegrityError(f"check found {len(result.errors)} error(s)")
    if not json_out:
        out.print("no errors were found")


@app.command()
def stats(
    snapshot: Optional[str] = typer.Argument(None, help="Only this snapshot (id, prefix or 'latest')."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Logical size, stored size, deduplication and compression ratios."""
    repo = open_repository()
    try:
        snaps = [repo.find_snapshot(snapshot)] if snapshot else None
        st = repository_stats(repo, snaps)
    finally:
        repo.close()
    if json_out:
        print_json(st)
        return
    out.print(f"snapshots:          {st['snapshots']}")
    out.print(f"records (all snapshots): {st['records']}")
    out.print(f"logical size:       {human_bytes(st['logical_bytes'])}")
    out.print(f"unique data:        {human_bytes(st['unique_bytes'])} in {st['blobs']} blobs")
    out.print(f"stored size:        {human_bytes(st['stored_bytes'])} ({st['packs']} packs)")
    out.print(f"dedup ratio:        {st['dedup_ratio']}")
    out.print(f"compression ratio:  {st['compression_ratio']}")
    if "exclusive_bytes" in st:
        out.print(f"only in {'this snapshot' if st['snapshots'] == 1 else 'these snapshots'}: "
                  f"{human_bytes(st['exclusive_bytes'])} in {st['exclusive_blobs']} blobs")
