"""Foundation benchmark: vdedup against an embedded Chroma source (see benchmarks/README.md).

Scenarios, on N records (default 200,000) x 768-dim float32 from benchmarks/datagen.py:

  A  init + initial backup: bytes added, wall time, peak RSS; stored size target <= 533 MB
     (scaled by N*dim / 200,000*768)
  B  nightly: 1% vectors updated, 1% records added, 0.5% deleted; bytes added <= 1.2x the
     zstd-3 size of the changed and added records
  C  metadata-only: updated_at changed on 10% of records; bytes added <= 0.4 MB
  D  unchanged re-run: bytes added < 0.1% of the stored size
  E  restore latest into a new Chroma directory: wall time, peak RSS, 1,000 sampled records
     compared bit for bit with the source
  M  peak RSS of scenario A at N=50,000, N and (with --full) 400,000

Every vdedup command runs as a child process through the installed CLI; its peak RSS is that
child's own ru_maxrss (os.wait4), its wall time is measured around it. "Bytes added" is the
growth of the repository directory (its file sizes summed, as du -sb counts them). Data generation and changes run in separate
child processes too, so the source is closed and flushed before vdedup reads it.

    .venv/bin/python benchmarks/foundation.py [--n 200000] [--dim 768] [--seed 0] [--full]
                                               [--keep] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATAGEN = HERE / "datagen.py"

BASE_N, BASE_DIM = 200_000, 768
FIRST_SNAPSHOT_TARGET = 533e6          # bytes at 200,000 x 768, scaled linearly
NIGHTLY_RATIO_TARGET = 1.2
METADATA_TARGET = 0.4e6                # bytes
UNCHANGED_FRACTION_TARGET = 0.001      # of the stored size
MEMORY_GROWTH_TARGET = 1.25            # peak RSS at the largest N / at the smallest N
OWN_MEMORY_SLACK_MB = 16               # sampling noise allowed on vdedup's own (difference) memory
SAMPLE = 1000
MEM_KEYS = ("wall_s", "cpu_s", "peak_rss_mb", "peak_rss_anon_mb", "peak_rss_file_mb")
PASSWORD = "foundation-benchmark"
MB = 1e6


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def du(path: Path) -> int:
    """Bytes stored under path: the apparent sizes of its files (du -sb without the 4 KiB that
    du counts for each directory entry, which would otherwise dominate small changes)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total


def du_sb(path: Path) -> int:
    """`du -sb path` as is (directories included), recorded for reference."""
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sb", str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


class RssSampler:
    """Peaks of a child's anonymous and file-backed resident memory (/proc/PID/status, every
    0.2 s): ru_maxrss counts both, and file-backed pages (LMDB maps, libraries) are
    reclaimable page cache rather than memory the process needs."""

    FIELDS = {"RssAnon": "peak_rss_anon_mb", "RssFile": "peak_rss_file_mb"}

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval = pid, interval
        self.peaks = {k: 0 for k in self.FIELDS}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        key = line.split(":", 1)[0]
                        if key in self.peaks:
                            self.peaks[key] = max(self.peaks[key], int(line.split()[1]))
            except (OSError, ValueError, IndexError):
                pass
            self._done.wait(self.interval)

    def stop(self) -> dict[str, float]:
        self._done.set()
        self._thread.join()
        return {name: round(self.peaks[k] * 1024 / MB, 1) for k, name in self.FIELDS.items()}


