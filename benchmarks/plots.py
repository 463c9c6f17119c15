"""PNG plots of a peers.py result (matplotlib):

    .venv/bin/python benchmarks/plots.py [benchmarks/results/peers.json] [--out benchmarks/results]

- peers-growth.png: repository size after each backup (initial, nightly runs, metadata-only,
  unchanged) per tool, along the one measured history;
- peers-time.png: wall time per scenario per tool (medians; error bars = min-max of the samples);
- peers-bytes.png: bytes added per backup scenario per tool, with the minimum (log scale);
- peers-scaling.png: initial backup wall time and peak RSS against N (when peers.py ran with
  --scaling / --full; otherwise the single N of the main run).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
MB = 1e6
TITLES = {"initial": "initial", "nightly": "nightly", "metadata": "metadata-only", "unchanged": "unchanged",
          "restore_latest": "restore latest", "restore_first": "restore first"}


def _title(res: dict) -> str:
    p = res["params"]
    return f"N={p['n']:,} x {p['dim']}, medians of {p['runs']} repetition(s) / {p['nights']} nights"


def growth(res: dict, out: Path) -> Path:
    g = res.get("growth") or res["growth_run0"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for tool, pts in g.items():
        ax.plot(range(len(pts)), [x["repo_bytes"] / MB for x in pts], marker="o", label=tool)
        labels = [x["label"] for x in pts]
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel("repository size (MB)")
    ax.set_title(f"Repository growth per backup ({_title(res)})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out / "peers-growth.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(res: dict, out: Path, metric: str, scenarios: list[str], ylabel: str, name: str, title: str,
          log: bool = False, minimum: bool = False) -> Path:
    agg, tools = res["aggregate"], res["params"]["tools"]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.8 / (len(tools) + (1 if minimum else 0))
    scale = MB if metric == "bytes_added" else 1
    for k, tool in enumerate(tools):
        xs, ys, lo, hi = [], [], [], []
        for i, s in enumerate(scenarios):
            row = agg.get(tool, {}).get(s)
            if not row or metric not in row:
                continue
            v = row[metric] / scale
            xs.append(i + k * width)
            ys.append(max(v, 1e-6) if log else v)
            lo.append(max(0.0, v - row[f"{metric}_min"] / scale))
            hi.append(max(0.0, row[f"{metric}_max"] / scale - v))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=tool)
    if minimum:
        xs, ys = [], []
        for i, s in enumerate(scenarios):
            mins = [agg[t][s]["minimum_bytes"] for t in tools if s in agg.get(t, {}) and "minimum_bytes" in agg[t][s]]
            if mins:
                xs.append(i + len(tools) * width)
                ys.append(mins[0] / scale)
        ax.bar(xs, ys, width, color="black", alpha=0.6, label="minimum (zstd-3 of changed records)")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(scenarios))], [TITLES[s] for s in scenarios])
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} ({_title(res)})")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = out / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scaling(res: dict, out: Path) -> Path:
    """Initial backup wall time and peak RSS against N, one line per tool (and per dim when the
    series has several)."""
    series = {k: dict(v) for k, v in (res.get("scaling_by_dim") or {}).items() if v}
    if not series and res.get("scaling"):
        series = {str(res["params"]["dim"]): dict(res["scaling"])}
    if not series:      # one point: the main run's initial backup
        series = {str(res["params"]["dim"]): {str(res["params"]["n"]): {
            t: row["initial"] for t, row in res["aggregate"].items() if "initial" in row}}}
    tools = res["params"]["tools"]
    styles = ["-", "--", ":"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.8))
    wide = False
    for k, (dim, sc) in enumerate(sorted(series.items(), key=lambda kv: int(kv[0]))):
        sizes = sorted(sc, key=int)
        wide = wide or int(sizes[-1]) >= 10 * int(sizes[0])
        for c, tool in enumerate(tools):
            pts = [(int(n), sc[n][tool]) for n in sizes if tool in sc[n]]
            if not pts:
                continue
            label = tool if len(series) == 1 else f"{tool}, dim {dim}"
            kw = {"marker": "o", "label": label, "linestyle": styles[k % len(styles)], "color": f"C{c}"}
            a1.plot([n for n, _ in pts], [m["wall_s"] for _, m in pts], **kw)
            a2.plot([n for n, _ in pts], [m["peak_rss_mb"] for _, m in pts], **kw)
    for ax, lab in ((a1, "initial backup wall time (s)"), (a2, "peak RSS (MB)")):
        ax.set_xlabel("records (N)")
        ax.set_ylabel(lab)
        if wide:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    a2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    dims = ", ".join(sorted(series, key=int))
    fig.suptitle(f"Cost vs N (dim {dims}{'; log-log' if wide else ''})")
    fig.tight_layout()
    path = out / "peers-scaling.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(results: Path, out: Path) -> list[Path]:
    res = json.loads(Path(results).read_text())
    out.mkdir(parents=True, exist_ok=True)
    files = [growth(res, out),
             _bars(res, out, "wall_s", list(TITLES), "wall time (s)", "peers-time.png", "Wall time per scenario"),
             _bars(res, out, "bytes_added", ["initial", "nightly", "metadata", "unchanged"], "bytes added (MB, log)",
                   "peers-bytes.png", "Bytes added to the repository", log=True, minimum=True),
             scaling(res, out)]
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="plots of a peers.py result")
    ap.add_argument("results", nargs="?", default=str(HERE / "results" / "peers.json"))
    ap.add_argument("--out", default=None, help="directory for the PNGs (default: next to the JSON)")
    a = ap.parse_args(argv)
    out = Path(a.out) if a.out else Path(a.results).resolve().parent
    for f in plot_all(Path(a.results), out):
        print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
