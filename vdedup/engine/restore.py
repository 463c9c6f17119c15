"""Restore: write a snapshot's records into a target through a connector (engine layer).

Modes: into new collections (default; a non-empty target is refused unless `overwrite`),
in place (`restore_in_place`: the plan from the live data, the user's confirmation, a safety
snapshot of the current data, then only the difference is written: records absent from the
snapshot are deleted, changed ones rewritten, unchanged ones left alone), selective
(collections, namespaces, ids, a metadata filter) and dry run (the plan, nothing written or
created anywhere: the target is only read, and a target that does not exist yet is empty).

A target URL that names a collection is where the data goes (`target_name`). Inexact steps
of a plan (the target's own float rounding) are listed with the result, and what they did is
measured after the write by reading back the first records written (verify.measure_inexact).

Records come from the repository as verified batches (`Repository.read_namespace`: every
block fetched, decrypted and decompressed once in the usual case, every payload and
manifest blob checked against its content id, blocks and batches decoded ahead by
`workers` threads while this module writes), so nothing unverified reaches the target.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ..connectors.base import Connector
from ..errors import CollectionNotFound, NotInSnapshot, TargetNotEmpty, TranslationRefused, UsageError
from ..model import CollectionSchema, Metric, Record, RecordBatch
from ..repository import Repository, Row, Snapshot, changed_fields
from .capabilities import CAPABILITIES, canonical_provider
from .events import Reporter
from .shared_ids import count_shared_ids
from .translate import ORIGINAL_ID, accepts_id, build_plan, check_plan, decode_original_id, id_kind
from .where import Predicate
from .workers import resolve_workers, with_few_collections

if TYPE_CHECKING:
    from .scaleout import Scatter

BATCH_SIZE = 1000
SHARE_ROWS = 1_000_000        # records of a namespace a restore task writes (with scatter)


@dataclass
class Selection:
    """What part of a snapshot to restore; everything by default."""
    collections: list[str] | None = None
    namespaces: list[str] | None = None
    ids: set[Any] | None = None
    where: Predicate | None = None

    @property
    def is_partial(self) -> bool:
        return bool(self.namespaces or self.ids is not None or self.where is not None)

    def matches(self, row: Row) -> bool:
        if self.ids is not None and row.id not in self.ids and str(row.id) not in self.ids:
            return False
        if self.where is not None:
            view = dict(row.meta) if isinstance(row.meta, dict) else {}
            view.update(id=row.id, document=row.doc, uri=row.uri)
            return self.where(view)
        return True


@dataclass
class TranslationOptions:
    """The user's explicit answers to what a translation cannot decide alone."""
    metric: Metric | None = None
    vector: str | None = None
    drop_sparse: bool = False
    allow_lossy: bool = False
    fold_namespaces: bool = False
    exact: bool = False          # refuse the target's own rounding too (inexact steps)


@dataclass
class NamespacePlan:
    collection: str          # name in the snapshot
    target: str              # name in the target
    namespace: str
    write: int = 0
    delete: int = 0
    unchanged: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RestoreResult:
    snapshot: Snapshot
    target: str
    seconds: float
    collections: dict[str, int] = field(default_factory=dict)   # target name -> records written
    warnings: list[str] = field(default_factory=list)
    plan: list[NamespacePlan] = field(default_factory=list)
    translations: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    safety_snapshot: str | None = None
    inexact: list[dict[str, Any]] = field(default_factory=list)    # the plans' inexact steps
    observed: dict[str, dict[str, Any]] = field(default_factory=dict)  # target -> what they did

    def to_dict(self) -> dict[str, Any]:
        return {"message_type": "summary", "snapshot_id": self.snapshot.id, "target": self.target,
                "dry_run": self.dry_run, "seconds": round(self.seconds, 3),
                "collections": self.collections, "records": sum(self.collections.values()),
                "plan": [p.to_dict() for p in self.plan], "translation": self.translations,
                "inexact": self.inexact, "observed": self.observed,
                "safety_snapshot": self.safety_snapshot,
                "warnings": self.warnings}


