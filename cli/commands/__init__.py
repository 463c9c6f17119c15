"""One module per command (or small group of commands); each registers itself on the app."""
from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    """Import every command module so its commands are registered."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
