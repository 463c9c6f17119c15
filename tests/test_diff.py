"""diff: exact counts for a known change set between two snapshots, per collection and
namespace, with the kind of each change; ids only when asked for."""
from __future__ import annotations

import json

import numpy as np

from vdtest import add_records, chroma_collection, make_records, vdedup


def _json(capsys, *args, code: int = 0):
    capsys.readouterr()
    assert vdedup(*args) == code
    return json.loads(capsys.readouterr().out)


def test_diff_counts_are_exact(tmp_path, repo_url, capsys):
    src = tmp_path / "src"
    client, col = chroma_collection(src, "docs", "l2")
    ids, emb, metas, docs, uris = make_records(300, dim=16)
    add_records(col, ids, emb, metas, docs, uris)
    _, other = chroma_collection(src, "gone", "l2")
    add_records(other, *make_records(10, dim=8, seed=4))
    assert vdedup("--repo", repo_url, "init") == 0
    a = _json(capsys, "--repo", repo_url, "backup", f"chroma://{src}", "--json")["snapshot_id"]

    rng = np.random.default_rng(1)
    vec_ids = ids[0:10]                                      # vector only
    meta_ids = ids[20:27]                                    # metadata only
    doc_ids = ids[40:44]                                     # document only
    both_ids = ids[60:62]                                    # vector and metadata
    col.update(ids=vec_ids, embeddings=rng.standard_normal((10, 16)).astype(np.float32))
    col.update(ids=meta_ids, metadatas=[{"edited": True, "n": k} for k in range(7)])
    keep = col.get(ids=doc_ids, include=["embeddings"])      # keep vectors: Chroma re-embeds otherwise
    col.update(ids=keep["ids"], documents=[f"new {k}" for k in range(4)],
               embeddings=np.asarray(keep["embeddings"]).astype(np.float32))
    col.update(ids=both_ids, embeddings=rng.standard_normal((2, 16)).astype(np.float32),
               metadatas=[{"both": 1}, {"both": 2}])
    col.delete(ids=ids[100:105])
    new = make_records(12, dim=16, seed=7, start=50_000)
    add_records(col, *new)
    client.delete_collection("gone")
    _, fresh = chroma_collection(src, "fresh", "l2")
    add_records(fresh, *make_records(3, dim=8, seed=5))
    b = _json(capsys, "--repo", repo_url, "backup", f"chroma://{src}", "--json")["snapshot_id"]

    d = _json(capsys, "--repo", repo_url, "diff", a, b, "--json")
    by = {n["collection"]: n for n in d["namespaces"]}
    docs_diff = by["docs"]
    assert (docs_diff["added"], docs_diff["removed"], docs_diff["changed"]) == (12, 5, 10 + 7 + 4 + 2)
    assert docs_diff["unchanged"] == 300 - 5 - 23
    assert docs_diff["changed_by"] == {"vector": 12, "metadata": 9, "document": 4, "uri": 0}
    assert docs_diff["status"] == "changed" and "ids" not in docs_diff     # ids only when asked
    assert by["gone"]["status"] == "removed" and by["gone"]["removed"] == 10
    assert by["fresh"]["status"] == "added" and by["fresh"]["added"] == 3
    assert d["totals"]["added"] == 15 and d["totals"]["removed"] == 15
    assert not any(i in json.dumps(d) for i in ids[:5])        # no record data without --ids

    d = _json(capsys, "--repo", repo_url, "diff", a, b, "--ids", "--json")
    got = {n["collection"]: n["ids"] for n in d["namespaces"]}["docs"]
    assert sorted(got["added"]) == sorted(new[0]) and sorted(got["removed"]) == ids[100:105]
    kinds = {c["id"]: c["kinds"] for c in got["changed"]}
    assert kinds == {**{i: ["vector"] for i in vec_ids}, **{i: ["metadata"] for i in meta_ids},
                     **{i: ["document"] for i in doc_ids}, **{i: ["vector", "metadata"] for i in both_ids}}

    same = _json(capsys, "--repo", repo_url, "diff", b, "latest", "--json")
    assert all(n["status"] == "unchanged" for n in same["namespaces"])
    assert same["totals"]["unchanged"] == 300 - 5 + 12 + 3
    capsys.readouterr()
    assert vdedup("--repo", repo_url, "diff", a, b) == 0
    text = capsys.readouterr().out
    assert "+12 added, -5 removed, ~23 changed (vector 12, metadata 9, document 4)" in text
    assert vdedup("--repo", repo_url, "diff", a, "ffffffffff") == 14
