"""No plaintext id, metadata, document, uri or vector may appear in the repository's
bytes, nor in the index cache; CLI output shows no record data."""
import numpy as np

from vdtest import add_records, chroma_collection, make_records, vdedup_proc


def test_repository_and_cache_hold_no_plaintext(tmp_path, repo_path):
    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", None)
    ids, emb, metas, docs, uris = make_records(400, dim=32)
    metas = [dict(m or {}, secret_field="PLAINTEXT-META-MARKER") for m in metas]
    docs = [f"PLAINTEXT-DOC-MARKER {i}" for i in range(400)]
    add_records(col, ids, emb, metas, docs, uris)
    assert vdedup_proc("--repo", repo_path, "init").returncode == 0
    proc = vdedup_proc("--repo", repo_path, "backup", f"chroma://{src}")
    assert proc.returncode == 0, proc.stderr
    needles = [b"doc-000123#chunk-3", b"PLAINTEXT-META-MARKER", b"secret_field", b"PLAINTEXT-DOC-MARKER",
               b"s3://bucket/doc-", emb[7].tobytes()[:16], emb[99].astype(np.float32).tobytes()[8:24]]
    for where in (repo_path, tmp_path / "cache"):
        blob = b"".join(p.read_bytes() for p in where.rglob("*") if p.is_file())
        assert blob, where
        for needle in needles:
            assert needle not in blob, (where, needle)
    for needle in ("doc-000123", "PLAINTEXT", "bucket"):
        assert needle not in proc.stdout + proc.stderr
