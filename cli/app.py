"""The typer application and its global options (CLI layer)."""
from __future__ import annotations

from typing import Optional

import typer

from vdedup import __version__
from vdedup.ratelimit import parse_rate

from .context import OPTIONS

app = typer.Typer(
    name="vdedup",
    help="Deduplicating, encrypted backups of vector databases.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vdedup {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    repo: Optional[str] = typer.Option(None, "--repo", "-r", envvar="VDEDUP_REPOSITORY",
                                       help="Repository location (a local path or s3://bucket/prefix).", show_envvar=True),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or informational messages."),
    s3_endpoint: Optional[str] = typer.Option(None, "--s3-endpoint", envvar="VDEDUP_S3_ENDPOINT",
                                              help="Endpoint URL of an S3-compatible store (for s3:// repositories)."),
    limit_upload: Optional[str] = typer.Option(None, "--limit-upload", envvar="VDEDUP_LIMIT_UPLOAD",
                                               help="Cap on bytes per second saved to the repository, e.g. 20MB/s."),
    limit_download: Optional[str] = typer.Option(None, "--limit-download", envvar="VDEDUP_LIMIT_DOWNLOAD",
                                                 help="Cap on bytes per second loaded from the repository, e.g. 50MB/s."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Passwords come from VDEDUP_PASSWORD, VDEDUP_PASSWORD_FILE or a prompt, never from arguments.

    Exit codes: 0 ok, 1 error, 2 usage, 3 partial, 10 no repository, 11 locked, 12 wrong or
    missing password, 13 repository exists, 14 snapshot not found, 15 source error,
    16 target not empty, 17 integrity error (or verify found differences), 18 missing
    dependency, 19 translation refused, 20 a secret would cross the network in clear text,
    130 interrupted.
    """
    OPTIONS.repo = repo
    OPTIONS.quiet = quiet
    OPTIONS.s3_endpoint = s3_endpoint
    OPTIONS.limit_upload = parse_rate(limit_upload, "--limit-upload", records=False) if limit_upload else None
    OPTIONS.limit_download = parse_rate(limit_download, "--limit-download", records=False) if limit_download else None
