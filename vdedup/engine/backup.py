"""Backup: read a source through its connector, store what changed, commit a snapshot
(engine layer).

Per namespace, each batch of records read from the source goes to the repository's write
session, which stores the vector payloads it does not hold yet (content-addressed VECTORS
blobs) and gives back the batch's manifest rows (id, vector content id, metadata,
document, uri). The rows are compared with the previous snapshot of the same source to
write a manifest delta (or a new base). Order: packs, index, then the snapshot (the commit
point), all under a shared lock.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ..connectors.base import Connector
from ..errors import SourceError
from ..model import CollectionSchema, MetadataField, Partition, RecordBatch, VectorField
from ..repository import Repository, RowBatch, Snapshot, Unsorted, Writer, parts_of
from ..repository.lines import LinePool, metadata_pairs
from ..assets.audit import snapshot_audit_head
from .events import Reporter
from .workers import resolve_workers, with_few_collections

if TYPE_CHECKING:
    from .scaleout import Scatter

BATCH_SIZE = 1000
PARTITION_SIZE = 1_000_000     # records per partition a backup asks its connector for
# A namespace its parent snapshot holds whole is planned with this much more room: one that
# grows a little past the partition size (1,000,000 -> 1,005,000 records) would otherwise
# be read as new partitions that match none of the parent's parts, and its whole manifest
# would be written again (the benchmark's 1M x 768 nightly stored 98 MB, not 54), as it would
# be each time it crossed.
WHOLE_SLACK = 0.25
PARSE_AFTER = 20_000           # records a partition needs for its lines to be parsed in a helper process


@dataclass
class BackupResult:
    snapshot: Snapshot
    parent: str | None
    seconds: float
    bytes_added: int
    stats: dict[str, int] = field(default_factory=dict)
    scaleout: dict[str, Any] | None = None     # executor, tasks, nodes, seconds (engine/scaleout.py)

    def to_dict(self) -> dict[str, Any]:
        return {"message_type": "summary", "snapshot_id": self.snapshot.id, "parent": self.parent,
                "seconds": round(self.seconds, 3), "bytes_added": self.bytes_added, **self.stats,
                "collections": {c["name"]: c["count"] for c in self.snapshot.collections},
                **({"scaleout": self.scaleout} if self.scaleout else {})}


def _type_name(t: type) -> str:
    name = _TYPE_NAMES.get(t)
    if name is not None:
        return name
    for base, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), ((list, tuple), "list"),
                       (dict, "dict")):
        if issubclass(t, base):
            return name
    return t.__name__


_TYPE_NAMES = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str", list: "list",
               tuple: "list", dict: "dict"}


class _Observed:
    """What the data shows of a schema the provider did not fully declare."""

    def __init__(self) -> None:
        self.pairs: set[tuple[str, type]] = set()     # (metadata key, value type) seen
        self.dims: dict[str, int] = {}
        self.documents = self.uris = False

    @property
    def field_types(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for k, t in self.pairs:
            out[k].add(_type_name(t))
        return out

    def copy(self) -> "_Observed":
        other = _Observed()
        other.pairs, other.dims = set(self.pairs), dict(self.dims)
        other.documents, other.uris = self.documents, self.uris
        return other

    def merge(self, other: "_Observed") -> None:
        """Add what another partition's reading observed."""
        self.pairs |= other.pairs
        for k, v in other.dims.items():
            self.dims.setdefault(k, v)
        self.documents |= other.documents
        self.uris |= other.uris

    def see_batch(self, batch: RecordBatch) -> None:
        metas = batch.metadata or ()
        # every (key, type of its value) pair of the batch, in a few passes the interpreter runs in C
        self.pairs |= metadata_pairs(metas)
        for m in metas:
            if type(m) is not dict and isinstance(m, dict):
                self.pairs.update((k, type(v)) for k, v in m.items())
        dims = self.dims
        for name, arr in batch.dense.items():
            mask = batch.dense_present.get(name)
            if name not in dims and arr.ndim == 2 and arr.shape[0] and (mask is None or mask.any()):
                dims[name] = int(arr.shape[1])
        self.documents |= batch.documents is not None and any(d is not None for d in batch.documents)
        self.uris |= batch.uris is not None and any(u is not None for u in batch.uris)

    def complete(self, schema: CollectionSchema) -> CollectionSchema:
        d = schema.to_dict()
        vectors = []
        for v in schema.vectors:
            if v.dim is None and v.name in self.dims:
                v = VectorField(**{**v.__dict__, "dim": self.dims[v.name]})
            vectors.append(v)
        declared = {m.name for m in schema.metadata_fields}
        fields = list(schema.metadata_fields)
        field_types = self.field_types
        for name in sorted(field_types):
            if name in declared:
                continue
            types = field_types[name] - {"null"}
            t = next(iter(types)) if len(types) == 1 else ("mixed:" + ",".join(sorted(types)) if types else "null")
            fields.append(MetadataField(name=name, type=t, nullable=True if "null" in field_types[name] else None))
        d["has_documents"] = schema.has_documents or self.documents
        d["has_uris"] = schema.has_uris or self.uris
        d["vectors"] = [v.__dict__ for v in vectors]
        d["metadata_fields"] = [f.__dict__ for f in fields]
        return CollectionSchema.from_dict(d)


