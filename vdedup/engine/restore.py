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

Rows are read from the manifest in key order, then re-sorted by where their vector blob
lives (pack, block, position) in a temporary LMDB, so every block is fetched, decrypted
and decompressed once. Every vector payload is checked against its content id and every
manifest blob against its own, so nothing unverified reaches the target.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator

from ..connectors.base import Connector
from ..errors import CollectionNotFound, IntegrityError, NotInSnapshot, TargetNotEmpty, UsageError
from ..format import manifest as mf
from ..format.objects import BlobType
from ..format.values import meta_bytes, meta_value, meta_values_json
from ..format.vectors import decode_dense_batch, decode_payload, encode_payload
from ..model import CollectionSchema, Metric, Record, RecordBatch
from ..repository import Repository, Snapshot
from ..repository.index_cache import cache_root
from ..repository.manifest import TempRows, iter_state, spool_dumps, spool_loads
from .events import Reporter
from .translate import ORIGINAL_ID, accepts_id, build_plan, check_plan, decode_original_id, id_kind
from .where import Predicate

BATCH_SIZE = 1000


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

    def matches(self, row: mf.Row) -> bool:
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
                 rows: Iterable[mf.Row] | None = None) -> Iterator[Record]:
    """Records of a namespace entry (or of the given rows of it), in storage order, verified."""
    for batch in iter_batches(repo, entry, rows):
        yield from batch.records()


def _spool_by_location(repo: Repository, rows: Iterable[mf.Row], tmp: TempRows) -> int:
    """Spool rows keyed by where their vector blob lives; returns how many."""
    seq = 0
    chunk: list[mf.Row] = []

    def put(txn) -> None:
        nonlocal seq
        for row, raw in zip(chunk, repo.index.get_many([r.vref for r in chunk])):
            if raw is None:
                raise IntegrityError(f"vector blob {row.vref.hex()[:16]} is not in the index")
            # pack id | block | ordinal (BlobLocation.to_bytes: pack[32] block offset length ordinal ...)
            key = raw[:36] + raw[48:52] + seq.to_bytes(8, "big")
            txn.put(key, spool_dumps((row.id, row.vref, row.mraw, row.doc, row.uri, raw)), db=tmp.rows)
            seq += 1
        chunk.clear()

    chunks = 0
    for row in rows:
        chunk.append(row)
        if len(chunk) >= 1000:
            with tmp.env.begin(write=True) as txn:
                put(txn)
            chunks += 1
            if chunks % 64 == 0:             # bound what the maps add to resident memory
                tmp.release_pages()
                repo.index.release_pages()
    with tmp.env.begin(write=True) as txn:
        put(txn)
    return seq


def iter_batches(repo: Repository, entry: dict[str, Any], rows: Iterable[mf.Row] | None = None,
                 batch_size: int = BATCH_SIZE, namespace: str = "") -> Iterator[RecordBatch]:
    """The records of a namespace entry (or of the given rows of it) as batches, in storage
    order (each block is fetched, decrypted and decompressed once), every vector payload
    verified against its content id."""
    with TempRows(cache_root() + "/tmp") as tmp:
        seq = _spool_by_location(repo, iter_state(repo, entry) if rows is None else rows, tmp)
        if rows is None and seq != entry["count"]:
            raise IntegrityError(f"namespace {entry['name']!r}: manifest holds {seq} records, "
                                 f"snapshot says {entry['count']}")
        buf: list[tuple] = []
        for _, v in tmp.items_released():
            buf.append(spool_loads(v))
            if len(buf) >= batch_size:
                yield _batch(repo, buf, namespace)
                buf = []
        if buf:
            yield _batch(repo, buf, namespace)


def _batch(repo: Repository, spooled: list[tuple], namespace: str) -> RecordBatch:
    ids, payloads, metas, docs, uris = [], [], [], [], []
    blob_at, vectors_type = repo.blob_at_raw, BlobType.VECTORS
    for rid, vref, mraw, doc, uri, loc in spooled:
        ids.append(rid)
        payloads.append(blob_at(vref, vectors_type, loc))
        metas.append(mraw)
        docs.append(doc)
        uris.append(uri)
    metadata = _meta_values(metas)
    documents = docs if any(d is not None for d in docs) else None
    uri_col = uris if any(u is not None for u in uris) else None
    dense = decode_dense_batch(payloads)
    if dense is not None:
        return RecordBatch(ids=ids, dense=dense, metadata=metadata, documents=documents, uris=uri_col,
                           namespace=namespace)
    records = []
    for rid, payload, meta, doc, uri in zip(ids, payloads, metadata, docs, uris):
        vectors, sparse = decode_payload(payload)
        records.append(Record(rid, vectors, sparse, meta, doc, uri))
    return RecordBatch.from_records(records, namespace)


def _meta_values(raws: list[bytes]) -> list[Any]:
    """Decode many metadata values: one JSON parse when all are JSON text."""
    if raws and all(r[0] >= 0x20 for r in raws):
        out = meta_values_json(raws)
        if len(out) == len(raws):
            return out
    return [meta_value(r) for r in raws]


def _writer(connector: Connector, fresh: bool) -> Any:
    """connector.write, or its optional write_new when every record written is new to the
    collection (a restore into a collection it has just created)."""
    return (getattr(connector, "write_new", None) if fresh else None) or connector.write


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
    settle = getattr(connector, "settle", None)
    if settle is not None:
        settle(name, namespace)


def _finish(connector: Connector, name: str) -> None:
    """Tell the connector a collection is complete (e.g. build indexes after a bulk load)."""
    finish = getattr(connector, "finish", None)
    if finish is not None:
        finish(name)


