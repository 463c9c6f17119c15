"""Rich source collections, one per provider, built through each provider's own SDK, and the
places a cross-provider test restores into (real servers and emulators, as the connector
tests use). Small on purpose: the 6 x 6 matrix restores every one of them 12 times."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

PROVIDERS = ["chroma", "pinecone", "qdrant", "milvus", "pgvector", "weaviate"]
SHORT = {"chroma": "ch", "pinecone": "pc", "qdrant": "qd", "milvus": "mv", "pgvector": "pg", "weaviate": "wv"}
N = 24                       # records per namespace
PC_KEY, WV_KEY = "pc-key-matrix", "wv-key-matrix"


def _ids(prefix: str, n: int = N) -> list[str]:
    return [f"{prefix}-{i:06d}#chunk-{i % 3}" for i in range(n)]


def _sparse(rng: np.random.Generator) -> tuple[list[int], list[float]]:
    k = int(rng.integers(1, 6))
    idx = np.sort(rng.choice(1000, size=k, replace=False))
    return [int(i) for i in idx], [float(v) for v in rng.random(k).astype(np.float32)]


class Places:
    """Where each provider's collections live for one test module: one server or emulator per
    provider, fresh directories and databases on demand, unique names on shared servers."""

    def __init__(self, base: Path, pinecone_url: str, weaviate: Any) -> None:
        self.base = base
        self.pinecone_url = pinecone_url
        self.weaviate = weaviate
        self.n = 0

    def _next(self) -> int:
        self.n += 1
        return self.n

    def location(self, provider: str) -> str:
        """A URL where new collections of this provider can be created."""
        k = self._next()
        if provider == "chroma":
            return f"chroma://{self.base / f'chroma{k}'}"
        if provider == "qdrant":
            return f"qdrant+local://{self.base / f'qdrant{k}'}"
        if provider == "pinecone":
            return "pinecone://"
        if provider == "weaviate":
            return f"weaviate://{self.weaviate.host}:{self.weaviate.port}"
        if provider == "milvus":
            return "milvus://" + _env("VDEDUP_TEST_MILVUS_URI").split("://", 1)[1]
        if provider == "pgvector":
            return pg_database(f"xp{os.getpid()}_{k}")
        raise ValueError(provider)

    def name(self, provider: str, stem: str) -> str:
        """A collection name valid in that provider and unique on a shared server."""
        k = self._next()
        if provider == "weaviate":
            return f"{stem.capitalize()}{k}"
        if provider == "pinecone":
            return f"{stem}{k}"
        return f"{stem}{k}_{os.getpid()}" if provider == "milvus" else f"{stem}{k}"


def _env(name: str) -> str:
    value = os.environ.get(name)
    assert value, f"{name} is not set: start the servers with scripts/servers.sh and source its env file"
    return value


def pg_database(db: str) -> str:
    import psycopg
    host, port = _env("VDEDUP_TEST_PG_HOST"), _env("VDEDUP_TEST_PG_PORT")
    user = os.environ.get("VDEDUP_TEST_PG_USER", "postgres")
    with psycopg.connect(host=host, port=int(port), user=user, dbname="postgres", autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {db}")
        c.execute(f"CREATE DATABASE {db}")
    with psycopg.connect(host=host, port=int(port), user=user, dbname=db, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return f"postgresql://{user}@{host}:{port}/{db}"


# ----------------------------------------------------------------------- the sources
# Each returns (url, collection): a collection with what its provider does best.

def chroma_source(places: Places) -> tuple[str, str]:
    """String ids, one l2 vector, documents, uris, str/int/float/bool/list metadata with gaps."""
    import chromadb
    url = places.location("chroma")
    client = chromadb.PersistentClient(path=url.split("://", 1)[1])
    col = client.create_collection("srcdocs", embedding_function=None, configuration={"hnsw": {"space": "l2"}})
    rng = np.random.default_rng(1)
    ids = _ids("doc")
    metas = []
    for i in range(N):
        m = {"source": f"s{i % 4}", "page": i * 3 - 7, "score": float(rng.standard_normal()),
             "draft": i % 2 == 0, "tags": [f"t{i % 3}", f"u{i % 5}"]}
        if i % 5 == 0:
            del m["tags"], m["score"]
        metas.append(m if i % 7 else None)
    col.add(ids=ids, embeddings=rng.standard_normal((N, 8)).astype(np.float32),
            metadatas=metas, documents=[f"text of {i} ü" for i in range(N)],
            uris=[f"s3://bucket/{i}.txt" if i % 3 else None for i in range(N)])
    return url, "srcdocs"


def pinecone_source(places: Places) -> tuple[str, str]:
    """A dotproduct hybrid index (dense + sparse), namespaces "" and "ns_a", Pinecone's types."""
    import pinecone
    pc = pinecone.Pinecone(api_key=PC_KEY, host=places.pinecone_url)
    name = places.name("pinecone", "srcpc")
    model = pc.indexes.create(
        name=name, schema={"fields": {"_values": {"type": "dense_vector", "dimension": 8, "metric": "dotproduct"},
                                      "_sparse_values": {"type": "sparse_vector"}}},
        deployment={"deployment_type": "managed", "cloud": "gcp", "region": "europe-west4"}, timeout=-1)
    index = pc.index(host=model.host)
    rng = np.random.default_rng(2)
    for ns in ("", "ns_a"):
        vectors = []
        for i, rid in enumerate(_ids(ns or "default")):
            idx, vals = _sparse(rng)
            v: dict[str, Any] = {"id": rid, "values": rng.standard_normal(8).astype(np.float32).tolist(),
                                 "sparse_values": {"indices": idx, "values": vals}}
            if i % 6:
                v["metadata"] = {"title": f"item {i} ü", "price": float(rng.random() * 100),
                                 "in_stock": i % 2 == 0, "tags": [f"t{i % 3}", f"c{i % 4}"]}
            vectors.append(v)
        index.upsert(vectors=vectors, namespace=ns)
    return "pinecone://", name


