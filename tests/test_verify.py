"""vdedup verify: a live collection against a snapshot. A faithful copy (here a Chroma
collection restored into a local Qdrant, whose cosine normalisation is an inexact step)
passes with recall@10 = 1.0; 1% of its vectors perturbed, records missing, or metadata
changed are each reported, with exit 17 and without naming any record."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vdtest import add_records, chroma_collection, make_records, vdedup

N = 500


def _verify(repo: Path, *args: str) -> tuple[int, dict, str]:
    """The CLI as a process: exit code, the JSON report, and everything it printed."""
    p = subprocess.run([sys.executable, "-m", "vdedup_cli.main", "--repo", str(repo), "verify", *args,
                        "--json", "--seed", "3"], capture_output=True, text=True, timeout=600)
    return p.returncode, json.loads(p.stdout), p.stdout + p.stderr


@pytest.fixture
def restored(tmp_path, repo_path, capsys):
    """A cosine Chroma collection, its snapshot, and that snapshot restored into a local Qdrant."""
    _, col = chroma_collection(tmp_path / "src", "docs", "cosine")
    ids, emb, metas, docs, uris = make_records(N, dim=16)
    add_records(col, ids, emb, metas, docs, uris)
    assert vdedup("--repo", repo_path, "init") == 0
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "backup", f"chroma://{tmp_path / 'src'}", "--json") == 0
    snap = json.loads(capsys.readouterr().out)["snapshot_id"]
    target = f"qdrant+local://{tmp_path / 'qd'}"
    assert vdedup("--repo", repo_path, "restore", snap, "--target", target, "--verify") == 0
    return snap, target, tmp_path / "qd", ids


def _points(path: Path, collection: str = "docs"):
    from qdrant_client import QdrantClient
    client = QdrantClient(path=str(path))
    points, _ = client.scroll(collection, limit=N * 2, with_payload=True, with_vectors=True)
    return client, sorted(points, key=lambda p: str(p.id))


def test_a_faithful_copy_passes_with_full_recall(repo_path, restored):
    snap, target, _, ids = restored
    code, report, text = _verify(repo_path, snap[:12], "--target", target, "--sample", str(N), "--queries", "50")
    assert code == 0, report["problems"]
    assert report["ok"] and report["recall_at_10"] == 1.0 and report["problems"] == []
    (ns,) = report["namespaces"]
    assert (ns["expected"], ns["found"], ns["sampled"], ns["missing"], ns["queries"]) == (N, N, N, 0, 50)
    assert ns["sample"]["differing"] == 0 and ns["recall_method"] == "target queries"
    assert 0 < ns["sample"]["max_direction_deviation"] <= 1e-6       # the normalisation, within its bound
    assert not any(rid in text for rid in ids)                        # counts and numbers only


def test_one_percent_of_vectors_perturbed_is_reported(repo_path, restored):
    snap, target, path, ids = restored
    from qdrant_client import models
    client, points = _points(path)
    rng = np.random.default_rng(9)
    changed = points[::100][:N // 100]                                # 1%: 5 of 500
    client.upsert("docs", points=[models.PointStruct(id=p.id, payload=p.payload,
                                                     vector=rng.standard_normal(16).tolist()) for p in changed])
    client.close()
    code, report, text = _verify(repo_path, snap[:12], "--target", target, "--sample", str(N), "--queries", "100")
    assert code == 17, text
    (ns,) = report["namespaces"]
    assert ns["sample"]["differing"] == len(changed) and ns["sample"]["parts"] == {"vectors": len(changed)}
    assert ns["recall_at_10"] < 1.0                                   # and the answers changed with them
    assert "sampled records differ (vectors 5)" in " ".join(report["problems"])
    assert not any(rid in text for rid in ids)


def test_missing_records_and_changed_metadata_are_reported(repo_path, restored):
    snap, target, path, ids = restored
    from qdrant_client import models
    client, points = _points(path)
    client.delete("docs", points_selector=models.PointIdsList(points=[p.id for p in points[:4]]))
    client.set_payload("docs", payload={"source": "changed"}, points=[p.id for p in points[10:13]])
    client.close()
    code, report, text = _verify(repo_path, snap[:12], "--target", target, "--sample", str(N))
    assert code == 17, text
    (ns,) = report["namespaces"]
    assert (ns["expected"], ns["found"], ns["missing"]) == (N, N - 4, 4)
    assert ns["sample"]["parts"] == {"metadata": 3}
    problems = " ".join(report["problems"])
    assert f"{N - 4} records, the snapshot has {N}" in problems and "4 of 500 sampled records are missing" in problems
    # a drift check of the live source against its own snapshot: unchanged, then changed
    code, report, _ = _verify(repo_path, snap[:12], "--sample", "50", "--queries", "20")
    assert code == 0 and report["recall_at_10"] == 1.0, report["problems"]
    _, col = chroma_collection(Path(report["target"].split("://", 1)[1]), "docs", "cosine")
    col.delete(ids=ids[:2])
    code, report, _ = _verify(repo_path, snap[:12], "--sample", "50", "--queries", "20")
    assert code == 17 and f"docs: {N - 2} records, the snapshot has {N}" in report["problems"]
