"""The connector contract: what every connector does against its real server or emulator.

One suite, run by test_contract.py on every target (a connector and the server it is tested
against); provider-specific behaviour stays in test_<provider>.py beside it. The cases:

- schema round trip: a collection created from a schema describes as that schema (vectors,
  metrics, sparse fields, id type), and so does one created from what describe returned;
- values: every value kind the provider holds comes back exactly: dense float32 bit for bit
  (extremes and subnormals included), sparse vectors, named vectors, metadata of each type
  (unicode strings, ints, floats, bools, nulls, lists, nested objects), documents, uris;
- namespaces: records written to two namespaces are counted and scanned apart; a provider
  without namespaces refuses a batch that names one (it never lands in the default one);
- an empty collection: described, counted 0, scanned as nothing, discovered with count 0;
- ids at the edges of the id types: the extremes of the integer range, long unicode strings,
  UUIDs;
- a dropped connection: a proxy between connector and server cuts every connection while a
  scan is between batches; the scan either finishes with every record exactly once or raises
  a SourceError (exit 15) -- never another exception, never a short answer -- and a reopened
  connector then reads everything. Embedded targets have no connection to drop: the scan is
  abandoned midway, the connector closed, and a new one over the same storage reads it all;
- wrong credentials: a SourceError (exit 15) that names where the secret came from and not
  the secret itself;
- discovery: discover() lists the collection with its count, dimension and metric.
- partitions: a namespace split by partitions(target_size) is read by scan_partition, every
  record exactly once over all partitions, records written after the plan (ids below and
  above every other, and between) included; a target that declares key ranges for an id
  type (`Target.partitioned`) splits it into several partitions, the same ones when asked
  twice.

What a provider cannot hold is read from its descriptor's `Capabilities`
(vdedup/connectors/<provider>/descriptor.py), never decided here: each case builds its data
from those declarations, and checks the declared limits where it cannot use a feature. A
target's own facts (the URL grammar, a server that does not enforce authentication, a
connection a proxy can sit in) are fields of `Target`, each stated with its reason.
"""
from __future__ import annotations

import socket
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

from vdedup.connectors import Credentials, open_connector
from vdedup.connectors.base import Connector
from vdedup.connectors.descriptor import Capabilities
from vdedup.errors import SourceError, VdedupError
from vdedup.model import (CollectionSchema, IdType, MetadataField, Metric, RecordBatch,
                          SparseField, SparseVector, VectorField)
from vdedup.model.record import Record

DIM = 8
DENSE_METRICS = (Metric.COSINE, Metric.DOT, Metric.EUCLIDEAN, Metric.MANHATTAN)
NAMESPACES = ("alpha", "beta_2")          # names every provider's namespace grammar takes
WRONG_SECRET = "contract-wrong-SECRET-0451"


# ------------------------------------------------------------------ targets


@dataclass
class Target:
    """A connector and the server (or storage) it is tested against.

    url(collection, metric): the URL a connector is opened with to create, write and read
    `collection` (an account URL for databases; an export directory for files, whose URL
    states the metric). naming: the collection-name grammar ("snake", "dash", "class").
    proxy_url(collection, port): the same URL through a TCP proxy on `port`, and upstream the
    (host, port) the proxy forwards to: None for embedded storage, which has no connection.
    refused(): a URL and credentials the server refuses, or None with `unenforced` saying
    why the test server cannot refuse any (checked by the case, so it fails when that changes).
    cleanup: what the target's fixture undoes afterwards (e.g. a pg_hba rule refused() added).
    partitioned: the id types the connector splits into key ranges (more than one partition
    for a namespace larger than the target size); others may give one whole partition.
    written_once: why records cannot be added to a finished collection (a files export), so
    the partitions case adds none after the plan.
    """
    name: str
    url: Callable[[str, Metric], str]
    credentials: Credentials
    naming: str = "snake"
    proxy_url: Callable[[str, int], str] | None = None
    upstream: Callable[[str], tuple[str, int]] | None = None
    refused: Callable[[], tuple[str, Credentials]] | None = None
    unenforced: str = ""
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    partitioned: tuple[IdType, ...] = ()
    written_once: str = ""

    def open(self, collection: str, metric: Metric = Metric.DOT) -> Connector:
        return open_connector(self.url(collection, metric), self.credentials)

    def collection(self, tag: str) -> str:
        suffix = uuid.uuid4().hex[:8]
        if self.naming == "dash":
            return f"ct-{tag.replace('_', '-')}-{suffix}"
        if self.naming == "class":
            return "Ct" + "".join(p.capitalize() for p in tag.split("_")) + suffix
        return f"ct_{tag}_{suffix}"


