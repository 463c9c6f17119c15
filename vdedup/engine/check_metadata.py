"""Check of everything beside packs, index and snapshots (engine layer; called by check.py).

Key files against the key list, the credential store, the audit log's chain, and (rollback
and tamper evidence) the audit log against the snapshots and against what this machine
saw last. Kept apart from check.py so that each half stays readable.
"""
from __future__ import annotations

from typing import Any

from ..assets.integrity import check_assets, check_audit
from ..repository import Repository, Snapshot
from ..repository.keycheck import check_keys
from ..repository.state_memory import StateMemory
from .rollback import audit_problems, look


def check_metadata(repo: Repository, snaps: list[Snapshot], result: Any) -> None:
    """Add errors, warnings and counts to a CheckResult."""
    keys = check_keys(repo)
    result.errors.extend(keys.errors)
    result.warnings.extend(keys.warnings)
    result.counts["key_files"] = keys.key_files
    assets = check_assets(repo)
    audit, verified = check_audit(repo)
    for part in (assets, audit):
        result.errors.extend(part.errors)
        result.warnings.extend(part.warnings)
        result.counts.update(part.counts)
    # rollback: against what this machine saw, and the audit log against the snapshots
    memory = StateMemory.load(repo.id)
    result.errors.extend(look(repo, memory).problems)
    if verified.ok:
        names = set(repo.snapshot_names())
        for p in audit_problems(repo, verified.entries, snaps, names, memory):
            if p not in result.errors:
                result.errors.append(p)
