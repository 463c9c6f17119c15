"""Smoke run of the peer benchmark (benchmarks/peers.py) so the harness cannot silently rot:
300 records x 16 dims, two repetitions, two nights, vdedup (from Chroma and from the export files) and
restic only. It runs the real harness
end to end (datagen -> embedded Chroma -> naive export -> vdedup and restic child processes
-> restores verified byte for byte) and checks the results JSON and the Markdown table.

restic must be installed (bash scripts/bench-deps.sh --restic); the test fails, not skips,
without it."""
from __future__ import annotations

import copy
import importlib.util
import json
import statistics
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers.py"
SCENARIOS = ("initial", "nightly", "metadata", "unchanged", "restore_latest", "restore_first")
SCENARIO_TITLES_START = {"initial": "initial backup", "nightly": "nightly change", "metadata": "metadata-only",
                         "unchanged": "unchanged re-run", "restore_latest": "restore latest",
                         "restore_first": "restore first"}
TOOLS = ("vdedup", "vdedup-files", "restic")
DISPLAY = {"vdedup": "vdedup (chroma)", "vdedup-files": "vdedup (files)", "restic": "restic"}


def test_peer_benchmark_smoke(tmp_path: Path) -> None:
    assert shutil.which("restic"), "restic is not installed: run `bash scripts/bench-deps.sh --restic`"
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(PEERS), "--n", "300", "--dim", "16", "--runs", "2", "--nights", "2",
         "--tools", ",".join(TOOLS), "--scaling", "none", "--deep", "400", "--deep-dim", "16", "--no-plots",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (out / "work").exists(), "the working directory must be removed without --keep"

    res = json.loads((out / "peers.json").read_text())
    assert "error" not in res
    assert res["params"]["n"] == 300 and res["params"]["tools"] == list(TOOLS)
    pop = res["populate"]
    assert pop["records"] == 300 and pop["minimum_bytes"] > 0
    export_bytes = res["export"]["bytes"]
    assert res["export"]["records"] == 300 and export_bytes >= 300 * 16 * 4   # at least the raw vectors

    changes = res["chain"]["changes"]
    assert (changes["nightly"]["updated"], changes["nightly"]["added"], changes["nightly"]["deleted"]) == (3, 3, 2)
    assert changes["metadata"]["touched"] == changes["metadata2"]["touched"] == 30

    agg = res["aggregate"]
    for tool in TOOLS:
        for s in SCENARIOS:
            row = agg[tool].get(s)
            assert row is not None, f"{tool}: no result for scenario {s}"
            assert row["runs"] == 2                 # two repetitions; the nightly samples are the two nights
            assert 0 < row["wall_s"] < 120, (tool, s, row["wall_s"])
            assert 0 < row["cpu_s"] < 120, (tool, s, row["cpu_s"])     # a child process ran
            assert 5 < row["peak_rss_mb"] < 4000, (tool, s, row["peak_rss_mb"])
            assert row["wall_s_min"] <= row["wall_s"] <= row["wall_s_max"]
        init, night, meta, same = (agg[tool][s] for s in ("initial", "nightly", "metadata", "unchanged"))
        # the first snapshot holds the data: at least a fraction of the compressed minimum, and
        # not absurdly more than the export itself
        assert pop["minimum_bytes"] * 0.5 < init["bytes_added"] < export_bytes * 20, (tool, init)
        assert init["ratio"] == pytest.approx(init["bytes_added"] / pop["minimum_bytes"])
        nights_min = [changes["nightly"]["minimum_bytes"], changes["night2"]["minimum_bytes"]]
        assert night["bytes_added_min"] > 0 and night["minimum_bytes"] == sum(nights_min) / 2   # median of 2
        # both metadata rounds change the same records' updated_at: both add data
        meta_min = [changes["metadata"]["minimum_bytes"], changes["metadata2"]["minimum_bytes"]]
        assert meta["bytes_added_min"] > 0 and meta["minimum_bytes"] == sum(meta_min) / 2
        # nothing changed: far less is added than the first backup stored
        assert 0 <= same["bytes_added_max"] < init["bytes_added"] / 4, (tool, same["bytes_added"])
        # every initial repetition starts from an empty repository: each stores everything
        assert init["bytes_added_min"] > 0.9 * init["bytes_added_max"], (tool, init)
        for s in ("restore_latest", "restore_first"):
            assert agg[tool][s]["verified"] is True, f"{tool} {s}: restored data differs"
    # vdedup stores only what changed; restic re-stores the rewritten export files
    for v in ("vdedup", "vdedup-files"):
        assert agg[v]["nightly"]["bytes_added"] < agg["restic"]["nightly"]["bytes_added"]
    # from the files or from Chroma, vdedup stores the same records: the same growth within a few KB
    for s in ("initial", "nightly", "metadata"):
        a, b = agg["vdedup"][s]["bytes_added"], agg["vdedup-files"][s]["bytes_added"]
        assert abs(a - b) < max(4096, 0.1 * a), (s, a, b)

    growth = res["growth"]
    for tool in TOOLS:
        sizes = [g["repo_bytes"] for g in growth[tool]]
        assert [g["label"] for g in growth[tool]] == ["initial", "night 1", "metadata 1", "metadata 2",
                                                      "unchanged 1", "unchanged 2", "night 2"]
        assert sizes == sorted(sizes) and sizes[0] > 0

    # Chroma's own read (datagen scan) of the records each backup read, beside vdedup (chroma)'s
    assert res["chroma_read"]["initial"]["records"] == 300 and res["chroma_read"]["nightly"]["records"] == 301
    # ...after each night, as vdedup's nightly samples are: the median of the two
    reads = res["chroma_read_samples"]["nightly"]
    assert len(reads) == res["chroma_read"]["nightly"]["runs"] == 2 and reads[1]["records"] != 301
    assert res["chroma_read"]["nightly"]["wall_s"] == (reads[0]["wall_s"] + reads[1]["wall_s"]) / 2
    # --deep: initial, nightly and restore at N = 400 for vdedup (files) at its default workers,
    # --workers 1 and --workers 2, and restic; every restore verified
    deep = res["deep"]["16"]["400"]
    for tool in ("vdedup-files", "vdedup-files-w1", "vdedup-files-w2", "restic"):
        for step in ("initial", "nightly", "restore_latest"):
            assert 0 < deep[tool][step]["wall_s"] < 120, (tool, step)
        assert deep[tool]["restore_latest"]["verified"] is True, tool
        assert deep[tool]["nightly"]["bytes_added"] > 0
    for tool in ("vdedup-files-w1", "vdedup-files-w2"):      # the same records stored, whatever the workers
        for step in ("initial", "nightly"):
            a, b = deep[tool][step]["bytes_added"], deep["vdedup-files"][step]["bytes_added"]
            assert abs(a - b) < max(4096, 0.05 * a), (tool, step, a, b)

    # every byte figure comes from the repository sizes measured before and after each run
    samples = res["chain"]["samples"]
    for tool in TOOLS:
        for s, ms in samples[tool].items():
            for m in ms:
                assert m["bytes_added"] == m["repo_bytes_after"] - m["repo_bytes_before"], (tool, s, m)
                assert m["repo_bytes_after"] > 0, (tool, s)
                if m.get("minimum_bytes"):
                    assert m["ratio"] == pytest.approx(m["bytes_added"] / m["minimum_bytes"]), (tool, s, m)
        grown = growth[tool]
        for prev, cur in zip(grown, grown[1:]):
            # between two backups only the restores' audit entries (a few hundred bytes) are added
            extra = cur["repo_bytes"] - prev["repo_bytes"] - cur["bytes_added"]
            assert 0 <= extra < 8192, (tool, prev, cur)
        # the aggregate is the median of those samples, not a figure of its own
        for s in ("nightly", "metadata"):
            assert agg[tool][s]["ratio"] == pytest.approx(
                statistics.median(m["ratio"] for m in samples[tool][s]))

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import peers
    tnames = [(t["tool"], t["target"]) for t in res["targets"]]
    assert len(tnames) == 2 * 6 + 2 + 2 + 3 * 3 and ("vdedup-files", "nightly wall time <= 0.5x restic's") in tnames
    assert ("vdedup (files) --workers 2", "nightly change 400 x 16: wall <= 0.5x the peer's") in tnames
    # each verdict is the comparison of the measured figures with the target, not a constant
    expected = _verdicts(peers, agg)
    checked = 0
    for t in res["targets"]:
        assert t["holds"] in (True, False, None)
        if (t["tool"], t["target"]) in expected:
            assert t["holds"] is expected[(t["tool"], t["target"])], t
            checked += 1
    assert checked == 2 * 6, checked
    # known-bad figures make every such verdict False, known-good ones True
    bad = _doctored(agg, peers, good=False)
    good = _doctored(agg, peers, good=True)
    for doctored, want in ((bad, False), (good, True)):
        verdicts = {(t["tool"], t["target"]): t["holds"] for t in peers.targets(doctored, res)}
        for key in expected:
            assert verdicts[key] is want, (key, verdicts[key], want)

    md = (out / "peers.md").read_text()
    assert "| tool | scenario | wall s |" in md and "## Targets for vdedup" in md and "shared" in md
    assert "## Chroma's own time for the same records" in md and "## Nightly change and restore at large N" in md
    main_table = md.split("## Targets for vdedup")[0]
    rows = [ln for ln in main_table.splitlines() if ln.startswith(tuple(f"| {DISPLAY[t]} | " for t in TOOLS))
            and any(f"| {SCENARIO_TITLES_START[s]}" in ln for s in SCENARIOS)]
    assert len(rows) == len(TOOLS) * len(SCENARIOS), rows

    if importlib.util.find_spec("matplotlib") is not None:   # plots are optional in CI
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import plots
        files = plots.plot_all(out / "peers.json", out)
        assert len(files) == 4 and all(f.stat().st_size > 1000 for f in files)


