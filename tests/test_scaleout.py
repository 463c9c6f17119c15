"""Scale-out (engine/scaleout.py, repository/parts.py): partitioned backups with 1, 2 and 4
local workers give the same records and deduplicating manifests; `--workers 2` backups of
Qdrant (id ranges), Pinecone (id ranges through list prefixes) and Weaviate (UUID ranges per
tenant) restore bit for bit, and their plans take every id once; nightly manifests stay
even over 30 nights; and on a two-node Ray cluster with an S3 repository on moto, Chroma,
pgvector and Milvus collections back up partitioned over both nodes and restore bit for
bit, and a worker killed mid-backup leaves a repository that checks clean."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from vdedup.repository import Repository, Tuning, parts_of
from vdtest import PASSWORD, interruptible, require_module, unavailable, vdedup

sys.path.insert(0, str(Path(__file__).parent / "connectors"))
from test_files import records, write_export  # noqa: E402


def _nights_module():
    """benchmarks/nights.py, loaded by path (benchmarks/ holds a `connectors` module too)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("vdedup_bench_nights",
                                                  Path(__file__).parent.parent / "benchmarks" / "nights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


simulate_nights = _nights_module().simulate_nights

VENV_BIN = Path(sys.executable).parent


def _json(capsys, *args):
    capsys.readouterr()
    code = vdedup(*args)
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def _entry(repo_url, snap_id):
    from vdedup.backend import open_backend
    with Repository.open(open_backend(repo_url, os.environ.get("VDEDUP_S3_ENDPOINT")), PASSWORD) as repo:
        return repo.find_snapshot(snap_id).collections[0]["namespaces"][0]


# ---- 1, 2 and 4 workers ---------------------------------------------------------------------

def test_one_two_and_four_workers_give_the_same_snapshot(tmp_path, repo_path, capsys):
    ids, vecs, metas = records(6000)
    assert vdedup("--repo", str(repo_path), "init") == 0
    results, restored = [], []
    for workers in (1, 2, 4):
        # a copy per run: three sources, so each backup writes its manifest from nothing
        src = write_export(tmp_path / f"export-{workers}", ids, vecs, metas)
        results.append(_json(capsys, "--repo", str(repo_path), "backup", f"files://{src}?metric=cosine",
                             "--workers", str(workers), "--partition-size", "1500", "--json"))
        out = tmp_path / f"restored-{workers}"
        assert vdedup("--repo", str(repo_path), "restore", results[-1]["snapshot_id"], "--target",
                      f"files://{out}", "--workers", str(workers)) == 0
        restored.append(out)
    assert [r["records"] for r in results] == [6000] * 3
    entries = [_entry(str(repo_path), r["snapshot_id"]) for r in results]
    sources = [list(dict.fromkeys(p["source"] for p in parts_of(e))) for e in entries]
    assert sources[0] == ["rows:0..1500", "rows:1500..3000", "rows:3000..4500", "rows:4500.."]
    assert sources[0] == sources[1] == sources[2]
    # the same manifest blobs: the second and third backups store (next to) nothing
    assert [p["base"] for p in parts_of(entries[0])] == [p["base"] for p in parts_of(entries[1])] \
        == [p["base"] for p in parts_of(entries[2])]
    assert results[1]["bytes_added"] < 0.02 * results[0]["bytes_added"]
    assert results[2]["bytes_added"] < 0.02 * results[0]["bytes_added"]
    for out in restored:
        assert (out / "vectors.npy").read_bytes() == (tmp_path / "export-1" / "vectors.npy").read_bytes()
        assert (out / "records.jsonl").read_bytes() == (restored[0] / "records.jsonl").read_bytes()
    lines = (restored[0] / "records.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ids
    assert [json.loads(x)["metadata"] for x in lines] == metas
    assert vdedup("--repo", str(repo_path), "check", "--read-data") == 0


def test_local_processes_take_only_plans_they_split(tmp_path, repo_path, capsys):
    """--workers 2 sends partitions to worker processes only when no one of them holds most
    of the records: 1,000 + 300 rows stay in this process (the report says no scale-out),
    700 + 600 go to the processes; both snapshots hold every record."""
    from vdedup.engine.scaleout import LocalProcesses, Scatter
    local = Scatter(LocalProcesses(2), None)
    assert not local.wants([1000]) and not local.wants([1000, 300]) and not local.wants([5, 0, 0])
    assert local.wants([700, 600]) and local.wants([None, None]) and local.wants([3, 3, 3, 1])
    assert Scatter(object(), None).wants([1000])              # Ray (any other executor): always
    ids, vecs, metas = records(1300)
    src = write_export(tmp_path / "export", ids, vecs, metas)
    assert vdedup("--repo", str(repo_path), "init") == 0
    skewed = _json(capsys, "--repo", str(repo_path), "backup", f"files://{src}", "--workers", "2",
                   "--partition-size", "1000", "--json")
    even = _json(capsys, "--repo", str(repo_path), "backup", f"files://{src}", "--workers", "2",
                 "--partition-size", "700", "--json")
    assert skewed.get("scaleout") is None and even["scaleout"]["tasks"] == 2
    assert skewed["records"] == even["records"] == 1300
    for snap, want in ((skewed, ["rows:0..1000", "rows:1000.."]), (even, ["rows:0..700", "rows:700.."])):
        assert list(dict.fromkeys(p["source"] for p in parts_of(_entry(str(repo_path), snap["snapshot_id"])))) \
            == want


def _alive_in_group(pgid: int, grace: float) -> list[str]:
    """Processes of group `pgid` still running (zombies are over) after up to `grace` s."""
    deadline = time.time() + grace
    while True:
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    alive.append(stat.read_text())
        if not alive or time.time() > deadline:
            return alive
        time.sleep(0.05)


def test_ctrl_c_ends_a_scattered_backup_and_its_workers(tmp_path, repo_path, capsys):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during a
    `--workers 2` backup, while the workers start and while their tasks store packs: each
    time the command ends within seconds with exit 130 and one line, no process prints a
    traceback, no process of the group is left and the coordinator's lock is gone (a task's
    lock a worker may leave names an ended process: stale); the next backup stores every
    record and the repository checks clean."""
    ids, _, metas = records(40000)
    vecs = np.random.default_rng(7).standard_normal((40000, 256)).astype(np.float32)
    src = write_export(tmp_path / "export", ids, vecs, metas)
    assert vdedup("--repo", str(repo_path), "init") == 0
    env = dict(os.environ, VDEDUP_PACK_SIZE="1")
    for moment in ("starting", "storing"):
        before = set((repo_path / "data").rglob("*"))
        proc = subprocess.Popen([sys.executable, "-m", "vdedup_cli.main", "--repo", str(repo_path), "backup",
                                 f"files://{src}", "--workers", "2", "--partition-size", "10000"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                env=env, preexec_fn=interruptible)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if moment == "starting" and any((repo_path / "locks").iterdir()):
                time.sleep(0.3)                        # the coordinator plans; its workers import
                break
            if moment == "storing" and any(p.is_file() for p in set((repo_path / "data").rglob("*")) - before):
                break                                  # a task saved its first pack
            time.sleep(0.005)
        assert proc.poll() is None, "backup ended before it could be interrupted: " + proc.stderr.read().decode()
        os.killpg(proc.pid, signal.SIGINT)
        started = time.time()
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"interrupted while {moment}: still running after 60 s") from None
        err = proc.stderr.read().decode()
        assert rc == 130 and err.strip().splitlines() == ["vdedup: error: interrupted"], (moment, rc, err)
        assert time.time() - started < 30, moment
        assert _alive_in_group(proc.pid, 5.0) == [], moment     # no worker outlived the command
        # the coordinator's lock is gone; a worker stopped at an unlucky moment may leave its
        # task's lock, which names a process that has ended: stale, so nothing waits on it
        from vdedup.backend import LocalBackend
        with Repository.open(LocalBackend(str(repo_path)), PASSWORD) as repo:
            left = repo.list_locks()
        assert [(lk.operation, lk.is_stale()) for lk in left if lk.operation != "backup task" or not lk.is_stale()] \
            == [], moment
    done = _json(capsys, "--repo", str(repo_path), "backup", f"files://{src}", "--workers", "2",
                 "--partition-size", "10000", "--json")
    assert done["records"] == 40000 and done["scaleout"]["tasks"] == 4
    assert vdedup("--repo", str(repo_path), "check", "--read-data") == 0
    out = tmp_path / "restored"
    assert vdedup("--repo", str(repo_path), "restore", "latest", "--target", f"files://{out}") == 0
    assert (out / "vectors.npy").read_bytes() == (src / "vectors.npy").read_bytes()


def test_a_whole_namespace_stays_whole_a_little_past_the_partition_size(tmp_path, repo_path, capsys):
    """Backed up whole at 1,000 rows (--partition-size 1000), the export grown to 1,200 rows
    is still read whole (its manifest diffed against the parent's: 200 added, 1,000
    unchanged), and at 1,300 (more than 25% past the size) as row ranges."""
    ids, vecs, metas = records(1300)
    src = tmp_path / "export"
    assert vdedup("--repo", str(repo_path), "init") == 0
    got = []
    for n in (1000, 1200, 1300):
        write_export(src, ids[:n], vecs[:n], metas[:n])
        got.append(_json(capsys, "--repo", str(repo_path), "backup", f"files://{src}",
                         "--partition-size", "1000", "--json"))
    sources = [list(dict.fromkeys(p["source"] for p in parts_of(_entry(str(repo_path), g["snapshot_id"]))))
               for g in got]
    assert sources == [[""], [""], ["rows:0..1000", "rows:1000.."]]
    assert (got[1]["added"], got[1]["unchanged"], got[1]["records"]) == (200, 1000, 1200)
    assert got[2]["records"] == 1300


def test_boundary_hashes_from_the_hash_workers_cut_the_segments_the_inline_ones_cut(tmp_path, repo_path, capsys,
                                                                                   monkeypatch):
    """A first backup's segment boundaries (keyed hashes of the record keys, docs/design.md
    §5) are computed ahead by the hash workers when there are any, and on the reading thread
    otherwise: the same rows give the same manifest blobs either way."""
    from vdedup.engine import backup as backup_mod
    from vdedup.repository import writer as writer_mod
    monkeypatch.setattr(writer_mod, "HASH_AFTER", 0)       # hash workers from the first batch
    ahead = []
    real_finish = writer_mod.Writer._finish

    def finish(self, *args, **kwargs):
        ahead.append(len(args) > 5 and args[5] is not None)
        return real_finish(self, *args, **kwargs)
    monkeypatch.setattr(writer_mod.Writer, "_finish", finish)
    ids, vecs, metas = records(12000)
    assert vdedup("--repo", str(repo_path), "init") == 0
    entries, results, used = [], [], []
    for workers in (1, 2):
        # in this process: one writer with `workers` threads (no --workers: no worker processes)
        monkeypatch.setattr(backup_mod, "resolve_workers", lambda n, w=workers: w)
        src = write_export(tmp_path / f"export-{workers}", ids, vecs, metas)
        ahead.clear()
        results.append(_json(capsys, "--repo", str(repo_path), "backup", f"files://{src}?metric=cosine", "--json"))
        used.append(any(ahead))
        entries.append(_entry(str(repo_path), results[-1]["snapshot_id"]))
    assert used == [False, True]
    bases = [[p["base"] for p in parts_of(e)] for e in entries]
    assert len(bases[0]) >= 1 and bases[0] == bases[1]
    assert results[1]["bytes_added"] < 0.02 * results[0]["bytes_added"]


def _typed(v):
    """A payload value with its types visible (1 != 1.0 != True) and floats as their bits."""
    if isinstance(v, dict):
        return ("dict", sorted((k, _typed(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("list", [_typed(x) for x in v])
    if isinstance(v, float):
        return ("float", v.hex())
    return (type(v).__name__, v)


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")  # loopback
@pytest.mark.parametrize("where", ["local", "rest"])
def test_qdrant_with_two_workers_restores_exactly(where, tmp_path, repo_path, capsys, monkeypatch):
    """Id-range partitions of a Qdrant collection backed up with `--workers 2` and restored
    with two: ids, float32 vectors, sparse vectors and payload types come back bit for bit.
    local: integer ids in a local-mode directory, which one process at a time may open (the
    partitions are read one after the other by the coordinator, same plan); rest: UUID ids
    behind the REST bridge, read by two worker processes at once."""
    require_module("qdrant_client")
    from qdrant_client import QdrantClient, models
    rng = np.random.default_rng(5)
    n = 2500
    if where == "local":
        ids = sorted(rng.choice(10 ** 12, n, replace=False).tolist())
    else:
        ids = sorted({str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)})
    dense = rng.standard_normal((n, 16)).astype(np.float32)
    dense[0, :3] = [np.float32(1e-38), np.float32(-3.4028235e38), np.float32(2.0 ** -149)]
    points = []
    for k, i in enumerate(ids):
        idx = np.sort(rng.choice(50_000, 1 + k % 4, replace=False))
        payload = {"title": f"item {k} ü", "n": k - 1000, "score": float(rng.random()) / 3,
                   "ok": k % 2 == 0, "tags": [f"t{k % 3}", k % 5], "info": {"depth": {"x": k % 7}},
                   "none": None if k % 3 else "set"}
        points.append(models.PointStruct(id=i, vector={"d": dense[k].tolist(), "s": models.SparseVector(
            indices=idx.tolist(), values=rng.standard_normal(len(idx)).astype(np.float32).tolist())},
            payload=payload))

    def load(client):
        client.create_collection("items", vectors_config={"d": models.VectorParams(size=16, distance="Dot")},
                                 sparse_vectors_config={"s": models.SparseVectorParams()})
        for a in range(0, n, 500):
            client.upsert("items", points[a:a + 500])

    def rows(c, name):
        got, offset = [], None
        while True:
            page, offset = c.scroll(name, limit=1000, offset=offset, with_payload=True, with_vectors=True)
            got += page
            if offset is None:
                break
        return sorted((p.id, np.asarray(p.vector["d"], np.float32).tobytes(),
                       np.asarray(p.vector["s"].indices, np.int64).tobytes(),
                       np.asarray(p.vector["s"].values, np.float32).tobytes(), _typed(p.payload))
                      for p in got)

    assert vdedup("--repo", str(repo_path), "init") == 0
    backup = ("--repo", str(repo_path), "backup", "--workers", "2", "--partition-size", "800", "--json")
    if where == "local":
        src, dst = tmp_path / "qsrc", tmp_path / "qdst"
        client = QdrantClient(path=str(src))
        load(client)
        client.close()
        out = _json(capsys, *backup, f"qdrant+local://{src}")
        assert "scaleout" not in out            # read in this process: local mode locks its directory
        assert vdedup("--repo", str(repo_path), "restore", out["snapshot_id"], "--target",
                      f"qdrant+local://{dst}", "--workers", "2") == 0
        with contextlib.closing(QdrantClient(path=str(src))) as a, contextlib.closing(QdrantClient(path=str(dst))) as b:
            want, got = rows(a, "items"), rows(b, "items")
    else:
        sys.path.insert(0, str(Path(__file__).parent / "connectors"))
        from qdrant_rest_bridge import RestBridge
        monkeypatch.setenv("QDRANT_API_KEY", "scale-key-1")
        with RestBridge(api_key="scale-key-1") as bridge:
            load(bridge.bridge.client)
            out = _json(capsys, *backup, bridge.url)
            assert out["scaleout"]["tasks"] >= 3
            assert vdedup("--repo", str(repo_path), "restore", out["snapshot_id"], "--target", bridge.url,
                          "--as", "copy", "--workers", "2") == 0
            want, got = rows(bridge.bridge.client, "items"), rows(bridge.bridge.client, "copy")
    assert out["records"] == n
    sources = [p["source"] for p in parts_of(_entry(str(repo_path), out["snapshot_id"]))]
    kind = "id-int:" if where == "local" else "id-uuid:"
    assert len(set(sources)) >= 3 and all(x.startswith(kind) for x in sources), sources
    assert [r[0] for r in want] == ids
    assert got == want
    assert vdedup("--repo", str(repo_path), "check", "--read-data") == 0


def test_pinecone_with_two_workers_restores_exactly(repo_path, capsys, monkeypatch):
    """Id-range partitions of a Pinecone index (the emulator; namespaces of 1,500 ids) backed
    up by two worker processes and restored by two into another index: ids, float32 dense and
    sparse values and metadata types come back bit for bit."""
    require_module("pinecone")
    sys.path.insert(0, str(Path(__file__).parent))
    from emulators.pinecone_emulator import PineconeEmulator
    tp = _connector_helper("test_pinecone")
    key = "pc-scale-key-0123456789"
    with PineconeEmulator(key) as emu:
        monkeypatch.setenv("PINECONE_API_KEY", key)
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", emu.url)
        import pinecone
        client = pinecone.Pinecone(api_key=key, host=emu.url)
        index = tp.create_hybrid(client, "products")
        for k, ns in enumerate(("", "alpha")):
            vectors = tp.make_vectors(1500, seed=k, prefix=f"{ns or 'default'}-")
            for a in range(0, len(vectors), 500):
                index.upsert(vectors=vectors[a:a + 500], namespace=ns)
        assert vdedup("--repo", str(repo_path), "init") == 0
        out = _json(capsys, "--repo", str(repo_path), "backup", "pinecone://products", "--workers", "2",
                    "--partition-size", "400", "--json")
        assert out["records"] == 3000 and out["scaleout"]["tasks"] >= 4
        entry = _entry(str(repo_path), out["snapshot_id"])
        assert len({p["source"] for p in parts_of(entry)}) >= 4
        assert vdedup("--repo", str(repo_path), "restore", out["snapshot_id"], "--target", "pinecone://",
                      "--as", "copy", "--workers", "2") == 0
        copy = client.index(host=client.indexes.describe("copy").host)

        def rows(idx, ns):
            ids = sorted(item.id for page in idx.list(namespace=ns) for item in page.vectors)
            got = {}
            for a in range(0, len(ids), 500):
                got.update(idx.fetch(ids=ids[a:a + 500], namespace=ns).vectors)
            return sorted((i, np.asarray(v.values, np.float32).tobytes(),
                           None if v.sparse_values is None else
                           (list(v.sparse_values.indices), np.asarray(v.sparse_values.values, np.float32).tobytes()),
                           _typed(dict(v.metadata) if v.metadata else None)) for i, v in got.items())
        for ns in ("", "alpha"):
            want = rows(index, ns)
            assert len(want) == 1500
            assert rows(copy, ns) == want
    assert vdedup("--repo", str(repo_path), "check", "--read-data") == 0


def test_weaviate_tenants_with_two_workers_restore_exactly(repo_path, capsys, monkeypatch):
    """UUID ranges inside each tenant of a multi-tenant class (and of a plain class with
    cross-references), backed up by two worker processes and restored by two: object ids,
    float32 named vectors and typed properties come back bit for bit."""
    require_module("weaviate")
    sys.path.insert(0, str(Path(__file__).parent))
    from emulators.weaviate_emulator import WeaviateEmulator
    tw = _connector_helper("test_weaviate")
    with WeaviateEmulator(api_keys=[tw.KEY]) as emu:
        monkeypatch.setenv("WEAVIATE_API_KEY", tw.KEY)
        tw.seed(emu)
        url = f"weaviate://{emu.host}:{emu.port}"
        assert vdedup("--repo", str(repo_path), "init") == 0
        out = _json(capsys, "--repo", str(repo_path), "backup", url, "--workers", "2",
                    "--partition-size", "100", "--json")
        assert out["records"] == 2 * tw.PER_TENANT + tw.N_NOTES and out["scaleout"]["tasks"] >= 5
        from vdedup.backend import open_backend
        with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
            doc = next(c for c in repo.find_snapshot(out["snapshot_id"]).collections if c["name"] == "Doc")
        for ns in doc["namespaces"]:
            sources = {p["source"] for p in parts_of(ns)}
            assert len(sources) >= 2 and all(x.startswith("uuid:") for x in sources), sources
        for cls in ("Doc", "Note"):
            assert vdedup("--repo", str(repo_path), "restore", out["snapshot_id"], "--target", url,
                          "--collection", cls, "--as", f"{cls}W", "--workers", "2") == 0
        assert tw.state(emu, "DocW", "NoteW") == tw.state(emu)
    assert vdedup("--repo", str(repo_path), "check", "--read-data") == 0


# ---- partition plans (model/partition.py, connectors' key covers) -----------------------------

def test_string_ranges_and_pinecone_prefix_covers_take_every_id_once():
    """Pinecone's plan: bounds from sorted ids, each range read through list prefixes (ASCII,
    no NUL) whose ids, kept when inside the range, give every id exactly once, including ids
    that were not there when the plan was made."""
    import random

    from vdedup.connectors.pinecone.ranges import id_cover, plan_ranges
    from vdedup.model.partition import string_ranges
    rnd = random.Random(7)
    alphabet = "ab-#09zZ~ü中\x00\x7f"
    ids = sorted({"".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 7))) for _ in range(3000)})
    later = sorted({"".join(rnd.choice(alphabet + "yQ!") for _ in range(rnd.randint(1, 8))) for _ in range(3000)})
    parts = string_ranges(ids, 300, "ids")
    assert len(parts) == -(-len(ids) // 300)
    # the plan from a listing in byte order keeps only the ids at the bounds; out of order, all
    assert [p.spec for p in plan_ranges(lambda: iter(ids), 300, "")] == [p.spec for p in parts]
    shuffled = rnd.sample(ids, len(ids))
    assert [p.key for p in plan_ranges(lambda: iter(shuffled), 300, "")] == [p.key for p in parts]
    assert all(p.key.startswith("ids:") and not any(i in p.key for i in ids if len(i) > 2) for p in parts)
    for universe in (ids, sorted(set(ids) | set(later))):
        seen = []
        for p in parts:
            lo, hi = p.spec["lo"], p.spec["hi"]
            prefixes = id_cover(lo, hi)
            assert all(x.isascii() and "\x00" not in x for x in prefixes)
            for i in universe:
                listed = [x for x in prefixes if i.startswith(x)]
                assert len(listed) <= 1                      # listed once at most
                if (lo is None or i >= lo) and (hi is None or i < hi):
                    assert listed, (i, lo, hi)               # and listed when inside the range
                    seen.append(i)
        assert seen == universe


def test_last_key_bisects_to_the_largest_key():
    from vdedup.model.partition import last_key
    for keys in ([5], [0, 3, 2 ** 64 - 1], [7, 2 ** 127 + 3]):
        probes = []

        def exists_from(x, keys=keys):
            probes.append(x)
            return any(k >= x for k in keys)
        assert last_key(exists_from, min(keys), 2 ** 128 - 1) == max(keys)
        assert len(probes) <= 129


# ---- 30 nights of manifests -------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(1500)          # ~4 min of CPU: more than the default 600 s on a loaded machine
def test_thirty_nights_of_manifests_cost_about_the_same_each_night():
    """Issue 17: 30 nights of a namespace of 1M records (1% of records replaced, 10% of
    records' metadata touched a night; manifest only, through the repository writer) with
    the default tuning: the largest night stores at most 5x the median night, the mean
    at most 1.5x the smallest (about 4 minutes of CPU here; docs/scale-out.md)."""
    stored = simulate_nights(1_000_000, 30, Tuning())
    median = statistics.median(stored)
    assert max(stored) <= 5 * median, stored
    assert statistics.mean(stored) <= 1.5 * min(stored), stored


# ---- a two-node Ray cluster, an S3 repository ---------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A head node and a second node (1 CPU each, temp dirs of their own), stopped after."""
    # short paths: Ray's Unix sockets live under the temp dirs (107 characters at most)
    base = Path(tempfile.mkdtemp(prefix="vr-", dir="/tmp"))
    port = _free_port()
    # token authentication with a token of this cluster's own: the nodes, the in-process
    # driver and the vdedup processes use it (an ~/.ray/auth_token left by any local
    # ray.init would otherwise turn authentication on for the head only)
    token = base / "token"
    token.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    token.chmod(0o600)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    require_module("ray")                  # imported after: Ray reads the mode when imported
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "VDEDUP_CACHE_DIR": str(base / "worker-cache"), "ANONYMIZED_TELEMETRY": "False"}
    ray = str(VENV_BIN / "ray")
    common = ["--num-cpus=1", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]
    def start(*args: str) -> None:
        r = subprocess.run([ray, "start", *args, *common], env=env, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    try:
        start("--head", f"--port={port}", f"--temp-dir={base / 'head'}", "--include-dashboard=false")
        start(f"--address=127.0.0.1:{port}", f"--temp-dir={base / 'node2'}")
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_repo(monkeypatch, tmp_path):
    endpoint = os.environ.get("VDEDUP_TEST_S3_ENDPOINT")
    if not endpoint:
        unavailable("VDEDUP_TEST_S3_ENDPOINT is not set: start the servers (scripts/servers.sh)")
    monkeypatch.setenv("VDEDUP_S3_ENDPOINT", endpoint)
    for k, v in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                 ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(k, v)
    url = f"s3://vdedup-scaleout-{uuid.uuid4().hex[:12]}/repo"
    assert vdedup("--repo", url, "init") == 0
    return url


def _connector_helper(name):
    """Load a helper of tests/connectors by path: a module named plain `connectors` (such as
    benchmarks/connectors.py, put on sys.path by the benchmark smoke test) must not shadow it."""
    import importlib.util
    key = f"_vdedup_test_connectors_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, Path(__file__).parent / "connectors" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def _ray_backup(capsys, repo, url, address, *extra):
    out = _json(capsys, "--repo", repo, "backup", url, "--ray", address, "--partition-size", "1000", "--json", *extra)
    assert out["scaleout"]["tasks"] >= 3 and out["scaleout"]["nodes"] == 2, out["scaleout"]
    return out


def test_chroma_on_two_ray_nodes_restores_exactly(tmp_path, ray_cluster, s3_repo, capsys):
    import chromadb
    running_chroma_server = _connector_helper("conftest").running_chroma_server
    from vdtest import add_records, make_records
    (tmp_path / "chroma").mkdir()
    with running_chroma_server(tmp_path / "chroma") as server:
        client = chromadb.HttpClient(host=server.host, port=server.port)
        col = client.create_collection("docs", embedding_function=None, metadata={"hnsw:space": "l2"})
        add_records(col, *make_records(3000, dim=32))
        url = f"chroma://{server.host}:{server.port}"
        out = _ray_backup(capsys, s3_repo, url, ray_cluster)
        assert out["records"] == 3000
        assert vdedup("--repo", s3_repo, "restore", out["snapshot_id"], "--target", url, "--as", "copy",
                      "--ray", ray_cluster) == 0
        a = col.get(include=["embeddings", "metadatas", "documents", "uris"])
        b = client.get_collection("copy").get(include=["embeddings", "metadatas", "documents", "uris"])
        assert sorted(a["ids"]) == sorted(b["ids"]) and len(a["ids"]) == 3000
        pos = {i: k for k, i in enumerate(b["ids"])}
        for k, rid in enumerate(a["ids"]):
            j = pos[rid]
            assert np.asarray(a["embeddings"][k], np.float32).tobytes() == \
                np.asarray(b["embeddings"][j], np.float32).tobytes()
            assert (a["metadatas"][k], a["documents"][k], a["uris"][k]) == \
                (b["metadatas"][j], b["documents"][j], b["uris"][j])
    assert vdedup("--repo", s3_repo, "check", "--read-data") == 0


def test_pgvector_on_two_ray_nodes_restores_exactly(ray_cluster, s3_repo, capsys):
    pgf = _connector_helper("pg_fixtures")
    connect, fresh_database, pg_url = pgf.connect, pgf.fresh_database, pgf.url
    rng = np.random.default_rng(3)
    with fresh_database() as db, connect(db) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, embedding vector(16), meta jsonb, body text)")
        ids = sorted(rng.choice(100_000, 3000, replace=False).tolist())
        vecs = rng.standard_normal((3000, 16)).astype(np.float32)
        with conn.cursor().copy("COPY items (id, embedding, meta, body) FROM STDIN") as cp:
            for k, i in enumerate(ids):
                cp.write_row((i, "[" + ",".join(repr(float(x)) for x in vecs[k]) + "]",
                              json.dumps({"k": k % 7}), None if k % 5 else f"text {k}"))
        out = _ray_backup(capsys, s3_repo, pg_url(db, "items"), ray_cluster)
        assert out["records"] == 3000
        assert vdedup("--repo", s3_repo, "restore", out["snapshot_id"], "--target", pg_url(db),
                      "--as", "public.copy", "--ray", ray_cluster) == 0
        q = "SELECT id, vector_send(embedding), meta::text, body FROM {} ORDER BY id"
        assert conn.execute(q.format("items")).fetchall() == conn.execute(q.format("copy")).fetchall()
    assert vdedup("--repo", s3_repo, "check", "--read-data") == 0


