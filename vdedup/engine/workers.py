"""How many workers an operation uses (engine layer)."""
from __future__ import annotations

import os

from ..errors import UsageError

MAX_WORKERS = 64


def default_workers() -> int:
    """The machine's cores (those this process may run on)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def resolve_workers(workers: int | None) -> int:
    """`workers` as given (1-64), or the default when None."""
    if workers is None:
        return default_workers()
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(f"--workers must be between 1 and {MAX_WORKERS}, not {workers}")
    return workers
