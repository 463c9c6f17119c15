"""File-export connector: reads an export, and writes one when a files snapshot is restored (connector layer).

    files:///abs/path/to/export-dir[?collection=NAME&metric=cosine|euclidean|dot]
    npy:///abs/path/to/export-dir[?...]               (alias)

Reads the export a user makes of a vector database into a directory (what restic or borg
would back up):

- `vectors.npy`: a 2-D NumPy array, one row per record (float32 usually; float16, float64,
  int8 and uint8 are read as stored);
- `records.jsonl`: one JSON object per line, in the same order as the rows:
  `{"id": str|int, "metadata": {...}|null}`, optionally `"document"` and `"uri"` (str|null).

The directory is one collection, named by `?collection=` or else by the directory's name.
A plain export does not say what distance its vectors are for, so the metric is unknown
unless `?metric=` states it (needed to restore into a database that requires one).

Why the code looks the way it does:
- `vectors.npy` is opened with `np.load(mmap_mode="r")` only to read and check its header;
  each batch's rows are then read with a plain file read at their offset. Rows read through the
  map would stay resident in the process (a 1M x 768 export: 3 GB of RSS); read this way,
  memory stays bounded by the batch.
- JSON keeps str, int, float, bool, null, lists and objects; those are exactly the types the
  records come back with (1 stays int, 1.0 stays float). NaN/Infinity literals are refused.
- The id type (str or int) is the first line's; scan refuses an export that mixes them.
- The number of lines must equal the number of rows; a mismatch, a bad line or an unknown
  key is a SourceError naming the line number, never its content.
- Restoring a snapshot of a files source writes a new export (records in the snapshot's
  storage order, not the original line order): into `*.partial` files first, with a fixed
  128-byte .npy header filled in and both files renamed by `finish`, so an interrupted restore
  never leaves something that reads as a complete export. The files are written on a thread
  of their own (at most 4 batches queued), so writing overlaps reading the next batches;
  the lines are put together from whole encoded columns, the same bytes as one `json.dumps`
  per record. An existing export is never
  overwritten, and deleting from one (in-place restore) is refused: an export is the output of
  another tool. Other providers' snapshots are restored into a database, not into files.
"""
from __future__ import annotations

import json
import os
import queue
import struct
import threading
from itertools import repeat
from typing import Any, Iterator

import numpy as np

from ...directio import Appender
from ...errors import CollectionNotFound, SourceError, TargetNotEmpty, UsageError
from ...jsonlines import parse_line as _parse_line
from ...model import CollectionSchema, IdType, Metric, Partition, RecordBatch, RecordId, VectorField
from ...model.partition import row_ranges
from ..common import refuse_namespace, refuse_unknown_params
from ..credentials import NO_CREDENTIALS, Credentials
from ..base import ConnectorBase
from ..url import SourceURL
from .descriptor import DESCRIPTOR

VECTORS_FILE = "vectors.npy"


def checked_line(line: str, rec: str, lineno: int, pos: int, rows: int, id_type: type | None) -> tuple:
    """(id, metadata, document, uri) of one line of records.jsonl, with the whole-scan checks
    (no empty line, no more lines than the `rows` vector rows, one id type) and their exact
    errors; `pos` is the line's row, `id_type` that of the ids before it (None: first line)."""
    if not line.strip():
        raise SourceError(f"{rec} line {lineno}: empty line")
    if pos >= rows:
        raise SourceError(f"{rec} has more lines than {VECTORS_FILE} has rows ({rows})")
    rid, meta, doc, uri = _parse_line(line, rec, lineno)
    if id_type is not None and type(rid) is not id_type:
        raise SourceError(f"{rec} line {lineno}: ids mix strings and integers")
    return rid, meta, doc, uri
RECORDS_FILE = "records.jsonl"
URL_QUERY_KEYS = {"collection", "metric"}
METRICS = {"cosine": Metric.COSINE, "euclidean": Metric.EUCLIDEAN, "l2": Metric.EUCLIDEAN,
           "dot": Metric.DOT, "ip": Metric.DOT}