class Runner:
    def __init__(self, work: Path, python: str, vdedup: str):
        self.work = work
        self.python = python
        self.vdedup = vdedup
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def env(self, repo: Path) -> dict[str, str]:
        return {**os.environ, "VDEDUP_PASSWORD": PASSWORD, "VDEDUP_REPOSITORY": str(repo),
                "VDEDUP_CACHE_DIR": str(self.work / "cache"), "VDEDUP_SCRYPT_N": "16384",
                "PYTHONUNBUFFERED": "1"}

    def run(self, argv: list[str], env: dict[str, str], label: str) -> dict[str, Any]:
        """Run a child; returns wall seconds, its own peak RSS, exit code and parsed JSON stdout."""
        self.count += 1
        stem = self.logs / f"{self.count:02d}-{label}"
        with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
            t0 = time.monotonic()
            proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=str(ROOT))
            sampler = RssSampler(proc.pid)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - t0
            split = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout = Path(f"{stem}.out").read_text()
        stderr = Path(f"{stem}.err").read_text()
        if proc.returncode != 0:
            raise RuntimeError(f"{label} failed with exit code {proc.returncode}: "
                               f"{' '.join(argv[:4])} ...\n{stderr[-3000:]}")
        parsed: Any = None
        for line in reversed(stdout.strip().splitlines()):
            try:
                parsed = json.loads(line)
                break
            except ValueError:
                continue
        if parsed is None and stdout.strip().startswith(("{", "[")):
            parsed = json.loads(stdout)
        return {"wall_s": round(wall, 3), "peak_rss_mb": round(usage.ru_maxrss * 1024 / MB, 1),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 3), **split, "json": parsed}

    def datagen(self, args: list[str], label: str) -> dict[str, Any]:
        r = self.run([self.python, str(DATAGEN), *args], dict(os.environ), label)
        return {**r["json"], **{k: v for k, v in r.items() if k != "json"}}

    def vd(self, repo: Path, args: list[str], label: str) -> dict[str, Any]:
        return self.run([self.vdedup, *args], self.env(repo), label)

    def backup(self, repo: Path, source: Path, label: str) -> dict[str, Any]:
        before = du(repo)
        r = self.vd(repo, ["backup", f"chroma://{source}", "--json"], label)
        after = du(repo)
        du_after = du_sb(repo)
        s = r["json"] or {}
        return {**{k: v for k, v in r.items() if k != "json"},
                "bytes_added": after - before, "repo_bytes_before": before, "repo_bytes_after": after,
                "vdedup_bytes_added": s.get("bytes_added"), "du_sb_after": du_after,
                "records": {k: s.get(k) for k in ("records", "added", "changed", "deleted", "unchanged",
                                                  "vector_blobs_new")}}


def scaled_first_target(n: int, dim: int) -> float:
    return FIRST_SNAPSHOT_TARGET * (n * dim) / (BASE_N * BASE_DIM)


