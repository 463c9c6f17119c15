"""`ai-assets`: the BackupEngine command set over connected assets, and the `backupengine`
console script (CLI layer).

    backupengine ai-assets connect --provider pinecone
    backupengine ai-assets list --type ai_vector_db
    backupengine ai-assets backup --type ai_vector_db --provider pinecone
    backupengine ai-assets snapshots --asset "customer-rag-index"
    backupengine ai-assets restore --asset "customer-rag-index" --version latest --target-instance "qdrant-prod-02"

Every command is also `vdedup ai-assets ...`; the repository comes from VDEDUP_REPOSITORY or
`--repo` (before `ai-assets`), the password as for every vdedup command. `backupengine` is the
whole vdedup CLI under that name, so `backupengine portal` opens the web portal (docs/portal.md).
"""
from __future__ import annotations

import re
from typing import List, Optional

import typer
from rich.table import Table

from vdedup.assets.store import ASSET_TYPE, Asset, AssetStore, normalize_provider
from vdedup.connectors import parse_url
from vdedup.engine.nightly import asset_connector, asset_snapshots
from vdedup.engine.restore import TranslationOptions, restore as run_restore, target_name
from vdedup.engine.verify import VerifyOptions, verify as run_verify
from vdedup.errors import SnapshotNotFound, UsageError
from vdedup.repository.snapshot import Snapshot, find, newest_at_or_before

from .commands.asset_cmds import NO_SECRET, SECRET_ENV_OPT, SECRET_STDIN, connect_asset, list_assets
from .commands.backup_cmd import run_asset_backups
from .context import AUDIT, open_repository
from .output import RichReporter, err, info, out, print_json

ai_app = typer.Typer(help="BackupEngine-compatible commands over connected AI assets (vector databases).",
                     no_args_is_help=True)
_registered: set[int] = set()


def register(app: typer.Typer) -> None:
    """Add `ai-assets` to the vdedup app (once)."""
    if id(app) not in _registered:
        app.add_typer(ai_app, name="ai-assets")
        _registered.add(id(app))


def _check_type(type_: str | None) -> None:
    if type_ is not None and type_ != ASSET_TYPE:
        raise UsageError(f"unknown asset type {type_!r} (known: {ASSET_TYPE})")


