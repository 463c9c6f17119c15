"""Showing discovered indexes and picking some of them at a terminal (CLI layer).

Used by `vdedup sources` (the table) and by `connect` at a terminal (the numbered table and
the question "which ones?").
"""
from __future__ import annotations

import re
import sys

from rich.table import Table

from vdedup.errors import UsageError
from vdedup.model import DiscoveredIndex

ALL = "all"
MAX_NAMESPACES_SHOWN = 4


def namespaces_text(d: DiscoveredIndex) -> str:
    """`3: (default), alpha, beta`; `-` when not known."""
    if not d.namespaces:
        return "-"
    names = [n or "(default)" for n in d.namespaces]
    shown = ", ".join(names[:MAX_NAMESPACES_SHOWN]) + (", …" if len(names) > MAX_NAMESPACES_SHOWN else "")
    return f"{len(names)}: {shown}"


def discovered_table(found: list[DiscoveredIndex], numbered: bool = False) -> Table:
    table = Table(box=None, pad_edge=False)
    cols = (["#"] if numbered else []) + ["Name", "Records", "Dims", "Metric", "Namespaces", "Note"]
    for col in cols:
        table.add_column(col, overflow="fold", no_wrap=col in ("#", "Records", "Dims"),
                         justify="right" if col in ("#", "Records", "Dims") else "left")
    for k, d in enumerate(found, 1):
        row = [str(k)] if numbered else []
        row += [d.name, "-" if d.count is None else f"{d.count:,}", "-" if d.dims is None else str(d.dims),
                d.metric or "-", namespaces_text(d), f"cannot be backed up: {d.problem}" if d.problem else ""]
        table.add_row(*row)
    return table


def parse_choice(text: str, found: list[DiscoveredIndex]) -> list[str]:
    """The names an answer picks: `all`, or numbers and ranges of the numbered table
    (`1,3`, `2-4`, `1 3`), or names. [] stands for `all` (every index, those created later
    too). Raises UsageError saying what is wrong with the answer."""
    text = text.strip()
    if not text:
        raise UsageError("choose at least one index (numbers such as 1,3, or 'all')")
    usable = [d for d in found if d.problem is None]
    if text.lower() == ALL:
        if len(usable) < len(found):
            raise UsageError("some indexes cannot be backed up: choose the others by number")
        return []
    by_name = {d.name: d for d in found}
    chosen: list[DiscoveredIndex] = []
    for part in (p for p in re.split(r"[,\s]+", text) if p):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if not 1 <= lo <= hi <= len(found):
                raise UsageError(f"{part}: choose numbers from 1 to {len(found)}")
            picked = found[lo - 1:hi]
        elif part in by_name:
            picked = [by_name[part]]
        else:
            raise UsageError(f"{part!r} is neither a number of the list nor an index found")
        for d in picked:
            if d.problem is not None:
                raise UsageError(f"{d.name} cannot be backed up: {d.problem}")
            if d not in chosen:
                chosen.append(d)
    return [d.name for d in chosen]


def ask_choice(found: list[DiscoveredIndex], attempts: int = 3) -> list[str]:
    """Ask which indexes to back up (standard input is a terminal); a wrong answer is
    explained and asked again, a few times."""
    for attempt in range(attempts):
        sys.stderr.write("indexes to back up (numbers such as 1,3 or 2-4, or 'all'): ")
        sys.stderr.flush()
        line = sys.stdin.readline()
        if not line:
            raise UsageError("no answer: which indexes to back up (pass --collection NAME)")
        try:
            return parse_choice(line, found)
        except UsageError as e:
            if attempt == attempts - 1:
                raise
            sys.stderr.write(f"{e.message}\n")
    raise AssertionError("unreachable")
