"""One module per command (or small group of commands); each registers itself on the app.

A command line loads only the module of the command it names (`load_for`): importing every
command module and building all of their click commands cost ~0.25 s of every run, more
than a small restore's own work. Help, an unknown name or no command loads them all."""
from __future__ import annotations

import importlib
import pkgutil

# top-level command or group -> the module that registers it (tests/test_startup.py checks
# this against what load_all registers)
COMMAND_MODULES = {
    "assets": "asset_cmds", "connect": "asset_cmds", "audit": "audit_cmd", "backup": "backup_cmd",
    "check": "check_cmds", "stats": "check_cmds", "diff": "diff_cmd", "forget": "forget_cmd",
    "key": "key_cmds", "portal": "portal_cmd", "prune": "prune_cmd", "repair": "repair_cmds",
    "init": "repository_cmds", "unlock": "repository_cmds", "restore": "restore_cmd",
    "snapshots": "snapshot_cmds", "ls": "snapshot_cmds", "sources": "sources_cmd", "verify": "verify_cmd",
}


def load_all() -> None:
    """Import every command module so its commands are registered."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def load_for(command: str) -> bool:
    """Import the module of `command` (a top-level command or group); False if unknown."""
    module = COMMAND_MODULES.get(command)
    if module is None:
        return False
    importlib.import_module(f"{__name__}.{module}")
    return True
