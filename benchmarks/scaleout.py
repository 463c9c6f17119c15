"""Scale-out benchmarks (docs/scale-out.md).

    python benchmarks/scaleout.py speedup [--n 200000] [--dim 768] [--partitions 8]
    python benchmarks/scaleout.py ray     [--n 50000]  [--dim 768] [--partitions 16]
    python benchmarks/scaleout.py nights  [--n 1000000] [--nights 30]

speedup: an initial backup of the naive files export (datagen.py export, the CPU-bound
    source: parsing JSON lines, hashing, compressing, encrypting) with one worker (one
    process, one thread) and with `--workers 2` (two worker processes, the same partition
    plan); the target is a speed-up of at least 1.6 on a 2-core machine.
ray: the same backup with `--ray` (a local Ray instance started by vdedup), and the Ray
    overhead per task: the executor's wall time after the cluster started, times its task
    slots, less the tasks' own run time, per task (worker processes starting included).
nights: the manifest bytes each of 30 simulated nights stores (1M records, 1% churn, 10%
    metadata touches; benchmarks/nights.py), with the default compaction: the largest
    night against the median, the mean against the smallest.

Results go to benchmarks/results/scaleout-<command>.json; working data to
benchmarks/results/work/ (deleted unless --keep).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORK = RESULTS / "work" / "scaleout"
PY = sys.executable
VDEDUP = str(Path(PY).parent / "vdedup")
PASSWORD = "benchmark-password"


def _env() -> dict[str, str]:
    return {**os.environ, "VDEDUP_PASSWORD": PASSWORD, "VDEDUP_CACHE_DIR": str(WORK / "cache"),
            "RAY_USAGE_STATS_ENABLED": "0"}


def _export(n: int, dim: int) -> Path:
    d = WORK / f"export-{n}-{dim}"
    if not (d / "records.jsonl").exists():
        subprocess.run([PY, str(HERE / "datagen.py"), "export", "--out", str(d), "--n", str(n), "--dim", str(dim)],
                       check=True, env=_env())
    return d


def _backup(export: Path, tag: str, *extra: str) -> dict:
    repo = WORK / f"repo-{tag}"
    shutil.rmtree(repo, ignore_errors=True)
    subprocess.run([VDEDUP, "--repo", str(repo), "init"], check=True, env=_env(), capture_output=True)
    t = time.monotonic()
    out = subprocess.run([VDEDUP, "--repo", str(repo), "backup", f"files://{export}?metric=cosine", "--json",
                          *extra], check=True, env=_env(), capture_output=True, text=True).stdout
    wall = time.monotonic() - t
    summary = json.loads(out)
    shutil.rmtree(repo, ignore_errors=True)
    return {"wall_s": round(wall, 2), "records_per_s": round(summary["records"] / wall),
            "scaleout": summary.get("scaleout")}


def speedup(a) -> dict:
    export = _export(a.n, a.dim)
    size = str(-(-a.n // a.partitions))
    one = _backup(export, "one", "--workers", "1", "--partition-size", size)
    two = _backup(export, "two", "--workers", "2", "--partition-size", size)
    return {"n": a.n, "dim": a.dim, "partitions": a.partitions, "one_worker": one, "two_workers": two,
            "speedup": round(one["wall_s"] / two["wall_s"], 2), "target": 1.6}


def ray(a) -> dict:
    export = _export(a.n, a.dim)
    size = str(-(-a.n // a.partitions))
    run = _backup(export, "ray", "--ray", "--partition-size", size)
    s = run["scaleout"]
    slots = os.cpu_count() or 1
    overhead = ((s["seconds"] - s["startup_seconds"]) * min(slots, s["tasks"]) - s["task_seconds"]) / s["tasks"]
    return {"n": a.n, "dim": a.dim, "run": run, "slots": slots, "overhead_per_task_s": round(overhead, 3)}


def nights(a) -> dict:
    from vdedup.repository import Tuning
    from nights import simulate_nights
    os.environ.setdefault("VDEDUP_CACHE_DIR", str(WORK / "cache"))
    t, cpu = time.monotonic(), time.process_time()
    stored = simulate_nights(a.n, a.nights, Tuning())
    median, mean = statistics.median(stored), statistics.mean(stored)
    return {"n": a.n, "nights": a.nights, "seconds": round(time.monotonic() - t, 1),
            "cpu_seconds": round(time.process_time() - cpu, 1), "bytes_per_night": stored,
            "max_over_median": round(max(stored) / median, 3), "mean_over_min": round(mean / min(stored), 3),
            "targets": {"max_over_median": 5, "mean_over_min": 1.5}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, n, parts in (("speedup", 200_000, 8), ("ray", 50_000, 16)):
        s = sub.add_parser(name)
        s.add_argument("--n", type=int, default=n)
        s.add_argument("--dim", type=int, default=768)
        s.add_argument("--partitions", type=int, default=parts)
        s.add_argument("--keep", action="store_true")
    s = sub.add_parser("nights")
    s.add_argument("--n", type=int, default=1_000_000)
    s.add_argument("--nights", type=int, default=30)
    s.add_argument("--keep", action="store_true")
    a = p.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    try:
        result = {"speedup": speedup, "ray": ray, "nights": nights}[a.cmd](a)
    finally:
        if not a.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"scaleout-{a.cmd}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
