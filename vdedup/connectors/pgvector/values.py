"""Values both ways between PostgreSQL rows and the model's records (connector layer).

Vector columns are read as `vector_send(col)` / `halfvec_send` / `sparsevec_send` /
`varbit_send`: pgvector's own binary wire format, exact by construction, parsed with numpy.
Every other column comes through psycopg's loaders (int, Decimal, float, datetime, UUID, JSON,
arrays...), so types psycopg does not know arrive as their text form. Writes are COPY rows:
vectors in pgvector's binary recv format for a binary COPY, else as text (a float32 or float16
value printed as the shortest repr of the equal float64 parses back, strtof, to the same value).
"""
from __future__ import annotations

import datetime as _dt
import decimal
import json
import struct
import uuid
from typing import Any

import numpy as np

from ...errors import NotSupported, SourceError, UsageError
from ...model import IdType, Metric, Record, RecordBatch, RecordId, SparseVector
from .catalog import OPCLASS_METRIC, SEND, SPARSE_MAX_DIM, qualified
from .layout import (NEUTRAL_DOC, NEUTRAL_ID, NEUTRAL_META, NEUTRAL_URI, NEUTRAL_VECTOR,
                     exact_json, int_text, neutral_id)
from .layout import quote_ident as _qi


def native_select(layout: dict[str, Any], cols: list[dict[str, Any]]) -> list[str]:
    """SELECT expressions reading a native table: the key, then the columns `cols`."""
    pk = layout["pk"]
    exprs: list[str] = []
    if layout["id_encoding"] == "int":
        exprs.append(_qi(pk[0]))
    else:
        exprs += [f"{_qi(p)}::text" for p in pk]
    for c in cols:
        if c["vector"]:
            exprs.append(f"{SEND[c['vector']]}({_qi(c['name'])})")
        elif c["binary"]:
            exprs.append(_qi(c["name"]))
        else:                  # a type psycopg cannot load in binary: keep its text form
            exprs.append(f"{_qi(c['name'])}::text")
    return exprs


def native_batch(rows: list[tuple], npk: int, encoding: str,
                 cols: list[dict[str, Any]]) -> RecordBatch:
    """Records from the rows of a native table's scan (see native_select)."""
    records = []
    for row in rows:
        if encoding == "json":
            rid: RecordId = json.dumps(list(row[:npk]), ensure_ascii=False)
        else:
            rid = row[0]
        rec = Record(rid, metadata={})
        for c, v in zip(cols, row[npk:]):
            kind = c["vector"]
            if kind is None:
                rec.metadata[c["name"]] = v
            elif v is None:
                continue
            elif kind == "sparsevec":
                rec.sparse[c["name"]] = parse_sparse(v)
            else:
                rec.vectors[c["name"]] = parse_dense(kind, v)
        records.append(rec)
    return RecordBatch.from_records(records)



def parse_dense(kind: str, raw: bytes) -> np.ndarray:
    if kind == "vector":
        dim = int.from_bytes(raw[0:2], "big")
        return np.frombuffer(raw, dtype=">f4", count=dim, offset=4).astype(np.float32)
    if kind == "halfvec":
        dim = int.from_bytes(raw[0:2], "big")
        return np.frombuffer(raw, dtype=">f2", count=dim, offset=4).astype(np.float16)
    # bit: int32 length in bits, then the packed bytes (first bit = most significant)
    return np.frombuffer(raw, dtype=np.uint8, offset=4).copy()


def parse_sparse(raw: bytes) -> SparseVector:
    nnz = int.from_bytes(raw[4:8], "big", signed=True)
    idx = np.frombuffer(raw, dtype=">i4", count=nnz, offset=12).astype(np.uint32)
    val = np.frombuffer(raw, dtype=">f4", count=nnz, offset=12 + 4 * nnz).astype(np.float32)
    return SparseVector(idx, val)


def float_bin(kind: str, arr: np.ndarray) -> bytes:
    """vector_recv / halfvec_recv input: int16 dim, int16 unused, big-endian float4 / float2."""
    dtype = ">f2" if kind == "halfvec" else ">f4"
    return struct.pack(">hh", arr.shape[0], 0) + arr.astype(dtype).tobytes()