def target_name(snapshot: Snapshot, collections: list[str] | None, as_name: str | None,
                url_name: str | None, fold_namespaces: bool = False) -> str | None:
    """The name the restored collection gets: `--as`, or the collection the target URL names
    (a URL naming one is where the data goes). A URL naming one while the snapshot (after
    --collection) holds several is a usage error, as is a URL and --as naming different ones."""
    if not url_name:
        return as_name
    if as_name and as_name != url_name:
        raise UsageError(f"the target URL names collection {url_name!r} and --as names {as_name!r}: "
                         "give one of them")
    chosen = select_collections(snapshot, collections)
    if len(chosen) != 1 and not fold_namespaces:
        names = ", ".join(repr(c["name"]) for c in chosen[:5]) + (", ..." if len(chosen) > 5 else "")
        raise UsageError(f"the target URL names one collection ({url_name!r}) but snapshot "
                         f"{snapshot.short_id} holds {len(chosen)} ({names}): choose one with "
                         "--collection, or give a URL that names none")
    return url_name


def select_collections(snap: Snapshot, names: list[str] | None) -> list[dict[str, Any]]:
    if not names:
        return list(snap.collections)
    out = []
    for name in names:
        c = snap.collection(name)
        if c is None:
            raise NotInSnapshot(f"collection {name!r} is not in snapshot {snap.short_id}")
        out.append(c)
    return out


def select_namespaces(coll: dict[str, Any], names: list[str] | None) -> list[dict[str, Any]]:
    if not names:
        return list(coll["namespaces"])
    have = {e["name"]: e for e in coll["namespaces"]}
    missing = [n for n in names if n not in have]
    if missing and len(missing) == len(names):
        raise NotInSnapshot(f"namespace {missing[0]!r} is not in collection {coll['name']!r}")
    return [have[n] for n in names if n in have]


def iter_records(repo: Repository, entry: dict[str, Any],
                 rows: Iterable[Row] | None = None) -> Iterator[Record]:
    """Records of a namespace entry (or of the given rows of it), in storage order, verified."""
    for batch in iter_batches(repo, entry, rows):
        yield from batch.records()


def iter_batches(repo: Repository, entry: dict[str, Any], rows: Iterable[Row] | None = None,
                 batch_size: int = BATCH_SIZE, namespace: str = "", workers: int | None = 1,
                 metadata_json: bool = False) -> Iterator[RecordBatch]:
    """The records of a namespace entry (or of the given rows of it) as batches, every vector
    payload verified against its content id; `workers` threads read and decode ahead while
    the caller writes (None: the machine's cores). `metadata_json`: batches may carry the
    stored JSON text of their metadata instead of decoded values (RecordBatch.metadata_json),
    for a connector that takes it."""
    return repo.read_namespace(entry, rows, batch_size, namespace, resolve_workers(workers), metadata_json)


def _writer(connector: Connector, fresh: bool) -> Any:
    """connector.write, or its write_new when every record written is new to the
    collection (a restore into a collection it has just created)."""
    return connector.write_new if fresh else connector.write


def _write_batches(connector: Connector, name: str, batches: Iterator[RecordBatch],
                   reporter: Reporter, fresh: bool = False) -> int:
    written = 0
    write = _writer(connector, fresh)
    for batch in batches:
        write(name, batch)
        reporter.advance(len(batch))
        written += len(batch)
    return written


def _write_all(connector: Connector, name: str, namespace: str, records: Iterator[Record],
               reporter: Reporter, batch_size: int, fresh: bool = False) -> int:
    written = 0
    buf: list[Record] = []
    write = _writer(connector, fresh)
    for rec in records:
        buf.append(rec)
        if len(buf) >= batch_size:
            write(name, RecordBatch.from_records(buf, namespace))
            reporter.advance(len(buf))
            written += len(buf)
            buf = []
    if buf:
        write(name, RecordBatch.from_records(buf, namespace))
        reporter.advance(len(buf))
        written += len(buf)
    return written


def _settle(connector: Connector, name: str, namespace: str) -> None:
    """Wait until what was written is readable (eventually consistent providers)."""
    connector.settle(name, namespace)


def _finish(connector: Connector, name: str) -> None:
    """Tell the connector a collection is complete (e.g. build indexes after a bulk load)."""
    connector.finish(name)