@with_few_collections
def backup(repo: Repository, connector: Connector, source: str, collections: list[str] | None = None,
           tags: list[str] | None = None, reporter: Reporter | None = None,
           batch_size: int = BATCH_SIZE, workers: int | None = None,
           partition_size: int = PARTITION_SIZE, scatter: "Scatter | None" = None) -> BackupResult:
    """`workers`: threads that compress and save beside the reading (default: the machine's
    cores; 1 does everything on the calling thread).

    Every namespace is read as the partitions its connector gives for `partition_size`
    (model/partition.py), the same plan whatever runs it: in this process one after the
    other, or, with `scatter` (engine/scaleout.py: worker processes or a Ray cluster), one
    task per partition writing its packs, index and manifest parts, this process committing
    the one snapshot that names them."""
    reporter = reporter or Reporter()
    started = time.monotonic()
    lock = repo.lock(exclusive=False, operation="backup")
    try:
        writer = repo.writer(workers=resolve_workers(workers))
    except BaseException:                    # ctrl-c while its helpers start: the lock goes too
        lock.release()
        raise
    try:
        parent = next((s for s in reversed(repo.list_snapshots()) if s.source == source), None)
        names = list(collections) if collections else connector.list_collections()
        if not names:
            raise SourceError(f"no collections to back up at {source}")
        schemas = [connector.describe(name) for name in names]   # fail early on a missing one
        snap = repo.new_snapshot(source, connector.provider, tags or [], parent.id if parent else None)
        totals = {"records": 0, "added": 0, "changed": 0, "deleted": 0, "unchanged": 0,
                  "vector_blobs_new": 0, "duplicates": 0}
        plan: list[tuple[CollectionSchema, str, list[Partition], dict[str, Any] | None]] = []
        for schema in schemas:
            prev_coll = parent.collection(schema.name) if parent else None
            for ns in schema.namespaces:
                prev_ns = None
                if prev_coll:
                    prev_ns = next((n for n in prev_coll["namespaces"] if n["name"] == ns), None)
                if prev_ns is not None:
                    why = repo.manifest_problem(prev_ns)
                    if why is not None:        # lost data: diff against nothing, store it whole again
                        repo.warn(f"snapshot {parent.short_id} cannot be the parent of a namespace ({why}); "  # type: ignore[union-attr]
                                  f"its manifest is written whole")
                        prev_ns = None
                plan.append((schema, ns, _plan(connector, schema.name, ns, prev_ns, partition_size), prev_ns))
        sizes = [part.estimate for p in plan for part in p[2]]
        scattered = scatter is not None and connector.concurrent_reads and scatter.wants(sizes)
        if scattered:
            results = scatter.backup(repo, plan, batch_size, reporter)   # type: ignore[union-attr]
        else:
            if scatter is not None:
                scatter.close()              # worker processes started ahead: not needed
            if parent is not None:
                # the parent's vector blobs need no look-up when this machine vouches for it
                writer.trust_parent(parent.id)
            results = {}
            for schema, ns, partitions, prev_ns in plan:
                for part in partitions:
                    label = schema.name + (f"/{ns}" if ns else "") + (f" [{part.key}]" if part.key else "")
                    results[(schema.name, ns, part.key)] = backup_partition(
                        writer, connector, schema.name, part, prev_ns, reporter, batch_size, label, source)
                    reporter.done()
        for schema in schemas:
            observed = _Observed()
            entries = []
            for s2, ns, partitions, _ in plan:
                if s2 is not schema:
                    continue
                pieces = []
                for part in partitions:
                    r = results[(schema.name, ns, part.key)]
                    pieces.append(r.piece)
                    observed.merge(r.observed)
                    totals["vector_blobs_new"] += r.new_blobs
                    for k, v in r.stats.items():
                        totals[k] += v
                entry = writer.namespace_entry(ns, pieces)
                totals["records"] += entry["count"]
                entries.append(entry)
            final_schema = observed.complete(schema)
            snap.collections.append({"name": schema.name, "schema": final_schema.to_dict(),
                                     "count": sum(e["count"] for e in entries), "namespaces": entries})
        snap.summary = {**totals, "logical_bytes": sum(e["logical_bytes"] for c in snap.collections
                                                       for e in c["namespaces"])}
        snap.audit_head = snapshot_audit_head(repo)      # evidence against a cut-off audit log
        # packs, then index, then the snapshot: the commit point. Every row went through this
        # process's session unless tasks wrote some: the index cache then vouches for it
        size = writer.commit(snap, vouch=not scattered)
        task_bytes = sum(r.bytes_written for r in results.values())
        return BackupResult(snap, parent.id if parent else None, time.monotonic() - started,
                            writer.bytes_written + task_bytes + size, totals,
                            scatter.report if scatter is not None and scatter.report else None)
    except BaseException:
        writer.save_progress()               # index the packs already saved: the next run reuses them
        raise
    finally:
        lock.release()