def sparse_bin(sv: SparseVector, dim: int) -> bytes:
    """sparsevec_recv input: int32 dim, nnz, unused, then 0-based int32 indices, float4 values."""
    return (struct.pack(">iii", dim, len(sv.indices), 0) + sv.indices.astype(">i4").tobytes()
            + sv.values.astype(">f4").tobytes())


def bit_bin(arr: np.ndarray, bits: int) -> bytes:
    """bit_recv input: int32 length in bits, then the packed bytes (pad bits zero)."""
    packed = np.packbits(np.unpackbits(np.asarray(arr, dtype=np.uint8))[:bits])
    return struct.pack(">i", bits) + packed.tobytes()


def sorted_sparse(sv: SparseVector) -> SparseVector:
    if len(sv.indices) < 2 or bool(np.all(np.diff(sv.indices.astype(np.int64)) > 0)):
        return sv
    order = np.argsort(sv.indices, kind="stable")
    return SparseVector(sv.indices[order], sv.values[order])


def float_text(arr: np.ndarray) -> str:
    # repr of the equal float64 is exact, and strtof turns it back into the same float32/16.
    return "[" + ",".join(map(repr, arr.astype(np.float64).tolist())) + "]"


def sparse_text(sv: SparseVector, dim: int) -> str:
    body = ",".join(f"{i + 1}:{v!r}" for i, v in
                    zip(sv.indices.tolist(), sv.values.astype(np.float64).tolist()))
    return "{" + body + "}/" + str(dim)


def bit_text(arr: np.ndarray, bits: int) -> str:
    return (np.unpackbits(np.asarray(arr, dtype=np.uint8))[:bits] + 48).tobytes().decode()


def json_default(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (decimal.Decimal, uuid.UUID, _dt.timedelta)):
        return str(v)
    raise TypeError(f"cannot store a {type(v).__name__} in JSON")


def pk_values(layout: dict[str, Any], rid: RecordId) -> list[Any]:
    pk = layout["pk"]
    marker = layout.get("neutral")
    if marker and marker["id_type"] != IdType.INT.value:
        return [neutral_id(marker, layout["table"], rid)]
    if marker and (isinstance(rid, bool) or not isinstance(rid, int)):
        raise UsageError(f"table {layout['table']} holds integer ids: a string id cannot be "
                         "stored without losing its type")
    if layout["id_encoding"] == "json" or (len(pk) > 1 and isinstance(rid, str)):
        try:
            vals = json.loads(rid) if isinstance(rid, str) else None
        except ValueError:
            vals = None
        if not isinstance(vals, list) or len(vals) != len(pk):
            raise UsageError(f"record ids of a table with a {len(pk)}-column primary key must "
                             f"be JSON arrays of {len(pk)} values")
        return [v if v is None or isinstance(v, str) else json.dumps(v) for v in vals]
    if layout["id_encoding"] == "int":
        try:
            value = int(rid)
        except (TypeError, ValueError):
            raise UsageError(f"table {layout['table']} has an integer primary key: "
                             "its record ids must be integers") from None
        bits = {"int2": 16, "int4": 32, "int8": 64}[layout["by_name"][pk[0]]["typname"]]
        if not -2 ** (bits - 1) <= value < 2 ** (bits - 1):
            raise UsageError(f"table {layout['table']} has a {bits}-bit integer primary key: "
                             f"a record id is out of its range")
        return [value]
    return [rid if isinstance(rid, str) else str(rid)]


