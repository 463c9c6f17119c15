"""Restore: write a snapshot's records into a target through a connector (engine layer).

Rows are read from the manifest in key order, then re-sorted by where their vector blob
lives (pack, block, position) in a temporary LMDB, so every block is fetched, decrypted
and decompressed once. Every vector payload is checked against its content id and every
manifest blob against its own, so nothing unverified reaches the target.
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..connectors.base import Connector
from ..errors import IntegrityError, NotInSnapshot, TargetNotEmpty, UsageError
from ..format.objects import BlobType
from ..format.vectors import decode_payload
from ..model import CollectionSchema, Record, RecordBatch
from ..repository import Repository, Snapshot
from ..repository.index_cache import cache_root
from ..repository.manifest import TempRows, iter_state, spool_dumps, spool_loads
from .events import Reporter

BATCH_SIZE = 1000


@dataclass
class RestoreResult:
    snapshot: Snapshot
    target: str
    seconds: float
    collections: dict[str, int] = field(default_factory=dict)   # target name -> records written
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"message_type": "summary", "snapshot_id": self.snapshot.id, "target": self.target,
                "seconds": round(self.seconds, 3), "collections": self.collections,
                "records": sum(self.collections.values()), "warnings": self.warnings}


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


def iter_records(repo: Repository, entry: dict[str, Any]) -> Iterator[Record]:
    """Every record of a namespace entry, in storage order, verified."""
    with TempRows(cache_root() + "/tmp") as tmp:
        seq = 0
        with tmp.env.begin(write=True) as txn:
            for row in iter_state(repo, entry):
                loc = repo.index.get(row.vref)
                if loc is None:
                    raise IntegrityError(f"vector blob {row.vref.hex()[:16]} is not in the index")
                key = loc.pack + struct.pack(">IIQ", loc.block, loc.ordinal, seq)
                txn.put(key, spool_dumps((row.id, row.vref, row.meta, row.doc, row.uri)), db=tmp.rows)
                seq += 1
        if seq != entry["count"]:
            raise IntegrityError(f"namespace {entry['name']!r}: manifest holds {seq} records, "
                                 f"snapshot says {entry['count']}")
        with tmp.env.begin(db=tmp.rows) as txn:
            for _, v in txn.cursor():
                rid, vref, meta, doc, uri = spool_loads(v)
                vectors, sparse = decode_payload(repo.load_blob(vref, BlobType.VECTORS))
                yield Record(rid, vectors, sparse, meta, doc, uri)


def restore(repo: Repository, snapshot: Snapshot, connector: Connector, target: str,
            collections: list[str] | None = None, as_name: str | None = None,
            overwrite: bool = False, reporter: Reporter | None = None,
            batch_size: int = BATCH_SIZE) -> RestoreResult:
    reporter = reporter or Reporter()
    started = time.monotonic()
    chosen = select_collections(snapshot, collections)
    if as_name and len(chosen) != 1:
        raise UsageError("--as needs exactly one collection (use --collection NAME)")
    lock = repo.lock(exclusive=False, operation="restore")
    result = RestoreResult(snapshot, target, 0.0)
    try:
        plan = []
        for coll in chosen:                         # check every target before writing anything
            name = as_name or coll["name"]
            schema = CollectionSchema.from_dict(coll["schema"])
            exists = connector.exists(name)
            if exists and not overwrite:
                filled = [ns["name"] for ns in coll["namespaces"] if connector.count(name, ns["name"]) > 0]
                if filled:
                    raise TargetNotEmpty(f"target collection {name!r} at {target} already holds records")
            plan.append((coll, name, schema, exists))
        for coll, name, schema, exists in plan:
            if not exists:
                connector.create_collection(schema, name)
            written = 0
            for entry in coll["namespaces"]:
                label = name + (f"/{entry['name']}" if entry["name"] else "")
                reporter.phase(f"restore {label}", entry["count"])
                buf: list[Record] = []
                for rec in iter_records(repo, entry):
                    buf.append(rec)
                    if len(buf) >= batch_size:
                        connector.write(name, RecordBatch.from_records(buf, entry["name"]))
                        reporter.advance(len(buf))
                        written += len(buf)
                        buf = []
                if buf:
                    connector.write(name, RecordBatch.from_records(buf, entry["name"]))
                    reporter.advance(len(buf))
                    written += len(buf)
                reporter.done()
                if not exists:
                    have = connector.count(name, entry["name"])
                    if have != entry["count"]:
                        result.warnings.append(f"{label}: target reports {have} records after restore, "
                                               f"snapshot has {entry['count']}")
            result.collections[name] = written
        result.seconds = time.monotonic() - started
        return result
    finally:
        lock.release()
