"""Check of the credential store and the audit log (assets layer; called by engine/check).

Every object in assets/ must open, belong to the name it holds and have a secret that opens;
every object in audit/ must be an entry of an unbroken chain. Junk (a name that is not one
of ours, bytes that do not authenticate) is an error: a command that lists assets skips it
with a warning, but only `check` says what it is.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..backend.base import FileType
from ..errors import IntegrityError, ObjectNotFound
from ..repository import Repository
from .audit import AuditLog, VerifyResult
from .store import Asset, AssetStore

ASSET_OBJECT_RE = re.compile(r"[0-9a-f]{32}-[0-9a-f]{16}")


@dataclass
class MetaCheck:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def check_assets(repo: Repository) -> MetaCheck:
    out = MetaCheck()
    store = AssetStore(repo)
    records: dict[str, list[Asset]] = {}
    for object_name, _ in repo.backend.list(FileType.ASSETS):
        where = f"assets/{object_name[:16]}"
        if not ASSET_OBJECT_RE.fullmatch(object_name):
            out.errors.append(f"{where} is not an asset object (junk)")
            continue
        try:
            a = store._load(object_name)
        except ObjectNotFound:
            continue
        except (IntegrityError, ValueError, KeyError, TypeError, AttributeError) as e:
            why = e.message if isinstance(e, IntegrityError) else f"malformed record ({type(e).__name__})"
            out.errors.append(f"{where} cannot be read: {why}")
            continue
        if a is None:
            continue
        if object_name.split("-", 1)[0] != store._name_id(a.name):
            out.errors.append(f"{where} does not belong to the name it holds (moved or replaced)")
            continue
        try:
            store.secret(a)
        except IntegrityError as e:
            out.errors.append(f"{where} (asset {a.name}): its secret cannot be opened: {e.message}")
            continue
        records.setdefault(a.name, []).append(a)
    for name, recs in sorted(records.items()):
        if len(recs) > 1:
            out.warnings.append(f"asset {name}: {len(recs)} records (left by an interrupted rotate; "
                                f"the newest, generation {max(r.generation for r in recs)}, counts)")
    out.counts["assets"] = len(records)
    return out


def check_audit(repo: Repository) -> tuple[MetaCheck, VerifyResult]:
    out = MetaCheck()
    log = AuditLog(repo)
    junk = [n for n, _ in repo.backend.list(FileType.AUDIT) if not (n.isdigit() and len(n) == 12)]
    for n in junk:
        out.errors.append(f"audit/{n[:16]} is not an audit entry (junk)")
    result = log.verify()
    if not result.ok:
        out.errors.append(f"audit log: {result.problem} (position {result.position})")
    out.counts["audit_entries"] = len(result.entries)
    return out, result