def capabilities(conn: Connector) -> Capabilities:
    caps = conn.descriptor.capabilities
    assert caps is not None, f"{conn.descriptor.name} declares no capabilities"
    return caps


# ------------------------------------------------------------------ exact comparison


def typed(value: Any) -> Any:
    """A value with its types made visible (1 != 1.0 != True) and floats as their bits."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, (list, tuple)):
        return ("list", [typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", sorted((k, typed(v)) for k, v in value.items()))
    return (type(value).__name__, repr(value))


def record_key(r: Record) -> tuple:
    return (typed(r.id),
            sorted((k, v.dtype.str, v.shape, v.tobytes()) for k, v in r.vectors.items()),
            sorted((k, v.indices.tobytes(), v.values.tobytes()) for k, v in r.sparse.items()),
            typed(r.metadata), r.document, r.uri)


def assert_same(got: list[Record], want: list[Record]) -> None:
    g = {typed(r.id): r for r in got}
    assert len(g) == len(got), "a record came back twice"
    w = {typed(r.id): r for r in want}
    assert set(g) == set(w), (f"missing {sorted(set(w) - set(g))[:5]}, "
                              f"unexpected {sorted(set(g) - set(w))[:5]}")
    for k, r in w.items():
        assert record_key(g[k]) == record_key(r), f"record {r.id!r}: {g[k]} != {r}"


def read_all(conn: Connector, collection: str, namespace: str = "",
             batch_size: int = 1000) -> list[Record]:
    out: list[Record] = []
    for batch in conn.scan(collection, namespace, batch_size=batch_size):
        assert len(batch) <= batch_size
        assert batch.namespace == namespace
        out.extend(batch.records())
    return out


# ------------------------------------------------------------------ data from capabilities


def id_types(caps: Capabilities) -> list[IdType]:
    return [t for t in (IdType.STRING, IdType.INT, IdType.UUID) if t in caps.id_types]


def edge_ids(caps: Capabilities, id_type: IdType) -> list[Any]:
    """Ids at the edges of one id type: integer extremes, long unicode strings, UUIDs."""
    if id_type == IdType.INT:
        lo, hi = caps.int_ids
        return list(dict.fromkeys([lo, lo + 1, 0, 1, 2 ** 31, 2 ** 53 + 1, 2 ** 63 - 1, hi - 1, hi]))
    if id_type == IdType.UUID:
        return ["00000000-0000-4000-8000-000000000000", "ffffffff-ffff-4fff-bfff-ffffffffffff",
                *(str(uuid.UUID(int=i * 0x1F1F1F1F1F1F1F1F1F1F1F1F, version=4)) for i in range(1, 7))]
    if caps.id_forbidden_chars:
        return [i for i in edge_ids_all(caps) if not any(c in i for c in caps.id_forbidden_chars)]
    return edge_ids_all(caps)


def edge_ids_all(caps: Capabilities) -> list[str]:
    if caps.ascii_ids:
        return ["a", "Z", "0", " lead and trail ", "x" * 200, "q?&=#%/\\\"'", "~" * 64]
    long_unicode = "Grüße-世界-😀-" * 12                     # 120 characters, 264 UTF-8 bytes
    return ["a", "Z", "0", " lead and trail ", "ü", "中文 id", "😀", long_unicode,
            "x" * 200, "q?&=#%/\\\"'"]


def vector_names(caps: Capabilities) -> list[str]:
    if caps.named_vectors and (caps.max_dense is None or caps.max_dense >= 2):
        return ["a", "b"]
    return [""]


def sparse_name(caps: Capabilities, metric: Metric = Metric.DOT) -> str | None:
    if not caps.sparse or (caps.sparse_dense_metrics is not None and metric not in caps.sparse_dense_metrics):
        return None
    return "s" if caps.named_sparse else ""


def metadata_fields(caps: Capabilities) -> tuple[MetadataField, ...]:
    types = caps.metadata_types
    fields = [MetadataField("title", "str")]
    if "int" in types:
        fields.append(MetadataField("n", "int"))
    if "float" in types:
        fields.append(MetadataField("score", "float"))
    if "bool" in types:
        fields.append(MetadataField("ok", "bool"))
    if "list" in types:
        fields.append(MetadataField("tags", "list"))
    if "dict" in types and caps.nested_metadata:
        fields.append(MetadataField("info", "dict"))
    return tuple(fields)


def metadata(caps: Capabilities, i: int) -> dict[str, Any]:
    """One record's metadata: only the kinds the provider declares it keeps exactly."""
    types = caps.metadata_types
    m: dict[str, Any] = {"title": ["plain", "Grüße, 世界 😀", "", "tab\tnew\nline", "ẞ"][i % 5] + str(i)}
    if "int" in types:
        m["n"] = [0, -1, 2 ** 40 + 3, -(2 ** 31) - 5, i][i % 5]
    if "float" in types:
        exact = [0.1, -2.5e-300, 1e300, 3.141592653589793] if caps.exact_floats else [0.5, -2.25]
        m["score"] = exact[i % len(exact)] if "int" in types else float(i) + exact[i % len(exact)]
    if "bool" in types:
        m["ok"] = i % 2 == 0
    if "list" in types:
        m["tags"] = [f"t{i % 3}", "ü"]
    if "dict" in types and caps.nested_metadata:
        m["info"] = {"source": f"s{i % 4}", "depth": {"level": "two", "flag": i % 3 == 0}}
    if caps.null_metadata and i % 4 == 1:
        m["title"] = None
    return m