@ai_app.command("connect")
def ai_connect(
    provider: str = typer.Option(..., "--provider", help="pinecone, qdrant, weaviate, milvus, postgresql, chroma."),
    name: Optional[str] = typer.Option(None, "--name", help="Asset name (asked for at a terminal)."),
    url: Optional[str] = typer.Option(None, "--url", help="URL or Pinecone index name; '' or pinecone:// is the "
                                      "whole project (asked for at a terminal)."),
    collection: Optional[List[str]] = typer.Option(None, "--collection", help="Collection/index to back up (repeatable)."),
    secret_stdin: bool = SECRET_STDIN,
    secret_env: Optional[str] = SECRET_ENV_OPT,
    no_secret: bool = NO_SECRET,
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Connect a vector database: at a terminal asks for the name, URL and secret (hidden), then
    lists the indexes found and asks which to back up."""
    connect_asset(provider, name, url, list(collection or []), secret_stdin, secret_env, no_secret,
                  None, json_out)


@ai_app.command("list")
def ai_list(
    type_: Optional[str] = typer.Option(None, "--type", help=f"Asset type ({ASSET_TYPE})."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Only this provider."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """List connected assets."""
    list_assets(type_, provider, json_out)


@ai_app.command("backup")
def ai_backup(
    type_: Optional[str] = typer.Option(None, "--type", help=f"Asset type ({ASSET_TYPE})."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Every connected asset of this provider."),
    asset: Optional[List[str]] = typer.Option(None, "--asset", help="This asset (repeatable)."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=5000, help="Records read per request."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Back up connected assets (all of them, of one provider, or named ones)."""
    _check_type(type_)
    wanted = normalize_provider(provider) if provider else None
    names = list(asset or [])
    if len(names) == 1:
        AUDIT.note(asset=names[0])

    def choose(store: AssetStore) -> list[Asset]:
        chosen = [store.get(n) for n in names] if names else store.list()
        return [a for a in chosen if wanted is None or a.provider == wanted]

    run_asset_backups(choose, batch_size, json_out)


def _snapshot_row(s: Snapshot) -> dict:
    return {"id": s.id, "short_id": s.short_id, "time": s.time, "source": s.source,
            "provider": s.provider, "tags": s.tags, "records": s.record_count(),
            "collections": {c["name"]: c["count"] for c in s.collections}}


@ai_app.command("snapshots")
def ai_snapshots(
    asset: str = typer.Option(..., "--asset", help="Asset name."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON array, oldest first."),
) -> None:
    """List the versions (snapshots) of one asset, oldest first."""
    AUDIT.note(asset=asset)
    repo = open_repository()
    try:
        AssetStore(repo).get(asset)      # an unknown name is an error, not an empty list
        snaps = asset_snapshots(repo, asset)
    finally:
        repo.close()
    if json_out:
        print_json([_snapshot_row(s) for s in snaps])
        return
    if not snaps:
        info(f"no snapshots of asset {asset} yet")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("Version", "Time (UTC)", "Source", "Collections", "Records"):
        table.add_column(col, overflow="fold", no_wrap=col in ("Version", "Records"))
    for s in snaps:
        table.add_row(s.short_id, s.time[:19].replace("T", " "), s.source,
                      ", ".join(f"{c['name']}({c['count']})" for c in s.collections), str(s.record_count()))
    out.print(table)


def pick_version(snaps: list[Snapshot], version: str) -> Snapshot:
    """`latest`, a snapshot id or unique prefix, or a time (the newest at or before it)."""
    v = version.strip()
    by_id = v == "latest" or re.fullmatch(r"[0-9a-fA-F]{4,64}", v) is not None
    when = None
    if not by_id:
        from .commands.restore_cmd import parse_time
        try:
            when = parse_time(v)
        except UsageError:
            raise UsageError(f"--version: not 'latest', a snapshot id or a time: {v!r}") from None
    if not snaps:
        raise SnapshotNotFound("the asset has no snapshots yet")
    if when is None:
        return find(snaps, v)
    return newest_at_or_before(snaps, when)


@ai_app.command("restore")
def ai_restore(
    asset: str = typer.Option(..., "--asset", help="The asset whose snapshot to restore."),
    version: str = typer.Option("latest", "--version", help="'latest', a snapshot id/prefix, or a time."),
    target_instance: Optional[str] = typer.Option(None, "--target-instance",
                                                  help="Connected asset to restore into (default: the asset itself)."),
    collection: Optional[List[str]] = typer.Option(None, "--collection", help="Collection to restore (repeatable)."),
    as_name: Optional[str] = typer.Option(None, "--as", help="Restore the (single) collection under this name."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into existing non-empty collections."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; write nothing."),
    exact: bool = typer.Option(False, "--exact", help="Refuse the inexact steps too (the target's own float "
                               "rounding, e.g. cosine vectors normalised): exit 19."),
    verify: bool = typer.Option(False, "--verify", help="After the restore, compare the target with the "
                                "version (as vdedup verify does); exit 17 when they differ."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=5000, help="Records written per request."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Restore a version of an asset into a connected instance (translated across providers)."""
    from .commands.restore_cmd import inexact_lines, verify_lines, verify_outcome
    AUDIT.note(asset=asset)
    if verify and dry_run:
        raise UsageError("--verify checks what a restore wrote: not with --dry-run")
    report = None
    repo = open_repository()
    try:
        store = AssetStore(repo)
        store.get(asset)
        snap = pick_version(asset_snapshots(repo, asset), version)
        AUDIT.note(snapshot=snap.id)
        target = store.get(target_instance or asset)
        collections = list(collection or []) or None
        translation = TranslationOptions(exact=exact)
        with asset_connector(store, target, read_only=dry_run, create_on_write=True) as connector:
            # another instance whose URL names a collection receives the restore there; the
            # asset itself (no --target-instance) is restored under its own names or --as
            named = connector.url_collection if target_instance else None
            name = target_name(snap, collections, as_name, named)
            with RichReporter(enabled=not json_out) as reporter:
                result = run_restore(repo, snap, connector, parse_url(target.url).redacted(),
                                     collections, name, overwrite, reporter,
                                     batch_size, None, dry_run, translation)
                if verify:
                    report = run_verify(repo, snap, connector, parse_url(target.url).redacted(), collections,
                                        name, None, translation, VerifyOptions(), reporter)
    finally:
        repo.close()
    AUDIT.note(records=sum(result.collections.values()))
    if json_out:
        print_json({**result.to_dict(), "asset": asset, "target_instance": target.name,
                    **({"verify": report.to_dict()} if report else {})})
        if report:
            verify_outcome(report)
        return
    for t in result.translations:
        fidelity = t.get("fidelity", "exact" if t["lossless"] else "lossy")
        err.print(f"translated from {t['source_provider']} to {t['target_provider']} "
                  f"({fidelity.upper() if fidelity == 'lossy' else fidelity})", markup=False)
    for w in result.warnings:
        info(f"warning: {w}")
    inexact_lines(result)
    if result.dry_run:
        out.print(f"dry run: nothing was written. Plan for version {snap.short_id}:")
        for p in result.plan:
            out.print(f"  {p.target}{'/' + p.namespace if p.namespace else ''}: write {p.write}")
        return
    for name, n in result.collections.items():
        out.print(f"restored {n} records into {target.name}/{name} from version {snap.short_id}", markup=False)
    if report:
        verify_lines(report)
        verify_outcome(report)


def run(argv: list[str] | None = None) -> int:
    """The `backupengine` console script: the whole vdedup CLI under that name."""
    from .main import run as main_run
    return main_run(argv, prog_name="backupengine")


if __name__ == "__main__":
    run()
