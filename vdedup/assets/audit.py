"""The audit log: encrypted, hash-chained entries in the repository (assets layer).

Entry N is the sealed object `audit/<N as 12 digits>` (ObjectType.AUDIT). Backends never
overwrite, so the name is also the append lock: two writers cannot both claim N; the loser
retries with N+1. Each entry holds `prev`, the keyed BLAKE3 hash (key derived from the master
key) of entry N-1's canonical bytes, so a removed entry (a gap, or a missing first entry), a
reordered one (the name is bound into the AEAD) and an altered one (authentication fails, or
the chain breaks) are detected by `verify`. Removing the newest entries leaves a shorter valid
chain: compare the count or the head hash with one kept elsewhere to detect that.

The chain key is a MAC key (keyed BLAKE3), never an encryption key: entries are sealed like
every other object, by the one codec (format/objects.py), under per-object subkeys. The hash
covers an entry exactly as stored, so entries written before they carried a `version` keep
their hashes. An entry of a version this vdedup does not know stops `verify` at that entry
(it cannot vouch for what it cannot read) and is skipped by `read`.

Entries hold no secrets and no record data: time, user, host, operation, asset, snapshot,
counts, outcome, and for a failure the exit code and the error class name only.
"""
from __future__ import annotations

import datetime as dt
import getpass
import json
import socket
from dataclasses import dataclass, field
from typing import Any

from blake3 import blake3

from ..backend.base import FileType
from ..crypto.keys import CTX_AUDIT
from ..errors import FormatError, IntegrityError, ObjectExists, ObjectNotFound, UnsupportedFormat
from ..format.objects import ObjectType
from ..format.versions import FORMATS
from ..repository import Repository

VERSION = FORMATS[ObjectType.AUDIT].writes
GENESIS = "0" * 64
ENTRY_FIELDS = ("version", "seq", "time", "user", "host", "operation", "asset", "snapshot", "counts",
                "outcome", "exit_code", "error", "prev", "removed")
# `removed` (since 0.2, only when snapshots were removed): the ids of the snapshots a forget
# (or an asset's forget policy) removed, so that `check` can tell them from a rollback


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def entry_name(seq: int) -> str:
    return f"{seq:012d}"


@dataclass
class VerifyResult:
    entries: list[dict[str, Any]]
    ok: bool
    problem: str | None = None
    position: int | None = None       # 1-based sequence number where the chain breaks
    head: str = GENESIS

    def to_dict(self) -> dict[str, Any]:
        return {"message_type": "audit_verify", "ok": self.ok, "entries": len(self.entries),
                "problem": self.problem, "position": self.position, "head": self.head}


@dataclass
class AuditLog:
    repo: Repository
    _key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._key = self.repo.master.purpose_key(CTX_AUDIT)

    def digest(self, entry: dict[str, Any]) -> str:
        return blake3(_canonical(entry), key=self._key).hexdigest()

    def _hashable(self, name: str) -> dict[str, Any]:
        """An entry as stored, authenticated but not interpreted: chaining onto (or recording
        the head of) an entry needs only its hash, even when a newer vdedup wrote it."""
        return self.repo.load_object(ObjectType.AUDIT, name, check=False).data

    def _names(self) -> list[str]:
        return sorted(n for n, _ in self.repo.backend.list(FileType.AUDIT) if n.isdigit())

    def append(self, operation: str, outcome: str = "ok", *, asset: str | None = None,
               snapshot: str | None = None, counts: dict[str, int] | None = None,
               exit_code: int = 0, error: str | None = None,
               removed: list[str] | None = None) -> dict[str, Any]:
        base = {"version": VERSION, "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"),
                "user": _user(), "host": socket.gethostname(), "operation": operation,
                "asset": asset, "snapshot": snapshot, "counts": dict(counts or {}),
                "outcome": outcome, "exit_code": exit_code, "error": error}
        if removed:
            base["removed"] = sorted(removed)
        for _ in range(100):
            names = self._names()
            if names:
                last = names[-1]
                prev_entry = self._hashable(last)
                seq, prev = int(last) + 1, self.digest(prev_entry)
            else:
                seq, prev = 1, GENESIS
            entry = {**base, "seq": seq, "prev": prev}
            try:
                self.repo.save_json_object(ObjectType.AUDIT, entry_name(seq), entry)
                return entry
            except ObjectExists:
                continue          # another writer took this number: chain onto theirs
        raise IntegrityError("audit log: could not append an entry (too many concurrent writers)")

    def head(self) -> tuple[int, str]:
        """(number of the last entry, its hash); (0, GENESIS) for an empty log. The last entry
        is found by its name, so this costs one listing and one read."""
        names = self._names()
        if not names:
            return 0, GENESIS
        return int(names[-1]), self.digest(self._hashable(names[-1]))

    def entry_hash(self, seq: int) -> str | None:
        """The hash of entry `seq`, or None when there is no such entry."""
        try:
            return self.digest(self._hashable(entry_name(seq)))
        except ObjectNotFound:
            return None

    def read_after(self, seq: int) -> list[dict[str, Any]]:
        """The readable entries numbered above `seq`."""
        out = []
        for name in self._names():
            if int(name) > seq:
                try:
                    out.append(self.repo.load_json_object(ObjectType.AUDIT, name))
                except (ObjectNotFound, IntegrityError, FormatError, ValueError):
                    continue
        return out

    def read(self) -> list[dict[str, Any]]:
        """Every entry that can be read, in order (unreadable ones are skipped: see verify)."""
        out = []
        for name in self._names():
            try:
                out.append(self.repo.load_json_object(ObjectType.AUDIT, name))
            except (ObjectNotFound, IntegrityError, FormatError, ValueError):
                continue
        return out

    def verify(self) -> VerifyResult:
        entries: list[dict[str, Any]] = []
        prev = GENESIS
        expected = 1
        for name in self._names():
            seq = int(name)
            if seq != expected:
                what = "missing" if seq > expected else "duplicated"
                return VerifyResult(entries, False, f"entry {expected} is {what}", expected, prev)
            try:
                entry = self.repo.load_json_object(ObjectType.AUDIT, name)
            except ObjectNotFound:
                return VerifyResult(entries, False, f"entry {seq} is missing", seq, prev)
            except UnsupportedFormat as e:
                return VerifyResult(entries, False, f"entry {seq} cannot be verified: {e.message} "
                                                    f"(upgrade vdedup)", seq, prev)
            except (IntegrityError, FormatError, ValueError):
                return VerifyResult(entries, False, f"entry {seq} is damaged or altered", seq, prev)
            if not isinstance(entry, dict) or entry.get("seq") != seq:
                return VerifyResult(entries, False, f"entry {seq} is out of place", seq, prev)
            if entry.get("prev") != prev:
                return VerifyResult(entries, False,
                                    f"entry {seq} does not follow entry {seq - 1} (chain broken)", seq, prev)
            entries.append(entry)
            prev = self.digest(entry)
            expected += 1
        return VerifyResult(entries, True, None, None, prev)


def snapshot_audit_head(repo: Repository) -> dict[str, Any] | None:
    """What a new snapshot records of the audit log: its length and head hash. None (with a
    warning) when the last entry cannot be read: that must not stop a backup."""
    try:
        seq, head = AuditLog(repo).head()
    except (IntegrityError, ValueError) as e:
        repo.warn(f"the audit log's last entry cannot be read ({getattr(e, 'message', type(e).__name__)}); "
                  f"the snapshot does not record the audit head")
        return None
    return {"seq": seq, "hash": head}