def _with_original_id_type(repo: Repository, schema: CollectionSchema, parts: list) -> CollectionSchema:
    """A translation back gives records their original ids again (from the metadata field
    `_vdedup_id`), whose type the schema of the translated copy cannot know: the first
    record tells it."""
    for coll, tplan, entry, _ in parts:
        if tplan.identity or not any(f.name == ORIGINAL_ID for f in tplan.source_schema.metadata_fields):
            continue
        for row in iter_state(repo, entry):
            meta = row.meta if isinstance(row.meta, dict) else {}
            original = decode_original_id(meta.get(ORIGINAL_ID))
            kind = id_kind(original if original is not None else row.id)
            if kind != schema.id_type and accepts_id(tplan.caps, kind):
                return replace(schema, id_type=kind)
            return schema
    return schema


def _counting(rows: Iterator[mf.Row], plan: NamespacePlan) -> Iterator[mf.Row]:
    for row in rows:
        plan.write += 1
        yield row


def restore(repo: Repository, snapshot: Snapshot, connector: Connector, target: str,
            collections: list[str] | None = None, as_name: str | None = None,
            overwrite: bool = False, reporter: Reporter | None = None,
            batch_size: int = BATCH_SIZE, selection: Selection | None = None,
            dry_run: bool = False, translation: TranslationOptions | None = None) -> RestoreResult:
    """Write the snapshot's (selected) records into `connector`'s database, translating the
    schema and records when the target is another provider (see translate.py)."""
    reporter = reporter or Reporter()
    translation = translation or TranslationOptions()
    started = time.monotonic()
    selection = selection or Selection()
    chosen = select_collections(snapshot, collections or selection.collections)
    if as_name and len(chosen) != 1 and not translation.fold_namespaces:
        raise UsageError("--as needs exactly one collection (use --collection NAME)")
    lock = repo.lock(exclusive=False, operation="restore")
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
                    for row in iter_state(repo, entry):
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
                    rows = _counting((r for r in iter_state(repo, entry) if selection.matches(r)), np_)
                else:
                    np_.write = entry["count"]
                batches = iter_batches(repo, entry, rows, batch_size, tns)
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
    from .verify import measure_inexact
    for _, tplan, entry, tns in parts:
        if not tplan.inexact_steps:
            continue
        label = name + (f"/{tns}" if tns else "")
        dev = measure_inexact(repo, entry, tplan, connector, name, tns)
        result.observed[label] = dev.to_dict()
        if dev.differing:
            result.warnings.append(f"{label}: {dev.differing} of {dev.records} records read back differ "
                                   f"from what was written beyond the plan's bounds "
                                   f"({', '.join(sorted(dev.parts))}): run vdedup verify")


def _live_rows(repo: Repository, connector: Connector, name: str, namespace: str, tmp: TempRows,
               batch_size: int) -> Iterator[mf.Row]:
    """The live records of a namespace as manifest rows (vector content id, metadata bytes),
    in key order: what a backup would record, computed without storing anything."""
    content_id, vectors = repo.content_id, BlobType.VECTORS
    try:
        for batch in connector.scan(name, namespace, batch_size):
            metas = batch.metadata or [None] * len(batch)
            docs = batch.documents or [None] * len(batch)
            uris = batch.uris or [None] * len(batch)
            rows = [mf.Row(rec.id, content_id(vectors, encode_payload(rec.vectors, rec.sparse)), None,
                           doc, uri, mf.OP_FULL, mf.ALL_FIELDS, meta_bytes(meta))
                    for rec, meta, doc, uri in zip(batch.records(), metas, docs, uris)]
            tmp.put_many(rows)
    except CollectionNotFound:
        pass                          # a namespace (partition, tenant) the target does not have
    return tmp.iter_rows()


def _in_place_diff(current: Iterator[mf.Row] | None, wanted: Iterator[mf.Row], selection: Selection,
                   plan: NamespacePlan, deletions: list) -> Iterator[mf.Row]:
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
                if mf.diff(a, b) is None:
                    plan.unchanged += 1
                else:
                    plan.write += 1
                    yield b
            a, b = next(cur, None), next(wanted, None)


def restore_in_place(repo: Repository, snapshot: Snapshot, connector: Connector, target: str,
                     take_safety_snapshot: Callable[[list[str]], Snapshot],
                     confirm: Callable[[list[NamespacePlan]], bool],
                     selection: Selection | None = None, reporter: Reporter | None = None,
                     batch_size: int = BATCH_SIZE, dry_run: bool = False) -> RestoreResult:
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
            with TempRows(cache_root() + "/tmp") as tmp:
                cur_rows = _live_rows(repo, connector, coll["name"], entry["name"], tmp, batch_size) \
                    if coll["name"] in present else None
                for _ in _in_place_diff(cur_rows, iter_state(repo, entry), selection, np_, []):
                    pass
            result.plan.append(np_)
    if dry_run or not confirm(result.plan):
        result.dry_run = True
        result.seconds = time.monotonic() - started
        return result
    safety = take_safety_snapshot(present) if present else None
    result.safety_snapshot = safety.id if safety else None
    lock = repo.lock(exclusive=False, operation="restore")
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
                rows = _in_place_diff(iter_state(repo, cur_entry) if cur_entry else None,
                                      iter_state(repo, entry), selection, np_, deletions)
                reporter.phase(f"restore {label} in place", None)
                written += _write_batches(connector, name,
                                          iter_batches(repo, entry, rows, batch_size, entry["name"]), reporter)
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