def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Fill `result` as the scenarios complete (so a failure still leaves what was measured)."""
    work = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    bindir = Path(sys.executable).parent
    vdedup = shutil.which("vdedup", path=str(bindir)) or shutil.which("vdedup")
    if not vdedup:
        raise SystemExit("vdedup CLI not found next to this Python or on PATH")
    r = Runner(work, sys.executable, vdedup)
    n, dim, seed = args.n, args.dim, args.seed
    common = ["--dim", str(dim), "--seed", str(seed)]

    sizes = sorted(set(args.scaling) | {n})
    result.update({
        "benchmark": "foundation", "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "params": {"n": n, "dim": dim, "seed": seed, "full": args.full, "scaling": sizes},
        "environment": environment(), "work": str(work), "populate": {}, "memory": {}, "scenarios": {},
    })
    grow = work / "chroma-grow"                   # grown through the sizes in order
    main_src = work / "chroma-source"
    for size in sizes:
        log(f"populating {size:,} records x {dim} into {grow.name}")
        result["populate"][str(size)] = r.datagen(["populate", "--dir", str(grow), "--n", str(size), *common],
                                                  f"populate-{size}")
        if size != n:
            log(f"scenario A at N={size:,} (memory series)")
            repo = work / f"repo-{size}"
            base = r.datagen(["scan", "--dir", str(grow)], f"scan-baseline-{size}")
            r.vd(repo, ["init", "--json"], f"init-{size}")
            a = r.backup(repo, grow, f"backup-initial-{size}")
            result["memory"][str(size)] = {**{k: a[k] for k in MEM_KEYS},
                                           "stored_bytes": a["repo_bytes_after"], "chroma_scan": base}
            if not args.keep:
                shutil.rmtree(repo)
                shutil.rmtree(work / "cache", ignore_errors=True)
            continue
        if size == sizes[-1]:
            grow.rename(main_src)
        else:
            shutil.copytree(grow, main_src)       # the larger sizes grow a pristine copy
        base = r.datagen(["scan", "--dir", str(main_src)], f"scan-baseline-{n}")
        scenarios(r, work, main_src, n, dim, seed, common, result)
        result["memory"][str(n)] = {k: result["scenarios"]["A"][k] for k in MEM_KEYS}
        result["memory"][str(n)]["stored_bytes"] = result["scenarios"]["A"]["repo_bytes_after"]
        result["memory"][str(n)]["chroma_scan"] = base
        if not args.keep:
            for p in (main_src, work / "repo", work / "chroma-restored", work / "cache"):
                shutil.rmtree(p, ignore_errors=True)
    result["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    result["environment"]["vdedup_at_end"] = source_state()


def scenarios(r: Runner, work: Path, src: Path, n: int, dim: int, seed: int, common: list[str],
              result: dict[str, Any]) -> None:
    repo = work / "repo"
    sc: dict[str, Any] = {}
    result["scenarios"] = sc                      # partial results survive a failure

    log("scenario A: init + initial backup")
    init = r.vd(repo, ["init", "--json"], "init")
    a = r.backup(repo, src, "backup-A-initial")
    a["init_wall_s"] = init["wall_s"]
    grown = [pop for size, pop in result["populate"].items() if int(size) <= n]   # increments up to n
    a["minimum_bytes"] = sum(pop["minimum_bytes"] for pop in grown)
    a["raw_bytes"] = sum(pop["raw_bytes"] for pop in grown)
    a["stored_bytes"] = a["repo_bytes_after"]
    a["target_bytes"] = scaled_first_target(n, dim)
    a["holds"] = a["stored_bytes"] <= a["target_bytes"]
    sc["A"] = a

    log("scenario B: nightly changes")
    ch = r.datagen(["nightly", "--dir", str(src), "--n", str(n), *common], "change-B-nightly")
    b = r.backup(repo, src, "backup-B-nightly")
    b.update(change=ch, minimum_bytes=ch["minimum_bytes"], target_ratio=NIGHTLY_RATIO_TARGET)
    b["ratio"] = b["bytes_added"] / ch["minimum_bytes"]
    b["holds"] = b["ratio"] <= NIGHTLY_RATIO_TARGET
    sc["B"] = b

    log("scenario C: metadata-only changes")
    ch = r.datagen(["touch", "--dir", str(src), "--n", str(n), *common], "change-C-metadata")
    c = r.backup(repo, src, "backup-C-metadata")
    c.update(change=ch, minimum_bytes=ch["minimum_bytes"], target_bytes=METADATA_TARGET)
    c["ratio"] = c["bytes_added"] / ch["minimum_bytes"]
    c["holds"] = c["bytes_added"] <= METADATA_TARGET
    sc["C"] = c

    log("scenario D: unchanged re-run")
    d = r.backup(repo, src, "backup-D-unchanged")
    d["target_bytes"] = UNCHANGED_FRACTION_TARGET * d["repo_bytes_before"]
    d["holds"] = d["bytes_added"] < d["target_bytes"]
    sc["D"] = d

    log("scenario E: restore latest into a new Chroma directory")
    target = work / "chroma-restored"
    e = r.vd(repo, ["restore", "latest", "--target", f"chroma://{target}", "--json"], "restore-E")
    cmp = r.datagen(["compare", "--source", str(src), "--target", str(target), "--sample", str(SAMPLE),
                     "--seed", str(seed)], "compare-E")
    sc["E"] = {**{k: v for k, v in e.items() if k != "json"},
               "restored": (e["json"] or {}).get("records"), "warnings": (e["json"] or {}).get("warnings"),
               "target_bytes_on_disk": du(target), "compare": cmp,
               "holds": (cmp["identical"] == cmp["sampled"] == min(SAMPLE, cmp["source_count"])
                         and cmp["source_count"] == cmp["target_count"])}

    result["repository_stats"] = r.vd(repo, ["stats", "--json"], "stats")["json"]


def environment() -> dict[str, Any]:
    def version(mod: str) -> str | None:
        try:
            from importlib.metadata import version as v
            return v(mod)
        except Exception:
            return None
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "memory_gb": mem, "vdedup": version("vdedup"), **source_state(),
            "chromadb": version("chromadb"), "numpy": version("numpy"), "zstandard": version("zstandard")}


def source_state() -> dict[str, Any]:
    """The commit the (editable) vdedup runs from, and whether vdedup/ or cli/ differ from it:
    the tree is shared, so a change during the run shows up as a different state at the end."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    dirty = git("status", "--porcelain", "--", "vdedup", "cli").splitlines()
    trees = [git("rev-parse", "--short", f"HEAD:{d}") for d in ("vdedup", "cli")]
    return {"vdedup_commit": git("rev-parse", "--short", "HEAD") or None,
            "vdedup_code_tree": "+".join(trees) if all(trees) else None,
            "vdedup_uncommitted_files": len(dirty)}