DTYPES = {"float32": "float32", "float16": "float16", "float64": "float64", "int8": "int8", "uint8": "uint8"}
PARTIAL = ".partial"
HEADER_BYTES = 128               # a fixed-size .npy (v1.0) header, written last
NO_DELETE = "an export is not changed in place: restore into a new directory (files:///new/dir)"


def _line_encoder():
    """json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False), with the C
    encoder built once instead of for every line; and the same for a whole column of values
    at once (a list of texts, one C call per value and no Python frame)."""
    c_make = getattr(json.encoder, "c_make_encoder", None)
    if c_make is None:
        one = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False).encode
        return one, lambda values: list(map(one, values))

    def no_default(v: Any) -> Any:
        raise TypeError(f"Object of type {type(v).__name__} is not JSON serializable")
    enc = c_make(None, no_default, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, False)
    return (lambda obj: "".join(enc(obj, 0))), (lambda values: list(map("".join, map(enc, values, repeat(0)))))


_ENCODE, _ENCODE_COLUMN = _line_encoder()
_ENCODE_STR = json.encoder.encode_basestring_ascii     # what the line encoder does to a str
_JSON_DECODE = json.JSONDecoder().decode


def _json_texts(raws: list[bytes]) -> list[str]:
    """The line text of each metadata value given as compact, key-sorted JSON (UTF-8): the
    same text _ENCODE_COLUMN gives for the decoded values. Text of ASCII bytes other than
    DEL is already exactly that (the two encoders differ only in escaping characters from
    0x7f up: ours escapes them, the stored form keeps them as they are), so it is taken as
    it is; any other value is decoded and encoded again."""
    joined = b"\n".join(raws)                # JSON text never holds a raw newline
    if joined.isascii() and b"\x7f" not in joined:
        out = joined.decode("ascii").split("\n")
        if len(out) == len(raws):
            return out
    return [r.decode("ascii") if r.isascii() and b"\x7f" not in r
            else _ENCODE(_JSON_DECODE(r.decode("utf-8", "surrogatepass"))) for r in raws]


def _json_column(values: list) -> list[str]:
    """_ENCODE_COLUMN(values); a column of plain str (or plain int) values by one C call a
    value (the encoder's own string escaping, int's own text)."""
    kinds = set(map(type, values))
    if kinds == {str}:
        return list(map(_ENCODE_STR, values))
    if kinds == {int}:
        return list(map(int.__repr__, values))
    return _ENCODE_COLUMN(values)


def _lines(fields: list[tuple[str, list[str]]], n: int) -> str:
    """The lines (each ending in a newline) of n records whose every line holds every field
    (name, the field's JSON texts), fields in key order: the pieces of all lines are laid
    out in one list by slice assignment and joined once (no step per line)."""
    if not n:
        return ""
    k = 2 * len(fields)
    parts: list[str] = [""] * (k * n)
    for j, (key, texts) in enumerate(fields):
        parts[2 * j::k] = [("}\n{" if j == 0 else ",") + '"' + key + '":'] * n
        parts[2 * j + 1::k] = texts
    parts[0] = parts[0][2:]                     # the first line has no line before it
    parts.append("}\n")
    return "".join(parts)


def _mixed_lines(ids: list[str], mtexts: list[str], docs: list, uris: list, texts: dict[str, list[str]]) -> str:
    """_lines for records of which only some carry a document or a URI."""
    dtexts, utexts = texts.get("document", docs), texts.get("uri", uris)
    return "".join("{" + ("" if d is None else '"document":' + dt + ",") + '"id":' + i + ',"metadata":' + m
                   + ("" if u is None else ',"uri":' + ut) + "}\n"
                   for i, m, d, dt, u, ut in zip(ids, mtexts, docs, dtexts, uris, utexts))


def _plain_dense(batch: RecordBatch, dim: int) -> bool:
    arr = batch.dense.get("")
    return (arr is not None and len(batch.dense) == 1 and not batch.multi and not batch.sparse
            and not batch.dense_present and arr.ndim == 2 and arr.shape == (len(batch.ids), dim))