def qdrant_source(places: Places) -> tuple[str, str]:
    """Integer ids, two named vectors (dot, euclid), a named sparse vector, nested payloads, nulls."""
    from qdrant_client import QdrantClient, models
    url = places.location("qdrant")
    client = QdrantClient(path=url.split("://", 1)[1])
    try:
        client.create_collection("srcqd", vectors_config={
            "text": models.VectorParams(size=8, distance=models.Distance.DOT),
            "img": models.VectorParams(size=4, distance=models.Distance.EUCLID)},
            sparse_vectors_config={"kw": models.SparseVectorParams()})
        rng = np.random.default_rng(3)
        points = []
        for i in range(N):
            idx, vals = _sparse(rng)
            payload: dict[str, Any] = {"source": f"s{i % 3}", "page": i - 5, "score": float(rng.standard_normal()),
                                       "nested": {"a": i, "b": [f"x{i % 2}", "y"]}, "maybe": None if i % 2 else "yes",
                                       "tags": [f"t{i % 4}"]}
            if i % 8 == 0:
                payload = {"source": "only"}
            points.append(models.PointStruct(id=1000 + i * 17, payload=payload, vector={
                "text": rng.standard_normal(8).astype(np.float32).tolist(),
                "img": rng.standard_normal(4).astype(np.float32).tolist(),
                "kw": models.SparseVector(indices=idx, values=vals)}))
        client.upsert("srcqd", points, wait=True)
    finally:
        client.close()
    return url, "srcqd"


