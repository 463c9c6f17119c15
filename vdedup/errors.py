"""Error classes, each with an exit code and a one-line message (all layers).

The CLI is the one place that turns these into exit codes (`vdedup_cli.main`).
Messages never contain secrets or record data: they name repositories, snapshots,
collections and URLs with credentials removed.
"""
from __future__ import annotations

import threading

# ---- secrets kept out of every message ------------------------------------------------------
# A provider library may put the secret it was given into its own error text (a key with a
# newline: "Illegal header value b'...'"). Every secret the process handles is remembered
# here, and every message made from an error passes through `scrub`.
_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
MIN_SCRUBBED = 4           # shorter fragments would mangle ordinary words
WITHHELD = "[secret withheld]"


def remember_secret(secret: str | None) -> None:
    """Note a secret (API key, token, password) so that `scrub` removes it from messages."""
    if not secret or not isinstance(secret, str):
        return
    forms = {secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1],
             secret.strip()}
    forms.update(line.strip() for line in secret.splitlines() if len(line.strip()) >= 2 * MIN_SCRUBBED)
    with _SECRETS_LOCK:
        _SECRETS.update(f for f in forms if len(f) >= MIN_SCRUBBED)


def scrub(text: str) -> str:
    """`text` with every remembered secret (and its escaped forms) replaced by a marker."""
    if not _SECRETS or not text:
        return text
    with _SECRETS_LOCK:
        forms = sorted(_SECRETS, key=len, reverse=True)
    for form in forms:
        if form in text:
            text = text.replace(form, WITHHELD)
    return text


class VdedupError(Exception):
    """Base class: `exit_code` is what the CLI exits with, `hint` an optional next step.
    Its message and str() never hold a remembered secret (`scrub`)."""

    exit_code = 1
    hint: str | None = None

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return scrub(str(self.args[0]) if self.args else self.__class__.__name__)

    def __str__(self) -> str:
        return scrub(super().__str__())


class UsageError(VdedupError):
    """Bad command-line input that typer itself cannot catch."""
    exit_code = 2


class PartialFailure(VdedupError):
    """Some of the work was done, some failed (e.g. one of several collections)."""
    exit_code = 3


class RepositoryNotFound(VdedupError):
    exit_code = 10
    hint = "create one with 'vdedup init' or check --repo / VDEDUP_REPOSITORY"


class RepositoryLocked(VdedupError):
    exit_code = 11
    hint = "wait for the other operation, or remove stale locks with 'vdedup unlock'"


class WrongPassword(VdedupError):
    exit_code = 12


class RepositoryExists(VdedupError):
    exit_code = 13


class SnapshotNotFound(VdedupError):
    exit_code = 14


class SourceError(VdedupError):
    """The database could not be reached or read (connection, auth, missing collection)."""
    exit_code = 15


class CollectionNotFound(SourceError):
    pass


class TargetNotEmpty(VdedupError):
    exit_code = 16
    hint = "restore under another name with --as, or pass --overwrite to write into it"


class IntegrityError(VdedupError):
    """Stored data failed authentication or did not match its content id."""
    exit_code = 17


class FormatError(IntegrityError):
    """A stored object is not in a format this version understands."""


class VerificationFailed(VdedupError):
    """A live collection does not match the snapshot it was compared with (vdedup verify)."""
    exit_code = 17


class NotSupported(VdedupError):
    """A connector cannot do what was asked (e.g. nearest-neighbour queries)."""
    exit_code = 1


class UnsupportedFormat(FormatError):
    """A stored record has a version, or lists a feature, this vdedup does not know: it was
    written by a newer vdedup. It is refused, never half-read (docs/design.md §11)."""
    hint = "upgrade vdedup to read it"


class KeyFileDamaged(IntegrityError):
    """No key opened, and a key file the secret could have opened is damaged or refused
    (malformed, its checksum wrong, absurd KDF parameters): not a wrong password."""
    hint = ("another password or the recovery key may still open the repository; "
            "'vdedup check' lists the damaged key files")


class MissingDependency(VdedupError):
    exit_code = 18


class BackendError(VdedupError):
    exit_code = 1


class ObjectNotFound(BackendError):
    pass


class WriteRefused(BackendError):
    """The storage refuses writes: disk full, read-only, no permission (ENOSPC, EROFS,
    EACCES, S3 AccessDenied). Reading may still work: readers fall back to no lock."""


class RetentionActive(WriteRefused):
    """An object is under retention (S3 Object Lock) and cannot be removed yet."""

    def __init__(self, message: str, until=None, hint: str | None = None):
        super().__init__(message, hint)
        self.until = until          # datetime (UTC) when the retention ends


class ObjectExists(BackendError):
    pass


class TransientBackendError(BackendError):
    """A retry may succeed (timeouts, throttling, 5xx)."""


class LockLost(RepositoryLocked):
    """Our lock could not be refreshed in time: the operation stops before the lock would be
    taken for stale, so that a prune elsewhere cannot delete what this operation still needs."""
    hint = "check the repository storage (it refused or failed the lock writes) and run the operation again"


class Interrupted(VdedupError):
    exit_code = 130


class NotInSnapshot(SnapshotNotFound):
    """A collection or namespace asked for is not in the snapshot."""


class PasswordRequired(VdedupError):
    exit_code = 12
    hint = "set VDEDUP_PASSWORD or VDEDUP_PASSWORD_FILE, or run in a terminal to be asked"


class InsecureTransport(VdedupError):
    """A secret would cross the network in clear text (plain http to a host other than this
    machine) and the URL did not say that this is wanted (`?insecure=1`)."""
    exit_code = 20


class TranslationRefused(VdedupError):
    """A cross-provider restore would lose or change data the user did not agree to lose."""
    exit_code = 19
    hint = "see the plan with --dry-run; options such as --metric, --vector, --drop-sparse accept a loss explicitly"


class WorkerFailed(VdedupError):
    """A partition task of a scaled-out backup or restore failed (after its retries): the
    message names the partition and the task's own error, the exit code is that error's."""
    exit_code = 1

    def __init__(self, message: str, exit_code: int = 1, hint: str | None = None):
        super().__init__(message, hint)
        self.exit_code = exit_code

    def __reduce__(self):
        return (WorkerFailed, (self.message, self.exit_code, self.hint))