class FilesConnector(ConnectorBase):
    """One export directory: vectors.npy + records.jsonl, as one collection."""

    provider = "files"
    descriptor = DESCRIPTOR
    url_collection: str | None = None     # the collection the URL names (?collection=NAME)
    concurrent_writes = False             # one process appends to the export's two files
    takes_metadata_json = True            # stored JSON text is copied into the lines (_json_texts)

    def __init__(self, path: str, collection: str, metric: Metric) -> None:
        self._path = path
        self._name = collection
        self._metric = metric
        self._writing: dict[str, Any] | None = None     # the export being written by a restore

    @classmethod
    def from_url(cls, u: SourceURL, credentials: Credentials = NO_CREDENTIALS) -> "FilesConnector":
        """An export needs no credentials: any given are not used."""
        if u.username or u.password:
            raise UsageError("a files URL takes no credentials")
        refuse_unknown_params(u, "files", URL_QUERY_KEYS)
        if u.host:
            raise UsageError("a files URL names a local directory: files:///abs/path/to/dir")
        path = u.path
        if not path or not os.path.isabs(path):
            raise UsageError("a files URL needs an absolute path: files:///abs/path/to/dir")
        path = os.path.normpath(path)
        metric_text = u.query.get("metric", "").lower()
        if metric_text and metric_text not in METRICS:
            raise UsageError(f"unknown metric {metric_text!r} (known: {', '.join(sorted(METRICS))})")
        metric = METRICS.get(metric_text, Metric.UNKNOWN)
        name = u.query.get("collection") or os.path.basename(path)
        if not name:
            raise UsageError("cannot name the collection: add ?collection=NAME")
        conn = cls(path, name, metric)
        conn.url_collection = u.query.get("collection") or None
        return conn

    # ----------------------------------------------------------------- reading

    def _files(self) -> tuple[str, str]:
        if not os.path.isdir(self._path):
            raise SourceError(f"export directory {self._path} does not exist")
        vec, rec = os.path.join(self._path, VECTORS_FILE), os.path.join(self._path, RECORDS_FILE)
        for f in (vec, rec):
            if not os.path.isfile(f):
                raise SourceError(f"{f} is missing: an export needs {VECTORS_FILE} and {RECORDS_FILE}")
        return vec, rec

    def _check(self, collection: str) -> None:
        if collection != self._name:
            raise CollectionNotFound(f"collection {collection!r} not found at files://{self._path} "
                                     f"(it holds {self._name!r})")

    def _vectors(self) -> np.ndarray:
        vec, _ = self._files()
        try:
            arr = np.load(vec, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise SourceError(f"{vec} is not a readable .npy array ({type(e).__name__})") from e
        if arr.ndim != 2:
            raise SourceError(f"{vec} must be 2-D (records x dim), it has {arr.ndim} dimension(s)")
        if arr.shape[1] == 0:
            raise SourceError(f"{vec} holds vectors of dimension 0: there is nothing to back up "
                              "and nothing a restore could write (export the vectors themselves)")
        if arr.dtype.name not in DTYPES:
            raise SourceError(f"{vec} has dtype {arr.dtype.name}; supported: {', '.join(DTYPES)}")
        return arr

    def list_collections(self) -> list[str]:
        self._files()
        return [self._name]

    def exists(self, collection: str) -> bool:
        if collection != self._name:
            return False
        try:
            self._files()
        except SourceError:
            return False
        return True

    def describe(self, collection: str) -> CollectionSchema:
        self._check(collection)
        arr = self._vectors()
        vector = VectorField(name="", dim=int(arr.shape[1]), metric=self._metric, dtype=DTYPES[arr.dtype.name])
        return CollectionSchema(
            provider=self.provider, name=collection, id_type=self._id_type(), vectors=(vector,),
            namespaces=("",), has_documents=False, has_uris=False,
            extras={"vectors_file": VECTORS_FILE, "records_file": RECORDS_FILE,
                    "vectors_dtype": arr.dtype.str},
        )

    def _id_type(self) -> IdType:
        """The type of the first line's id; scan refuses an export whose ids are mixed."""
        _, rec = self._files()
        try:
            with open(rec, "r", encoding="utf-8") as f:
                line = f.readline()
        except (OSError, UnicodeDecodeError) as e:
            raise SourceError(f"cannot read {rec} ({type(e).__name__})") from e
        if not line.strip():
            return IdType.UNKNOWN
        rid = _parse_line(line, rec, 1)[0]
        return IdType.STRING if isinstance(rid, str) else IdType.INT

    def count(self, collection: str, namespace: str = "") -> int:
        self._check(collection)
        refuse_namespace(namespace, "a files export has no namespaces")
        if self._writing is not None:
            return int(self._writing["rows"])
        return int(self._vectors().shape[0])

    def partitions(self, collection: str, namespace: str = "", target_size: int = 100_000) -> list[Partition]:
        """Row ranges of target_size rows (the last one open: appended rows join it)."""
        return row_ranges(self.count(collection, namespace), target_size, "rows", namespace)

    def scan_partition(self, collection: str, partition: Partition, batch_size: int = 1000) -> Iterator[RecordBatch]:
        spec = partition.spec
        return self._scan(collection, partition.namespace, batch_size, int(spec.get("start") or 0),
                          None if spec.get("stop") is None else int(spec["stop"]))

    def scan(self, collection: str, namespace: str = "", batch_size: int = 1000) -> Iterator[RecordBatch]:
        return self._scan(collection, namespace, batch_size)

    def scan_derived(self, collection: str, partition: Partition, batch_size: int,
                     pmap: Any) -> Iterator[tuple[RecordBatch, Any]] | None:
        """The partition as (batch, what `pmap` derived of its metadata, or None) pairs, the
        lines parsed by `pmap` in a helper process (chunks.py); None for a row range whose
        earlier lines cannot be skipped by counting line ends (a "\r" or a fault among them:
        scan_partition reads it, with the plain scan's errors)."""
        self._check(collection)
        refuse_namespace(partition.namespace, "a files export has no namespaces")
        from .chunks import line_offset, scan_derived
        spec = partition.spec
        start = int(spec.get("start") or 0)
        stop = None if spec.get("stop") is None else int(spec["stop"])
        begin = line_offset(self._files()[1], start)
        if begin is None:
            return None
        return scan_derived(self, collection, batch_size, pmap, start, stop, begin)

    def _scan(self, collection: str, namespace: str, batch_size: int, start: int = 0,
              stop: int | None = None) -> Iterator[RecordBatch]:
        """Rows start..stop-1 (stop None: to the end)."""
        self._check(collection)
        refuse_namespace(namespace, "a files export has no namespaces")
        if batch_size < 1:
            raise UsageError("batch size must be at least 1")
        arr = self._vectors()
        _, rec = self._files()
        stored, native = arr.dtype, arr.dtype.newbyteorder("=")
        offset, rows, dim = int(arr.offset), int(arr.shape[0]), int(arr.shape[1])
        row_bytes = stored.itemsize * dim
        del arr                                   # the map was for the header only
        end = rows if stop is None else min(stop, rows)
        pos = 0
        id_type: type | None = None
        ids: list[RecordId] = []
        metas: list[Any] = []
        docs: list[Any] = []
        uris: list[Any] = []

        def batch() -> RecordBatch:
            a = pos - len(ids)
            vf.seek(offset + a * row_bytes)
            dense = np.empty((pos - a, dim), dtype=stored)     # read straight into the batch's matrix
            if vf.readinto(dense.reshape(-1).view(np.uint8)) != (pos - a) * row_bytes:
                raise SourceError(f"{VECTORS_FILE} is shorter than its header says")
            if stored != native:
                dense = dense.astype(native)
            out = RecordBatch(ids=list(ids), dense={"": dense}, metadata=list(metas),
                              documents=list(docs) if any(d is not None for d in docs) else None,
                              uris=list(uris) if any(u is not None for u in uris) else None)
            ids.clear(), metas.clear(), docs.clear(), uris.clear()
            return out

        try:
            with open(rec, "r", encoding="utf-8") as f, open(self._files()[0], "rb") as vf:
                for lineno, line in enumerate(f, start=1):
                    if pos < start:               # rows of earlier partitions: counted, not parsed
                        pos += 1
                        continue
                    if pos >= end and stop is not None:
                        break
                    rid, meta, doc, uri = checked_line(line, rec, lineno, pos, rows, id_type)
                    id_type = type(rid)
                    ids.append(rid)
                    metas.append(meta)
                    docs.append(doc)
                    uris.append(uri)
                    pos += 1
                    if len(ids) >= batch_size:
                        yield batch()
                if pos != end and (stop is None or pos < end):
                    raise SourceError(f"{rec} has {pos} lines but {VECTORS_FILE} has {rows} rows")
                if ids:
                    yield batch()
        except OSError as e:
            raise SourceError(f"cannot read {rec} ({type(e).__name__})") from e
        except UnicodeDecodeError as e:
            raise SourceError(f"{rec} is not UTF-8 text") from e

    # ----------------------------------------------------------------- writing (restore)

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        if schema.provider != self.provider:
            raise UsageError(f"a files export takes snapshots of a files source, not of {schema.provider}: "
                             "restore into a database instead")
        if len(schema.vectors) != 1 or schema.vectors[0].multivector or schema.vectors[0].dim is None \
                or schema.sparse:
            raise UsageError("a files export holds exactly one dense vector of known dimension per record")
        for f in (VECTORS_FILE, RECORDS_FILE):
            if os.path.lexists(os.path.join(self._path, f)):
                raise TargetNotEmpty(f"{self._path} already holds an export: restore into a new directory")
        v = schema.vectors[0]
        dtype = np.dtype(DTYPES.get(v.dtype, "") or "float32").newbyteorder("<")
        try:
            os.makedirs(self._path, mode=0o700, exist_ok=True)
            vec = Appender(_create_private(os.path.join(self._path, VECTORS_FILE + PARTIAL)))
            rec = os.fdopen(_create_private(os.path.join(self._path, RECORDS_FILE + PARTIAL)), "w",
                            encoding="utf-8")
            vec.write(b"\0" * HEADER_BYTES)
        except OSError as e:
            raise SourceError(f"cannot write an export in {self._path} ({type(e).__name__})") from e
        self._name = name
        self._writing = {"vec": vec, "rec": rec, "dtype": dtype, "dim": int(v.dim), "rows": 0,
                         "out": _Output(self._path)}

    def write(self, collection: str, batch: RecordBatch) -> None:
        w = self._writing
        if w is None or collection != self._name:
            raise UsageError("an existing export is not written to: restore into a new directory")
        refuse_namespace(batch.namespace, "a files export has no namespaces")
        if _plain_dense(batch, w["dim"]):
            self._write_plain(batch)
            return
        lines, rows = [], []
        for r in batch.records():
            vec = r.vectors.get("")
            if vec is None or len(r.vectors) != 1 or r.sparse or vec.shape != (w["dim"],):
                raise UsageError(f"record {len(lines) + w['rows'] + 1} of the batch is not one "
                                 f"{w['dim']}-d vector: a files export cannot hold it")
            rows.append(np.asarray(vec, dtype=w["dtype"]))
            line: dict[str, Any] = {"id": r.id, "metadata": r.metadata}
            if r.document is not None:
                line["document"] = r.document
            if r.uri is not None:
                line["uri"] = r.uri
            try:
                lines.append(_ENCODE(line))
            except (TypeError, ValueError) as e:
                raise UsageError(f"a metadata value cannot be written as JSON ({type(e).__name__})") from None
        w["out"].put([(w["vec"], np.stack(rows).tobytes() if rows else b""),
                      (w["rec"], "".join(x + "\n" for x in lines))])
        w["rows"] += len(rows)

    def _write_plain(self, batch: RecordBatch) -> None:
        """A batch of one dense vector per record: the matrix is written at once."""
        w = self._writing
        n = len(batch.ids)
        docs, uris = batch.documents, batch.uris
        try:
            # each line is {"id":..,"metadata":..} (keys sorted, "document" first and "uri" last
            # when present): the columns are encoded whole and the lines put together from them
            ids = _json_column(batch.ids)
            if batch.metadata is None and batch.metadata_json is not None:
                mtexts = _json_texts(batch.metadata_json)
            else:
                mtexts = _ENCODE_COLUMN(batch.metadata or [None] * n)
            fields = [("id", ids), ("metadata", mtexts)]
            mixed = False
            for key, col in (("document", docs), ("uri", uris)):
                if col is None or all(v is None for v in col):
                    continue
                if None in col:
                    mixed = True
                fields.insert(0 if key == "document" else len(fields), (key, _json_column(col)))
            if mixed:
                text = _mixed_lines(ids, mtexts, docs or [None] * n, uris or [None] * n, dict(fields))
            else:
                text = _lines(fields, n)
        except (TypeError, ValueError) as e:
            raise UsageError(f"a metadata value cannot be written as JSON ({type(e).__name__})") from None
        w["out"].put([(w["vec"], memoryview(np.ascontiguousarray(batch.dense[""], dtype=w["dtype"])).cast("B")),
                      (w["rec"], text)])
        w["rows"] += n

    def finish(self, collection: str) -> None:
        """Complete the export: the .npy header, then both files under their final names."""
        w, self._writing = self._writing, None
        if w is None:
            return
        header = "{'descr': %r, 'fortran_order': False, 'shape': (%d, %d), }" % (
            np.lib.format.dtype_to_descr(w["dtype"]), w["rows"], w["dim"])
        body = header.ljust(HEADER_BYTES - 10 - 1) + "\n"
        w["out"].close()                       # every batch written (or its error raised)
        try:
            w["vec"].end()
            os.pwrite(w["vec"].fileno(), b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1"), 0)
            for f in ("vec", "rec"):
                w[f].flush()
                os.fsync(w[f].fileno())
                w[f].close()
            for f in (RECORDS_FILE, VECTORS_FILE):
                os.replace(os.path.join(self._path, f + PARTIAL), os.path.join(self._path, f))
        except OSError as e:
            raise SourceError(f"cannot complete the export in {self._path} ({type(e).__name__})") from e

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        raise UsageError(NO_DELETE)

    def close(self) -> None:
        if self._writing is not None:          # an unfinished restore: leave only .partial files
            try:
                self._writing["out"].close()
            except SourceError:
                pass
            for f in ("vec", "rec"):
                self._writing[f].close()
            self._writing = None




class _Output:
    """Writes a restore's batches to the export's files on one thread of its own, in order,
    while the caller reads and verifies the next ones (writing releases the interpreter's
    lock). At most QUEUED batches wait; the first error stops the writing and is raised
    by the next `put` or by `close`. Every SYNC_EVERY bytes a file gets, it is flushed to
    disk on this thread (fdatasync), so the fsync that completes the export waits for the
    last ones only, not for the whole export (600 MB took 0.4 s at the end here). The
    vectors file goes past the page cache where the file system takes it
    (vdedup/directio.py `Appender`): its writeback cost the kernel ~2 CPU s per GB here."""

    QUEUED = 4
    SYNC_EVERY = 64 << 20

    def __init__(self, path: str) -> None:
        self._path = path
        self._jobs: queue.Queue = queue.Queue(self.QUEUED)
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="vdedup-files-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        unsynced: dict[Any, int] = {}
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._error is None:
                try:
                    for f, data in job:
                        if len(data):
                            f.write(data)
                            n = unsynced.get(f, 0) + len(data)
                            if n >= self.SYNC_EVERY:
                                f.flush()
                                os.fdatasync(f.fileno())
                                n = 0
                            unsynced[f] = n
                except Exception as e:             # OSError mostly; any error ends the writing
                    self._error = e

    def _raise(self) -> None:
        if self._error is not None:
            e, self._error = self._error, None
            raise SourceError(f"cannot write the export in {self._path} ({type(e).__name__})") from e

    def put(self, job: list[tuple[Any, Any]]) -> None:
        """Queue writes of (file, bytes or text) pairs, done in this order after earlier ones."""
        self._raise()
        if not self._thread.is_alive():
            raise SourceError(f"cannot write the export in {self._path} (writer stopped)")
        self._jobs.put(job)

    def close(self) -> None:
        """Wait until everything queued is written; raise the first error."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self._raise()


def _create_private(path: str) -> int:
    """A new file of mode 0600 at `path`, never through a link: whatever is there first (the
    .partial file of an interrupted restore, or a symlink planted to make the restore write
    elsewhere) is unlinked, not followed, and the file is created exclusively."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                   0o600)
