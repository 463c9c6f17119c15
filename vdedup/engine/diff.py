"""Diff: what changed between two snapshots, per collection and namespace (engine layer).

Each namespace's two states are merge-walked in record-key order straight from the
manifests (streaming: nothing but the counts, and the ids only when asked for, is kept).
A namespace whose manifest entry is the same in both snapshots is not read at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from ..repository import KINDS, Repository, Row, Snapshot, changed_fields, same_manifest
from .events import Reporter


@dataclass
class NamespaceDiff:
    collection: str
    namespace: str
    status: str = "changed"           # added | removed | changed | unchanged
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    changed_by: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    schema_changed: bool = False
    ids: dict[str, list[Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"collection": self.collection, "namespace": self.namespace, "status": self.status,
             "added": self.added, "removed": self.removed, "changed": self.changed,
             "unchanged": self.unchanged, "changed_by": self.changed_by,
             "schema_changed": self.schema_changed}
        if self.ids is not None:
            d["ids"] = self.ids
        return d


@dataclass
class DiffResult:
    a: Snapshot
    b: Snapshot
    namespaces: list[NamespaceDiff] = field(default_factory=list)

    def totals(self) -> dict[str, Any]:
        t = {"added": 0, "removed": 0, "changed": 0, "unchanged": 0,
             "changed_by": {k: 0 for k in KINDS}}
        for n in self.namespaces:
            for k in ("added", "removed", "changed", "unchanged"):
                t[k] += getattr(n, k)
            for k in KINDS:
                t["changed_by"][k] += n.changed_by[k]
        return t

    def to_dict(self) -> dict[str, Any]:
        return {"message_type": "diff", "snapshot_a": self.a.id, "snapshot_b": self.b.id,
                "namespaces": [n.to_dict() for n in self.namespaces], "totals": self.totals()}


def _walk(rows_a: Iterator[Row], rows_b: Iterator[Row], nd: NamespaceDiff) -> None:
    a = next(rows_a, None)
    b = next(rows_b, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.key < b.key):
            nd.removed += 1
            if nd.ids is not None:
                nd.ids["removed"].append(a.id)
            a = next(rows_a, None)
        elif a is None or b.key < a.key:
            nd.added += 1
            if nd.ids is not None:
                nd.ids["added"].append(b.id)
            b = next(rows_b, None)
        else:
            kinds = changed_fields(a, b)
            if kinds:
                nd.changed += 1
                for k in kinds:
                    nd.changed_by[k] += 1
                if nd.ids is not None:
                    nd.ids["changed"].append({"id": b.id, "kinds": kinds})
            else:
                nd.unchanged += 1
            a, b = next(rows_a, None), next(rows_b, None)


def _same_entry(x: dict[str, Any], y: dict[str, Any]) -> bool:
    return same_manifest(x, y)


def diff(repo: Repository, a: Snapshot, b: Snapshot, with_ids: bool = False,
         reporter: Reporter | None = None) -> DiffResult:
    reporter = reporter or Reporter()
    result = DiffResult(a, b)
    names = [c["name"] for c in a.collections]
    names += [c["name"] for c in b.collections if c["name"] not in names]
    for cname in names:
        ca, cb = a.collection(cname), b.collection(cname)
        ns_a = {e["name"]: e for e in ca["namespaces"]} if ca else {}
        ns_b = {e["name"]: e for e in cb["namespaces"]} if cb else {}
        schema_changed = bool(ca and cb and ca.get("schema") != cb.get("schema"))
        for ns in list(ns_a) + [n for n in ns_b if n not in ns_a]:
            ea, eb = ns_a.get(ns), ns_b.get(ns)
            nd = NamespaceDiff(cname, ns, schema_changed=schema_changed)
            if with_ids:
                nd.ids = {"added": [], "removed": [], "changed": []}
            reporter.phase(f"diff {cname}" + (f"/{ns}" if ns else ""),
                           max(ea["count"] if ea else 0, eb["count"] if eb else 0))
            if ea is not None and eb is not None and _same_entry(ea, eb):
                nd.unchanged = ea["count"]
            else:
                _walk(repo.namespace_rows(ea) if ea else iter([]), repo.namespace_rows(eb) if eb else iter([]), nd)
            reporter.done()
            if ea is None:
                nd.status = "added"
            elif eb is None:
                nd.status = "removed"
            elif nd.added or nd.removed or nd.changed or schema_changed:
                nd.status = "changed"
            else:
                nd.status = "unchanged"
            result.namespaces.append(nd)
    return result
