"""Backup: read a source through its connector, store what changed, commit a snapshot
(engine layer).

Per namespace, every record is split into its vector payload (a content-addressed
VECTORS blob, stored only if new) and its row (id, vector content id, metadata, document,
uri), spooled into a sorted temporary LMDB. The rows are then compared with the previous
snapshot of the same source to write a manifest delta (or a new base). Order: packs, index,
then the snapshot (the commit point), all under a shared lock.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..connectors.base import Connector
from ..errors import SourceError
from ..format import manifest as mf
from ..format.objects import BlobType
from ..format.values import canonical
from ..format.vectors import encode_payload
from ..model import CollectionSchema, MetadataField, VectorField
from ..repository import Repository, Snapshot
from ..repository.index_cache import cache_root
from ..repository.manifest import TempRows, write_namespace
from ..repository.packer import Packer
from .events import Reporter

BATCH_SIZE = 1000


@dataclass
class BackupResult:
    snapshot: Snapshot
    parent: str | None
    seconds: float
    bytes_added: int
    stats: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"message_type": "summary", "snapshot_id": self.snapshot.id, "parent": self.parent,
                "seconds": round(self.seconds, 3), "bytes_added": self.bytes_added, **self.stats,
                "collections": {c["name"]: c["count"] for c in self.snapshot.collections}}


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, dict):
        return "dict"
    return type(v).__name__


_TYPE_NAMES = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str", list: "list",
               tuple: "list", dict: "dict"}


class _Observed:
    """What the data shows of a schema the provider did not fully declare."""

    def __init__(self) -> None:
        self.field_types: dict[str, set[str]] = defaultdict(set)
        self.dims: dict[str, int] = {}
        self.documents = self.uris = False

    def see(self, rec) -> None:
        if isinstance(rec.metadata, dict):
            ft, names = self.field_types, _TYPE_NAMES
            for k, v in rec.metadata.items():
                ft[k].add(names.get(type(v)) or _type_name(v))
        dims = self.dims
        for name, vec in rec.vectors.items():
            if name not in dims and vec.ndim == 1:
                dims[name] = int(vec.shape[0])
        self.documents |= rec.document is not None
        self.uris |= rec.uri is not None

    def complete(self, schema: CollectionSchema) -> CollectionSchema:
        d = schema.to_dict()
        vectors = []
        for v in schema.vectors:
            if v.dim is None and v.name in self.dims:
                v = VectorField(**{**v.__dict__, "dim": self.dims[v.name]})
            vectors.append(v)
        declared = {m.name for m in schema.metadata_fields}
        fields = list(schema.metadata_fields)
        for name in sorted(self.field_types):
            if name in declared:
                continue
            types = self.field_types[name] - {"null"}
            t = next(iter(types)) if len(types) == 1 else ("mixed:" + ",".join(sorted(types)) if types else "null")
            fields.append(MetadataField(name=name, type=t, nullable=True if "null" in self.field_types[name] else None))
        d["has_documents"] = schema.has_documents or self.documents
        d["has_uris"] = schema.has_uris or self.uris
        d["vectors"] = [v.__dict__ for v in vectors]
        d["metadata_fields"] = [f.__dict__ for f in fields]
        return CollectionSchema.from_dict(d)


def backup(repo: Repository, connector: Connector, source: str, collections: list[str] | None = None,
           tags: list[str] | None = None, reporter: Reporter | None = None,
           batch_size: int = BATCH_SIZE) -> BackupResult:
    reporter = reporter or Reporter()
    started = time.monotonic()
    lock = repo.lock(exclusive=False, operation="backup")
    packer = Packer(repo)
    try:
        parent = next((s for s in reversed(repo.list_snapshots()) if s.source == source), None)
        names = list(collections) if collections else connector.list_collections()
        if not names:
            raise SourceError(f"no collections to back up at {source}")
        schemas = [connector.describe(name) for name in names]   # fail early on a missing one
        snap = repo.new_snapshot(source, connector.provider, tags or [], parent.id if parent else None)
        totals = {"records": 0, "added": 0, "changed": 0, "deleted": 0, "unchanged": 0,
                  "vector_blobs_new": 0}
        for schema in schemas:
            observed = _Observed()
            prev_coll = parent.collection(schema.name) if parent else None
            entries = []
            for ns in schema.namespaces:
                prev_ns = None
                if prev_coll:
                    prev_ns = next((n for n in prev_coll["namespaces"] if n["name"] == ns), None)
                label = schema.name + (f"/{ns}" if ns else "")
                reporter.phase(f"backup {label}", connector.count(schema.name, ns))
                before = packer.blobs_written
                with TempRows(cache_root() + "/tmp") as tmp:
                    logical = 0
                    for batch in connector.scan(schema.name, ns, batch_size):
                        rows = []
                        for rec in batch.records():
                            observed.see(rec)
                            payload = encode_payload(rec.vectors, rec.sparse)
                            vref, _ = packer.add(BlobType.VECTORS, payload)
                            logical += len(payload)
                            rows.append(mf.Row(rec.id, vref, canonical(rec.metadata), rec.document, rec.uri))
                        logical += tmp.put_many(rows)
                        reporter.advance(len(rows))
                    totals["vector_blobs_new"] += packer.blobs_written - before
                    entry, st = write_namespace(repo, packer, ns, tmp, prev_ns, logical)
                reporter.done()
                entries.append(entry)
                for k, v in st.items():
                    totals[k] += v
                totals["records"] += entry["count"]
            final_schema = observed.complete(schema)
            snap.collections.append({"name": schema.name, "schema": final_schema.to_dict(),
                                     "count": sum(e["count"] for e in entries), "namespaces": entries})
        packer.flush()                       # packs, then index ...
        snap.summary = {**totals, "logical_bytes": sum(e["logical_bytes"] for c in snap.collections
                                                       for e in c["namespaces"])}
        size = repo.save_snapshot(snap)      # ... then the snapshot: the commit point
        totals_bytes = packer.bytes_written + size
        return BackupResult(snap, parent.id if parent else None, time.monotonic() - started,
                            totals_bytes, totals)
    except BaseException:
        _save_progress(packer)
        raise
    finally:
        lock.release()


def _save_progress(packer: Packer) -> None:
    """After a failure, index the packs already saved so that the next backup reuses them."""
    try:
        packer.write_index()
    except Exception:
        pass
