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
from ..errors import ObjectNotFound, UsageError
from . import keys as keyfiles

UNLOCKING_KINDS = ("password", "recovery")


@dataclass(frozen=True)
class KeyInfo:
    id: str
    kind: str
    created: str
    kdf: str
    current: bool

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "short_id": self.id[:8], "kind": self.kind, "created": self.created,
                "kdf": self.kdf, "current": self.current}


def list_keys(repo) -> list[KeyInfo]:
    out = []
    for key_id, doc in keyfiles.list_keys(repo.backend):
        kdf = doc.get("kdf") if isinstance(doc, dict) else None
        out.append(KeyInfo(key_id, str(doc.get("kind", "password")) if isinstance(doc, dict) else "unknown",
                           str(doc.get("created", "")) if isinstance(doc, dict) else "",
                           str(kdf.get("name", "")) if isinstance(kdf, dict) else "",
                           key_id == repo.key_id))
    return sorted(out, key=lambda k: (k.created, k.id))


def add_password(repo, password: str) -> str:
    if not password:
        raise UsageError("the new password is empty")
    return keyfiles.add_password_key(repo.backend, repo.master, password)


def add_recovery(repo) -> tuple[str, str]:
    """A new recovery key: returns (key id, the key text to show once)."""
    return keyfiles.add_recovery_key(repo.backend, repo.master)


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


def remove(repo, ref: str) -> KeyInfo:
    """Remove a key file, under an exclusive lock; refuses the last unlocking key and the
    key in use."""
    lock = repo.lock(exclusive=True, operation="key remove")
    try:
        key = resolve(repo, ref)
        others = [k for k in list_keys(repo) if k.id != key.id and k.kind in UNLOCKING_KINDS]
        if not others:
            raise UsageError(f"key {key.id[:8]} is the last password or recovery key: removing it "
                             f"would make the repository impossible to open")
        if key.id == repo.key_id:
            raise UsageError(f"key {key.id[:8]} is the key in use; open the repository with another "
                             f"key to remove it, or use 'vdedup key passwd'")
        try:
            repo.backend.remove(FileType.KEYS, key.id)
        except ObjectNotFound:
            pass
        return key
    finally:
        lock.release()


def passwd(repo, new_password: str) -> tuple[str, str | None]:
    """Add a key for the new password, then remove the key in use; returns (new id, removed
    id). A recovery key in use is kept (it is not a password to change)."""
    if not new_password:
        raise UsageError("the new password is empty")
    lock = repo.lock(exclusive=True, operation="key passwd")
    try:
        new_id = add_password(repo, new_password)
        current = next((k for k in list_keys(repo) if k.id == repo.key_id), None)
        if current is None or current.kind == "recovery":
            return new_id, None
        try:
            repo.backend.remove(FileType.KEYS, current.id)
        except ObjectNotFound:
            pass
        repo.key_id = new_id
        return new_id, current.id
    finally:
        lock.release()