def milvus_source(places: Places) -> tuple[str, str]:
    """An INT64 primary key, a dense (L2) and a sparse (IP) field, typed scalars, JSON, dynamic
    fields, and two partitions."""
    from pymilvus import DataType, MilvusClient
    url = places.location("milvus")
    name = places.name("milvus", "srcmv")
    client = MilvusClient(uri=_env("VDEDUP_TEST_MILVUS_URI"))
    try:
        s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
        s.add_field("pk", DataType.INT64, is_primary=True)
        s.add_field("dense", DataType.FLOAT_VECTOR, dim=8)
        s.add_field("terms", DataType.SPARSE_FLOAT_VECTOR)
        s.add_field("title", DataType.VARCHAR, max_length=64)
        s.add_field("page", DataType.INT64)
        s.add_field("score", DataType.DOUBLE)
        s.add_field("flag", DataType.BOOL)
        s.add_field("info", DataType.JSON, nullable=True)
        ip = client.prepare_index_params()
        ip.add_index("dense", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
        ip.add_index("terms", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        client.create_collection(name, schema=s, index_params=ip)
        client.create_partition(name, "p_a")
        rng = np.random.default_rng(4)
        for k, part in enumerate(("_default", "p_a")):
            rows = []
            for i in range(N):
                idx, vals = _sparse(rng)
                row: dict[str, Any] = {"pk": k * 10**6 + i * 31 - 50, "dense": rng.standard_normal(8).astype(np.float32),
                                       "terms": dict(zip(idx, vals)), "title": f"title {i} é", "page": i * 2,
                                       "score": float(rng.standard_normal()), "flag": i % 3 == 0,
                                       "info": None if i % 5 == 0 else {"n": i, "l": [1, 2.5, "x"], "o": {"k": i}}}
                if i % 4 == 1:
                    row["extra"] = f"dynamic {i}"
                rows.append(row)
            client.insert(name, rows, partition_name=part)
        client.flush(name)
    finally:
        client.close()
    return url, name


def pgvector_source(places: Places) -> tuple[str, str]:
    """A bigint key, a vector (l2 index), a halfvec-free sparsevec, typed columns, an array, jsonb."""
    import psycopg
    url = places.location("pgvector")
    db = url.rsplit("/", 1)[1]
    rng = np.random.default_rng(5)
    with psycopg.connect(host=_env("VDEDUP_TEST_PG_HOST"), port=int(_env("VDEDUP_TEST_PG_PORT")),
                         user=os.environ.get("VDEDUP_TEST_PG_USER", "postgres"), dbname=db, autocommit=True) as c:
        c.execute("CREATE TABLE srcpg (id bigint PRIMARY KEY, embedding vector(8), sp sparsevec(1000), "
                  "title text, page int4, score float8, flag bool, tags text[], extra jsonb)")
        c.execute("CREATE INDEX ON srcpg USING hnsw (embedding vector_l2_ops)")
        for i in range(N):
            idx, vals = _sparse(rng)
            sp = "{" + ",".join(f"{a + 1}:{repr(b)}" for a, b in zip(idx, vals)) + "}/1000"
            emb = "[" + ",".join(repr(float(x)) for x in rng.standard_normal(8).astype(np.float32)) + "]"
            c.execute("INSERT INTO srcpg VALUES (%s, %s::vector, %s::sparsevec, %s, %s, %s, %s, %s, %s::jsonb)",
                      (i * 7 + 1, emb, sp, f"row {i}", i - 3, float(rng.standard_normal()), i % 2 == 0,
                       [f"t{i % 3}", "z"], None if i % 4 == 0 else f'{{"k": {i}, "f": 0.5, "l": ["a", 1]}}'))
    return url, "srcpg"


def weaviate_source(places: Places) -> tuple[str, str]:
    """UUID ids, two named vectors (l2-squared, dot), tenants, text/int/number/boolean/text[]/object."""
    import weaviate
    from weaviate.classes.config import Configure, DataType, Property, VectorDistances
    from weaviate.classes.init import Auth
    from weaviate.classes.tenants import Tenant
    emu = places.weaviate
    name = places.name("weaviate", "srcwv")
    client = weaviate.connect_to_custom(
        http_host=emu.host, http_port=emu.port, http_secure=False, grpc_host=emu.host,
        grpc_port=emu.port + 1, grpc_secure=False, auth_credentials=Auth.api_key(WV_KEY), skip_init_checks=True)
    try:
        col = client.collections.create(
            name, properties=[Property(name="title", data_type=DataType.TEXT),
                              Property(name="n", data_type=DataType.INT),
                              Property(name="score", data_type=DataType.NUMBER),
                              Property(name="ok", data_type=DataType.BOOL),
                              Property(name="tags", data_type=DataType.TEXT_ARRAY),
                              Property(name="info", data_type=DataType.OBJECT, nested_properties=[
                                  Property(name="source", data_type=DataType.TEXT),
                                  Property(name="weight", data_type=DataType.NUMBER)])],
            vector_config=[
                Configure.Vectors.self_provided(name="body", vector_index_config=Configure.VectorIndex.hnsw(
                    distance_metric=VectorDistances.L2_SQUARED)),
                Configure.Vectors.self_provided(name="head", vector_index_config=Configure.VectorIndex.hnsw(
                    distance_metric=VectorDistances.DOT))],
            multi_tenancy_config=Configure.multi_tenancy(enabled=True))
        col.tenants.create([Tenant(name="ta"), Tenant(name="tb")])
        rng = np.random.default_rng(6)
        for k, tenant in enumerate(("ta", "tb")):
            handle = col.with_tenant(tenant)
            for i in range(N):
                props: dict[str, Any] = {"title": f"w {i}", "n": i - 10, "score": float(rng.standard_normal()),
                                         "ok": i % 2 == 1, "tags": [f"t{i % 3}"],
                                         "info": {"source": f"s{i % 2}", "weight": i / 4}}
                if i % 6 == 0:
                    del props["info"], props["tags"]
                handle.data.insert(props, uuid=uuid.UUID(int=(k + 1) << 64 | i * 7919), vector={
                    "body": rng.standard_normal(8).astype(np.float32).tolist(),
                    "head": rng.standard_normal(4).astype(np.float32).tolist()})
    finally:
        client.close()
    return f"weaviate://{emu.host}:{emu.port}", name


SOURCES = {"chroma": chroma_source, "pinecone": pinecone_source, "qdrant": qdrant_source,
           "milvus": milvus_source, "pgvector": pgvector_source, "weaviate": weaviate_source}
