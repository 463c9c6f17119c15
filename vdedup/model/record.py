"""Records and columnar record batches (model layer: values only, no I/O).

A batch holds one namespace of one collection. Dense vectors are 2-D numpy arrays
(one row per record, dtype as stored by the provider, float32 usually); sparse vectors
are CSR columns (indptr/indices/values); multivectors are per-record 2-D arrays.
Connectors produce and consume batches; the engine works record by record.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Union

import numpy as np

RecordId = Union[str, int]


@dataclass(frozen=True)
class SparseVector:
    indices: np.ndarray   # uint32, strictly as given by the provider (order kept)
    values: np.ndarray    # float32

    def __post_init__(self) -> None:
        object.__setattr__(self, "indices", np.ascontiguousarray(self.indices, dtype=np.uint32))
        object.__setattr__(self, "values", np.ascontiguousarray(self.values, dtype=np.float32))
        if self.indices.shape != self.values.shape or self.indices.ndim != 1:
            raise ValueError("sparse vector indices and values must be 1-D and of equal length")

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SparseVector)
                and self.indices.tobytes() == other.indices.tobytes()
                and self.values.tobytes() == other.values.tobytes())

    __hash__ = None  # type: ignore[assignment]


@dataclass
class Record:
    id: RecordId
    vectors: dict[str, np.ndarray] = field(default_factory=dict)   # 1-D dense, 2-D multivector
    sparse: dict[str, SparseVector] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    document: str | None = None
    uri: str | None = None


@dataclass
class SparseColumn:
    indptr: np.ndarray    # int64, len n+1
    indices: np.ndarray   # uint32
    values: np.ndarray    # float32
    present: np.ndarray | None = None   # bool mask; None = every record has one

    def row(self, i: int) -> SparseVector | None:
        if self.present is not None and not self.present[i]:
            return None
        a, b = int(self.indptr[i]), int(self.indptr[i + 1])
        return SparseVector(self.indices[a:b], self.values[a:b])

    @classmethod
    def from_rows(cls, rows: list[SparseVector | None]) -> "SparseColumn":
        lengths = [0 if r is None else len(r.indices) for r in rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        present = np.array([r is not None for r in rows], dtype=bool)
        nz = [r for r in rows if r is not None]
        indices = np.concatenate([r.indices for r in nz]) if nz else np.zeros(0, np.uint32)
        values = np.concatenate([r.values for r in nz]) if nz else np.zeros(0, np.float32)
        return cls(indptr, indices.astype(np.uint32), values.astype(np.float32),
                   None if present.all() else present)


@dataclass
class RecordBatch:
    ids: list[RecordId]
    dense: dict[str, np.ndarray] = field(default_factory=dict)
    dense_present: dict[str, np.ndarray] = field(default_factory=dict)   # optional masks
    multi: dict[str, list[np.ndarray | None]] = field(default_factory=dict)
    sparse: dict[str, SparseColumn] = field(default_factory=dict)
    metadata: list[dict[str, Any] | None] | None = None
    documents: list[str | None] | None = None
    uris: list[str | None] | None = None
    namespace: str = ""
    # Set only by a restore into a target that asked for it (a connector's takes_metadata_json):
    # every row's metadata as compact JSON text with keys sorted at every level (UTF-8, the
    # repository's metadata bytes as stored), `metadata` then None; metadata_values() decodes.
    metadata_json: list[bytes] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def metadata_values(self) -> list[Any] | None:
        """The metadata column, decoded from metadata_json when the batch carries that instead."""
        if self.metadata is None and self.metadata_json is not None:
            return json.loads((b"[" + b",".join(self.metadata_json) + b"]").decode("utf-8", "surrogatepass"))
        return self.metadata

    def records(self) -> Iterator[Record]:
        metadata = self.metadata_values()
        for i, rid in enumerate(self.ids):
            vectors: dict[str, np.ndarray] = {}
            for name, arr in self.dense.items():
                mask = self.dense_present.get(name)
                if mask is None or mask[i]:
                    vectors[name] = arr[i]
            for name, rows in self.multi.items():
                if rows[i] is not None:
                    vectors[name] = rows[i]
            sparse = {}
            for name, col in self.sparse.items():
                sv = col.row(i)
                if sv is not None:
                    sparse[name] = sv
            yield Record(
                id=rid, vectors=vectors, sparse=sparse,
                metadata=None if metadata is None else metadata[i],
                document=None if self.documents is None else self.documents[i],
                uri=None if self.uris is None else self.uris[i],
            )

    @classmethod
    def from_records(cls, records: Iterable[Record], namespace: str = "") -> "RecordBatch":
        recs = list(records)
        n = len(recs)
        names = sorted({k for r in recs for k in r.vectors})
        dense: dict[str, np.ndarray] = {}
        present: dict[str, np.ndarray] = {}
        multi: dict[str, list[np.ndarray | None]] = {}
        for name in names:
            vals = [r.vectors.get(name) for r in recs]
            shapes = {v.shape for v in vals if v is not None}
            dtypes = {v.dtype for v in vals if v is not None}
            if len(shapes) == 1 and len(dtypes) == 1 and len(next(iter(shapes))) == 1:
                shape, dtype = next(iter(shapes)), next(iter(dtypes))
                arr = np.zeros((n, shape[0]), dtype=dtype)
                mask = np.zeros(n, dtype=bool)
                for i, v in enumerate(vals):
                    if v is not None:
                        arr[i] = v
                        mask[i] = True
                dense[name] = arr
                if not mask.all():
                    present[name] = mask
            else:
                multi[name] = vals
        sparse_names = sorted({k for r in recs for k in r.sparse})
        sparse = {name: SparseColumn.from_rows([r.sparse.get(name) for r in recs])
                  for name in sparse_names}
        return cls(
            ids=[r.id for r in recs], dense=dense, dense_present=present, multi=multi,
            sparse=sparse,
            metadata=[r.metadata for r in recs],
            documents=[r.document for r in recs] if any(r.document is not None for r in recs) else None,
            uris=[r.uri for r in recs] if any(r.uri is not None for r in recs) else None,
            namespace=namespace,
        )