def test_milvus_on_two_ray_nodes_restores_exactly(ray_cluster, s3_repo, capsys):
    from pymilvus import DataType, MilvusClient
    uri = os.environ.get("VDEDUP_TEST_MILVUS_URI")
    if not uri:
        unavailable("VDEDUP_TEST_MILVUS_URI is not set: start the servers (scripts/servers.sh)")
    client = MilvusClient(uri=uri)
    name = f"scale_{uuid.uuid4().hex[:8]}"
    schema = client.create_schema(auto_id=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=16)
    schema.add_field("title", DataType.VARCHAR, max_length=64)
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=index)
    rng = np.random.default_rng(4)
    vecs = rng.standard_normal((3000, 16)).astype(np.float32)
    client.insert(name, [{"pk": 10 * k, "vec": vecs[k].tolist(), "title": f"t{k}"} for k in range(3000)])
    try:
        url = "milvus://" + uri.split("://", 1)[1]
        out = _ray_backup(capsys, s3_repo, url, ray_cluster, "--collection", name)
        assert out["records"] == 3000
        assert vdedup("--repo", s3_repo, "restore", out["snapshot_id"], "--target", url, "--as", name + "_copy",
                      "--ray", ray_cluster) == 0

        def rows(c):
            client.load_collection(c)
            got = client.query(c, filter="pk >= 0", output_fields=["pk", "vec", "title"], limit=16384,
                               consistency_level="Strong")
            return sorted((r["pk"], np.asarray(r["vec"], np.float32).tobytes(), r["title"]) for r in got)
        assert rows(name) == rows(name + "_copy") and len(rows(name)) == 3000
    finally:
        for c in (name, name + "_copy"):
            client.drop_collection(c)
        client.close()
    assert vdedup("--repo", s3_repo, "check", "--read-data") == 0


