"""Pinecone connector through the official `pinecone` SDK against the emulator of Pinecone's
REST API 2026-07 (tests/emulators/pinecone_emulator.py): no Pinecone server runs outside its cloud."""
from __future__ import annotations

import json
import time
from typing import Any, Iterator

import numpy as np
import pytest

from vdtest import require_module  # noqa: E402  (fails, not skips: tests/vdtest.py)
pinecone = require_module("pinecone")

from vdtest import env_connector  # noqa: E402
from vdedup.connectors.pinecone import connector as pc_connector  # noqa: E402
from vdedup.errors import CollectionNotFound, SourceError, UsageError  # noqa: E402
from vdedup.model import CollectionSchema, Metric  # noqa: E402
from emulators.pinecone_emulator import PineconeEmulator  # noqa: E402
from vdtest import vdedup, vdedup_proc  # noqa: E402

API_KEY = "pc-test-key-0123456789"
DIM = 24
NAMESPACES = ("", "alpha", "beta")
PER_NAMESPACE = 700
SMALL = 150                  # per namespace, for the failure tests
SOURCE = "products"

Rows = dict[tuple[str, str], tuple]   # (namespace, id) -> (values, sparse, typed metadata)


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def emulator(monkeypatch) -> Iterator[PineconeEmulator]:
    with PineconeEmulator(API_KEY) as emu:
        monkeypatch.setenv("PINECONE_API_KEY", API_KEY)
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", emu.url)
        # Keep retries quick; the bounds themselves are what is tested.
        monkeypatch.setattr(pc_connector, "BACKOFF_BASE", 0.05)
        monkeypatch.setattr(pc_connector, "POLL_INTERVAL", 0.05)
        # The SDK's own retry sleeps (a seam it provides for tests) are shortened likewise.
        from pinecone._internal import http_client
        monkeypatch.setattr(http_client, "_retry_sleep", lambda d: time.sleep(min(d, 0.05)))
        yield emu


@pytest.fixture
def client(emulator) -> Any:
    return pinecone.Pinecone(api_key=API_KEY, host=emulator.url)


def _json_out(capsys, *args) -> Any:
    capsys.readouterr()
    assert vdedup(*args) == 0
    return json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------ test data


def create_hybrid(client: Any, name: str) -> Any:
    model = client.indexes.create(
        name=name,
        schema={"fields": {"_values": {"type": "dense_vector", "dimension": DIM,
                                       "metric": "dotproduct"},
                           "_sparse_values": {"type": "sparse_vector"}}},
        deployment={"deployment_type": "managed", "cloud": "gcp", "region": "europe-west4"},
        tags={"team": "search", "env": "test"}, deletion_protection="enabled", timeout=-1)
    return client.index(host=model.host)


