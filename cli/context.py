"""Opening the repository and reading the password for a command (CLI layer)."""
from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass

from vdedup.backend import open_backend
from vdedup.errors import PasswordRequired, RepositoryNotFound, UsageError
from vdedup.repository import Repository


@dataclass
class Options:
    repo: str | None = None
    quiet: bool = False
    s3_endpoint: str | None = None


OPTIONS = Options()


def repo_location() -> str:
    loc = OPTIONS.repo or os.environ.get("VDEDUP_REPOSITORY")
    if not loc:
        raise RepositoryNotFound("no repository given: pass --repo PATH or set VDEDUP_REPOSITORY")
    return loc


def read_password(confirm: bool = False) -> str:
    """From VDEDUP_PASSWORD, VDEDUP_PASSWORD_FILE, or a hidden prompt; never from argv."""
    if os.environ.get("VDEDUP_PASSWORD"):
        return os.environ["VDEDUP_PASSWORD"]
    path = os.environ.get("VDEDUP_PASSWORD_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                pw = f.read().rstrip("\r\n")
        except OSError as e:
            raise PasswordRequired(f"cannot read VDEDUP_PASSWORD_FILE: {e.strerror}") from None
        if not pw:
            raise PasswordRequired("VDEDUP_PASSWORD_FILE is empty")
        return pw
    if not sys.stdin.isatty():
        raise PasswordRequired("no password: standard input is not a terminal")
    pw = getpass.getpass("repository password: ", stream=sys.stderr)
    if confirm:
        if getpass.getpass("repeat password: ", stream=sys.stderr) != pw:
            raise UsageError("the passwords do not match")
    if not pw:
        raise PasswordRequired("empty password")
    return pw


def open_repository() -> Repository:
    backend = open_backend(repo_location(), s3_endpoint=OPTIONS.s3_endpoint)
    if not backend.exists():
        raise RepositoryNotFound(f"no repository at {backend.location}")
    return Repository.open(backend, read_password())