def _with_original_id_type(repo: Repository, schema: CollectionSchema, parts: list) -> CollectionSchema:
    """A translation back gives records their original ids again (from the metadata field
    `_vdedup_id`), whose type the schema of the translated copy cannot know: the first
    record tells it."""
    for coll, tplan, entry, _ in parts:
        if tplan.identity or not any(f.name == ORIGINAL_ID for f in tplan.source_schema.metadata_fields):
            continue
        for row in repo.namespace_rows(entry):
            meta = row.meta if isinstance(row.meta, dict) else {}
            original = decode_original_id(meta.get(ORIGINAL_ID))
            kind = id_kind(original if original is not None else row.id)
            if kind != schema.id_type and accepts_id(tplan.caps, kind):
                return replace(schema, id_type=kind)
            return schema
    return schema


def _refuse_shared_ids(repo: Repository, connector: Connector, targets: dict[str, list], selection: Selection,
                       dry_run: bool, result: RestoreResult) -> None:
    """A target holding an id once per collection (Milvus) cannot take an id that several
    namespaces going into one collection share (its connector refuses to move an id between
    partitions, at the first batch holding one): refused here, before anything is written
    (shown, not refused, by a dry run). A snapshot of the same provider cannot hold such
    ids, so identity restores are not read."""
    caps = CAPABILITIES.get(canonical_provider(connector.provider))
    if caps is None or caps.ids_per_namespace:
        return
    for tname, parts in targets.items():
        if len(parts) < 2 or all(tplan.identity for _, tplan, _, _ in parts):
            continue
        shared = count_shared_ids(repo, [entry for _, _, entry, _ in parts], selection.matches)
        if not shared:
            continue
        what = (f"{shared} record id(s) occur in more than one namespace of the snapshot, but "
                f"{caps.provider} holds an id once per collection ({tname!r})")
        how = "restore the namespaces one at a time (--namespace N --as NAME)"
        if dry_run:
            result.warnings.append(f"{what}: the restore would be refused (exit 19); {how}")
        else:
            raise TranslationRefused(f"{what}: {how}")


def _counting(rows: Iterator[Row], plan: NamespacePlan) -> Iterator[Row]:
    for row in rows:
        plan.write += 1
        yield row


