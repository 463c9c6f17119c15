"""How many workers an operation uses, and the garbage collector while it runs (engine layer)."""
from __future__ import annotations

import contextlib
import functools
import gc
import os
import threading
from typing import Callable, Iterator, TypeVar

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


GC_THRESHOLDS = (50_000, 20, 100)     # (the interpreter's default is 700, 10, 10)
_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def few_collections() -> Iterator[None]:
    """Fewer cyclic garbage collections while a backup or restore runs.

    Moving records allocates millions of short-lived dicts, lists and strings, which free
    themselves by reference counting; with the default thresholds the collector still walks
    the young ones every 700 allocations and, every hundred such walks, every object the
    process holds (imports included): about a sixth of a nightly backup's CPU time at 200k
    records (benchmarks/results/profile.md).
    Here the objects alive at the start are frozen (never walked again) and collections run
    about a hundred times less often. Nested and concurrent uses share one setting; the last
    one out restores the previous thresholds and unfreezes."""
    global _gc_users, _gc_saved
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)
                gc.unfreeze()
                _gc_saved = None


F = TypeVar("F", bound=Callable)


def with_few_collections(fn: F) -> F:
    """Decorator: run `fn` inside few_collections()."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with few_collections():
            return fn(*args, **kwargs)
    return run  # type: ignore[return-value]
