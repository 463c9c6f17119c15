"""Backup and restore throughput per connector (records/s), on the same generated data.

    bash scripts/servers.sh start && source "$(bash scripts/servers.sh envfile)"
    .venv/bin/python benchmarks/connectors.py [--n 100000] [--dim 768] [--providers chroma,qdrant,...]

Data: benchmarks/datagen.py (seeded, clustered, string ids, small metadata) written into an
embedded Chroma. For every other provider, the collection is loaded by vdedup itself (a
cross-provider restore of the Chroma snapshot: that is the "restore" figure) and then backed up
(the "backup" figure); Milvus, which does not take foreign schemas yet, is loaded through
pymilvus and restored Milvus -> Milvus. Pinecone and Weaviate run against the project's
emulators (tests/emulators), so their figures measure vdedup and the SDKs, not the services.
Writes results/connectors.json and results/connectors.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))   # tests/emulators: the Pinecone and Weaviate emulators
import datagen  # noqa: E402

from vdedup_cli.main import run as vdedup  # noqa: E402


def _cli_json(*args: str) -> dict:
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = vdedup([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"vdedup {' '.join(map(str, args[:4]))} ... exited {code}")
    return json.loads(buf.getvalue())


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _milvus_load(uri: str, name: str, n: int, dim: int, seed: int) -> None:
    from pymilvus import DataType, MilvusClient
    client = MilvusClient(uri=uri)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    idx = client.prepare_index_params()
    idx.add_index("vector", index_type="AUTOINDEX", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=idx)
    for chunk in datagen.chunks(seed, dim, 0, n):
        rows = [{"id": i, "vector": v.tolist(), **m} for i, v, m in zip(chunk.ids, chunk.vectors, chunk.metadatas)]
        client.insert(name, rows)
    client.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--providers", default="chroma,qdrant,pgvector,milvus,pinecone,weaviate")
    ap.add_argument("--out", default=str(HERE / "results"))
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vdedup-connbench-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    os.environ.update(VDEDUP_PASSWORD="bench", VDEDUP_CACHE_DIR=str(work / "cache"), ANONYMIZED_TELEMETRY="False",
                      VDEDUP_SCRYPT_N="16384")
    repo = work / "repo"
    results = []
    try:
        src = work / "chroma"
        t0 = time.perf_counter()
        datagen.populate(str(src), a.n, a.dim, a.seed)
        print(f"populated {a.n} x {a.dim} in {time.perf_counter() - t0:.1f} s", flush=True)
        _cli_json("--repo", repo, "init", "--json")
        out, wall, cpu = _timed(lambda: _cli_json("--repo", repo, "backup", f"chroma://{src}", "--json"))
        snap = out["snapshot_id"]
        results.append({"provider": "chroma", "op": "backup", "records": out["records"], "seconds": wall, "cpu": cpu})
        emus = []
        for prov in [p for p in a.providers.split(",") if p]:
            if prov == "chroma":
                dst = work / "chroma-restore"
                o, wall, cpu = _timed(lambda: _cli_json("--repo", repo, "restore", snap, "--target", f"chroma://{dst}", "--json"))
                results.append({"provider": prov, "op": "restore", "records": o["records"], "seconds": wall, "cpu": cpu})
                continue
            name = "docs_bench"
            if prov == "qdrant":
                url, read_url = f"qdrant+local://{work / 'qdrant'}", f"qdrant+local://{work / 'qdrant'}"
            elif prov == "pgvector":
                host, port = os.environ["VDEDUP_TEST_PG_HOST"], os.environ["VDEDUP_TEST_PG_PORT"]
                import psycopg
                db = f"bench_{int(time.time())}"
                with psycopg.connect(host=host, port=int(port), user="postgres", dbname="postgres", autocommit=True) as c:
                    c.execute(f"CREATE DATABASE {db}")
                with psycopg.connect(host=host, port=int(port), user="postgres", dbname=db, autocommit=True) as c:
                    c.execute("CREATE EXTENSION IF NOT EXISTS vector")
                url = read_url = f"postgresql://postgres@{host}:{port}/{db}"
            elif prov == "pinecone":
                from emulators.pinecone_emulator import PineconeEmulator
                emu = PineconeEmulator("bench-key").__enter__()
                emus.append(emu)
                os.environ.update(PINECONE_API_KEY="bench-key", PINECONE_CONTROLLER_HOST=emu.url)
                name, url, read_url = "docs-bench", "pinecone://", "pinecone://docs-bench"
            elif prov == "weaviate":
                from emulators.weaviate_emulator import WeaviateEmulator
                emu = WeaviateEmulator(api_keys=["bench-key"]).__enter__()
                emus.append(emu)
                os.environ["WEAVIATE_API_KEY"] = "bench-key"
                name, url = "DocsBench", f"weaviate://{emu.host}:{emu.port}"
                read_url = url
            elif prov == "milvus":
                uri = os.environ["VDEDUP_TEST_MILVUS_URI"]
                name = f"docs_bench_{int(time.time())}"
                _milvus_load(uri, name, a.n, a.dim, a.seed)
                url = read_url = "milvus://" + uri.split("://", 1)[1]
                o, wall, cpu = _timed(lambda: _cli_json("--repo", repo, "backup", read_url, "--collection", name, "--json"))
                results.append({"provider": prov, "op": "backup", "records": o["records"], "seconds": wall, "cpu": cpu})
                o2, wall, cpu = _timed(lambda: _cli_json("--repo", repo, "restore", o["snapshot_id"], "--target", url,
                                                         "--as", name + "_r", "--json"))
                results.append({"provider": prov, "op": "restore", "records": o2["records"], "seconds": wall, "cpu": cpu})
                continue
            else:
                raise SystemExit(f"unknown provider {prov}")
            o, wall, cpu = _timed(lambda: _cli_json("--repo", repo, "restore", snap, "--target", url, "--as", name, "--json"))
            results.append({"provider": prov, "op": "restore (from chroma)", "records": o["records"], "seconds": wall, "cpu": cpu})
            o, wall, cpu = _timed(lambda: _cli_json("--repo", repo, "backup", read_url, "--collection", name, "--json"))
            results.append({"provider": prov, "op": "backup", "records": o["records"], "seconds": wall, "cpu": cpu})
            print(json.dumps(results[-2:]), flush=True)
        for emu in emus:
            emu.__exit__(None, None, None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in results:
        r["records_per_s"] = round(r["records"] / r["seconds"], 1) if r["seconds"] else None
        r["seconds"], r["cpu"] = round(r["seconds"], 2), round(r["cpu"], 2)
    os.makedirs(a.out, exist_ok=True)
    meta = {"n": a.n, "dim": a.dim, "seed": a.seed, "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(a.out, "connectors.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [f"# Connector throughput: {a.n} x {a.dim} records ({meta['time']}, {meta['cpus']} CPUs)", "",
             "| provider | operation | records | wall s | CPU s (this process) | records/s |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['provider']} | {r['op']} | {r['records']} | {r['seconds']} | {r['cpu']} | {r['records_per_s']} |" for r in results]
    Path(a.out, "connectors.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