def dense_values(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v[0, :4] = [np.float32(1e-38), np.float32(-3.4028235e38), np.float32(2.0 ** -149),
                np.float32(-0.0)]
    if n > 1:
        v[1, :3] = [np.float32(3.4028235e38), np.nextafter(np.float32(1), np.float32(2)),
                    np.float32(-1.1754942e-38)]
    return v


def build_schema(conn: Connector, name: str, metric: Metric, id_type: IdType,
                 namespaces: tuple[str, ...] = ("",), with_sparse: bool = True) -> CollectionSchema:
    caps = capabilities(conn)
    sname = sparse_name(caps, metric) if with_sparse else None
    return CollectionSchema(
        provider=conn.provider, name=name, id_type=id_type,
        vectors=tuple(VectorField(v, DIM, metric) for v in vector_names(caps)),
        sparse=(SparseField(sname, Metric.DOT),) if sname is not None else (),
        metadata_fields=metadata_fields(caps), namespaces=namespaces,
        has_documents=caps.documents, has_uris=caps.uris)


def build_records(caps: Capabilities, ids: list[Any], seed: int = 0, with_sparse: bool = True,
                  metric: Metric = Metric.DOT) -> list[Record]:
    rng = np.random.default_rng(seed)
    names = vector_names(caps)
    dense = {v: dense_values(rng, len(ids)) for v in names}
    sname = sparse_name(caps, metric) if with_sparse else None
    out = []
    for i, rid in enumerate(ids):
        sparse = {}
        if sname is not None:
            k = 1 + i % 5
            idx = np.sort(rng.choice(100_000, size=k, replace=False)).astype(np.uint32)
            idx[-1] = np.uint32(caps.sparse_max_index) if i == 0 else idx[-1]
            values = rng.standard_normal(k).astype(np.float32)
            if caps.sparse_positive:
                values = np.abs(values) + np.float32(2.0 ** -20)
            sparse[sname] = SparseVector(idx, values)
        out.append(Record(
            id=rid, vectors={v: dense[v][i] for v in names}, sparse=sparse,
            metadata=metadata(caps, i),
            document=(None if i % 7 == 3 else f"document {i}: Grüße 😀") if caps.documents else None,
            uri=(None if i % 5 == 2 else f"https://example.com/ü/{i}") if caps.uris else None))
    return out


def write(conn: Connector, collection: str, records: list[Record], namespace: str = "",
          batch: int = 100) -> None:
    for a in range(0, len(records), batch):
        conn.write(collection, RecordBatch.from_records(records[a:a + batch], namespace))


def load(target: Target, tag: str, n: int, metric: Metric = Metric.DOT,
         id_type: IdType | None = None) -> tuple[Connector, str, list[Record]]:
    """A new collection holding n records; the connector is left open."""
    name = target.collection(tag)
    conn = target.open(name, metric)
    caps = capabilities(conn)
    id_type = id_type or id_types(caps)[0]
    ids = generic_ids(id_type, n, caps)
    records = build_records(caps, ids, metric=metric)
    conn.create_collection(build_schema(conn, name, metric, id_type), name)
    write(conn, name, records)
    conn.finish(name)
    conn.settle(name, "")
    return conn, name, records


def generic_ids(id_type: IdType, n: int, caps: Capabilities | None = None) -> list[Any]:
    if id_type == IdType.INT:
        return [i * 7919 + 1 for i in range(n)]
    if id_type == IdType.UUID:
        return [str(uuid.UUID(int=(i + 1) * 0x9E3779B97F4A7C15, version=4)) for i in range(n)]
    return [f"rec-{i:05d}" + ("" if caps is not None and caps.ascii_ids else "-ü") for i in range(n)]


# ------------------------------------------------------------------ a proxy that can cut


class CutProxy:
    """A TCP proxy on loopback: forwards every connection to (host, port), and cut() drops
    all the open ones at once, as a network failure would. New connections are accepted
    after a cut (the network came back)."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._listen = socket.create_server(("127.0.0.1", 0))
        self.port = self._listen.getsockname()[1]
        self.accepted = 0
        self.cuts = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name=f"cut-proxy-{self.port}").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listen.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
            self.cuts += 1
        for s in sockets:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._closed = True
        self._listen.close()
        self.cut()


# ------------------------------------------------------------------ the cases


def check_schema_round_trip(target: Target) -> None:
    probe = target.open(target.collection("probe"))
    caps = capabilities(probe)
    probe.close()
    metrics = [m for m in DENSE_METRICS if m in caps.metrics]
    assert metrics, "a provider with no dense metric"
    for metric in metrics:
        for id_type in id_types(caps):
            name = target.collection("schema")
            conn = target.open(name, metric)
            try:
                want = build_schema(conn, name, metric, id_type)
                conn.create_collection(want, name)
                conn.finish(name)
                assert conn.exists(name)
                got = _described(conn, name, caps, id_type)
                _same_schema(got, want, caps)
            finally:
                conn.close()                   # local storage takes one client at a time
            again = target.collection("schema2")
            conn = target.open(again, metric)
            try:
                conn.create_collection(got, again)     # from what describe returned
                conn.finish(again)
                _same_schema(_described(conn, again, caps, id_type), want, caps)
            finally:
                conn.close()


def _described(conn: Connector, name: str, caps: Capabilities, id_type: IdType) -> CollectionSchema:
    got = conn.describe(name)
    if not caps.empty_dims:                # the dimension is learnt from the first record
        assert all(v.dim is None for v in got.vectors), got.vectors
        write(conn, name, build_records(caps, generic_ids(id_type, 1, caps)))
        conn.settle(name, "")
        got = conn.describe(name)
    return got


def _same_schema(got: CollectionSchema, want: CollectionSchema, caps: Capabilities) -> None:
    assert got.provider == want.provider
    vec = sorted((v.name, v.dim, v.metric, v.dtype, v.multivector) for v in got.vectors)
    wanted = sorted((v.name, v.dim, v.metric, v.dtype, v.multivector) for v in want.vectors)
    assert vec == wanted, f"described {vec}, created {wanted}"
    assert sorted(s.name for s in got.sparse) == sorted(s.name for s in want.sparse)
    if got.id_type != IdType.UNKNOWN:           # schemaless ids (Chroma, Pinecone): str only
        assert got.id_type == want.id_type


def check_values(target: Target) -> None:
    """Every value kind the descriptor declares, through write and scan, bit for bit."""
    conn, name, records = load(target, "values", 120, Metric.DOT)
    try:
        caps = capabilities(conn)
        assert conn.count(name) == len(records)
        got = read_all(conn, name, batch_size=37)
        assert_same(got, records)
        kinds = {type(v).__name__ for r in records for v in (r.metadata or {}).values()}
        assert {"str"} <= kinds
        if caps.null_metadata:
            assert "NoneType" in kinds
        if caps.sparse:
            assert all(r.sparse for r in got)
    finally:
        conn.close()


def check_ids(target: Target) -> None:
    probe = target.open(target.collection("probe"))
    caps = capabilities(probe)
    probe.close()
    for id_type in id_types(caps):
        name = target.collection("ids")
        conn = target.open(name, Metric.EUCLIDEAN)
        try:
            ids = edge_ids(caps, id_type)
            records = build_records(caps, ids, seed=3, with_sparse=False)
            conn.create_collection(build_schema(conn, name, Metric.EUCLIDEAN, id_type,
                                                with_sparse=False), name)
            write(conn, name, records)
            conn.finish(name)
            conn.settle(name, "")
            assert conn.count(name) == len(ids)
            assert_same(read_all(conn, name, batch_size=3), records)
            refused = [f"id{c}x" for c in caps.id_forbidden_chars]
            refused += ["idü"] if caps.ascii_ids else []
            for rid in refused if id_type == IdType.STRING else []:
                bad = build_records(caps, [rid], with_sparse=False)
                with pytest.raises(VdedupError) as e:     # refused, not stored inexactly
                    write(conn, name, bad)
                assert rid not in str(e.value)            # and the id is not echoed
        finally:
            conn.close()


def check_namespaces(target: Target) -> None:
    name = target.collection("ns")
    conn = target.open(name)
    try:
        caps = capabilities(conn)
        id_type = id_types(caps)[0]
        if caps.namespace_kind is None:
            conn.create_collection(build_schema(conn, name, Metric.DOT, id_type), name)
            records = build_records(caps, generic_ids(id_type, 3, caps))
            with pytest.raises(VdedupError):
                conn.write(name, RecordBatch.from_records(records, NAMESPACES[0]))
            conn.finish(name)
            assert conn.describe(name).namespaces == ("",)
            return
        conn.create_collection(build_schema(conn, name, Metric.DOT, id_type, NAMESPACES), name)
        per_ns = {}
        ids = generic_ids(id_type, 40 + 25 * len(NAMESPACES), caps)
        for k, ns in enumerate(NAMESPACES):
            # the same ids in every namespace, kept apart; where a key is collection-wide,
            # ids of their own (and the declared fact is checked below)
            mine = ids[:40 + k * 25] if caps.ids_per_namespace else ids[k * 40:k * 40 + 40]
            per_ns[ns] = build_records(caps, mine, seed=10 + k)
            write(conn, name, per_ns[ns], ns, batch=30)
        conn.finish(name)
        for ns in NAMESPACES:
            conn.settle(name, ns)
        assert set(NAMESPACES) <= set(conn.describe(name).namespaces)
        for ns, records in per_ns.items():
            assert conn.count(name, ns) == len(records)
            assert_same(read_all(conn, name, ns, batch_size=16), records)
        if not caps.ids_per_namespace:             # an id of alpha written into beta: refused
            a, b = NAMESPACES[:2]
            with pytest.raises(VdedupError):
                write(conn, name, per_ns[a][:1], b)
            conn.settle(name, a)
            conn.settle(name, b)
            assert conn.count(name, a) == len(per_ns[a])
            assert conn.count(name, b) == len(per_ns[b])
    finally:
        conn.close()


def check_empty_collection(target: Target) -> None:
    name = target.collection("empty")
    conn = target.open(name, Metric.EUCLIDEAN)
    try:
        caps = capabilities(conn)
        conn.create_collection(build_schema(conn, name, Metric.EUCLIDEAN, id_types(caps)[0]), name)
        conn.finish(name)
        assert conn.exists(name)
        schema = conn.describe(name)
        vector = schema.vector(vector_names(caps)[0])
        assert vector is not None and vector.dim == (DIM if caps.empty_dims else None)
        assert sum(conn.count(name, ns) for ns in schema.namespaces) == 0
        assert read_all(conn, name) == []
        found = {d.name: d for d in conn.discover()}
        assert name in found and found[name].count in (0, None) and found[name].problem is None
    finally:
        conn.close()


def check_discovery(target: Target) -> None:
    conn, name, records = load(target, "disc", 30, Metric.EUCLIDEAN)
    try:
        found = {d.name: d for d in conn.discover()}
        assert name in found, sorted(found)
        d = found[name]
        assert d.provider == conn.descriptor.name and d.problem is None
        assert d.count == len(records)
        assert d.dims == DIM
        assert d.metric == Metric.EUCLIDEAN.value
    finally:
        conn.close()


def check_dropped_connection(target: Target) -> None:
    """Cut mid-scan: every record exactly once, or a SourceError; then a new connection reads all."""
    conn, name, records = load(target, "drop", 240, Metric.DOT)
    conn.close()
    if target.proxy_url is None:
        first = target.open(name)
        it = first.scan(name, "", batch_size=40)
        assert len(next(it)) == 40
        it.close()                               # abandoned midway, and the handle goes away
        first.close()
        again = target.open(name)
        try:
            assert_same(read_all(again, name, batch_size=40), records)
        finally:
            again.close()
        return
    assert target.upstream is not None
    proxy = CutProxy(*target.upstream(name))
    try:
        via = open_connector(target.proxy_url(name, proxy.port), target.credentials)
        got: list[Record] = []
        outcome = "finished"
        try:
            it = via.scan(name, "", batch_size=40)
            got.extend(next(it).records())
            assert proxy.accepted >= 1, "the connector did not go through the proxy"
            proxy.cut()
            for batch in it:
                got.extend(batch.records())
        except SourceError as e:
            assert e.exit_code == 15
            outcome = "refused"
        finally:
            try:
                via.close()
            except VdedupError:
                pass
        assert proxy.cuts == 1
        if outcome == "finished":                  # resumed by itself: nothing lost, nothing twice
            assert_same(got, records)
        reopened = open_connector(target.proxy_url(name, proxy.port), target.credentials)
        try:
            assert_same(read_all(reopened, name, batch_size=40), records)
        finally:
            reopened.close()
    finally:
        proxy.close()


def check_wrong_credentials(target: Target) -> None:
    if target.refused is None:
        assert target.unenforced, f"{target.name}: say why credentials cannot be refused"
        return check_unenforced(target)
    url, creds = target.refused()
    with pytest.raises(SourceError) as e:
        conn = open_connector(url, creds)
        try:
            conn.list_collections()
        finally:
            conn.close()
    assert e.value.exit_code == 15
    text = str(e.value)
    assert creds.secret and creds.secret not in text
    assert creds.origin in text, f"the error does not say which secret was refused: {text}"


def check_unenforced(target: Target) -> None:
    """Canary for a test server that does not check secrets: a wrong one is accepted, or,
    for local storage, refused as a usage error because there is nothing to give it to.
    When this starts failing, the server checks secrets: give the target a `refused`."""
    name = target.collection("cred")
    try:
        conn = open_connector(target.url(name, Metric.DOT), Credentials(WRONG_SECRET, "CONTRACT_KEY"))
    except VdedupError as e:
        assert e.exit_code == 2 and WRONG_SECRET not in str(e), e
        return
    try:
        assert conn.exists(name) is False          # it talked to the server with the wrong secret
    finally:
        conn.close()


PART_RECORDS = 900
PART_SIZE = 250


def late_ids(id_type: IdType, ids: list[Any], k: int = 0) -> list[Any]:
    """Ids that sort below, above and between the generic ones (k: a variant of them)."""
    if id_type == IdType.INT:
        return [k, max(ids) + 10 ** 6 + k, ids[len(ids) // 2] + 1]
    if id_type == IdType.UUID:
        return [f"00000000-0000-4000-8000-{k:012x}", f"ffffffff-ffff-4fff-bfff-{0xffffffffffff - k:012x}",
                str(uuid.UUID(int=uuid.UUID(ids[len(ids) // 2]).int + 1))]
    return [f"A-late{k}", f"~~late{k}", ids[len(ids) // 2] + "late"]


def bound_ids(id_type: IdType, parts: list) -> list[Any]:
    """Ids exactly at the partitions' lower bounds (where a key range starts), where the
    bounds are of the id type."""
    out = []
    for p in parts:
        lo = p.spec.get("lo")
        if id_type == IdType.INT and isinstance(lo, int) and not isinstance(lo, bool):
            out.append(lo)
        elif id_type == IdType.UUID and isinstance(lo, int) and not isinstance(lo, bool):
            out.append(str(uuid.UUID(int=lo)))
        elif id_type == IdType.STRING and isinstance(lo, str) and lo:
            out.append(lo)
    return out


def read_partitions(conn: Connector, name: str, parts: list, namespace: str) -> list[Record]:
    out: list[Record] = []
    for part in parts:
        assert part.namespace == namespace
        for batch in conn.scan_partition(name, part, batch_size=64):
            assert len(batch) <= 64 and batch.namespace == namespace
            out.extend(batch.records())
    return out


def check_partitions(target: Target) -> None:
    probe = target.open(target.collection("probe"))
    caps = capabilities(probe)
    probe.close()
    types = [t for t in id_types(caps) if t in target.partitioned] or id_types(caps)[:1]
    for id_type in types:
        namespaces = ("",) + ((NAMESPACES[0],) if caps.namespace_kind is not None else ())
        name = target.collection("parts")
        conn = target.open(name, Metric.DOT)
        taken: set[Any] = set()                  # ids of the collection (keys collection-wide)
        try:
            conn.create_collection(build_schema(conn, name, Metric.DOT, id_type, namespaces,
                                                with_sparse=False), name)
            for k, ns in enumerate(namespaces):
                ids = generic_ids(id_type, PART_RECORDS, caps)
                if not caps.ids_per_namespace and k:
                    ids = generic_ids(id_type, PART_RECORDS * 2, caps)[PART_RECORDS:]
                records = build_records(caps, ids, seed=20 + k, with_sparse=False)
                write(conn, name, records, ns, batch=300)
                conn.finish(name)
                conn.settle(name, ns)
                parts = conn.partitions(name, ns, PART_SIZE)
                assert [p.key for p in conn.partitions(name, ns, PART_SIZE)] == [p.key for p in parts]
                if id_type in target.partitioned:
                    assert len(parts) > 1, f"{target.name}: {id_type.value} ids in one partition"
                    assert len({p.key for p in parts}) == len(parts)
                assert_same(read_partitions(conn, name, parts, ns), records)
                if target.written_once:
                    continue
                taken |= set(ids)
                extra = late_ids(id_type, ids, k) + bound_ids(id_type, parts)
                extra = [i for i in dict.fromkeys(extra) if i not in (set(ids) if caps.ids_per_namespace else taken)]
                taken |= set(extra)
                late = build_records(caps, extra, seed=30 + k, with_sparse=False)
                write(conn, name, late, ns)
                conn.settle(name, ns)
                assert_same(read_partitions(conn, name, parts, ns), records + late)
        finally:
            conn.close()


CASES: dict[str, Callable[[Target], None]] = {
    "schema_round_trip": check_schema_round_trip,
    "values": check_values,
    "ids": check_ids,
    "namespaces": check_namespaces,
    "empty_collection": check_empty_collection,
    "discovery": check_discovery,
    "dropped_connection": check_dropped_connection,
    "wrong_credentials": check_wrong_credentials,
    "partitions": check_partitions,
}

