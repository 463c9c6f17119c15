"""Opening the repository and reading the password for a command (CLI layer)."""
from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from vdedup.backend import open_backend
from vdedup.errors import PasswordRequired, RepositoryNotFound, UsageError, remember_secret, scrub
from vdedup.repository import Repository


@dataclass
class Options:
    repo: str | None = None
    quiet: bool = False
    s3_endpoint: str | None = None
    limit_upload: Any = None          # vdedup.ratelimit.Rate (bytes/s) or None
    limit_download: Any = None


OPTIONS = Options()


@dataclass
class AuditNote:
    """What the running command reports for its audit entry (written by `main.run`).

    Commands that open the repository through `open_repository` are recorded automatically;
    a command adds what it knows: the asset, the snapshot, counts. Never a secret."""
    repo: Repository | None = None
    asset: str | None = None
    snapshot: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None        # overrides "ok" (e.g. "partial")
    password: str | None = field(default=None, repr=False)   # only to audit `init`
    skip: bool = False                # e.g. `audit` itself: reading the log is not logged
    items: list[dict[str, Any]] = field(default_factory=list)   # one entry each (backup --all)
    removed: list[str] | None = None  # snapshot ids a forget removed (evidence against rollback)

    def note(self, asset: str | None = None, snapshot: str | None = None, **counts: Any) -> None:
        if asset is not None:
            self.asset = asset
        if snapshot is not None:
            self.snapshot = snapshot
        self.counts.update({k: v for k, v in counts.items() if v is not None})


AUDIT = AuditNote()
WARNINGS: list[str] = []       # shown on stderr as they come, and added to --json output


def show_warning(message: str) -> None:
    """A repository warning (a damaged object skipped, the repository went backwards): loud,
    on stderr even with --quiet, and in the command's --json output."""
    if message not in WARNINGS:
        WARNINGS.append(message)
        sys.stderr.write(f"vdedup: warning: {scrub(message)}\n")
        sys.stderr.flush()


def reset_audit() -> AuditNote:
    AUDIT.repo = None
    AUDIT.asset = AUDIT.snapshot = AUDIT.outcome = None
    AUDIT.counts = {}
    AUDIT.password = None
    AUDIT.skip = False
    AUDIT.items = []
    AUDIT.removed = None
    WARNINGS.clear()
    return AUDIT


def repo_location() -> str:
    loc = OPTIONS.repo or os.environ.get("VDEDUP_REPOSITORY")
    if not loc:
        raise RepositoryNotFound("no repository given: pass --repo PATH or set VDEDUP_REPOSITORY")
    return loc


def read_secret(env: str, file_env: str, prompt: str, confirm: bool, missing: str) -> str:
    """A password from `env`, the file named by `file_env`, or a hidden prompt; never from argv."""
    if os.environ.get(env):
        return os.environ[env]
    path = os.environ.get(file_env)
    if path:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise PasswordRequired(f"cannot read {file_env}: {e.strerror}") from None
        try:
            pw = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise PasswordRequired(f"{file_env} is not UTF-8 text (is it the right file?)",
                                   hint=f"{file_env} names a file holding the password as text, "
                                        "one line") from None
        if not pw:
            raise PasswordRequired(f"{file_env} is empty")
        return pw
    if not sys.stdin.isatty():
        raise PasswordRequired(missing)
    pw = getpass.getpass(f"{prompt}: ", stream=sys.stderr)
    if confirm:
        if getpass.getpass(f"repeat {prompt}: ", stream=sys.stderr) != pw:
            raise UsageError("the passwords do not match")
    if not pw:
        raise PasswordRequired("empty password")
    return pw


def read_password(confirm: bool = False) -> str:
    """The repository password: VDEDUP_PASSWORD, VDEDUP_PASSWORD_FILE, or a hidden prompt."""
    pw = read_secret("VDEDUP_PASSWORD", "VDEDUP_PASSWORD_FILE", "repository password", confirm,
                     "no password: standard input is not a terminal")
    remember_secret(pw)
    AUDIT.password = pw
    return pw


def repository_backend():
    """The backend of the repository the options name, with the options' rate limits."""
    return open_backend(repo_location(), s3_endpoint=OPTIONS.s3_endpoint,
                        limit_upload=OPTIONS.limit_upload, limit_download=OPTIONS.limit_download)


def open_repository() -> Repository:
    from vdedup.repository.spool import remove_stale_spools_at_start
    remove_stale_spools_at_start()    # plaintext rows a killed run left in the cache go first
    backend = repository_backend()
    if not backend.exists():
        raise RepositoryNotFound(f"no repository at {backend.location}")
    repo = Repository.open(backend, read_password())
    repo.on_warning = show_warning
    AUDIT.repo = repo            # the audit entry of this command goes into this repository
    from vdedup.engine.rollback import observe
    for problem in observe(repo):     # has the repository gone backwards since we last saw it?
        show_warning(problem)
    return repo
