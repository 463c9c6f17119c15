"""`key list|add|remove|passwd` (CLI layer).

New passwords come from VDEDUP_NEW_PASSWORD, VDEDUP_NEW_PASSWORD_FILE or a prompt (asked
twice), never from the command line.
"""
from __future__ import annotations

import typer
from rich.table import Table

from vdedup.repository import keyring

from ..app import app
from ..context import open_repository, read_secret
from ..output import info, out, print_json

key_app = typer.Typer(help="Manage the passwords and recovery keys that unlock the repository.",
                      no_args_is_help=True)
app.add_typer(key_app, name="key")


def read_new_password() -> str:
    return read_secret("VDEDUP_NEW_PASSWORD", "VDEDUP_NEW_PASSWORD_FILE", "new password", True,
                       "no new password: set VDEDUP_NEW_PASSWORD or VDEDUP_NEW_PASSWORD_FILE, "
                       "or run in a terminal to be asked")


@key_app.command("list")
def key_list(json_out: bool = typer.Option(False, "--json", help="Print a JSON array.")) -> None:
    """List the key files (the one in use is marked)."""
    repo = open_repository()
    try:
        keys = keyring.list_keys(repo)
    finally:
        repo.close()
    if json_out:
        print_json([k.to_dict() for k in keys])
        return
    table = Table(box=None, pad_edge=False)
    for col in ("", "ID", "Kind", "Created", "KDF", "Status"):
        table.add_column(col)
    for k in keys:
        table.add_row("*" if k.current else "", k.id[:8], k.kind, k.created, k.kdf, k.status)
    out.print(table)


@key_app.command("add")
def key_add(
    recovery: bool = typer.Option(False, "--recovery", help="Add a new recovery key (printed once) instead of a password."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Add a password (from VDEDUP_NEW_PASSWORD[_FILE] or a prompt) or a recovery key."""
    repo = open_repository()
    try:
        if recovery:
            key_id, text = keyring.add_recovery(repo)
        else:
            key_id, text = keyring.add_password(repo, read_new_password()), None
    finally:
        repo.close()
    if json_out:
        d = {"message_type": "key_added", "id": key_id, "kind": "recovery" if recovery else "password"}
        if text:
            d["recovery_key"] = text
        print_json(d)
        return
    out.print(f"added {'recovery' if recovery else 'password'} key {key_id[:8]}")
    if text:
        out.print("recovery key (shown only this once; store it offline):")
        out.print(f"    {text}")


@key_app.command("remove")
def key_remove(key_id: str = typer.Argument(..., help="Key id or unique prefix (see 'vdedup key list').")) -> None:
    """Remove a key; the key in use and the last password or recovery key cannot be removed."""
    repo = open_repository()
    try:
        removed = keyring.remove(repo, key_id)
    finally:
        repo.close()
    out.print(f"removed {removed.kind} key {removed.id[:8]}")


@key_app.command("passwd")
def key_passwd() -> None:
    """Change the password: add a key for the new one, then remove the key in use."""
    repo = open_repository()
    try:
        new_id, old_id = keyring.passwd(repo, read_new_password())
    finally:
        repo.close()
    out.print(f"added password key {new_id[:8]}" + (f", removed key {old_id[:8]}" if old_id else ""))
    if old_id is None:
        info("the key in use is a recovery key: it was kept")
