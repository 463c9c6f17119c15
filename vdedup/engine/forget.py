"""Forget: choose snapshots to keep by a retention policy and remove the others (engine layer).

Restic's semantics: snapshots are grouped (by source by default), and within a group, newest
first, each rule keeps some of them; a snapshot kept by any rule is kept, the rest are
removed. Time buckets (hour, day, ISO week, month, year) are taken in UTC. Only snapshot
objects are removed; the data they alone referenced stays until `prune`.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import RetentionActive, UsageError
from ..repository import Repository, Snapshot
from .events import Reporter

GROUP_FIELDS = ("source", "host", "tags")


@dataclass(frozen=True)
class Duration:
    """A calendar duration like restic's `--keep-within 1y2m3d4h`."""
    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def before(self, t: dt.datetime) -> dt.datetime:
        """The instant this duration before t (months and years by the calendar)."""
        month0 = t.year * 12 + (t.month - 1) - self.years * 12 - self.months
        year, month = divmod(month0, 12)
        month += 1
        day = min(t.day, _days_in_month(year, month))
        shifted = t.replace(year=year, month=month, day=day)
        return shifted - dt.timedelta(days=self.days, hours=self.hours)

    def __str__(self) -> str:
        parts = [(self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h")]
        return "".join(f"{n}{u}" for n, u in parts if n) or "0h"


def _days_in_month(year: int, month: int) -> int:
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return (nxt - dt.timedelta(days=1)).day


def parse_duration(text: str) -> Duration:
    """`2d3h`, `1y6m`, `36h`, `2w`: y years, m months, w weeks, d days, h hours."""
    s = text.strip().lower()
    if not s or not re.fullmatch(r"(\d+[ymwdh])+", s):
        raise UsageError(f"bad duration {text!r}: use e.g. 2d3h, 1y6m, 2w (y, m, w, d, h)")
    amounts = {"y": 0, "m": 0, "w": 0, "d": 0, "h": 0}
    for n, unit in re.findall(r"(\d+)([ymwdh])", s):
        amounts[unit] += int(n)
    return Duration(amounts["y"], amounts["m"], amounts["d"] + 7 * amounts["w"], amounts["h"])


@dataclass(frozen=True)
class Policy:
    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration | None = None
    tags: tuple[str, ...] = ()

    def empty(self) -> bool:
        return not (self.last or self.hourly or self.daily or self.weekly or self.monthly
                    or self.yearly or self.within or self.tags)

    def to_dict(self) -> dict[str, Any]:
        return {"last": self.last, "hourly": self.hourly, "daily": self.daily, "weekly": self.weekly,
                "monthly": self.monthly, "yearly": self.yearly,
                "within": str(self.within) if self.within else None, "tags": list(self.tags)}


def _utc(s: Snapshot) -> dt.datetime:
    t = s.datetime
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc)


_BUCKETS: list[tuple[str, str, Callable[[dt.datetime], Any]]] = [
    ("hourly", "hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", "daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", "weekly", lambda t: tuple(t.isocalendar())[:2]),
    ("monthly", "monthly", lambda t: (t.year, t.month)),
    ("yearly", "yearly", lambda t: (t.year,)),
]


@dataclass
class GroupDecision:
    key: dict[str, Any]
    keep: list[tuple[Snapshot, list[str]]] = field(default_factory=list)   # (snapshot, reasons)
    remove: list[Snapshot] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.key,
                "keep": [{"id": s.id, "short_id": s.short_id, "time": s.time, "reasons": r} for s, r in self.keep],
                "remove": [{"id": s.id, "short_id": s.short_id, "time": s.time} for s in self.remove]}


def parse_group_by(text: str) -> tuple[str, ...]:
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in fields if f not in GROUP_FIELDS]
    if bad:
        raise UsageError(f"cannot group by {', '.join(bad)}: use source, host, tags or a comma list of them")
    return fields


def _group_key(s: Snapshot, group_by: tuple[str, ...]) -> dict[str, Any]:
    key: dict[str, Any] = {}
    for f in group_by:
        if f == "source":
            key["source"] = s.source
        elif f == "host":
            key["host"] = s.hostname
        elif f == "tags":
            key["tags"] = sorted(s.tags)
    return key


