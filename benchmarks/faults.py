"""The longer seeded fault campaign (issue 19): the procedures of tests/test_fault_campaign.py
(tests/faultlib.py) with more records, more kills and more flips, and the check after every
re-run too. Its figures go into docs/operations.md ("What faults do").

    nice -n 10 .venv/bin/python benchmarks/faults.py                       # the documented run
    nice -n 10 .venv/bin/python benchmarks/faults.py --n 4000 --kills 5 --flips 1   # a quick look
    options: --n N  --dim D  --kills K (per operation)  --flips F (per object kind)
             --seed S  --out benchmarks/results  --work DIR  --keep

Results: OUT/faults.json (every trial) and OUT/faults.md (the table). The work directory
(default OUT/work-faults) is deleted at the end unless --keep. A full disk is a tmpfs where
mounting is allowed (root), else the storage refusing writes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
import faultlib  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--flips", type=int, default=4)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    out = Path(a.out)
    work = Path(a.work) if a.work else out / "work-faults"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    started = time.monotonic()
    bench = faultlib.Bench(work, n=a.n, dim=a.dim)
    bench.prepare()
    groups = {}
    try:
        for op in ("backup", "prune"):
            groups[f"SIGKILL during {op}"] = faultlib.kill_campaign(bench, op, a.kills, a.seed, recheck=True)
            _progress(groups)
        groups["flipped bit (every object kind)"] = faultlib.flip_campaign(bench, a.flips, a.seed)
        _progress(groups)
        groups["pack / index file deleted or truncated"] = faultlib.loss_campaign(bench, a.seed)
        groups["full disk during a backup"] = [faultlib.full_disk_trial(bench)]
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "n": a.n, "dim": a.dim, "seed": a.seed, "kills_per_operation": a.kills,
              "flips_per_kind": a.flips, "seconds": round(time.monotonic() - started, 1),
              "groups": {k: {"summary": faultlib.summary(v), "trials": [asdict(o) for o in v]}
                         for k, v in groups.items()}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "faults.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "faults.md").write_text(render(result))
    print(render(result))
    return 0 if all(g["summary"]["ok"] == g["summary"]["trials"] for g in result["groups"].values()) else 1


def _progress(groups) -> None:
    for k, v in groups.items():
        s = faultlib.summary(v)
        print(f"{k}: {s['ok']}/{s['trials']} ok", file=sys.stderr, flush=True)


def render(r: dict) -> str:
    lines = [f"# Seeded fault campaign ({r['date']})", "",
             f"{r['n']:,} records x {r['dim']} dims, seed {r['seed']}, {r['kills_per_operation']} kills per "
             f"operation, {r['flips_per_kind']} flips per object kind; {r['seconds']:.0f} s in all.", "",
             "| fault | trials | all questions answered right | killed midway | check found damage "
             "| restored newest | older, with a warning | refused (exit 17) | wrong restores |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, g in r["groups"].items():
        s = g["summary"]
        lines.append(f"| {name} | {s['trials']} | {s['ok']} | {s['killed_midway']} | {s['check_found']} | "
                     f"{s['restored_newest']} | {s['restored_older_warned']} | {s['restore_refused_17']} | "
                     f"{s['wrong_restores']} |")
    bad = [(name, t) for name, g in r["groups"].items() for t in g["trials"] if t["problems"]]
    if bad:
        lines += ["", "Problems:", ""]
        lines += [f"- {name}: {t['name']}: {'; '.join(t['problems'])}" for name, t in bad]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
