"""`init` and `unlock` (CLI layer)."""
from __future__ import annotations

import typer

from vdedup.backend import open_backend
from vdedup.repository import Repository

from ..app import app
from ..context import AUDIT, OPTIONS, open_repository, read_password, repo_location
from ..output import err, info, out, print_json


@app.command()
def init(json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Create a new, encrypted repository and print its one-time recovery key."""
    backend = open_backend(repo_location(), s3_endpoint=OPTIONS.s3_endpoint)
    password = read_password(confirm=True)
    repo, recovery = Repository.init(backend, password)
    AUDIT.repo = repo
    try:
        if json_out:
            print_json({"message_type": "initialized", "id": repo.id, "location": backend.location,
                        "recovery_key": recovery})
            return
        out.print(f"created repository {repo.id[:8]} at {backend.location}")
        out.print("")
        out.print("recovery key (shown only this once; store it offline, it unlocks the repository")
        out.print("if the password is lost; give it as the password to use it):")
        out.print("")
        out.print(f"    {recovery}")
        out.print("")
    finally:
        repo.close()


@app.command()
def unlock(remove_all: bool = typer.Option(False, "--remove-all", help="Remove every lock, not only stale ones.")) -> None:
    """Remove stale locks (left by a crashed or killed process)."""
    repo = open_repository()
    try:
        removed = 0
        for lk in repo.list_locks():
            if remove_all or lk.is_stale():
                repo.backend.remove("locks", lk.name)
                removed += 1
        info(f"removed {removed} lock(s)")
    finally:
        repo.close()
    _ = err
