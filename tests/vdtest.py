"""Test helpers: run the real CLI (in-process, or as a subprocess where exit behaviour
matters), make deterministic sample data, and compare Chroma collections bit for bit."""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import numpy as np
import pytest

PASSWORD = "correct horse battery staple"
ALLOW_SKIP = "VDEDUP_ALLOW_SKIP"


def unavailable(reason: str) -> NoReturn:
    """What a test needs (an SDK, a server, a privilege) is missing here. That is a failure:
    CI installs and starts everything (scripts/test.sh), and a suite that silently skipped
    would pass without testing anything. VDEDUP_ALLOW_SKIP=1 turns it into a skip, for a
    developer's machine that lacks something on purpose. Works inside a test, a fixture, or at
    module level."""
    if os.environ.get(ALLOW_SKIP) == "1":
        pytest.skip(reason, allow_module_level=True)
    pytest.fail(f"{reason} ({ALLOW_SKIP}=1 skips instead)", pytrace=False)


def require_module(name: str) -> ModuleType:
    """`import name`, or unavailable(): the replacement for pytest.importorskip."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        unavailable(f"{name} is not installed ({e}); run scripts/setup.sh")


def vdedup(*args: str) -> int:
    """Run the CLI in-process; returns the exit code."""
    from vdedup_cli.main import run
    return run([str(a) for a in args])


def vdedup_proc(*args: str, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Run the installed CLI as a separate process (real exit codes, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "vdedup_cli.main", *map(str, args)],
                          capture_output=True, text=True, env=full_env, input=input, timeout=600)


def interruptible() -> None:
    """preexec_fn of a command a test interrupts: SIGINT handled as from a terminal. A test
    run started in the background of a non-interactive shell (`bash scripts/test.sh &`)
    ignores SIGINT, and the child would inherit that (Python keeps an ignored SIGINT
    ignored), so ctrl-c would not reach the command at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def env_connector(url: str):
    """A connector opened as the command line opens one: with the credentials the provider's
    documented environment variables hold (connectors never read the environment themselves)."""
    from vdedup.connectors import credentials_for, open_connector
    return open_connector(url, credentials_for(url, os.environ))


def make_records(n: int, dim: int = 64, seed: int = 0, start: int = 0):
    """Deterministic sample records with every Chroma metadata type."""
    rng = np.random.default_rng(seed)
    ids = [f"doc-{i:06d}#chunk-{i % 4}" for i in range(start, start + n)]
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    metas, docs, uris = [], [], []
    for k, i in enumerate(range(start, start + n)):
        if i % 11 == 0:
            metas.append(None)
        else:
            metas.append({"source": f"src-{i % 7}", "page": i, "score": i / 7.0, "ok": i % 2 == 0,
                          "tags": [f"t{i % 3}", f"t{i % 5}"]})
        docs.append(None if i % 13 == 0 else f"document text {i} ü")
        uris.append(f"s3://bucket/doc-{i}" if i % 3 == 0 else None)
    return ids, emb, metas, docs, uris


def chroma_collection(path: Path, name: str = "docs", space: str | None = "cosine"):
    import chromadb
    client = chromadb.PersistentClient(path=str(path))
    cfg = {"hnsw": {"space": space}} if space else None
    return client, client.get_or_create_collection(name, embedding_function=None, configuration=cfg)


def add_records(col, ids, emb, metas, docs, uris, batch: int = 2000) -> None:
    for a in range(0, len(ids), batch):
        col.add(ids=ids[a:a + batch], embeddings=emb[a:a + batch], metadatas=metas[a:a + batch],
                documents=docs[a:a + batch], uris=uris[a:a + batch])


def read_all(path: Path, name: str) -> dict:
    """Every record of a Chroma collection: id -> (float32 bytes, metadata, document, uri)."""
    import chromadb
    client = chromadb.PersistentClient(path=str(path))
    col = client.get_collection(name, embedding_function=None)
    got = col.get(include=["embeddings", "metadatas", "documents", "uris"])
    out = {}
    for i, rid in enumerate(got["ids"]):
        out[rid] = (np.asarray(got["embeddings"][i]).astype(np.float32).tobytes(),
                    got["metadatas"][i], got["documents"][i], got["uris"][i])
    return out


def typed(v):
    """A value with its types made visible, so 1 == 1.0 and True == 1 compare unequal."""
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    return (type(v).__name__, v)


def assert_same_records(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b), "record ids differ"
    for rid in a:
        va, vb = a[rid], b[rid]
        assert va[0] == vb[0], f"vector of {rid} differs"
        assert typed(va[1]) == typed(vb[1]), f"metadata of {rid} differs"
        assert va[2] == vb[2], f"document of {rid} differs"
        assert va[3] == vb[3], f"uri of {rid} differs"


def repo_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