def make_vectors(n: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    """Dense + sparse records with every metadata type Pinecone keeps, and gaps."""
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((n, DIM)).astype(np.float32)
    dense[0, :3] = [np.float32(1e-38), np.float32(-3.4028235e38), np.float32(2.0 ** -149)]
    out = []
    for i in range(n):
        v: dict[str, Any] = {"id": f"{prefix}{i:05d}#chunk-{i % 3}", "values": dense[i].tolist()}
        if i % 4 != 3:
            k = int(rng.integers(1, 40))
            idx = np.sort(rng.choice(100_000, size=k, replace=False)).astype(int)
            v["sparse_values"] = {"indices": idx.tolist(),
                                  "values": rng.random(k).astype(np.float32).tolist()}
        if i % 9 != 0:
            v["metadata"] = {"title": f"item {i} ü 😀", "price": float(rng.random() * 100),
                             "year": 1990 + i % 30, "in_stock": i % 2 == 0,
                             "tags": [f"t{i % 5}", f"c{i % 7}"][: i % 3],
                             "ratio": 1 / 3 if i % 5 == 0 else -0.0}
        out.append(v)
    return out


def seed_source(client: Any, per_namespace: int = PER_NAMESPACE) -> Any:
    index = create_hybrid(client, SOURCE)
    for k, ns in enumerate(NAMESPACES):
        vectors = make_vectors(per_namespace, seed=k, prefix=f"{ns or 'default'}-")
        for a in range(0, len(vectors), 500):
            index.upsert(vectors=vectors[a:a + 500], namespace=ns)
    return index


def typed(v: Any) -> Any:
    """A value with its type made visible, so 1 and 1.0 and True compare unequal."""
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    if isinstance(v, float):
        return ("float", np.float64(v).tobytes())
    return (type(v).__name__, v)


def read_index(client: Any, name: str) -> Rows:
    """Every record of an index through the plain SDK: the reference for the connector."""
    host = client.indexes.describe(name).host
    index = client.index(host=host)
    stats = index.describe_index_stats()
    rows: Rows = {}
    for ns_name in stats.namespaces:
        ns = "" if ns_name == "__default__" else ns_name
        token = None
        while True:
            page = index.list_paginated(namespace=ns, limit=100, pagination_token=token)
            ids = [item.id for item in page.vectors]
            if ids:
                got = index.fetch(ids=ids, namespace=ns).vectors
                for rid in ids:
                    r = got[rid]
                    sparse = None
                    if r.sparse_values is not None:
                        sparse = (tuple(r.sparse_values.indices),
                                  np.asarray(r.sparse_values.values, np.float32).tobytes())
                    rows[(ns, rid)] = (np.asarray(r.values, np.float32).tobytes(), sparse,
                                       typed(r.metadata))
            token = page.pagination.next if page.pagination else None
            if not token:
                break
    return rows


def assert_same(a: Rows, b: Rows) -> None:
    assert sorted(a) == sorted(b), "record ids or namespaces differ"
    for key in a:
        assert a[key][0] == b[key][0], f"dense values of {key} differ"
        assert a[key][1] == b[key][1], f"sparse values of {key} differ"
        assert a[key][2] == b[key][2], f"metadata of {key} differs"


# ------------------------------------------------------------------ round trips


def test_backup_change_backup_restore_each_snapshot_bit_for_bit(emulator, client, tmp_path,
                                                               repo_path, capsys):
    index = seed_source(client)
    first_state = read_index(client, SOURCE)
    assert len(first_state) == 3 * PER_NAMESPACE
    # float32 survives the JSON round trip through the SDK exactly
    sent = make_vectors(1, seed=0, prefix="default-")[0]
    assert first_state[("", sent["id"])][0] == np.asarray(sent["values"], np.float32).tobytes()

    assert vdedup("--repo", repo_path, "init") == 0
    first = _json_out(capsys, "--repo", repo_path, "backup", f"pinecone://{SOURCE}", "--json")

    # change: new values, metadata-only update, inserts, deletes
    upd = make_vectors(50, seed=99, prefix="alpha-")
    index.upsert(vectors=upd, namespace="alpha")
    for i in range(10):
        index.update(id=f"beta-{i:05d}#chunk-{i % 3}", set_metadata={"year": 2030, "note": "patched"},
                     namespace="beta")
    index.upsert(vectors=make_vectors(30, seed=7, prefix="new-"), namespace="")
    index.delete(ids=[f"beta-{i:05d}#chunk-{i % 3}" for i in range(100, 140)], namespace="beta")
    second_state = read_index(client, SOURCE)
    assert second_state != first_state
    second = _json_out(capsys, "--repo", repo_path, "backup", f"pinecone://{SOURCE}", "--json")
    assert first["snapshot_id"] != second["snapshot_id"]

    for snap, state, target in ((first, first_state, "restored-one"),
                                (second, second_state, "restored-two")):
        out = _json_out(capsys, "--repo", repo_path, "restore", snap["snapshot_id"], "--target",
                        "pinecone://", "--as", target, "--json")
        assert out["warnings"] == []
        assert_same(read_index(client, target), state)
        model = client.indexes.describe(target)
        assert model.schema.fields["_values"].dimension == DIM
        assert model.schema.fields["_values"].metric == "dotproduct"
        assert "_sparse_values" in model.schema.fields
        assert (model.deployment.cloud, model.deployment.region) == ("gcp", "europe-west4")
        assert dict(model.tags) == {"team": "search", "env": "test"}
        assert model.deletion_protection == "enabled"


def test_describe_records_index_and_namespaces(emulator, client):
    seed_source(client)
    conn = env_connector(f"pinecone://{SOURCE}")
    schema = conn.describe(SOURCE)
    assert schema.namespaces == NAMESPACES
    assert schema.vectors[0].dim == DIM and schema.vectors[0].metric == Metric.DOT
    assert schema.vectors[0].name == "" and schema.sparse[0].name == ""
    assert schema.extras["deletion_protection"] == "enabled"
    assert schema.extras["tags"] == {"team": "search", "env": "test"}
    assert schema.extras["vector_type"] == "dense"
    assert schema.extras["spec"]["serverless"]["cloud"] == "gcp"
    assert CollectionSchema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema
    assert conn.count(SOURCE, "alpha") == PER_NAMESPACE
    assert conn.list_collections() == [SOURCE]
    conn.close()


def test_scan_batches_are_bounded_and_complete(emulator, client):
    seed_source(client)
    conn = env_connector(f"pinecone://{SOURCE}")
    seen = []
    for batch in conn.scan(SOURCE, "beta", batch_size=128):
        assert 0 < len(batch) <= 128 and batch.namespace == "beta"
        assert batch.dense[""].dtype == np.float32
        seen.extend(batch.ids)
    assert len(seen) == len(set(seen)) == PER_NAMESPACE
    assert seen == sorted(seen, key=str.encode)
    conn.close()
    # ?host= names the data-plane host directly (no describe needed for it)
    host = client.indexes.describe(SOURCE).host
    conn = env_connector(f"pinecone://{SOURCE}?host={host}")
    assert sum(len(b) for b in conn.scan(SOURCE, "")) == PER_NAMESPACE
    conn.close()


# ------------------------------------------------------------------ failures


def test_wrong_api_key_is_a_one_line_error(emulator, client, repo_path):
    seed_source(client, SMALL)
    assert vdedup("--repo", repo_path, "init") == 0
    res = vdedup_proc("--repo", repo_path, "backup", f"pinecone://{SOURCE}",
                      env={"PINECONE_API_KEY": "wrong-key", "PINECONE_CONTROLLER_HOST": emulator.url})
    assert res.returncode == 15, res.stderr
    assert "Traceback" not in res.stderr and "wrong-key" not in res.stderr + res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) <= 2 and "API key" in res.stderr, res.stderr


