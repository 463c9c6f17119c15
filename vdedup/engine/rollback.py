"""Rollback and tamper evidence (engine layer).

Every object is authenticated, but an attacker with write access can still delete the newest
snapshots, cut off the end of the audit log, or put back an older asset or key list object:
each leaves a repository valid in itself. Three kinds of evidence catch that:

- what this machine saw last (repository/state_memory.py): compared when a command opens the
  repository (`observe`: warnings) and by `check` (errors);
- the audit head each snapshot records: the log must still hold that entry, unchanged;
- the audit log against the snapshots: a backup the log records whose snapshot is gone,
  while no forget entry lists it (`removed`), was not removed by vdedup.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..assets.audit import AuditLog
from ..assets.store import AssetStore
from ..errors import IntegrityError, ObjectNotFound, VdedupError
from ..repository import Repository, Snapshot
from ..repository.state_memory import StateMemory

BACKUP_OPERATIONS = ("backup", "ai-assets backup", "portal backup")


@dataclass
class Seen:
    """The repository as it is now, and what of the memory must be kept because it shows the
    repository went backwards (so the warning stays until the memory is deleted)."""
    problems: list[str] = field(default_factory=list)
    snapshots: set[str] = field(default_factory=set)
    keep_snapshots: set[str] = field(default_factory=set)
    audit: tuple[int, str] | None = None          # None: keep the remembered head
    keylist: int = 0
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)


def _forgotten(entry: dict[str, Any]) -> set[str] | None:
    """Snapshot ids an entry says were removed; None for an entry of a vdedup that removed
    snapshots without listing them (then any of them may have been)."""
    if "removed" in entry:
        return set(entry.get("removed") or ())
    if entry.get("operation") == "forget" or (entry.get("counts") or {}).get("forgotten"):
        return None
    return set()


def removed_after(entries: list[dict[str, Any]], seq: int) -> set[str] | None:
    """Every snapshot id the entries numbered above `seq` say a forget removed (None: some
    forget did not say which)."""
    out: set[str] = set()
    for e in entries:
        if int(e.get("seq", 0)) <= seq:
            continue
        got = _forgotten(e)
        if got is None:
            return None
        out |= got
    return out


def look(repo: Repository, memory: StateMemory) -> Seen:
    """Compare the repository with what this machine saw last."""
    seen = Seen()
    log = AuditLog(repo)
    seen.snapshots = set(repo.snapshot_names())
    names = log._names()
    last = int(names[-1]) if names else 0
    # snapshots that vanished without a forget
    gone = memory.snapshots - seen.snapshots if memory.exists else set()
    if gone:
        explained = removed_after(log.read_after(memory.audit_seq), memory.audit_seq)
        if explained is not None:
            seen.keep_snapshots = gone - explained
    if seen.keep_snapshots:
        ids = ", ".join(sorted(s[:8] for s in seen.keep_snapshots))
        seen.problems.append(f"{len(seen.keep_snapshots)} snapshot(s) this machine saw are gone and no forget "
                             f"removed them ({ids}): the repository may have been rolled back")
    # the audit log: never shorter, and the entry we saw last unchanged
    if memory.exists and last < memory.audit_seq:
        seen.problems.append(f"the audit log went backwards: this machine saw {memory.audit_seq} entries, "
                             f"it now has {last}")
    elif memory.exists and memory.audit_seq and memory.audit_head:
        try:
            h = log.entry_hash(memory.audit_seq)
        except (IntegrityError, ValueError):
            h = None
        if h != memory.audit_head:
            seen.problems.append(f"audit entry {memory.audit_seq} is not the one this machine saw: the audit "
                                 f"log was rewritten")
    if not any(p.startswith(("the audit log went", "audit entry")) for p in seen.problems):
        seen.audit = (last, log.entry_hash(last) or "") if last else (0, "")
    # the key list
    gens = repo.keylist_generations()
    seen.keylist = max(gens, default=0)
    if memory.exists and seen.keylist < memory.keylist:
        seen.problems.append(f"the key list went backwards: generation {seen.keylist}, this machine saw "
                             f"{memory.keylist} (an old one was put back, or it was deleted)")
    # assets: an old record put back after a rotate has a lower generation
    store = AssetStore(repo)
    objects: dict[str, list[str]] = {}
    for n in repo.asset_object_names():
        objects.setdefault(n.split("-", 1)[0], []).append(n)
    for name_id, objs in objects.items():
        before = memory.assets.get(name_id)
        if before and before.get("object") in objs:
            seen.assets[name_id] = before
            continue
        records = []
        for o in objs:
            try:
                a = store._load(o)
            except (ObjectNotFound, VdedupError, ValueError, KeyError, TypeError, AttributeError):
                continue
            if a is not None:
                records.append(a)
        if not records:
            continue
        newest = max(records, key=lambda a: a._order())
        now = {"object": newest.object_name, "generation": newest.generation, "created": newest.created}
        if before and before.get("created") == newest.created and newest.generation < before.get("generation", 0):
            seen.problems.append(f"asset {newest.name} went back from generation {before['generation']} to "
                                 f"{newest.generation}: an old record was put back (its URL, secret or policy "
                                 f"may be old ones)")
            seen.assets[name_id] = before
        else:
            seen.assets[name_id] = now
    return seen


def remember(memory: StateMemory, seen: Seen) -> None:
    memory.snapshots = seen.snapshots | seen.keep_snapshots
    if seen.audit is not None:
        memory.audit_seq, memory.audit_head = seen.audit
    memory.keylist = max(memory.keylist, seen.keylist)
    memory.assets = seen.assets
    memory.save()


def observe(repo: Repository) -> list[str]:
    """Compare with what this machine saw, remember what it sees now; the problems found.
    Never fails the command: a failure to look is itself the one problem returned."""
    try:
        memory = StateMemory.load(repo.id)
        seen = look(repo, memory)
        remember(memory, seen)
        return seen.problems
    except (VdedupError, OSError) as e:
        return [f"could not compare the repository with what this machine saw last "
                f"({getattr(e, 'message', None) or type(e).__name__})"]


def audit_problems(repo: Repository, entries: list[dict[str, Any]], snaps: list[Snapshot],
                   snapshot_names: set[str], memory: StateMemory | None = None) -> list[str]:
    """What the audit log (its verified `entries`) says is wrong: a cut-off or rewritten end
    (against the memory and the heads snapshots recorded), and backups whose snapshot is gone
    although no forget removed it."""
    log = AuditLog(repo)
    n = len(entries)
    hashes = [log.digest(e) for e in entries]
    problems = []
    if memory is not None and memory.exists and memory.audit_seq:
        if memory.audit_seq > n:
            problems.append(f"the audit log was cut off: this machine saw {memory.audit_seq} entries "
                            f"(head {memory.audit_head[:16]}), the log has {n}")
        elif memory.audit_head and hashes[memory.audit_seq - 1] != memory.audit_head:
            problems.append(f"audit entry {memory.audit_seq} is not the one this machine saw: the log was rewritten")
    recorded = [s for s in snaps if isinstance(s.audit_head, dict)]
    for s in sorted(recorded, key=lambda s: -int(s.audit_head.get("seq", 0))):
        seq, h = int(s.audit_head.get("seq", 0)), s.audit_head.get("hash")
        if seq > n:
            problems.append(f"the audit log was cut off: snapshot {s.short_id} ({s.time[:19]}) was made when it "
                            f"had {seq} entries; it has {n}")
            break
        if seq and h and hashes[seq - 1] != h:
            problems.append(f"audit entry {seq} is not the one snapshot {s.short_id} saw: the log was rewritten")
            break
    if n == 0 and recorded and not problems:
        problems.append(f"the audit log is empty, but {len(recorded)} snapshot(s) were made by a vdedup "
                        f"that logs every backup")
    for e in entries:
        sid = e.get("snapshot")
        if e.get("operation") in BACKUP_OPERATIONS and e.get("outcome") == "ok" and sid \
                and sid not in snapshot_names:
            explained = removed_after(entries, int(e.get("seq", 0)))
            if explained is not None and sid not in explained:
                problems.append(f"snapshot {sid[:8]} (backup of {str(e.get('time', ''))[:19]}, audit entry "
                                f"{e.get('seq')}) is gone, and no forget removed it: the repository was rolled "
                                f"back or the snapshot deleted")
    return problems
