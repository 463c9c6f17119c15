"""Output helpers (CLI layer): data to stdout, everything else to stderr; rich for people,
JSON for scripts; progress bars only on a terminal."""
from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from vdedup.engine.events import Reporter

from .context import OPTIONS, WARNINGS

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(obj: Any) -> None:
    """Data to stdout; an object (not a list) also carries the run's repository warnings."""
    if isinstance(obj, dict) and WARNINGS:
        have = list(obj.get("warnings") or [])
        obj = {**obj, "warnings": have + [w for w in WARNINGS if w not in have]}
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def human_bytes(n: float | int | None) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def info(text: str) -> None:
    if not OPTIONS.quiet:
        err.print(text)


class RichReporter(Reporter):
    """Progress bars on stderr when it is a terminal; warnings always."""

    def __init__(self, enabled: bool):
        self.messages = enabled                 # plans and warnings in words (not with --json)
        self.enabled = enabled and err.is_terminal and not OPTIONS.quiet
        self.progress = None                    # a rich Progress, imported when first shown
        self.task = None
        self.warnings: list[str] = []

    def phase(self, name: str, total: int | None = None) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=err, transient=False)
            self.progress.start()
        self.task = self.progress.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, n)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        err.print(f"[yellow]warning:[/] {message}")

    def translation(self, plan: dict) -> None:
        if not self.messages:
            return
        fidelity = plan.get("fidelity", "exact" if plan["lossless"] else "lossy")
        err.print(f"translation of {plan['collection']!r} from {plan['source_provider']} to "
                  f"{plan['target_provider']} ({fidelity.upper() if fidelity == 'lossy' else fidelity}):",
                  markup=False)
        for step in plan["steps"]:
            accepted = f" (accepted by {step['accepted_by']})" if step.get("accepted_by") else ""
            kind = step.get("kind", "lossless" if step["lossless"] else "lossy")
            mark = {"lossless": "=", "inexact": "~"}.get(kind, "!")
            bound = f" (inexact, within {step['bound']:g})" if kind == "inexact" else ""
            err.print(f"  {mark} {step['part']}: {step['detail']}{bound}{accepted}", markup=False)
        for e in plan["errors"]:
            err.print(f"  x {e}", markup=False)

    def done(self) -> None:
        self.task = None

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def __enter__(self) -> "RichReporter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