def code_changed(env: dict[str, Any]) -> bool:
    """Whether vdedup/ or cli/ differed at the end of the run from its start."""
    end = env.get("vdedup_at_end")
    if not end:
        return False
    return (end.get("vdedup_code_tree") != env.get("vdedup_code_tree")
            or bool(end.get("vdedup_uncommitted_files")) or bool(env.get("vdedup_uncommitted_files")))


# ------------------------------------------------------------------ report

def rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    sc, n = res["scenarios"], res["params"]["n"]
    out: list[dict[str, Any]] = []

    def row(name, wall=None, rss=None, added=None, minimum=None, ratio=None, target="", holds=None):
        out.append({"scenario": name, "wall_s": wall, "peak_rss_mb": rss, "bytes_added": added,
                    "minimum_bytes": minimum, "ratio": ratio, "target": target, "holds": holds})

    if "A" in sc:
        a = sc["A"]
        row(f"A initial backup (N={n:,})", a["wall_s"], a["peak_rss_mb"], a["bytes_added"], a["minimum_bytes"],
            a["bytes_added"] / a["minimum_bytes"], f"stored <= {a['target_bytes'] / MB:.0f} MB", a["holds"])
    if "B" in sc:
        b = sc["B"]
        row("B nightly (1% upd, 1% add, 0.5% del)", b["wall_s"], b["peak_rss_mb"], b["bytes_added"],
            b["minimum_bytes"], b["ratio"], f"ratio <= {NIGHTLY_RATIO_TARGET}", b["holds"])
    if "C" in sc:
        c = sc["C"]
        row("C metadata-only (10% updated_at)", c["wall_s"], c["peak_rss_mb"], c["bytes_added"],
            c["minimum_bytes"], c["ratio"], f"<= {METADATA_TARGET / MB:.1f} MB", c["holds"])
    if "D" in sc:
        d = sc["D"]
        row("D unchanged re-run", d["wall_s"], d["peak_rss_mb"], d["bytes_added"], None, None,
            f"< {d['target_bytes'] / MB:.2f} MB (0.1% of stored)", d["holds"])
    if "E" in sc:
        e = sc["E"]
        cmp = e["compare"]
        row("E restore latest (new Chroma dir)", e["wall_s"], e["peak_rss_mb"], None, None, None,
            f"{cmp['identical']}/{cmp['sampled']} sampled records identical, counts "
            f"{cmp['target_count']}/{cmp['source_count']}", e["holds"])
    mem = res.get("memory", {})
    if mem:
        sizes = sorted(mem, key=int)
        for s in sizes:
            m = mem[s]
            row(f"M scenario A peak RSS, N={int(s):,}", m["wall_s"], m["peak_rss_mb"], m["stored_bytes"])
            if m.get("chroma_scan"):
                b = m["chroma_scan"]
                row(f"M baseline: bare Chroma full read, N={int(s):,}", b["wall_s"], b["peak_rss_mb"])
        if len(sizes) > 1:
            lo, hi = mem[sizes[0]]["peak_rss_mb"], mem[sizes[-1]]["peak_rss_mb"]
            growth = hi / lo if lo else None
            row("M peak RSS growth (vdedup backup process)", ratio=growth)
            out[-1]["target"] = (f"RSS(N={int(sizes[-1]):,}) / RSS(N={int(sizes[0]):,}) <= "
                                 f"{MEMORY_GROWTH_TARGET}")
            out[-1]["holds"] = growth is not None and growth <= MEMORY_GROWTH_TARGET
            own = [own_anon_mb(mem[k]) for k in sizes]
            if all(v is not None for v in own):
                ratio = own[-1] / own[0] if own[0] > 0 else None
                row("M vdedup's own anonymous memory (backup - bare read) growth",
                    rss=own[-1], ratio=ratio,
                    target=" -> ".join(f"{v:.0f} MB" for v in own)
                    + f"; last <= {MEMORY_GROWTH_TARGET} x first + {OWN_MEMORY_SLACK_MB:.0f} MB",
                    holds=own[-1] <= MEMORY_GROWTH_TARGET * max(own[0], 0) + OWN_MEMORY_SLACK_MB)
    return out