def test_missing_index_exits_15(emulator, repo_path, capsys):
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", "pinecone://no-such-index") == 15
    assert "not found" in capsys.readouterr().err
    conn = env_connector("pinecone://")
    with pytest.raises(CollectionNotFound):
        conn.describe("no-such-index")
    assert conn.exists("no-such-index") is False


def test_secrets_and_bad_urls_are_refused(emulator, monkeypatch):
    for url in ("pinecone://idx?api_key=abc", "pinecone://user:secret@idx",
                "pinecone://idx?color=red", "pinecone://Bad_Name", "pinecone://?host=http://x"):
        with pytest.raises(UsageError) as err:
            env_connector(url)
        assert "secret" not in str(err.value) or "api_key" in str(err.value)
    monkeypatch.delenv("PINECONE_API_KEY")
    with pytest.raises(UsageError, match="PINECONE_API_KEY"):
        env_connector("pinecone://idx")


def test_throttling_is_retried_and_counted(emulator, client, repo_path, capsys):
    seed_source(client, SMALL)
    expected = read_index(client, SOURCE)
    assert vdedup("--repo", repo_path, "init") == 0
    emulator.inject(429, 5)
    emulator.inject(500, 2)
    out = _json_out(capsys, "--repo", repo_path, "backup", f"pinecone://{SOURCE}", "--json")
    assert emulator.faults_served == 7
    assert out["records"] == len(expected) == 3 * SMALL
    emulator.inject(429, 3)
    restored = _json_out(capsys, "--repo", repo_path, "restore", "latest", "--target",
                         "pinecone://", "--as", "throttled", "--json")
    assert restored["warnings"] == [] and emulator.faults_served == 10
    assert_same(read_index(client, "throttled"), expected)