def _plan(connector: Connector, collection: str, ns: str, prev_ns: dict[str, Any] | None,
          partition_size: int) -> list[Partition]:
    """The partitions of a namespace. One its parent holds whole (one source: the whole
    namespace) stays whole while it holds at most WHOLE_SLACK more records than the
    partition size (its count, asked first: a plan can cost a pass over the ids); past that
    it is planned with the partition size itself, as it will be from then on."""
    if prev_ns is not None and {p["source"] for p in parts_of(prev_ns)} == {""}:
        roomy = partition_size + int(partition_size * WHOLE_SLACK)
        if connector.count(collection, ns) <= roomy:
            return connector.partitions(collection, ns, roomy)
    return connector.partitions(collection, ns, partition_size)


@dataclass
class PartitionResult:
    """What backing up one partition gives the snapshot commit (picklable: tasks return it)."""
    piece: dict[str, Any]
    stats: dict[str, int]
    new_blobs: int
    observed: "_Observed"
    bytes_written: int = 0


def backup_partition(writer: Writer, connector: Connector, collection: str, part: Partition,
                     prev: dict[str, Any] | None, reporter: Reporter, batch_size: int,
                     label: str, source: str = "") -> PartitionResult:
    """Back up one partition of a namespace as manifest parts of its own (the piece), with
    its counts, the vector blobs it stored and what it observed of the schema.

    Most sources read in id order: the rows are then streamed straight into the merge with
    the previous state (or into the new base), and only the delta is spooled. At the first
    row out of order the pass stops before anything but vector blobs (kept: they are
    content-addressed) has been stored, and the partition is read again into a sorted spool;
    its parts then say `"ordered": false` and later backups of it spool from the start, as
    do backups from connectors whose scan order has nothing to do with the ids
    (`key_ordered_scan = False`). `source`: the source's name, which names its line memo."""
    ns = part.namespace
    expected = part.estimate if part.estimate is not None else \
        (connector.count(collection, ns) if not part.key else None)
    reporter.phase(f"backup {label}", expected)
    new_blobs = [0]
    observed = _Observed()
    prev_parts = [p for p in parts_of(prev) if p["source"] == part.key] if prev else []
    if connector.key_ordered_scan and all(p.get("ordered", True) for p in prev_parts):
        scan = _scan_rows(writer, connector, collection, part, batch_size, observed, reporter, new_blobs,
                          expected, first=not prev_parts, scope=(source, collection, part.key), defer=True)
        try:
            piece, st = writer.write_partition(ns, part.key, prev, scan, ordered=True, expected_rows=expected)
            return PartitionResult(piece, st, new_blobs[0] + writer.take_settled_new(), observed)
        except Unsorted:
            scan.close()                         # ends the connector's scan (cursor, files)
        observed = _Observed()                   # vector blobs stored by the interrupted pass stay
        reporter.phase(f"backup {label} (reading again: not in id order)", part.estimate)
    scan = _scan_rows(writer, connector, collection, part, batch_size, observed, reporter, new_blobs,
                      expected, first=not prev_parts, scope=(source, collection, part.key))
    piece, st = writer.write_partition(ns, part.key, prev, scan, ordered=False, expected_rows=expected)
    return PartitionResult(piece, st, new_blobs[0] + writer.take_settled_new(), observed)