def own_anon_mb(m: dict[str, Any]) -> float | None:
    """Anonymous memory of the backup beyond what a bare Chroma read of the same data needs."""
    base = m.get("chroma_scan") or {}
    if not m.get("peak_rss_anon_mb") or not base.get("peak_rss_anon_mb"):
        return None
    return m["peak_rss_anon_mb"] - base["peak_rss_anon_mb"]


def _fmt_bytes(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v / MB:,.3f} MB" if v < 10 * MB else f"{v / MB:,.1f} MB"


def markdown(res: dict[str, Any]) -> str:
    p, env = res["params"], res["environment"]
    lines = [
        "# Foundation benchmark: vdedup on embedded Chroma",
        "",
        f"N={p['n']:,} records x {p['dim']} float32, seed {p['seed']}; run {res['started']} -> "
        f"{res.get('finished', '(unfinished)')}; vdedup {env.get('vdedup')} ({env.get('vdedup_commit')}"
        f"{', uncommitted changes in vdedup/ or cli/' if env.get('vdedup_uncommitted_files') else ''}"
        f"{'; vdedup/ or cli/ changed during the run' if code_changed(env) else ''}), "
        f"chromadb {env.get('chromadb')}, Python {env.get('python')}, {env.get('cpus')} CPUs, "
        f"{env.get('memory_gb')} GB RAM.",
        "",
        "| scenario | wall s | peak RSS MB | bytes added | minimum | ratio | target | holds |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows(res):
        holds = "" if r["holds"] is None else ("yes" if r["holds"] else "**no**")
        lines.append("| " + " | ".join([
            r["scenario"],
            "" if r["wall_s"] is None else f"{r['wall_s']:.1f}",
            "" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}",
            _fmt_bytes(r["bytes_added"]), _fmt_bytes(r["minimum_bytes"]),
            "" if r["ratio"] is None else f"{r['ratio']:.2f}",
            r["target"], holds]) + " |")
    lines += ["", "Bytes added: growth of the repository directory (sum of its file sizes, i.e. du -sb "
              "without directory entries). Minimum: zstd level 3 "
              "of the raw float32 vectors, ids and JSON metadata of the records written (A: all "
              "records; B: updated and added; C: touched, metadata only), three streams summed. "
              "M rows: the bytes column is the repository size after the initial backup at that N; "
              "the baseline rows are a child process that only reads every record through chromadb "
              "the way the backup does (what the embedded Chroma itself costs).", ""]
    sc = res["scenarios"]
    details = []
    if "A" in sc:
        a = sc["A"]
        details.append(f"- A: raw data {a['raw_bytes'] / MB:,.1f} MB; stored {a['stored_bytes'] / MB:,.1f} MB "
                       f"({a['stored_bytes'] / a['raw_bytes']:.3f} of raw); vdedup reports "
                       f"{_fmt_bytes(a['vdedup_bytes_added'])} added; init {a['init_wall_s']:.1f} s.")
    for k in ("B", "C", "D"):
        if k in sc:
            s = sc[k]
            details.append(f"- {k}: records {s['records']}; vdedup reports {_fmt_bytes(s['vdedup_bytes_added'])} "
                           f"added; repository {s['repo_bytes_after'] / MB:,.1f} MB after.")
    if "B" in sc:
        parts = sc["B"]["change"]["minimum_parts"]
        details.append("- B minimum parts: " + ", ".join(f"{k} {_fmt_bytes(v)}" for k, v in parts.items()))
    if "E" in sc:
        e = sc["E"]
        details.append(f"- E: restored {e['restored']} records; target Chroma dir "
                       f"{e['target_bytes_on_disk'] / MB:,.1f} MB; compare: "
                       f"{json.dumps({k: e['compare'][k] for k in ('sampled', 'identical', 'mismatches')})}")
    steps = [(k, sc[k]) for k in ("A", "B", "C", "D", "E") if k in sc]
    steps += [(f"M N={int(k):,}", v) for k, v in sorted(res.get("memory", {}).items(), key=lambda kv: int(kv[0]))]
    steps += [(f"baseline N={int(k):,}", v["chroma_scan"]) for k, v in
              sorted(res.get("memory", {}).items(), key=lambda kv: int(kv[0])) if v.get("chroma_scan")]
    if steps:
        details.append("- CPU seconds and peak RSS split (anonymous / file-backed, sampled every 0.2 s): "
                       + "; ".join(f"{k}: {v.get('cpu_s', 0):.0f} s CPU, {v.get('peak_rss_anon_mb', 0):.0f} / "
                                   f"{v.get('peak_rss_file_mb', 0):.0f} MB" for k, v in steps))
    for s, pop in sorted(res.get("populate", {}).items(), key=lambda kv: int(kv[0])):
        details.append(f"- populate to {int(s):,}: {pop['records_added']:,} records written into Chroma in "
                       f"{pop['wall_s']:.1f} s")
    if res.get("error"):
        details.append(f"- ERROR: {res['error']}")
    return "\n".join(lines + details) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="vdedup foundation benchmark on embedded Chroma")
    ap.add_argument("--n", type=int, default=BASE_N, help="records (default 200,000)")
    ap.add_argument("--dim", type=int, default=BASE_DIM, help="vector dimension (default 768)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true", help="also measure scenario A at N=400,000")
    ap.add_argument("--scaling", default=None,
                    help="comma-separated N for the memory series (default 50000[,400000 with --full]; "
                         "'none' for none); N itself is always included")
    ap.add_argument("--keep", action="store_true", help="keep the working data")
    ap.add_argument("--out", default=str(HERE / "results"), help="results directory")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite OUT/foundation.md from OUT/foundation.json")
    ap.add_argument("--work", default=None,
                    help="working directory, wiped at start and (without --keep) at the end "
                         "(default OUT/work/foundation)")
    args = ap.parse_args(argv)
    if args.scaling is None:
        args.scaling = [50_000] + ([400_000] if args.full else [])
    elif args.scaling.strip().lower() == "none":
        args.scaling = []
    else:
        args.scaling = [int(x.replace("_", "")) for x in args.scaling.split(",") if x.strip()]
    out = Path(args.out).resolve()
    if args.render:
        (out / "foundation.md").write_text(markdown(json.loads((out / "foundation.json").read_text())))
        return 0
    out.mkdir(parents=True, exist_ok=True)
    default_work = not args.work
    args.work = Path(args.work).resolve() if args.work else out / "work" / "foundation"
    res: dict[str, Any] = {}
    code = 0
    try:
        run(args, res)
    except BaseException as e:   # write what was measured, then fail
        code = 1
        res["error"] = f"{type(e).__name__}: {e}"
        log(f"failed: {res['error']}")
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
            if default_work:
                try:
                    args.work.parent.rmdir()     # OUT/work, if nothing else uses it
                except OSError:
                    pass
        if res.get("params"):
            (out / "foundation.json").write_text(json.dumps(res, indent=2) + "\n")
            (out / "foundation.md").write_text(markdown(res))
            log(f"wrote {out / 'foundation.json'} and {out / 'foundation.md'}")
        elif res.get("error"):
            log("nothing measured; no results written")
    return code


if __name__ == "__main__":
    sys.exit(main())