def test_persistent_throttling_fails_after_bounded_attempts(emulator, client, monkeypatch):
    seed_source(client, SMALL)
    monkeypatch.setattr(pc_connector, "MAX_ATTEMPTS", 2)
    conn = env_connector(f"pinecone://{SOURCE}")
    conn.describe(SOURCE)
    emulator.inject(429, 10_000)
    before = len(emulator.requests)
    with pytest.raises(SourceError, match="after 2 attempts"):
        list(conn.scan(SOURCE, "alpha"))
    # 2 connector attempts, each with the SDK's own (bounded) retries
    assert 2 <= len(emulator.requests) - before <= 10


def test_pod_index_is_refused_clearly(emulator, client, repo_path, capsys):
    client.indexes.create(
        name="legacy-pods",
        schema={"fields": {"_values": {"type": "dense_vector", "dimension": 8, "metric": "cosine"}}},
        deployment={"deployment_type": "pod", "environment": "us-east-1-aws", "pod_type": "p1.x1",
                    "replicas": 1, "shards": 1}, timeout=-1)
    assert vdedup("--repo", repo_path, "init") == 0
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "backup", "pinecone://legacy-pods") == 15
    err = capsys.readouterr().err
    assert "pod-based index legacy-pods cannot be listed" in " ".join(err.split())
    # and the emulator's list itself refuses a pod index, as the service does
    index = client.index(host=client.indexes.describe("legacy-pods").host)
    with pytest.raises(pinecone.errors.exceptions.ApiError):
        index.list_paginated(namespace="")


def test_eventual_consistency_restore_is_complete_when_reported(emulator, client, repo_path,
                                                                capsys):
    seed_source(client, SMALL)
    expected = read_index(client, SOURCE)
    assert vdedup("--repo", repo_path, "init") == 0
    _json_out(capsys, "--repo", repo_path, "backup", f"pinecone://{SOURCE}", "--json")
    emulator.visibility_delay = 1.5
    # the delay is real: a plain upsert is not readable straight away
    probe = create_hybrid(client, "probe")
    probe.upsert(vectors=make_vectors(3, seed=1, prefix="p-"), namespace="")
    assert probe.fetch(ids=["p-00000#chunk-0"], namespace="").vectors == {}
    started = time.monotonic()
    out = _json_out(capsys, "--repo", repo_path, "restore", "latest", "--target", "pinecone://",
                    "--as", "eventual", "--json")
    assert_same(read_index(client, "eventual"), expected)     # read at once, delay still on
    assert out["warnings"] == []
    assert time.monotonic() - started >= 1.5
    # the same through the connector alone: write, then settle, then everything reads back
    conn = env_connector("pinecone://")
    batch = next(conn.scan(SOURCE, "alpha", batch_size=50))
    create_hybrid(client, "eventual-two")
    conn.write("eventual-two", batch)
    conn.settle("eventual-two", "alpha")
    got = client.index(host=client.indexes.describe("eventual-two").host).fetch(
        ids=list(batch.ids), namespace="alpha").vectors
    assert sorted(got) == sorted(batch.ids)
    conn.close()


def test_restore_into_existing_empty_index_and_refuse_a_full_one(emulator, client, repo_path,
                                                                 capsys):
    seed_source(client, SMALL)
    expected = read_index(client, SOURCE)
    assert vdedup("--repo", repo_path, "init") == 0
    _json_out(capsys, "--repo", repo_path, "backup", f"pinecone://{SOURCE}", "--json")
    create_hybrid(client, "empty-target")
    _json_out(capsys, "--repo", repo_path, "restore", "latest", "--target", "pinecone://",
              "--as", "empty-target", "--json")
    assert_same(read_index(client, "empty-target"), expected)
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", "pinecone://",
                  "--as", "empty-target") == 16
