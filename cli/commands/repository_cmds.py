"""`init` and `unlock` (CLI layer)."""
from __future__ import annotations

from typing import Optional

import typer

from vdedup.errors import UsageError
from vdedup.repository import Repository

from ..app import app
from ..context import AUDIT, open_repository, read_password, repository_backend
from ..output import err, info, out, print_json


@app.command()
def init(
    object_lock_days: Optional[int] = typer.Option(None, "--object-lock-days", min=1, max=36500,
                                                   help="S3 only: an immutable repository; everything a backup "
                                                        "needs is retained N days (S3 Object Lock)."),
    object_lock_mode: str = typer.Option("governance", "--object-lock-mode",
                                         help="governance (whoever holds s3:BypassGovernanceRetention can "
                                              "still delete) or compliance (nobody can, not even the "
                                              "account's root)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create a new, encrypted repository and print its one-time recovery key."""
    mode = object_lock_mode.strip().upper()
    if mode not in ("GOVERNANCE", "COMPLIANCE"):
        raise UsageError(f"--object-lock-mode {object_lock_mode!r}: governance or compliance")
    backend = repository_backend()
    password = read_password(confirm=True)
    lock = {"mode": mode, "days": object_lock_days} if object_lock_days else None
    repo, recovery = Repository.init(backend, password, object_lock=lock)
    AUDIT.repo = repo
    try:
        if json_out:
            print_json({"message_type": "initialized", "id": repo.id, "location": backend.location,
                        "recovery_key": recovery, "object_lock": lock})
            return
        out.print(f"created repository {repo.id[:8]} at {backend.location}")
        if lock:
            out.print(f"Object Lock: every backup is retained {lock['days']} days ({mode.lower()} mode); "
                      f"forget and prune remove nothing younger")
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
