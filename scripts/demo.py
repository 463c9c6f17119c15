"""The main job, end to end, on an embedded Chroma: create a collection with sample
embeddings, init a repository, back up, change 1%, back up again, restore the first
snapshot into a new database, and verify it bit for bit. Run: bash scripts/demo.sh"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile

import numpy as np

N, DIM = int(os.environ.get("DEMO_N", "20000")), int(os.environ.get("DEMO_DIM", "384"))


def sh(*args: str) -> str:
    print(f"\n$ vdedup {' '.join(shlex.quote(a) for a in args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "vdedup_cli.main", *args], text=True, capture_output=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode:
        sys.exit(f"demo: vdedup exited with {proc.returncode}")
    return proc.stdout


def read_all(path: str) -> dict:
    import chromadb
    from chromadb.config import Settings
    col = chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False)) \
        .get_collection("articles", embedding_function=None)
    got = col.get(include=["embeddings", "metadatas", "documents"])
    return {i: (np.asarray(e).astype(np.float32).tobytes(), m, d)
            for i, e, m, d in zip(got["ids"], got["embeddings"], got["metadatas"], got["documents"])}


def main() -> None:
    import chromadb
    from chromadb.config import Settings
    work = tempfile.mkdtemp(prefix="vdedup-demo-")
    src, dst, repo = (os.path.join(work, d) for d in ("chroma-src", "chroma-restored", "repo"))
    os.environ.update(VDEDUP_REPOSITORY=repo, VDEDUP_PASSWORD=os.environ.get("VDEDUP_PASSWORD", "demo password"),
                      VDEDUP_CACHE_DIR=os.path.join(work, "cache"), ANONYMIZED_TELEMETRY="False")
    print(f"demo: working in {work}; {N} records x {DIM} dims in an embedded Chroma")
    client = chromadb.PersistentClient(path=src, settings=Settings(anonymized_telemetry=False))
    col = client.create_collection("articles", embedding_function=None)     # Chroma's default space: l2
    rng = np.random.default_rng(42)
    centers = rng.standard_normal((50, DIM)).astype(np.float32)
    for a in range(0, N, 5000):
        n = min(5000, N - a)
        emb = centers[rng.integers(0, 50, n)] + 0.3 * rng.standard_normal((n, DIM)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        col.add(ids=[f"doc-{i:06d}#chunk-{i % 5}" for i in range(a, a + n)], embeddings=emb,
                metadatas=[{"source": f"site-{i % 17}", "page": i % 300, "score": float(i % 97) / 97,
                            "public": i % 2 == 0} for i in range(a, a + n)],
                documents=[f"Article {i}: a paragraph of text." for i in range(a, a + n)])
    before = read_all(src)

    sh("init")
    sh("backup", f"chroma://{src}", "--tag", "night-1")
    first = sh("snapshots", "--json")

    ids = sorted(before)
    k = max(1, N // 100)
    print(f"\ndemo: nightly change: {k} vectors updated, {k} records added, {k // 2} deleted")
    col.update(ids=ids[:k], embeddings=rng.standard_normal((k, DIM)).astype(np.float32))
    col.add(ids=[f"new-{i}" for i in range(k)], embeddings=rng.standard_normal((k, DIM)).astype(np.float32),
            metadatas=[{"source": "new", "page": i, "score": 0.5, "public": True} for i in range(k)])
    col.delete(ids=ids[-(k // 2):] if k // 2 else [])
    sh("backup", f"chroma://{src}", "--tag", "night-2")
    sh("snapshots")
    sh("stats")

    import json
    first_id = json.loads(first)[0]["id"]
    sh("restore", first_id[:8], "--target", f"chroma://{dst}")
    sh("check", "--read-data")

    restored = read_all(dst)
    same = sorted(restored) == sorted(before) and all(restored[i] == before[i] for i in before)
    print(f"\ndemo: restored first snapshot has {len(restored)} records; "
          f"bit-for-bit equal to the original: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)
    print(f"demo: done (files left in {work})")


if __name__ == "__main__":
    main()
