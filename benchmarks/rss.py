"""Peak memory of vdedup at large N, from a files export (the issue's "1M x 768 under 500 MB").

    .venv/bin/python benchmarks/rss.py                      # N = 250,000 and 1,000,000 at dim 768
    .venv/bin/python benchmarks/rss.py --sizes 20000 --dim 64 --out /tmp/rss   # a quick look

For each N it writes the naive export of datagen's records 0..N (vectors.npy + records.jsonl,
sorted by id, as `peers.py export` writes it, but straight from the generator: populating
Chroma with 1M x 768 would take hours), then runs, each as a child process measured by
benchmarks/measure.py (its own peak RSS, ru_maxrss, not inflated by this process's):

- `vdedup backup files://EXPORT` into a new repository (the initial backup);
- the same backup again after datagen's nightly change set has been applied to the export
  (1% new vectors, 1% new records, 0.5% deleted);
- `vdedup restore latest --target files://NEW` (the restored export must hold the same
  records as the export: `peers.export_digest`, a sha256 over the records in id order).

Results: OUT/rss.json and OUT/rss.md. The work directory (OUT/work-rss) is deleted at the end.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import datagen  # noqa: E402
from peers import compile_bytecode, export_digest  # noqa: E402

RSS_TARGET_MB = 500
MB = 1_000_000


def measured(argv: list[str], env: dict[str, str], work: Path) -> dict[str, Any]:
    """Run a child through benchmarks/measure.py: wall seconds, CPU seconds, its own peak RSS."""
    usage_file = work / "rusage.json"
    proc = subprocess.run([sys.executable, str(HERE / "measure.py"), str(usage_file), "--", *argv], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=str(ROOT))
    usage = json.loads(usage_file.read_text())
    if usage["exit"] != 0:
        raise RuntimeError(f"{' '.join(argv[1:3])} failed with exit code {usage['exit']}")
    return {**usage, "json": json.loads(proc.stdout or b"null")}


def one_size(work: Path, n: int, dim: int, seed: int) -> dict[str, Any]:
    vdedup = str(Path(sys.executable).parent / "vdedup")
    d = work / f"n{n}"
    env = {**os.environ, "VDEDUP_PASSWORD": "bench", "VDEDUP_REPOSITORY": str(d / "repo"),
           "VDEDUP_CACHE_DIR": str(d / "cache"), "VDEDUP_SCRYPT_N": "16384"}
    out: dict[str, Any] = {"n": n, "dim": dim}
    t0 = time.monotonic()
    out["export"] = datagen.write_export(d / "export", n, dim, seed)
    out["export"]["seconds"] = round(time.monotonic() - t0, 1)
    subprocess.run([vdedup, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
    url = f"files://{d / 'export'}?collection=docs&metric=cosine"
    m = measured([vdedup, "backup", url, "--json"], env, d)
    out["initial"] = {k: m[k] for k in ("wall_s", "cpu_s", "peak_rss_mb")}
    out["initial"]["records"] = m["json"]["records"]
    shutil.rmtree(d / "export")
    out["night_export"] = datagen.write_export(d / "export", n, dim, seed, night=True)
    m = measured([vdedup, "backup", url, "--json"], env, d)
    out["nightly"] = {k: m[k] for k in ("wall_s", "cpu_s", "peak_rss_mb")}
    out["nightly"].update({k: m["json"][k] for k in ("records", "added", "changed", "deleted", "unchanged")})
    m = measured([vdedup, "restore", "latest", "--target", f"files://{d / 'restored'}", "--json"], env, d)
    out["restore"] = {k: m[k] for k in ("wall_s", "cpu_s", "peak_rss_mb")}
    out["restore"]["identical"] = export_digest(d / "restored") == export_digest(d / "export")
    shutil.rmtree(d)
    return out


def markdown(res: dict[str, Any]) -> str:
    rows = res["sizes"]
    lines = [f"# Peak memory of vdedup at large N (files source, dim {res['dim']})", "",
             f"Measured {res['started']} -> {res['finished']} with `benchmarks/rss.py "
             f"--sizes {','.join(str(r['n']) for r in rows)} --dim {res['dim']}`; vdedup {res['vdedup']}; "
             f"{res['machine']}.", "",
             "Data: datagen's records (clustered float32 vectors, ids `doc-000123#chunk-4`, metadata "
             "`{source, page, tags[], updated_at}`) written as the naive export, sorted by id. Each "
             "command is one child process started through `benchmarks/measure.py`; peak RSS is its own `ru_maxrss` (os.wait4).", "",
             "| records x dim | export | step | wall s | CPU s | peak RSS MB |",
             "|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        size = f"{r['export']['bytes'] / MB:,.0f} MB"
        for step, label in (("initial", "initial backup"), ("nightly", "nightly backup (1% upd, 1% add, 0.5% del)"),
                            ("restore", "restore latest into a new export")):
            m = r[step]
            extra = " (same records as the export)" if step == "restore" and m.get("identical") else \
                (" (records DIFFER)" if step == "restore" else "")
            lines.append(f"| {r['n']:,} x {r['dim']} | {size} | {label}{extra} | {m['wall_s']:.1f} | "
                         f"{m['cpu_s']:.1f} | {m['peak_rss_mb']:.0f} |")
    lines.append("")
    big = [r for r in rows if r["n"] >= 1_000_000 and r["dim"] == 768]
    if big:
        peak = max(big[0][s]["peak_rss_mb"] for s in ("initial", "nightly", "restore"))
        verdict = "holds" if peak < RSS_TARGET_MB else "does not hold"
        lines.append(f"- **Target \"peak RSS for 1M x 768 under {RSS_TARGET_MB} MB\": {verdict}** "
                     f"(largest of the three steps: {peak:.0f} MB).")
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        ra, rb = a["initial"]["peak_rss_mb"], b["initial"]["peak_rss_mb"]
        verdict = "holds" if rb / ra < b["n"] / a["n"] else "does not hold"
        lines.append(f"- **Target \"growing sub-linearly with N\": {verdict}** (initial backup: "
                     f"x{b['n'] / a['n']:.1f} the records, x{rb / ra:.2f} the peak RSS).")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="250000,1000000")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--render", action="store_true", help="only rewrite rss.md from rss.json")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.render:
        (out / "rss.md").write_text(markdown(json.loads((out / "rss.json").read_text())))
        return 0
    compile_bytecode()
    work = out / "work-rss"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    res: dict[str, Any] = {"dim": a.dim, "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                           "vdedup": commit or "unknown",
                           "machine": f"{os.cpu_count()} CPUs, "
                                      f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1e9:.1f} GB RAM",
                           "sizes": []}
    try:
        for n in [int(x) for x in a.sizes.split(",") if x.strip()]:
            print(f"rss: N={n:,} x {a.dim}", file=sys.stderr, flush=True)
            res["sizes"].append(one_size(work, n, a.dim, a.seed))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    out.mkdir(parents=True, exist_ok=True)
    (out / "rss.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "rss.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
