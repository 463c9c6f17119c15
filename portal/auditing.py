"""Audit entries of portal operations (portal layer).

The same log the CLI writes (vdedup.assets.audit), with the operation named `portal ...`
(`portal connect`, `portal backup`, `portal restore`, `portal check`) so that the log tells
where an operation came from. As in the CLI: never a secret, never record data, and for a
failure the error's class name and exit code only; a failure to write the entry does not
fail the operation (a warning goes to standard error).
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any

from vdedup.assets.audit import AuditLog
from vdedup.errors import VdedupError
from vdedup.repository import Repository

PREFIX = "portal "
BACKUP_OPERATIONS = ("backup", "ai-assets backup", "portal backup")
CHECK_OPERATIONS = ("check", "portal check")


def record(repo: Repository, operation: str, error: BaseException | None = None, *,
           asset: str | None = None, snapshot: str | None = None,
           counts: dict[str, Any] | None = None, removed: list[str] | None = None) -> None:
    if error is None:
        outcome, code, err_class = "ok", 0, None
    else:
        outcome, err_class = "error", type(error).__name__
        code = error.exit_code if isinstance(error, VdedupError) else 1
    try:
        AuditLog(repo).append(PREFIX + operation, outcome, asset=asset, snapshot=snapshot,
                              counts={k: v for k, v in (counts or {}).items() if v is not None},
                              exit_code=code, error=err_class, removed=removed)
    except Exception as e:
        if os.environ.get("VDEDUP_DEBUG"):
            traceback.print_exc()
        print(f"vdedup portal: warning: could not write the audit entry ({type(e).__name__})", file=sys.stderr)
