"""Weaviate connector through the official weaviate-client, against the REST emulator in
tests/emulators (no Weaviate server runs on these machines; see docs/providers/weaviate.md)."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from vdtest import require_module  # noqa: E402  (fails, not skips: tests/vdtest.py)
weaviate = require_module("weaviate")
import httpx  # noqa: E402
from weaviate.classes.config import Configure, DataType, Property, VectorDistances  # noqa: E402
from weaviate.classes.init import Auth  # noqa: E402
from weaviate.classes.tenants import Tenant  # noqa: E402

from vdtest import env_connector  # noqa: E402
from vdedup.connectors.weaviate import connector as wvconn  # noqa: E402
from vdedup.errors import CollectionNotFound, SourceError, UsageError  # noqa: E402
from vdedup.model import (CollectionSchema, MetadataField, Metric, RecordBatch,  # noqa: E402
                          VectorField)
from emulators.weaviate_emulator import WeaviateEmulator  # noqa: E402
from vdtest import vdedup  # noqa: E402

KEY = "test-key-SECRET-1"
TENANTS = ("alpha", "beta")
PER_TENANT = 250
N_NOTES = 60


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def emulator() -> Iterator[WeaviateEmulator]:
    with WeaviateEmulator(api_keys=[KEY]) as emu:
        yield emu


@pytest.fixture(scope="module")
def seeded() -> Iterator[WeaviateEmulator]:
    """One seeded emulator for the tests that only read (or add classes of their own)."""
    with WeaviateEmulator(api_keys=[KEY]) as emu:
        seed(emu)
        yield emu


@pytest.fixture
def keyed(monkeypatch) -> None:
    monkeypatch.setenv("WEAVIATE_API_KEY", KEY)
    monkeypatch.setattr(wvconn, "BACKOFF", 0.01)


def client_for(emu: WeaviateEmulator, key: str = KEY) -> Any:
    return weaviate.connect_to_custom(
        http_host=emu.host, http_port=emu.port, http_secure=False, grpc_host=emu.host,
        grpc_port=emu.port + 1, grpc_secure=False, auth_credentials=Auth.api_key(key),
        skip_init_checks=True)


def doc_props(i: int, rng: np.random.Generator) -> dict[str, Any]:
    props: dict[str, Any] = {
        "title": f"doc {i} ü", "n": i - 100, "score": float(rng.standard_normal()),
        "whole": float(i), "ok": i % 2 == 0,
        "when": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=i, microseconds=i),
        "tags": [f"t{i % 3}", f"t{i % 5}"],
        "info": {"source": f"s{i % 4}", "weight": i / 4},
    }
    if i % 9 == 0:
        del props["tags"], props["info"]
    return props


def seed(emu: WeaviateEmulator) -> None:
    """Through the official client (REST calls only): the Doc and Note classes."""
    rng = np.random.default_rng(7)
    client = client_for(emu)
    try:
        doc = client.collections.create(
            "Doc",
            properties=[Property(name="title", data_type=DataType.TEXT),
                        Property(name="n", data_type=DataType.INT),
                        Property(name="score", data_type=DataType.NUMBER),
                        Property(name="whole", data_type=DataType.NUMBER),
                        Property(name="ok", data_type=DataType.BOOL),
                        Property(name="when", data_type=DataType.DATE),
                        Property(name="tags", data_type=DataType.TEXT_ARRAY,
                                 tokenization=weaviate.classes.config.Tokenization.FIELD),
                        Property(name="info", data_type=DataType.OBJECT, nested_properties=[
                            Property(name="source", data_type=DataType.TEXT),
                            Property(name="weight", data_type=DataType.NUMBER)])],
            vector_config=[
                Configure.Vectors.self_provided(name="body"),
                Configure.Vectors.self_provided(
                    name="head", vector_index_config=Configure.VectorIndex.hnsw(
                        distance_metric=VectorDistances.DOT, ef_construction=64))],
            multi_tenancy_config=Configure.multi_tenancy(enabled=True))
        doc.tenants.create([Tenant(name=t) for t in TENANTS])
        for k, tenant in enumerate(TENANTS):
            handle = doc.with_tenant(tenant)
            for i in range(k * PER_TENANT, (k + 1) * PER_TENANT):
                handle.data.insert(doc_props(i, rng), uuid=uuid.UUID(int=int(rng.integers(2**62)) << 64 | i),
                                   vector={"body": rng.standard_normal(24).astype(np.float32).tolist(),
                                           "head": rng.standard_normal(8).astype(np.float32).tolist()})
        # A class with the legacy unnamed vector (l2) and a cross-reference to itself.
        client.collections.create_from_dict({
            "class": "Note", "description": "notes with links",
            "vectorizer": "none", "vectorIndexType": "hnsw",
            "vectorIndexConfig": {"distance": "l2-squared"},
            "properties": [{"name": "body", "dataType": ["text"]},
                           {"name": "links", "dataType": ["Note"]}]})
        note_ids = [uuid.UUID(int=int(rng.integers(2**62)) << 64 | i) for i in range(N_NOTES)]
        notes = client.collections.use("Note")
        for i, nid in enumerate(note_ids):
            links = {"links": [note_ids[(i + 1) % N_NOTES], note_ids[(i + 7) % N_NOTES]]} if i % 3 else None
            notes.data.insert({"body": f"note {i}"}, uuid=nid, references=links,
                              vector=rng.standard_normal(16).astype(np.float32).tolist())
    finally:
        client.close()


def raw_objects(emu: WeaviateEmulator, cls: str, tenant: str | None = None) -> dict[str, Any]:
    """What the REST API holds (the independent reference): id -> (vector bytes, properties)."""
    out: dict[str, Any] = {}
    after = None
    with httpx.Client(base_url=emu.url + "/v1", headers={"Authorization": f"Bearer {KEY}"}) as h:
        while True:
            params = {"class": cls, "limit": 77, "include": "vector"}
            if tenant:
                params["tenant"] = tenant
            if after:
                params["after"] = after
            page = h.get("/objects", params=params).raise_for_status().json()["objects"]
            for o in page:
                vecs = dict(o.get("vectors") or {})
                if o.get("vector"):
                    vecs[""] = o["vector"]
                out[o["id"]] = ({k: np.asarray(v, np.float32).tobytes() for k, v in vecs.items()},
                                typed(o["properties"]))
            if len(page) < 77:
                return out
            after = page[-1]["id"]


def typed(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    return (type(v).__name__, v)


def state(emu: WeaviateEmulator, doc: str = "Doc", note: str = "Note") -> dict[str, Any]:
    return {"doc": {t: raw_objects(emu, doc, t) for t in TENANTS}, "note": raw_objects(emu, note)}


def schema_of(emu: WeaviateEmulator, cls: str) -> dict[str, Any]:
    with httpx.Client(base_url=emu.url + "/v1", headers={"Authorization": f"Bearer {KEY}"}) as h:
        return h.get(f"/schema/{cls}").raise_for_status().json()


def tenants_of(emu: WeaviateEmulator, cls: str) -> list:
    with httpx.Client(base_url=emu.url + "/v1", headers={"Authorization": f"Bearer {KEY}"}) as h:
        return sorted((t["name"], t["activityStatus"])
                      for t in h.get(f"/schema/{cls}/tenants").raise_for_status().json())


def summary(capsys, *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert vdedup(*args, "--json") == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


# --------------------------------------------------------------------- tests


def test_importing_the_connector_does_not_import_weaviate() -> None:
    code = ("import sys, vdedup.connectors, vdedup.connectors.weaviate.connector; "
            "sys.exit(1 if 'weaviate' in sys.modules else 0)")
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root,
                          env={"PYTHONPATH": str(root)}).returncode == 0


def test_backup_change_backup_restore_bit_for_bit(emulator, keyed, repo_path, capsys) -> None:
    seed(emulator)
    url = f"weaviate://{emulator.host}:{emulator.port}"
    states = [state(emulator)]
    assert vdedup("--repo", repo_path, "init") == 0
    first = summary(capsys, "--repo", repo_path, "backup", url)
    assert first["records"] == 2 * PER_TENANT + N_NOTES
    assert first["collections"] == {"Doc": 2 * PER_TENANT, "Note": N_NOTES}

    # Change through the official client: vectors, properties only, inserts, deletes.
    rng = np.random.default_rng(11)
    client = client_for(emulator)
    try:
        alpha = client.collections.use("Doc").with_tenant("alpha")
        beta = client.collections.use("Doc").with_tenant("beta")
        ids = sorted(states[0]["doc"]["alpha"])
        for oid in ids[:5]:
            alpha.data.update(oid, vector={"body": rng.standard_normal(24).astype(np.float32).tolist(),
                                           "head": rng.standard_normal(8).astype(np.float32).tolist()})
        for oid in ids[5:10]:
            alpha.data.update(oid, properties={"title": "edited", "n": 1, "whole": 2.0})
        for oid in ids[10:15]:
            alpha.data.delete_by_id(oid)
        for i in range(5):
            beta.data.insert(doc_props(1000 + i, rng), uuid=uuid.uuid4(),
                             vector={"body": rng.standard_normal(24).astype(np.float32).tolist(),
                                     "head": rng.standard_normal(8).astype(np.float32).tolist()})
        notes = client.collections.use("Note")
        notes.data.delete_by_id(sorted(states[0]["note"])[0])
        notes.data.insert({"body": "late note"}, vector=rng.standard_normal(16).astype(np.float32).tolist())
    finally:
        client.close()
    states.append(state(emulator))
    assert states[1] != states[0]
    second = summary(capsys, "--repo", repo_path, "backup", url)
    assert (second["added"], second["deleted"], second["changed"]) == (6, 6, 10)

    snaps = summary(capsys, "--repo", repo_path, "snapshots")
    for i, snap in enumerate(snaps):
        for cls in ("Doc", "Note"):
            assert vdedup("--repo", repo_path, "restore", snap["id"], "--target", url,
                          "--collection", cls, "--as", f"{cls}R{i}") == 0
        restored = state(emulator, f"DocR{i}", f"NoteR{i}")
        assert restored == states[i]                    # uuids, float32 vectors, typed properties
        for cls in ("Doc", "Note"):
            src, dst = schema_of(emulator, cls), schema_of(emulator, f"{cls}R{i}")
            for key in ("vectorConfig", "vectorizer", "vectorIndexConfig", "multiTenancyConfig",
                        "properties", "invertedIndexConfig", "replicationConfig", "shardingConfig",
                        "moduleConfig", "description"):
                assert src.get(key) == dst.get(key), f"{cls}.{key}"
        assert tenants_of(emulator, f"DocR{i}") == tenants_of(emulator, "Doc")
    # The restored reference still points at the original objects, beacon for beacon.
    some = next(v for v in states[1]["note"].values() if "links" in dict(v[1]))
    assert some[1]["links"][0]["beacon"][1].startswith("weaviate://localhost/")


def test_describe_and_scan_types(seeded, keyed) -> None:
    conn = env_connector(f"weaviate://{seeded.host}:{seeded.port}")
    try:
        assert {"Doc", "Note"} <= set(conn.list_collections())
        only = env_connector(f"weaviate://{seeded.host}:{seeded.port}/Doc")
        try:
            assert only.list_collections() == ["Doc"]
        finally:
            only.close()
        assert conn.exists("Doc") and not conn.exists("Nope") and not conn.exists("lower")
        doc, note = conn.describe("Doc"), conn.describe("Note")
        assert doc.namespaces == TENANTS and note.namespaces == ("",)
        assert [(v.name, v.dim, v.metric) for v in doc.vectors] == [
            ("body", None, Metric.COSINE), ("head", None, Metric.DOT)]
        assert [(v.name, v.metric) for v in note.vectors] == [("", Metric.EUCLIDEAN)]
        assert doc.extras["class"] == schema_of(seeded, "Doc")
        assert [t["name"] for t in doc.extras["tenants"]] == list(TENANTS)
        assert {f.name: f.type for f in note.metadata_fields} == {"body": "str", "links": "list"}
        assert conn.count("Doc", "beta") == PER_TENANT and conn.count("Note") == N_NOTES
        records = [r for b in conn.scan("Doc", "alpha", batch_size=64) for r in b.records()]
        with pytest.raises(UsageError, match="multi-tenant"):
            conn.count("Doc")
    finally:
        conn.close()
    assert len(records) == PER_TENANT and [r.id for r in records] == sorted(r.id for r in records)
    meta = {r.id: r.metadata for r in records}
    sample = next(m for m in meta.values() if "info" in m)
    # Whole numbers come back as JSON ints; the connector gives them back their float type.
    assert type(sample["whole"]) is float and type(sample["n"]) is int
    assert type(sample["info"]["weight"]) is float and type(sample["ok"]) is bool
    assert sample["when"].endswith("Z") and isinstance(sample["tags"], list)
    assert all(r.vectors["body"].dtype == np.float32 and r.vectors["body"].shape == (24,) for r in records)


def test_wrong_key_missing_class_and_bad_urls(seeded, keyed, repo_path, monkeypatch, capsys,
                                              closed_port) -> None:
    url = f"weaviate://{seeded.host}:{seeded.port}"
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"{url}/Missing") == 15
    assert vdedup("--repo", repo_path, "backup", url, "--collection", "Missing") == 15
    assert vdedup("--repo", repo_path, "backup", f"{url}?api_key=x") == 2
    assert vdedup("--repo", repo_path, "backup", f"weaviate://user:pw@{seeded.host}:1") == 2
    monkeypatch.setenv("WEAVIATE_API_KEY", "wrong-SECRET")
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "backup", url) == 15
    err = capsys.readouterr().err
    assert "401" in err and "WEAVIATE_API_KEY" in err and "SECRET" not in err
    monkeypatch.delenv("WEAVIATE_API_KEY")
    with pytest.raises(SourceError, match="401.*set WEAVIATE_API_KEY"):
        env_connector(url)
    monkeypatch.setenv("WEAVIATE_API_KEY", KEY)
    with pytest.raises(SourceError, match=f"cannot reach Weaviate at 127.0.0.1:{closed_port}"):
        env_connector(f"weaviate://127.0.0.1:{closed_port}")
    conn = env_connector(url)
    try:
        for call in (lambda: conn.describe("Missing"), lambda: list(conn.scan("Missing")),
                     lambda: conn.count("Missing")):
            with pytest.raises(CollectionNotFound, match="Missing"):
                call()
        with pytest.raises(UsageError, match="invalid Weaviate class name"):
            conn.create_collection(conn.describe("Note"), "lowercase")
    finally:
        conn.close()


def test_throttling_and_faults_are_retried_within_bounds(seeded, keyed) -> None:
    conn = env_connector(f"weaviate://{seeded.host}:{seeded.port}?timeout=0.5")
    try:
        want = raw_objects(seeded, "Note")
        seeded.fail(429, times=3, path="/v1/objects")
        seeded.fail(503, times=1, path="/v1/schema")
        seeded.fail(None, times=1, path="/v1/objects", delay=1.0)    # one slow page: timeout
        got = {r.id for b in conn.scan("Note", batch_size=25) for r in b.records()}
        assert got == set(want) and seeded.statuses(429) == 3 and seeded.statuses(503) == 1
        seeded.fail(500, times=wvconn.ATTEMPTS, path="/v1/objects")
        with pytest.raises(SourceError, match=f"after {wvconn.ATTEMPTS} attempts: HTTP 500"):
            list(conn.scan("Note"))
        assert seeded.statuses(500) == wvconn.ATTEMPTS          # bounded: no further tries
        seeded.fail(429, times=2, path="/v1/batch/objects")
        schema = conn.describe("Note")
        conn.create_collection(schema, "NoteCopy")
        for batch in conn.scan("Note", batch_size=40):
            conn.write("NoteCopy", batch)
        assert raw_objects(seeded, "NoteCopy") == want
    finally:
        conn.close()


def test_foreign_schema_and_refused_records(seeded, keyed) -> None:
    conn = env_connector(f"weaviate://{seeded.host}:{seeded.port}")
    schema = CollectionSchema(provider="chroma", name="docs",
                              vectors=(VectorField("", 4, Metric.EUCLIDEAN),),
                              metadata_fields=(MetadataField("a", "str"), MetadataField("k", "int")))
    try:
        conn.create_collection(schema, "FromChroma")
        got = schema_of(seeded, "FromChroma")
        assert got["vectorIndexConfig"]["distance"] == "l2-squared" and got["vectorizer"] == "none"
        assert [(p["name"], p["dataType"]) for p in got["properties"]] == [("a", ["text"]), ("k", ["int"])]
        oid = str(uuid.uuid4())
        vec = np.arange(4, dtype=np.float32)[None, :]
        conn.write("FromChroma", RecordBatch(ids=[oid], dense={"": vec}, metadata=[{"a": "x", "k": 2}]))
        (batch,) = conn.scan("FromChroma")
        assert batch.ids == [oid] and batch.dense[""].tobytes() == vec.tobytes()
        with pytest.raises(UsageError, match="UUIDs"):
            conn.write("FromChroma", RecordBatch(ids=["not-a-uuid"], dense={"": vec}))
        with pytest.raises(UsageError, match="cannot be represented"):
            conn.create_collection(CollectionSchema(provider="x", name="y",
                                                    vectors=(VectorField("", 4),)), "Unknown")
        # The server's rejection is one line, without the offending value.
        with pytest.raises(SourceError, match="rejected 1 of 1") as err:
            conn.write("FromChroma", RecordBatch(ids=[oid], dense={"": vec},
                                                 metadata=[{"k": "SECRET-value"}]))
        assert "SECRET" not in err.value.message and "\n" not in err.value.message
        assert conn.count("FromChroma") == 1
        conn.delete("FromChroma", [oid])
        assert conn.count("FromChroma") == 0
        # Deleting in a tenant goes through the client with the tenant set.
        tenant_id = next(iter(raw_objects(seeded, "Doc", "beta")))
        before = conn.count("Doc", "beta")
        conn.delete("Doc", [tenant_id], "beta")
        assert conn.count("Doc", "beta") == before - 1 and tenant_id not in raw_objects(seeded, "Doc", "beta")
    finally:
        conn.close()
