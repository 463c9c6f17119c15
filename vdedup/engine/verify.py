"""Verify: does a live collection hold, and serve, what a snapshot says it should? (engine layer)

For every namespace of the snapshot's (chosen) collections, mapped to the target by the same
plan a restore would use (so a translated copy is verified against its translation):

1. counts: the target's record count against the snapshot's;
2. records: a uniform sample of the snapshot's records is compared with the target's copies,
   bit for bit or within the bounds of the plan's inexact steps (fidelity.py); the target
   namespace is read once in full to find them (no provider-neutral fetch by id), so memory
   holds only the sample;
3. serving: K of the sampled vectors are sent as nearest-neighbour queries to the target
   (the connector's `query`), and the top-k answers are compared with the exact answers,
   computed with numpy from every vector of the snapshot by the collection's metric, in
   batches (memory: the queries and their candidates). recall@k is the share of the
   target's answers that are exact answers (ties at the k-th score count as exact). A
   connector without a query API gets its answers by brute force over the full read of
   step 2: that checks the data, not the serving, and the report says so.

The report holds counts and numbers only: no id, vector or metadata value is ever in it.
`restore` also uses `measure_inexact` to report, after a write, how far the target's own
rounding actually moved the values (a read-back of the first written records).
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..arrays import unique
from ..connectors.base import Connector
from ..errors import CollectionNotFound, NotSupported
from ..model import CollectionSchema, Metric, Record, RecordBatch
from ..repository import Repository, Row, Snapshot
from .events import Reporter
from .fidelity import Bounds, Deviation, compare
from .translate import ORIGINAL_ID, TranslationPlan, _cast, build_plan

K = 10
QUERY_METRICS = (Metric.COSINE, Metric.DOT, Metric.EUCLIDEAN, Metric.MANHATTAN)
TIE = 1e-5                   # scores this close (relative) to the k-th exact one are ties
READBACK = 256               # records read back after a restore to measure inexact steps


@dataclass
class NamespaceReport:
    collection: str            # in the snapshot
    namespace: str
    target: str                # in the target
    target_namespace: str
    expected: int
    found: int | None          # None: the target collection does not exist
    sample: Deviation = field(default_factory=Deviation)
    missing: int = 0           # sampled records the target does not hold
    queries: int = 0
    recall: float | None = None
    recall_method: str = ""
    notes: list[str] = field(default_factory=list)

    def problems(self, min_recall: float) -> list[str]:
        where = self.target + (f"/{self.target_namespace}" if self.target_namespace else "")
        out = []
        if self.found is None:
            out.append(f"{where}: the target collection does not exist")
            return out
        if self.found != self.expected:
            out.append(f"{where}: {self.found} records, the snapshot has {self.expected}")
        if self.missing:
            out.append(f"{where}: {self.missing} of {self.sample.records + self.missing} sampled records are missing")
        if self.sample.differing:
            parts = ", ".join(f"{p} {n}" for p, n in sorted(self.sample.parts.items()))
            out.append(f"{where}: {self.sample.differing} of {self.sample.records} sampled records differ ({parts})")
        if self.recall is not None and self.recall < min_recall:
            out.append(f"{where}: recall@{K} {self.recall:.4f} over {self.queries} queries is below {min_recall:g}")
        return out

    def to_dict(self, min_recall: float) -> dict[str, Any]:
        return {"collection": self.collection, "namespace": self.namespace, "target": self.target,
                "target_namespace": self.target_namespace, "expected": self.expected, "found": self.found,
                "sampled": self.sample.records + self.missing, "missing": self.missing,
                "sample": self.sample.to_dict(), "queries": self.queries,
                f"recall_at_{K}": self.recall, "recall_method": self.recall_method,
                "notes": self.notes, "problems": self.problems(min_recall)}


@dataclass
class VerifyResult:
    snapshot: Snapshot
    target: str
    min_recall: float
    seconds: float = 0.0
    namespaces: list[NamespaceReport] = field(default_factory=list)
    plans: list[dict[str, Any]] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [p for n in self.namespaces for p in n.problems(self.min_recall)]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def recall(self) -> float | None:
        """The mean recall over every query of every namespace."""
        pairs = [(n.recall, n.queries) for n in self.namespaces if n.recall is not None and n.queries]
        total = sum(q for _, q in pairs)
        return sum(r * q for r, q in pairs) / total if total else None

    def to_dict(self) -> dict[str, Any]:
        return {"message_type": "verify", "snapshot_id": self.snapshot.id, "target": self.target,
                "ok": self.ok, "seconds": round(self.seconds, 3), f"recall_at_{K}": self.recall,
                "min_recall": self.min_recall, "problems": self.problems,
                "namespaces": [n.to_dict(self.min_recall) for n in self.namespaces],
                "translation": self.plans}


@dataclass
class VerifyOptions:
    sample: int = 1000
    queries: int = 100
    min_recall: float = 0.95
    seed: int | None = None


def verify(repo: Repository, snapshot: Snapshot, connector: Connector, target: str,
           collections: list[str] | None = None, as_name: str | None = None,
           namespaces: list[str] | None = None, translation: Any = None,
           options: VerifyOptions | None = None, reporter: Reporter | None = None) -> VerifyResult:
    """Compare the target with the snapshot (see the module docstring); never writes."""
    from .restore import TranslationOptions, iter_batches, iter_records, select_collections, select_namespaces
    options = options or VerifyOptions()
    translation = translation or TranslationOptions()
    reporter = reporter or Reporter()
    rng = random.Random(options.seed)
    started = time.monotonic()
    result = VerifyResult(snapshot, target, options.min_recall)
    chosen = select_collections(snapshot, collections)
    lock = repo.read_lock("verify")       # lock-free, with a warning, on read-only storage
    try:
        work = []
        for coll in chosen:
            schema = CollectionSchema.from_dict(coll["schema"])
            plan = build_plan(schema, connector.provider, translation.metric, translation.vector,
                              translation.drop_sparse, True, translation.fold_namespaces)
            if not plan.identity:
                result.plans.append(plan.to_dict())
            for entry in select_namespaces(coll, namespaces):
                work.append((coll, plan, entry))
        total = sum(e["count"] for _, _, e in work) or 1
        for coll, plan, entry in work:
            tname, tns = plan.target_location(as_name or coll["name"], entry["name"])
            want = min(entry["count"], max(1, math.ceil(options.sample * entry["count"] / total))) \
                if options.sample > 0 else 0
            report = NamespaceReport(coll["name"], entry["name"], tname, tns, entry["count"], None)
            result.namespaces.append(report)
            if plan.errors:
                report.notes.append("the snapshot cannot be written into this provider as it is: "
                                    + "; ".join(plan.errors))
            if not connector.exists(tname):
                continue
            report.found = connector.count(tname, tns)
            label = tname + (f"/{tns}" if tns else "")
            reporter.phase(f"verify {label}", None)
            _check_namespace(repo, entry, plan, connector, tname, tns, want, options, rng, report,
                             iter_records, iter_batches)
            reporter.done()
        result.seconds = time.monotonic() - started
        return result
    finally:
        lock.release()


def _key(rid: Any) -> tuple[str, Any]:
    """Ids compare with their types: 1 and "1" are different records."""
    return (type(rid).__name__, rid)


def _reservoir(rows: Iterator[Row], n: int, rng: random.Random) -> list[Row]:
    out: list[Row] = []
    for i, row in enumerate(rows):
        if i < n:
            out.append(row)
        else:
            j = rng.randrange(i + 1)
            if j < n:
                out[j] = row
    rng.shuffle(out)
    return out


@dataclass
class _Field:
    """One dense vector queried: its name in the snapshot and in the target, and its metric."""
    source: str
    target: str
    metric: Metric
    dtype: str


def _query_fields(plan: TranslationPlan) -> tuple[list[_Field], list[str]]:
    """The dense vectors that can be queried, and notes on the ones that cannot."""
    back = {t: s for s, t in plan.vector_map.items()} if not plan.identity else {}
    fields, notes = [], []
    for v in plan.target_schema.vectors:
        src = v.name if plan.identity else back.get(v.name)
        label = v.name or "(default)"
        if src is None:
            continue
        if v.multivector or v.dtype == "binary" or v.metric not in QUERY_METRICS:
            notes.append(f"vector {label!r}: no recall measured ({v.metric.value} metric"
                         f"{', multivector' if v.multivector else ''})")
            continue
        fields.append(_Field(src, v.name, v.metric, v.dtype))
    return fields, notes


def _check_namespace(repo: Repository, entry: dict[str, Any], plan: TranslationPlan, connector: Connector,
                     tname: str, tns: str, want: int, options: VerifyOptions, rng: random.Random,
                     report: NamespaceReport, iter_records, iter_batches) -> None:
    bounds = Bounds.of(plan)
    rows = _reservoir(repo.namespace_rows(entry), want, rng)
    expected: dict[tuple[str, Any], Record] = {}
    order: list[tuple[str, Any]] = []
    for rec in iter_records(repo, entry, rows):
        t = plan.transform(rec)
        expected[_key(t.id)] = t
        order.append(_key(t.id))
    rng.shuffle(order)
    fields, notes = _query_fields(plan)
    report.notes += notes
    queries: dict[str, list[tuple[tuple, np.ndarray]]] = {}
    for f in fields:
        qs = [(k, expected[k].vectors[f.target]) for k in order if f.target in expected[k].vectors]
        queries[f.target] = qs[:options.queries]
    # the target's answers: its own query API where there is one, else brute force on the full read
    answers: dict[str, list[list[tuple]]] = {}
    brute: dict[str, _TopK] = {}
    for f in fields:
        qs = queries[f.target]
        if not qs:
            continue
        try:
            answers[f.target] = [[_key(r) for r in connector.query(tname, tns, v, K, f.target)]
                                 for _, v in qs]
        except NotSupported:
            brute[f.target] = _TopK(np.stack([_as_float(v, f.dtype) for _, v in qs]), f.metric, K)
        except CollectionNotFound:          # the namespace (partition, tenant) is not there
            answers[f.target] = [[] for _ in qs]
    seen: set[tuple[str, Any]] = set()
    try:
        for batch in connector.scan(tname, tns, 1000):
            for rec in batch.records():
                k = _key(rec.id)
                if k in expected and k not in seen:
                    seen.add(k)
                    compare(expected[k], rec, bounds, report.sample)
            for name, top in brute.items():
                mat, keep = _matrix(batch, name)
                if mat is not None:
                    top.update(mat, [_key(batch.ids[i]) for i in keep])
    except CollectionNotFound:
        pass                                # nothing there: every sampled record is missing
    report.missing = len(expected) - len(seen)
    for name, top in brute.items():
        answers[name] = top.answers()
    if not answers:
        return
    # the exact answers, from every vector of the snapshot
    exact = {f.target: _TopK(np.stack([_as_float(v, f.dtype) for _, v in queries[f.target]]), f.metric, K)
             for f in fields if f.target in answers}
    sources = {f.target: f.source for f in fields if f.target in answers}
    for batch in iter_batches(repo, entry):
        metas = batch.metadata or [None] * len(batch.ids)
        for name, top in exact.items():
            mat, keep = _matrix(batch, sources[name])
            if mat is not None:
                top.update(mat, keep, lambda i: _key(plan.target_id(batch.ids[i], metas[i])))
    total, n = 0.0, 0
    for name, top in exact.items():
        for got, accept, size in zip(answers[name], top.accepted(), top.sizes()):
            if size == 0:
                continue
            total += len({g for g in got[:K]} & accept) / min(K, size)
            n += 1
    report.queries = n
    report.recall = total / n if n else None
    report.recall_method = "target queries" if not brute else \
        "brute force over the target's full read (its connector has no query API)"


def _as_float(v: np.ndarray, dtype: str) -> np.ndarray:
    return _cast(np.asarray(v), "float32").astype(np.float64) if dtype == "bfloat16" \
        else np.asarray(v, dtype=np.float64)


def _matrix(batch: RecordBatch, name: str) -> tuple[np.ndarray | None, list[int]]:
    """The batch's vectors `name` (float64) and the rows that have one."""
    arr = batch.dense.get(name)
    if arr is None or arr.ndim != 2 or not len(arr):
        return None, []
    present = batch.dense_present.get(name)
    keep = list(range(len(arr))) if present is None else [int(i) for i in np.flatnonzero(present)]
    if not keep:
        return None, []
    sub = arr if present is None else arr[keep]
    if sub.dtype == np.uint16:                  # bfloat16 bit patterns
        sub = _cast(sub, "float32")
    return sub.astype(np.float64), keep