def copy_rows(layout: dict[str, Any], batch: RecordBatch, collection: str, binary: bool
          ) -> tuple[list[str], list[list[Any]]]:
    """Column names and COPY rows for a batch, in the target table's layout (vectors in
    pgvector's binary recv format for a binary COPY, as text otherwise)."""
    from psycopg.types.json import Json, Jsonb

    pk = layout["pk"]
    by_name = layout["by_name"]
    marker = layout.get("neutral")
    writable = {c["name"] for c in layout["columns"]
                if c["name"] not in pk and not c["generated"]}
    recs = list(batch.records())
    keys = {k for r in recs if r.metadata for k in r.metadata}
    unknown = sorted(keys - writable)
    neutral = bool(marker) or bool(unknown) or (NEUTRAL_META in by_name and not keys)
    if unknown and by_name.get(NEUTRAL_META, {}).get("typname") not in ("json", "jsonb"):
        raise UsageError(f"table {collection} has no column {unknown[0]!r} for that metadata "
                         "field")
    vec_cols = {c["name"]: c for c in layout["columns"] if c["vector"]}
    # (dense or sparse, vector name, column): a dense and a sparse vector may share a name
    if marker:
        dense_map = {v["name"]: v["column"] for v in marker["vectors"]}
        sparse_map = {v["name"]: v["column"] for v in marker["sparse"]}
    else:
        dense_map = {n: n for n in vec_cols if vec_cols[n]["vector"] != "sparsevec"}
        sparse_map = {n: n for n in vec_cols if vec_cols[n]["vector"] == "sparsevec"}
        if NEUTRAL_VECTOR in dense_map:
            dense_map.setdefault("", NEUTRAL_VECTOR)
    targets: list[tuple[bool, str, str]] = []
    for sparse, names, cmap in ((False, {k for r in recs for k in r.vectors}, dense_map),
                                (True, {k for r in recs for k in r.sparse}, sparse_map)):
        for n in sorted(names):
            if n not in cmap:
                what = "sparse vector" if sparse else "vector"
                raise UsageError(f"table {collection} has no {what} column for {what} {n!r}")
            targets.append((sparse, n, cmap[n]))
    names = list(pk) + [col for _, _, col in targets]
    meta_cols = [NEUTRAL_META] if neutral else sorted(keys)
    names += meta_cols
    has_doc = NEUTRAL_DOC in writable and any(r.document is not None for r in recs)
    has_uri = NEUTRAL_URI in writable and any(r.uri is not None for r in recs)
    if any(r.document is not None for r in recs) and not has_doc:
        raise UsageError(f"table {collection} has no {NEUTRAL_DOC!r} column for documents")
    if any(r.uri is not None for r in recs) and not has_uri:
        raise UsageError(f"table {collection} has no {NEUTRAL_URI!r} column for uris")
    names += ([NEUTRAL_DOC] if has_doc else []) + ([NEUTRAL_URI] if has_uri else [])
    jsonish = {c["name"]: (Jsonb if c["typname"] == "jsonb" else Json)
               for c in layout["columns"] if c["typname"] in ("json", "jsonb")}
    dumps = lambda obj: json.dumps(obj, default=json_default)  # noqa: E731
    verbatim = lambda text: text  # noqa: E731
    rows = []
    for r in recs:
        row: list[Any] = pk_values(layout, r.id)
        for sparse, n, colname in targets:
            col = vec_cols[colname]
            if sparse:
                if n not in r.sparse:
                    row.append(None)
                    continue
                sv = sorted_sparse(r.sparse[n])
                dim = col["dim"] or SPARSE_MAX_DIM
                row.append(sparse_bin(sv, dim) if binary else sparse_text(sv, dim))
            elif n in r.vectors:
                v = r.vectors[n]
                if v.ndim != 1:
                    raise UsageError(f"pgvector cannot store multivector {n!r}")
                if col["vector"] == "bit":
                    bits = col["dim"] or 8 * v.shape[0]
                    row.append(bit_bin(v, bits) if binary else bit_text(v, bits))
                else:
                    if v.dtype not in (np.float16, np.float32, np.float64):
                        raise UsageError(f"{v.dtype} vector {n!r} cannot be stored exactly in "
                                         f"a {col['vector']} column")
                    if not np.isfinite(v.astype(np.float32)).all():
                        raise UsageError("pgvector rejects NaN or infinite vector values")
                    row.append(float_bin(col["vector"], v) if binary else float_text(v))
            else:
                row.append(None)
        meta = r.metadata or {}
        if marker:
            # exact JSON text in a `json` column: None stays NULL, {} stays {}
            row.append(None if r.metadata is None
                       else Json(exact_json(r.metadata, collection), verbatim))
        elif neutral:
            row.append(jsonish[NEUTRAL_META](meta, dumps) if meta else None)
        else:
            for k in meta_cols:
                v = meta.get(k)
                if v is not None and k in jsonish:
                    v = jsonish[k](v, dumps)
                row.append(v)
        if has_doc:
            row.append(r.document)
        if has_uri:
            row.append(r.uri)
        rows.append(row)
    return names, rows