def _scan_rows(writer: Writer, connector: Connector, collection: str, part: Partition, batch_size: int,
               observed: _Observed, reporter: Reporter, new_blobs: list[int],
               expected: int | None = None, first: bool = False,
               scope: tuple[str, str, str] = ("", "", ""), defer: bool = False) -> Iterator[RowBatch]:
    """Read the source batch by batch: store new vector payloads, yield each batch's rows
    (new_blobs[0] accumulates the vector blobs stored).

    A connector that can hand its raw records to a helper process (`scan_derived`: the
    files export) has them parsed there when the writer has workers and the partition
    holds at least PARSE_AFTER records (`expected`; None: not wanted) (repository/lines.py):
    the reading thread then gets the metadata's canonical bytes and (key, type) pairs
    instead of the metadata. The reading thread is the bottleneck of first backups and
    nightlies alike (benchmarks/results/profile.md: at 200k x 768 the compress and seal
    threads wait ~65% of a first backup), so both use it. `first`: the source has no
    previous parts, so its rows go straight into new bases (whose segment boundaries the
    writer then hashes ahead). The helper answers the lines it parsed in the last backup of
    the same `scope` (source, collection, partition) from its memo in the local cache
    (vdedup/linememo.py; a partition without one reads that of the whole export, as the
    export was read before it grew past one partition), and keeps this run's once the whole
    partition was read. `defer`: the rows go to an ordered merge with the source's previous
    parts, which tells the writer which content ids the parent's rows hold (stored blobs, not
    looked up when the writer trusts the parent: Writer.trust_parent)."""
    pool = None
    derived = None
    if writer.workers > 1 and expected is not None and expected >= PARSE_AFTER and \
            getattr(type(connector), "scan_derived", None) is not None:
        source, name, key = scope
        pool = LinePool(writer.repo.line_memo("\0".join(scope)),
                        writer.repo.line_memo("\0".join((source, name, "")))[1] if key else None)
        derived = connector.scan_derived(collection, part, batch_size, pool.pmap)  # type: ignore[attr-defined]
        if derived is None:
            pool.close()
            pool = None

    def batches() -> Iterator[RecordBatch]:
        for batch in connector.scan_partition(collection, part, batch_size):
            _refuse_empty_vectors(batch, collection)
            observed.see_batch(batch)
            yield batch

    saved = False                                    # the memo of the whole partition was asked for

    def derived_batches() -> Iterator[RecordBatch | tuple[RecordBatch, list[bytes]]]:
        nonlocal saved
        for batch, got in derived:                   # type: ignore[union-attr]
            _refuse_empty_vectors(batch, collection)
            observed.see_batch(batch)                # documents, uris, dimensions (metadata: below)
            if got is None:
                yield batch
            else:
                mraws, pairs = got
                observed.pairs |= pairs
                yield batch, mraws
        saved = pool.save_memo()                     # type: ignore[union-attr]  # the whole partition was read

    try:
        for rows in writer.store_batches(batches() if derived is None else derived_batches(),
                                         boundaries=first, defer=defer and not first):
            new_blobs[0] += rows.new_blobs
            reporter.advance(len(rows))
            yield rows
    finally:
        if pool is not None:
            if saved:
                # the helper writes the memo (~0.7 s at 1M lines) while this process writes
                # the manifest and commits: the writer waits for it when the session ends
                pool.finish()
                writer.at_end(pool.close)
            else:
                pool.close()


def _refuse_empty_vectors(batch: RecordBatch, collection: str) -> None:
    """A vector of dimension 0 holds nothing a restore could write back: refused at backup
    time, not found out on the day of the restore."""
    for name, arr in batch.dense.items():
        if arr.ndim == 2 and arr.shape[1] == 0 and arr.shape[0]:
            which = f"vector {name!r}" if name else "its vectors"
            raise SourceError(f"collection {collection}: {which} have dimension 0; such records "
                              "cannot be restored, so they are not backed up")