def test_a_worker_killed_mid_backup(tmp_path, ray_cluster, s3_repo):
    """SIGKILL one Ray worker while it backs up a partition: Ray runs the task again and the
    backup completes (or fails with one clear line); check --read-data is clean either way."""
    ids, vecs, metas = records(24_000)
    src = write_export(tmp_path / "export", ids, vecs, metas)
    proc = subprocess.Popen([str(VENV_BIN / "vdedup"), "--repo", s3_repo, "backup", f"files://{src}?metric=cosine",
                             "--ray", ray_cluster, "--partition-size", "3000", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        busy = [int(line.split()[0]) for line in ps.splitlines() if "ray::timed_call" in line]
        if busy:
            killed = busy[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    assert killed is not None, "no worker was seen running a task"
    if proc.returncode == 0:
        assert out.strip(), err
        summary = json.loads(out)
        assert summary["records"] == 24_000
        restored = tmp_path / "restored"
        assert vdedup("--repo", s3_repo, "restore", summary["snapshot_id"], "--target", f"files://{restored}") == 0
        assert (restored / "vectors.npy").read_bytes() == (src / "vectors.npy").read_bytes()
        assert [json.loads(x)["id"] for x in (restored / "records.jsonl").read_text().splitlines()] == ids
    else:
        assert len(err.strip().splitlines()) <= 2 and "vdedup: error:" in err, err
    assert vdedup("--repo", s3_repo, "check", "--read-data") == 0


# ---- the format of partitioned entries ---------------------------------------------------------

def test_partitioned_entries_are_checked_and_unknown_features_refused():
    from vdedup.errors import FormatError, UnsupportedFormat
    from vdedup.format.versions import namespace_entry
    part = {"source": "rows:0..10", "lo": "", "count": 10, "age": 2, "base": "ab" * 32,
            "deltas": [{"chunks": ["cd" * 32], "rows": 3}]}
    good = {"version": 1, "features": ["parts"], "name": "", "count": 10, "parts": [part]}
    assert namespace_entry(good, "snapshot x")["parts"][0]["source"] == "rows:0..10"
    for bad in ({**part, "lo": "xyz"}, {**part, "base": "nope"}, {**part, "count": -1},
                {**part, "deltas": [{"chunks": ["zz"], "rows": 1}]}, {**part, "ordered": "no"}):
        with pytest.raises(FormatError, match="parts"):
            namespace_entry({**good, "parts": [bad]}, "snapshot x")
    with pytest.raises(FormatError, match="parts"):
        namespace_entry({**good, "parts": []}, "snapshot x")
    with pytest.raises(UnsupportedFormat, match="parts2"):
        namespace_entry({**good, "features": ["parts", "parts2"]}, "snapshot x")