def _verdicts(peers, agg: dict) -> dict[tuple[str, str], bool]:
    """What each ratio and wall-time target should say about these aggregate figures."""
    out = {}
    rs = agg["restic"]
    for tool in ("vdedup", "vdedup-files"):
        v = agg[tool]
        out[(tool, f"nightly change adds <= {peers.NIGHTLY_RATIO_TARGET}x the minimum")] = \
            v["nightly"]["ratio"] <= peers.NIGHTLY_RATIO_TARGET
        out[(tool, f"metadata-only change adds <= {peers.METADATA_RATIO_TARGET}x its minimum")] = \
            v["metadata"]["ratio"] <= peers.METADATA_RATIO_TARGET
        out[(tool, "unchanged re-run adds < 0.1% of the stored size")] = \
            v["unchanged"]["bytes_added"] < peers.UNCHANGED_FRACTION_TARGET * v["unchanged"]["repo_bytes_before"]
        out[(tool, "nightly wall time <= 0.5x restic's")] = \
            v["nightly"]["wall_s"] <= peers.NIGHTLY_WALL_VS_RESTIC * rs["nightly"]["wall_s"]
        out[(tool, "initial backup wall time <= restic's")] = v["initial"]["wall_s"] <= rs["initial"]["wall_s"]
        out[(tool, "restore (latest) wall time <= restic's")] = \
            v["restore_latest"]["wall_s"] <= rs["restore_latest"]["wall_s"]
    return out


def _doctored(agg: dict, peers, good: bool) -> dict:
    """The aggregate with the vdedup figures set far on one side of every target."""
    d = copy.deepcopy(agg)
    for tool in ("vdedup", "vdedup-files"):
        v = d[tool]
        v["nightly"]["ratio"] = peers.NIGHTLY_RATIO_TARGET * (0.5 if good else 10)
        v["metadata"]["ratio"] = peers.METADATA_RATIO_TARGET * (0.5 if good else 10)
        stored = v["unchanged"]["repo_bytes_before"]
        v["unchanged"]["bytes_added"] = 0 if good else stored
        for s in ("nightly", "initial", "restore_latest"):
            v[s]["wall_s"] = d["restic"][s]["wall_s"] * (0.1 if good else 10)
    return d
