"""Key management: list, add, remove and change the keys that unlock a repository
(repository layer).

Every key file wraps the same master key (keys.py), so keys come and go without
re-encrypting anything. Two rules keep a repository openable: the key the current session
was unlocked with is never removed, and at least one password or recovery key remains.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backend.base import FileType
from ..errors import ObjectNotFound, PartialFailure, RetentionActive, UsageError
from . import keylist
from . import keys as keyfiles

UNLOCKING_KINDS = ("password", "recovery")


@dataclass(frozen=True)
class KeyInfo:
    id: str
    kind: str
    created: str
    kdf: str
    current: bool
    status: str = "ok"      # ok | damaged: ... | not in the key list | missing (listed) | ...

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "short_id": self.id[:8], "kind": self.kind, "created": self.created,
                "kdf": self.kdf, "current": self.current, "status": self.status}


def list_keys(repo) -> list[KeyInfo]:
    """Every key file, and every key the key list names that has no file any more."""
    listed = keylist.load(repo.backend, repo.master)
    out = []
    seen = set()
    for k in keyfiles.load_key_files(repo.backend):
        doc = k.doc or {}
        kdf = doc.get("kdf")
        if not k.usable:
            status = f"damaged: {k.problem}"
        elif listed is None:
            status = "ok (no key list yet)"
        elif k.id not in listed.keys:
            status = "not in the key list"
        elif listed.keys[k.id]["digest"] != keylist.digest(repo.master, k.raw):
            status = "damaged: differs from the key list"
        else:
            status = "ok"
        seen.add(k.id)
        out.append(KeyInfo(k.id, k.kind, str(doc.get("created", "")),
                           str(kdf.get("name", "")) if isinstance(kdf, dict) else "",
                           k.id == repo.key_id, status))
    for key_id, e in (listed.keys.items() if listed else ()):
        if key_id not in seen:
            out.append(KeyInfo(key_id, e.get("kind", "unknown"), "", "", False, "missing (listed)"))
    return sorted(out, key=lambda k: (k.created, k.id))


def add_password(repo, password: str) -> str:
    if not password:
        raise UsageError("the new password is empty")
    keylist.load(repo.backend, repo.master)     # a list this vdedup cannot write over: refused before a key file
    key = keyfiles.write_password_key(repo.backend, repo.master, password)
    keylist.update(repo.backend, repo.master, add=[key])
    return key.id


def add_recovery(repo) -> tuple[str, str]:
    """A new recovery key: returns (key id, the key text to show once)."""
    keylist.load(repo.backend, repo.master)     # refused before a key file is written (see add_password)
    key, text = keyfiles.write_recovery_key(repo.backend, repo.master)
    keylist.update(repo.backend, repo.master, add=[key])
    return key.id, text


def resolve(repo, ref: str) -> KeyInfo:
    """A key by id or unique id prefix."""
    ref = ref.strip().lower()
    if not ref:
        raise UsageError("no key id given")
    matches = [k for k in list_keys(repo) if k.id.startswith(ref)]
    if not matches:
        raise UsageError(f"no key matches {ref!r} (see 'vdedup key list')")
    if len(matches) > 1:
        raise UsageError(f"key id prefix {ref!r} is ambiguous ({len(matches)} keys match)")
    return matches[0]


def _usable(k: KeyInfo) -> bool:
    return k.kind in UNLOCKING_KINDS and not k.status.startswith(("damaged", "missing"))


def remove(repo, ref: str) -> KeyInfo:
    """Remove a key file (or the key list's entry of a key file that is gone), under an
    exclusive lock; refuses the last usable unlocking key and the key in use. The key list
    is updated first: a crash in between leaves a key file the list does not name (which
    `check` reports as a warning), never a listed key that is missing."""
    lock = repo.lock(exclusive=True, operation="key remove")
    try:
        key = resolve(repo, ref)
        others = [k for k in list_keys(repo) if k.id != key.id and _usable(k)]
        if not others:
            raise UsageError(f"key {key.id[:8]} is the last password or recovery key: removing it "
                             f"would make the repository impossible to open")
        if key.id == repo.key_id:
            raise UsageError(f"key {key.id[:8]} is the key in use; open the repository with another "
                             f"key to remove it, or use 'vdedup key passwd'")
        keylist.update(repo.backend, repo.master, remove=[key.id])
        _remove_file(repo, key.id)
        return key
    finally:
        lock.release()


def _remove_file(repo, key_id: str) -> None:
    """Remove a key file; under Object Lock it may have to stay until its retention ends,
    and then it still opens the repository: that is a partial failure, said plainly."""
    try:
        repo.backend.remove(FileType.KEYS, key_id)
    except ObjectNotFound:
        pass
    except RetentionActive as e:
        until = e.until.isoformat(timespec="seconds") if e.until else "its retention ends"
        raise PartialFailure(f"key {key_id[:8]} is off the key list, but its file is under retention "
                             f"(Object Lock) until {until}: until then it still opens the repository",
                             hint=f"run 'vdedup key remove {key_id[:8]}' again after {until}") from None


def passwd(repo, new_password: str) -> tuple[str, str | None]:
    """Add a key for the new password, then remove the key in use; returns (new id, removed
    id). A recovery key in use is kept (it is not a password to change)."""
    if not new_password:
        raise UsageError("the new password is empty")
    lock = repo.lock(exclusive=True, operation="key passwd")
    try:
        keylist.load(repo.backend, repo.master)     # refused before a key file is written (see add_password)
        new = keyfiles.write_password_key(repo.backend, repo.master, new_password)
        current = next((k for k in list_keys(repo) if k.id == repo.key_id), None)
        if current is None or current.kind == "recovery":
            keylist.update(repo.backend, repo.master, add=[new])
            return new.id, None
        keylist.update(repo.backend, repo.master, add=[new], remove=[current.id])
        repo.key_id = new.id
        _remove_file(repo, current.id)
        return new.id, current.id
    finally:
        lock.release()