def apply_policy(snapshots: list[Snapshot], policy: Policy,
                 group_by: tuple[str, ...] = ("source",)) -> list[GroupDecision]:
    """Decide, per group, which snapshots a policy keeps (with the reasons) and removes."""
    if policy.empty():
        raise UsageError("no retention policy given: pass at least one --keep-* option "
                         "(forget refuses to remove every snapshot)")
    groups: dict[str, GroupDecision] = {}
    members: dict[str, list[Snapshot]] = {}
    for s in snapshots:
        key = _group_key(s, group_by)
        k = repr(sorted(key.items()))
        groups.setdefault(k, GroupDecision(key))
        members.setdefault(k, []).append(s)
    for k, snaps in members.items():
        snaps = sorted(snaps, key=lambda s: (_utc(s), s.id), reverse=True)   # newest first
        reasons: dict[str, list[str]] = {s.id: [] for s in snaps}
        for i, s in enumerate(snaps):
            if i < policy.last:
                reasons[s.id].append("last")
        for name, label, bucket in _BUCKETS:
            budget = getattr(policy, name)
            last_bucket = object()
            for s in snaps:
                if budget <= 0:
                    break
                b = bucket(_utc(s))
                if b != last_bucket:
                    reasons[s.id].append(label)
                    last_bucket = b
                    budget -= 1
        if policy.within is not None and snaps:
            limit = policy.within.before(_utc(snaps[0]))
            for s in snaps:
                if _utc(s) >= limit:
                    reasons[s.id].append(f"within {policy.within}")
        if policy.tags:
            for s in snaps:
                # a --keep-tag value "a,b" keeps snapshots carrying both a and b
                if any(set(t.split(",")) <= set(s.tags) for t in policy.tags):
                    reasons[s.id].append("tag")
        decision = groups[k]
        for s in snaps:
            if reasons[s.id]:
                decision.keep.append((s, reasons[s.id]))
            else:
                decision.remove.append(s)
    return list(groups.values())


@dataclass
class ForgetResult:
    groups: list[GroupDecision]
    dry_run: bool
    removed: list[str] = field(default_factory=list)
    retained: list[dict[str, str]] = field(default_factory=list)   # {snapshot, until}: Object Lock

    @property
    def to_remove(self) -> list[Snapshot]:
        return [s for g in self.groups for s in g.remove]

    def to_dict(self) -> dict[str, Any]:
        return {"message_type": "summary", "dry_run": self.dry_run,
                "groups": [g.to_dict() for g in self.groups],
                "kept": sum(len(g.keep) for g in self.groups),
                "removed": len(self.removed) if not self.dry_run else 0,
                "would_remove": len(self.to_remove) if self.dry_run else 0,
                "retained": self.retained}


def forget(repo: Repository, policy: Policy, group_by: tuple[str, ...] = ("source",),
           dry_run: bool = False, reporter: Reporter | None = None) -> ForgetResult:
    """Apply a policy; without dry_run, remove the snapshots it does not keep (exclusive lock)."""
    reporter = reporter or Reporter()
    if policy.empty():
        apply_policy([], policy, group_by)          # raises the usage error
    if dry_run:
        return ForgetResult(apply_policy(repo.list_snapshots(), policy, group_by), True)
    lock = repo.lock(exclusive=True, operation="forget")
    try:
        # decide on the snapshots as they are under the lock, not as they were before
        result = ForgetResult(apply_policy(repo.list_snapshots(), policy, group_by), False)
        doomed = result.to_remove
        reporter.phase("remove snapshots", len(doomed))
        for s in doomed:
            try:
                repo.remove_snapshot(s.id)
            except RetentionActive as e:    # Object Lock: it stays until its retention ends
                result.retained.append({"snapshot": s.id, "until": e.until.isoformat(timespec="seconds")
                                        if e.until else ""})
                reporter.advance(1)
                continue
            result.removed.append(s.id)
            reporter.advance(1)
        reporter.done()
        return result
    finally:
        lock.release()