def neutral_select(marker: dict[str, Any], layout: dict[str, Any]) -> tuple[list[str], Any]:
    """SELECT expressions for a neutral table and the function turning a row into a Record."""
    by = layout["by_name"]
    dense = [(v["name"], by[v["column"]]["vector"], v["column"]) for v in marker["vectors"]]
    sparse = [(sp["name"], sp["column"]) for sp in marker["sparse"]]
    exprs = [_qi(NEUTRAL_ID)]
    exprs += [f"{SEND[kind]}({_qi(col)})" for _, kind, col in dense]
    exprs += [f"sparsevec_send({_qi(col)})" for _, col in sparse]
    exprs.append(f"{_qi(NEUTRAL_META)}::text")      # parsed here: exact, and no global loads
    has_doc, has_uri = bool(marker["documents"]), bool(marker["uris"])
    exprs += ([_qi(NEUTRAL_DOC)] if has_doc else []) + ([_qi(NEUTRAL_URI)] if has_uri else [])
    nd, ns = len(dense), len(sparse)
    mixed = marker["id_type"] in (IdType.UUID.value, IdType.UNKNOWN.value)

    def make(row: tuple) -> Record:
        rid = row[0]
        rec = Record(int(rid) if mixed and int_text(rid) else rid)
        for (name, kind, _), raw in zip(dense, row[1:1 + nd]):
            if raw is not None:
                rec.vectors[name] = parse_dense(kind, raw)
        for (name, _), raw in zip(sparse, row[1 + nd:1 + nd + ns]):
            if raw is not None:
                rec.sparse[name] = parse_sparse(raw)
        k = 1 + nd + ns
        text = row[k]
        if text is not None:
            meta = json.loads(text)
            if not isinstance(meta, dict):
                raise SourceError("a row's metadata in a vdedup neutral table is not a JSON "
                                  "object")
            rec.metadata = meta
        k += 1
        if has_doc:
            rec.document = row[k]
            k += 1
        if has_uri:
            rec.uri = row[k]
        return rec

    return exprs, make


DISTANCE_OPS = {Metric.EUCLIDEAN: "<->", Metric.DOT: "<#>", Metric.COSINE: "<=>", Metric.MANHATTAN: "<+>"}


def nearest_select(layout: dict[str, Any], collection: str, vector: Any, k: int,
                   vector_name: str) -> tuple[str, tuple, Any]:
    """(SQL, parameters, row -> id) of a k-nearest-neighbour query ordered by the operator of
    the vector column's index, so the database answers it as it serves such queries."""
    marker = layout["neutral"]
    column = vector_name if not marker else \
        next((v["column"] for v in marker["vectors"] if v["name"] == vector_name), vector_name)
    col = layout["by_name"].get(column)
    index = next((i for i in layout["indexes"] if i["vector_column"] == column), None)
    op = DISTANCE_OPS.get(OPCLASS_METRIC.get(index["opclasses"][0])) if index else None
    if col is None or col["vector"] not in ("vector", "halfvec") or op is None:
        raise NotSupported(f"table {collection}: no vector index on {column!r} to query")
    pk = layout["pk"]
    if marker:
        ids = _qi(NEUTRAL_ID)
        mixed = marker["id_type"] in (IdType.UUID.value, IdType.UNKNOWN.value)

        def make(row: tuple) -> RecordId:
            return int(row[0]) if mixed and int_text(row[0]) else row[0]
    elif layout["id_encoding"] == "int":
        ids = _qi(pk[0])

        def make(row: tuple) -> RecordId:
            return row[0]
    else:
        ids = ", ".join(f"{_qi(p)}::text" for p in pk)
        json_ids = layout["id_encoding"] == "json"

        def make(row: tuple) -> RecordId:
            return json.dumps(list(row), ensure_ascii=False) if json_ids else row[0]
    literal = "[" + ",".join(repr(float(x)) for x in np.asarray(vector, dtype=np.float32)) + "]"
    sql = (f"SELECT {ids} FROM {qualified(collection)} ORDER BY {_qi(column)} {op} "
           f"%s::{col['vector']} LIMIT %s")
    return sql, (literal, k), make
