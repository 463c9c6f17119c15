"""What this machine last saw of a repository (repository layer): the memory that makes a
rollback visible.

Someone with write access to the storage can delete the newest snapshots, cut off the end of
the audit log, or put back an old asset or key list object; each leaves a repository that is
valid in itself. A client that remembers what it saw notices when the repository goes
backwards. The memory is `<cache root>/<repository id>/seen.json` (mode 0600): the snapshot
ids, the audit log's length and head hash, each asset's object and generation (by the keyed
id of its name, never the name) and the key list's generation. It holds no record data and no
secrets. Deleting it forgets what was seen (do that after rolling a repository back on purpose).
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from .index_cache import cache_root

FILE = "seen.json"


@dataclass
class StateMemory:
    path: str
    snapshots: set[str] = field(default_factory=set)
    audit_seq: int = 0
    audit_head: str = ""
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)     # name id -> object, generation, created
    keylist: int = 0
    exists: bool = False

    @classmethod
    def load(cls, repo_id: str) -> "StateMemory":
        path = os.path.join(cache_root(), repo_id, FILE)
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError):
            return cls(path)               # unreadable: start again (it is only a cache)
        if not isinstance(d, dict) or d.get("version") != 1:
            return cls(path)
        audit = d.get("audit") or {}
        return cls(path, set(d.get("snapshots") or []), int(audit.get("seq", 0)), str(audit.get("head", "")),
                   dict(d.get("assets") or {}), int(d.get("keylist", 0)), True)

    def save(self) -> None:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        d = {"version": 1, "snapshots": sorted(self.snapshots),
             "audit": {"seq": self.audit_seq, "head": self.audit_head},
             "assets": self.assets, "keylist": self.keylist}
        tmp = os.path.join(directory, f".{FILE}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(d, f)
        os.replace(tmp, self.path)
        self.exists = True