@with_few_collections
def restore(repo: Repository, snapshot: Snapshot, connector: Connector, target: str,
            collections: list[str] | None = None, as_name: str | None = None,
            overwrite: bool = False, reporter: Reporter | None = None,
            batch_size: int = BATCH_SIZE, selection: Selection | None = None,
            dry_run: bool = False, translation: TranslationOptions | None = None,
            workers: int | None = None, scatter: "Scatter | None" = None,
            share_rows: int = SHARE_ROWS) -> RestoreResult:
    """Write the snapshot's (selected) records into `connector`'s database, translating the
    schema and records when the target is another provider (see translate.py).

    With `scatter` (engine/scaleout.py), each namespace restored whole and untranslated is
    written by tasks, one per share of about `share_rows` records of its manifest parts;
    the collection is created, settled, counted and finished here."""
    reporter = reporter or Reporter()
    translation = translation or TranslationOptions()
    started = time.monotonic()
    selection = selection or Selection()
    chosen = select_collections(snapshot, collections or selection.collections)
    if as_name and len(chosen) != 1 and not translation.fold_namespaces:
        raise UsageError("--as needs exactly one collection (use --collection NAME)")
    lock = repo.read_lock("restore")       # lock-free, with a warning, on read-only storage
    result = RestoreResult(snapshot, target, 0.0, dry_run=dry_run)
    try:
        # every target is checked before anything is written; several snapshot collections
        # may go into one target collection (--fold-namespaces), which is created once
        targets: dict[str, list[tuple[dict[str, Any], Any, dict[str, Any], str]]] = {}
        schemas: dict[str, CollectionSchema] = {}
        for coll in chosen:
            schema = CollectionSchema.from_dict(coll["schema"])
            tplan = build_plan(schema, connector.provider, translation.metric, translation.vector,
                               translation.drop_sparse, translation.allow_lossy,
                               translation.fold_namespaces, translation.exact)
            if not tplan.identity:
                result.translations.append(tplan.to_dict())
                reporter.translation(result.translations[-1])
            result.inexact += [{"collection": coll["name"], **st.to_dict()} for st in tplan.inexact_steps]
            if not dry_run:
                check_plan(tplan)
            base = as_name or coll["name"]
            for entry in select_namespaces(coll, selection.namespaces):
                tname, tns = tplan.target_location(base, entry["name"])
                targets.setdefault(tname, []).append((coll, tplan, entry, tns))
                if tname not in schemas:
                    schemas[tname] = tplan.target_schema.renamed(tname)
                namespaces = schemas[tname].namespaces
                if tns not in namespaces:
                    schemas[tname] = replace(schemas[tname], namespaces=tuple(namespaces) + (tns,))
        if as_name and len({p.fold[0] if p.fold else c["name"] for parts in targets.values()
                            for c, p, _, _ in parts}) > 1:
            raise UsageError("--as needs the chosen collections to go into one collection")
        _refuse_shared_ids(repo, connector, targets, selection, dry_run, result)
        existing = {}
        for tname, parts in targets.items():
            existing[tname] = connector.exists(tname)
            if existing[tname] and not overwrite:
                if any(connector.count(tname, tns) > 0 for *_, tns in parts):
                    if not dry_run:
                        raise TargetNotEmpty(f"target collection {tname!r} at {target} already holds records")
                    result.warnings.append(f"target collection {tname!r} already holds records: the restore "
                                           "would be refused (exit 16) without --overwrite or another --as")
        for name, parts in targets.items():
            if dry_run:
                for coll, _, entry, tns in parts:
                    np_ = NamespacePlan(coll["name"], name, tns)
                    for row in repo.namespace_rows(entry):
                        if selection.matches(row):
                            np_.write += 1
                    result.plan.append(np_)
                continue
            if not existing[name]:
                connector.create_collection(_with_original_id_type(repo, schemas[name], parts), name)
            written = 0
            # one namespace into a collection made just now: every record written is new to it
            fresh = not existing[name] and len(parts) == 1
            for coll, tplan, entry, tns in parts:
                label = name + (f"/{tns}" if tns else "")
                np_ = NamespacePlan(coll["name"], name, tns)
                reporter.phase(f"restore {label}", None if selection.is_partial else entry["count"])
                rows = None
                if selection.is_partial:
                    rows = _counting((r for r in repo.namespace_rows(entry) if selection.matches(r)), np_)
                else:
                    np_.write = entry["count"]
                if scatter is not None and connector.concurrent_writes and tplan.identity and rows is None \
                        and scatter.wants(
                        [min(share_rows, entry["count"] - a) for a in range(0, entry["count"], share_rows)]):
                    written += scatter.restore(repo, entry, name, tns, batch_size, fresh, share_rows, reporter)
                    batches = iter(())
                else:
                    batches = iter_batches(repo, entry, rows, batch_size, tns, workers,
                                           tplan.identity and connector.takes_metadata_json)
                if tplan.identity:
                    written += _write_batches(connector, name, batches, reporter, fresh)
                else:
                    records = (tplan.transform(r) for b in batches for r in b.records())
                    written += _write_all(connector, name, tns, records, reporter, batch_size, fresh)
                _settle(connector, name, tns)
                reporter.done()
                result.plan.append(np_)
                if not existing[name] and not selection.is_partial:
                    have = connector.count(name, tns)
                    if have != entry["count"]:
                        result.warnings.append(f"{label}: target reports {have} records after restore, "
                                               f"snapshot has {entry['count']}")
            _finish(connector, name)
            result.collections[name] = written
            _observe(repo, connector, name, parts, result)
        result.seconds = time.monotonic() - started
        return result
    finally:
        lock.release()


def _observe(repo: Repository, connector: Connector, name: str, parts: list, result: RestoreResult) -> None:
    """After writing a collection: what the plan's inexact steps actually did to the values,
    measured on the first records read back (and a warning if any is beyond its bound)."""
    for _, tplan, entry, tns in parts:
        if not tplan.inexact_steps:
            continue
        from .verify import measure_inexact      # (~10 ms of imports: only when measured)
        label = name + (f"/{tns}" if tns else "")
        dev = measure_inexact(repo, entry, tplan, connector, name, tns)
        result.observed[label] = dev.to_dict()
        if dev.differing:
            result.warnings.append(f"{label}: {dev.differing} of {dev.records} records read back differ "
                                   f"from what was written beyond the plan's bounds "
                                   f"({', '.join(sorted(dev.parts))}): run vdedup verify")