class _TopK:
    """The best candidates of each query over batches of vectors, by a metric (higher score
    is nearer); 2k kept so that ties at the k-th score can be recognised."""

    def __init__(self, queries: np.ndarray, metric: Metric, k: int) -> None:
        self.metric, self.k, self.keep = metric, k, 2 * k
        q = queries.astype(np.float64)
        if metric == Metric.COSINE:
            norms = np.linalg.norm(q, axis=1, keepdims=True)
            q = q / np.where(norms == 0, 1.0, norms)
        self.q = q
        self.scores = np.full((len(q), 0), -np.inf)
        self.keys = np.empty((len(q), 0), dtype=object)
        self.count = 0

    def _score(self, mat: np.ndarray) -> np.ndarray:
        q, m = self.q, self.metric
        if m == Metric.COSINE:
            norms = np.linalg.norm(mat, axis=1)
            s = q @ (mat / np.where(norms == 0, 1.0, norms)[:, None]).T
            s[:, norms == 0] = -np.inf
            return s
        if m == Metric.DOT:
            return q @ mat.T
        if m == Metric.EUCLIDEAN:
            return -((q * q).sum(1)[:, None] - 2 * (q @ mat.T) + (mat * mat).sum(1)[None, :])
        return -np.stack([np.abs(mat - row).sum(1) for row in q])         # manhattan

    def update(self, mat: np.ndarray, keys: list, key_of=None) -> None:
        """Add a batch: `mat` rows are candidates; their keys are `keys`, or `key_of(keys[j])`
        computed only for rows that become candidates."""
        s = self._score(mat)
        self.count += len(mat)
        take = min(self.keep, s.shape[1])
        idx = np.argpartition(-s, take - 1, axis=1)[:, :take] if take < s.shape[1] else \
            np.tile(np.arange(s.shape[1]), (len(s), 1))
        cols = unique(idx)
        labels = np.empty(s.shape[1], dtype=object)
        for j in cols:
            labels[j] = key_of(keys[j]) if key_of is not None else keys[j]
        cand_s = np.take_along_axis(s, idx, axis=1)
        cand_k = labels[idx]
        all_s = np.concatenate([self.scores, cand_s], axis=1)
        all_k = np.concatenate([self.keys, cand_k], axis=1)
        if all_s.shape[1] > self.keep:
            best = np.argpartition(-all_s, self.keep - 1, axis=1)[:, :self.keep]
            all_s = np.take_along_axis(all_s, best, axis=1)
            all_k = np.take_along_axis(all_k, best, axis=1)
        self.scores, self.keys = all_s, all_k

    def _ordered(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(-self.scores, axis=1, kind="stable")
        return np.take_along_axis(self.scores, order, axis=1), np.take_along_axis(self.keys, order, axis=1)

    def answers(self) -> list[list]:
        _, keys = self._ordered()
        return [list(row[:self.k]) for row in keys]

    def accepted(self) -> list[set]:
        """Per query: the exact top-k, with every candidate tied with the k-th score."""
        scores, keys = self._ordered()
        out = []
        for srow, krow in zip(scores, keys):
            finite = np.isfinite(srow)
            if not finite.any():
                out.append(set())
                continue
            kth = srow[min(self.k, int(finite.sum())) - 1]
            tol = TIE * max(1.0, abs(float(kth)))
            out.append({k for s, k in zip(srow, krow) if np.isfinite(s) and s >= kth - tol})
        return out

    def sizes(self) -> list[int]:
        """Per query: how many vectors were candidates at all."""
        return [self.count] * len(self.q)


def measure_inexact(repo: Repository, entry: dict[str, Any], plan: TranslationPlan, connector: Connector,
                    tname: str, tns: str, limit: int = READBACK) -> Deviation:
    """After a restore: read back up to `limit` records of the target namespace and compare
    them with what the plan wrote, to report what the target's rounding actually did."""
    from .restore import iter_records
    dev = Deviation()
    got: dict[tuple[str, Any], Record] = {}
    for batch in connector.scan(tname, tns, limit):
        for rec in batch.records():
            got[_key(rec.id)] = rec
        break
    if not got:
        return dev
    # the target id depends on the metadata only where the snapshot carries original ids
    by_meta = not plan.identity and any(f.name == ORIGINAL_ID for f in plan.source_schema.metadata_fields)
    rows = []
    for r in repo.namespace_rows(entry):
        if _key(plan.target_id(r.id, r.meta if by_meta else None)) in got:
            rows.append(r)
            if len(rows) == len(got):
                break
    bounds = Bounds.of(plan)
    for rec in iter_records(repo, entry, rows):
        t = plan.transform(rec)
        compare(t, got[_key(t.id)], bounds, dev)
    return dev