def _live_batches(connector: Connector, name: str, namespace: str, batch_size: int) -> Iterator[RecordBatch]:
    """The live records of a namespace (none where the target lacks the namespace)."""
    try:
        yield from connector.scan(name, namespace, batch_size)
    except CollectionNotFound:
        return                        # a namespace (partition, tenant) the target does not have


def _in_place_diff(current: Iterator[Row] | None, wanted: Iterator[Row], selection: Selection,
                   plan: NamespacePlan, deletions: list) -> Iterator[Row]:
    """Rows of the snapshot to (re)write; fills `deletions` with ids to delete as it goes."""
    cur = current if current is not None else iter(())
    a = next(cur, None)
    b = next(wanted, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.key < b.key):
            if selection.matches(a):
                deletions.append(a.id)
                plan.delete += 1
            a = next(cur, None)
        elif a is None or b.key < a.key:
            if selection.matches(b):
                plan.write += 1
                yield b
            b = next(wanted, None)
        else:
            if selection.matches(b):
                if not changed_fields(a, b):
                    plan.unchanged += 1
                else:
                    plan.write += 1
                    yield b
            a, b = next(cur, None), next(wanted, None)


@with_few_collections
def restore_in_place(repo: Repository, snapshot: Snapshot, connector: Connector, target: str,
                     take_safety_snapshot: Callable[[list[str]], Snapshot],
                     confirm: Callable[[list[NamespacePlan]], bool],
                     selection: Selection | None = None, reporter: Reporter | None = None,
                     batch_size: int = BATCH_SIZE, dry_run: bool = False,
                     workers: int | None = None) -> RestoreResult:
    """Make the target's collections equal to the snapshot's (or the selected part of them).

    Order: the plan (the live data compared with the snapshot, read only), then
    `confirm(plan)`, then `take_safety_snapshot(collections)` (a backup of the current state,
    so the restore can be undone; it returns that snapshot), then the writes. A dry run or a
    refusal stops after the plan: nothing is written, not even the safety snapshot.
    """
    reporter = reporter or Reporter()
    started = time.monotonic()
    selection = selection or Selection()
    chosen = select_collections(snapshot, selection.collections)
    result = RestoreResult(snapshot, target, 0.0, dry_run=dry_run)
    present = [c["name"] for c in chosen if connector.exists(c["name"])]
    for coll in chosen:
        for entry in select_namespaces(coll, selection.namespaces):
            np_ = NamespacePlan(coll["name"], coll["name"], entry["name"])
            cur_rows = repo.rows_of(_live_batches(connector, coll["name"], entry["name"], batch_size)) \
                if coll["name"] in present else None
            for _ in _in_place_diff(cur_rows, repo.namespace_rows(entry), selection, np_, []):
                pass
            result.plan.append(np_)
    if dry_run or not confirm(result.plan):
        result.dry_run = True
        result.seconds = time.monotonic() - started
        return result
    safety = take_safety_snapshot(present) if present else None
    result.safety_snapshot = safety.id if safety else None
    lock = repo.read_lock("restore")       # lock-free, with a warning, on read-only storage
    try:
        for coll in chosen:
            name = coll["name"]
            if name not in present:
                connector.create_collection(CollectionSchema.from_dict(coll["schema"]), name)
            cur_coll = safety.collection(name) if safety else None
            written = 0
            for entry in select_namespaces(coll, selection.namespaces):
                label = name + (f"/{entry['name']}" if entry["name"] else "")
                cur_entry = next((e for e in cur_coll["namespaces"] if e["name"] == entry["name"]), None) \
                    if cur_coll else None
                np_ = NamespacePlan(name, name, entry["name"])
                deletions: list = []
                rows = _in_place_diff(repo.namespace_rows(cur_entry) if cur_entry else None,
                                      repo.namespace_rows(entry), selection, np_, deletions)
                reporter.phase(f"restore {label} in place", None)
                written += _write_batches(connector, name,
                                          iter_batches(repo, entry, rows, batch_size, entry["name"], workers),
                                          reporter)
                for i in range(0, len(deletions), batch_size):
                    connector.delete(name, deletions[i:i + batch_size], entry["name"])
                _settle(connector, name, entry["name"])
                reporter.done()
            _finish(connector, name)
            result.collections[name] = written
        result.seconds = time.monotonic() - started
        return result
    finally:
        lock.release()
