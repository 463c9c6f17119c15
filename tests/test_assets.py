"""The credential store and nightly runs of connected assets, through the real CLI, against
embedded Chroma and the Pinecone emulator (the official SDK over HTTP).

Helpers here (`pinecone_asset_index`, `secret_forms`, `assert_secret_absent`...) are shared
with test_audit.py and test_ai_assets.py."""
from __future__ import annotations

import base64
import json
import os
import socket
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from vdedup.assets.store import AssetStore
from vdedup.backend import open_backend
from vdedup.errors import IntegrityError, WrongPassword
from vdedup.format.objects import ObjectType
from vdedup.repository import Repository
from emulators.pinecone_emulator import PineconeEmulator
from vdtest import PASSWORD, add_records, chroma_collection, make_records, vdedup, vdedup_proc

PC_SECRET = "pc-3f9a1c7e5b2d4a6f8e0c1b3d5f7a9e2c4b6d8f0a"      # 44 chars, like a Pinecone key
PC_SECRET_2 = "pc-rotated-77e1d2c3b4a5968778695a4b3c2d1e0f"
DIM = 16


# ------------------------------------------------------------------ helpers


def secret_forms(secret: str) -> list[bytes]:
    """The secret as bytes in every form a careless encoder could store it."""
    raw = secret.encode()
    forms = [raw, raw.hex().encode(), raw.hex().upper().encode(), secret.encode("utf-16-le"),
             json.dumps(secret).encode()]
    for k in range(3):       # base64 at every alignment: the part that depends only on the secret
        for enc in (base64.b64encode, base64.urlsafe_b64encode, base64.b32encode):
            e = enc(b"\0" * k + raw)
            forms.append(e[8:-8])
    return forms


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.exists():
            yield from (p for p in root.rglob("*") if p.is_file())


def assert_secret_absent(secret: str, *, roots: tuple[Path, ...] = (), texts: tuple[str, ...] = ()) -> int:
    """No form of `secret` in any file under `roots` nor in `texts`; returns files searched."""
    forms = secret_forms(secret)
    n = 0
    for path in files_under(*roots):
        data = path.read_bytes()
        n += 1
        for f in forms:
            assert f not in data, f"a form of the secret is in {path}"
    for t in texts:
        for f in forms:
            assert f.decode("latin-1") not in t, "a form of the secret is in the output"
    return n


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_env(**extra: str) -> dict[str, str]:
    """The subprocess environment: no provider secret of the test's own."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PINECONE_API_KEY", "PINECONE_CONTROLLER_HOST", "CHROMA_API_KEY")}
    env.update(extra)
    return env


def run(*args: Any, input: str | None = None, env: dict | None = None, expect: int | None = 0):
    r = vdedup_proc(*args, env=env, input=input)
    if expect is not None:
        assert r.returncode == expect, (r.returncode, r.stdout, r.stderr)
    return r


class Cli:
    """The CLI in-process (fast): exit code, stdout and stderr of each call, stdin given."""

    def __init__(self, capsys, monkeypatch, *pre: Any):
        self.capsys, self.monkeypatch, self.pre = capsys, monkeypatch, [str(p) for p in pre]
        self.outputs: list[str] = []

    def __call__(self, *args: Any, input: str = "", expect: int | None = 0):
        import io
        import sys
        self.capsys.readouterr()
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(input))
        code = vdedup(*self.pre, *args)
        got = self.capsys.readouterr()
        self.outputs.extend([got.out, got.err])
        if expect is not None:
            assert code == expect, (code, got.out, got.err)
        return got

    def json(self, *args: Any, **kw: Any) -> Any:
        return json.loads(self(*args, **kw).out)


@pytest.fixture
def cli(capsys, monkeypatch, repo_path) -> Cli:
    for var in ("PINECONE_API_KEY", "PINECONE_CONTROLLER_HOST", "CHROMA_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return Cli(capsys, monkeypatch, "--repo", repo_path)


@pytest.fixture
def pc() -> Iterator[PineconeEmulator]:
    with PineconeEmulator(PC_SECRET) as emu:
        yield emu


def pinecone_asset_index(emu: PineconeEmulator, name: str, n: int = 60, seed: int = 0) -> dict:
    """A dense serverless index with typed metadata in two namespaces; returns what was written."""
    import pinecone
    client = pinecone.Pinecone(api_key=emu.api_key, host=emu.url)
    model = client.indexes.create(
        name=name,
        schema={"fields": {"_values": {"type": "dense_vector", "dimension": DIM, "metric": "cosine"}}},
        deployment={"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}, timeout=-1)
    index = client.index(host=model.host)
    rng = np.random.default_rng(seed)
    written = {}
    for ns in ("", "tenant-b"):
        vecs = []
        for i in range(n):
            v = rng.standard_normal(DIM).astype(np.float32)
            meta = {"title": f"doc {i} ü", "page": float(i), "ok": i % 2 == 0, "tags": [f"t{i % 3}"]}
            vecs.append({"id": f"{ns or 'default'}-{i:04d}", "values": v.tolist(), "metadata": meta})
            written[(ns, f"{ns or 'default'}-{i:04d}")] = (v.tobytes(), meta)
        index.upsert(vectors=vecs, namespace=ns)
    return written


def read_pinecone(emu: PineconeEmulator, name: str, namespaces=("", "tenant-b")) -> dict:
    """Every record of an emulated index: (namespace, id) -> (float32 bytes, metadata)."""
    import pinecone
    client = pinecone.Pinecone(api_key=emu.api_key, host=emu.url)
    index = client.index(host=client.indexes.describe(name).host)
    out = {}
    for ns in namespaces:
        token = None
        while True:
            page = index.list_paginated(namespace=ns, limit=100, pagination_token=token)
            ids = [item.id for item in page.vectors]
            if ids:
                for rid, v in index.fetch(ids=ids, namespace=ns).vectors.items():
                    out[(ns, rid)] = (np.asarray(v.values, dtype=np.float32).tobytes(), dict(v.metadata or {}))
            token = page.pagination.next if page.pagination else None
            if not token:
                break
    return out


def pc_url(emu: PineconeEmulator, index: str) -> str:
    return f"pinecone://{index}?controller={emu.url}"


def chroma_source(path: Path, name: str = "docs", n: int = 80, seed: int = 0) -> None:
    _, col = chroma_collection(path, name)
    add_records(col, *make_records(n, dim=DIM, seed=seed))


# ------------------------------------------------------------------ tests


def test_secrets_never_reach_disk_output_or_audit(tmp_path, repo_path, pc, cli, monkeypatch):
    pinecone_asset_index(pc, "customer-rag-index")
    chroma_source(tmp_path / "chroma")
    monkeypatch.setenv("SECRET_VAR", PC_SECRET_2)
    go = cli
    go("init")
    go("connect", "--provider", "pinecone", "--name", "customer-rag-index",
       pc_url(pc, "customer-rag-index"), "--secret-stdin", input=PC_SECRET + "\n")
    go("connect", "--provider", "chroma", "--name", "local-docs", f"chroma://{tmp_path / 'chroma'}")
    shown = go("assets", "show", "customer-rag-index").out
    assert f"pc-…({len(PC_SECRET)} chars)" in shown
    listed = go.json("assets", "list", "--json")
    assert [a["name"] for a in listed] == ["customer-rag-index", "local-docs"]
    assert [a["has_secret"] for a in listed] == [True, False]
    r = go.json("backup", "--asset", "customer-rag-index", "--json")
    assert r["assets"][0]["outcome"] == "ok" and r["assets"][0]["records"] == 120
    # rotate to the second secret (from an env var); the emulator now needs it
    go("assets", "rotate", "customer-rag-index", "--secret-env", "SECRET_VAR")
    pc.api_key = PC_SECRET_2
    # a real process, its environment free of any provider secret
    p = run("backup", "--all", "--json", env=proc_env(VDEDUP_REPOSITORY=str(repo_path)))
    go.outputs.extend([p.stdout, p.stderr])
    summary = json.loads(p.stdout)
    assert [a["outcome"] for a in summary["assets"]] == ["ok", "ok"]
    pc.api_key = PC_SECRET                                # the old key no longer works
    assert go.json("backup", "--all", "--json", expect=3)["failed"] == ["customer-rag-index"]
    outputs = go.outputs
    go("audit", "--json")
    go("ai-assets", "list", "--type", "ai_vector_db")
    outputs = go.outputs
    # nothing in the repository, the cache or any output holds the secrets, in any form
    searched = 0
    for secret in (PC_SECRET, PC_SECRET_2):
        searched = assert_secret_absent(secret, roots=(repo_path, tmp_path / "cache"), texts=tuple(outputs))
    assert searched > 10
    # the audit log, decrypted, holds no secret either; nor do the asset records once the
    # outer (object) layer is opened: the secret has a second layer of its own
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        from vdedup.assets.audit import AuditLog
        entries = AuditLog(repo).read()
        assert len(entries) >= 9
        records = [repo.load_json_object(ObjectType.ASSET, n) for n, _ in repo.backend.list("assets")]
    plain = json.dumps(entries) + json.dumps(records)
    assert_secret_absent(PC_SECRET, texts=(plain,))
    assert_secret_absent(PC_SECRET_2, texts=(plain,))
    assert "customer-rag-index" in json.dumps(records)
    # asset file names do not reveal asset names
    assert not any("rag" in p.name or "local" in p.name for p in (repo_path / "assets").iterdir())


def test_the_stored_secret_is_an_argument_and_the_environment_is_never_used(tmp_path, repo_path, pc,
                                                                           monkeypatch):
    """An asset's connector gets exactly the stored secret: not a key from the environment
    (not even when the asset has no secret), and nothing writes the environment."""
    pinecone_asset_index(pc, "idx", n=10)
    assert vdedup("--repo", repo_path, "init") == 0
    monkeypatch.setenv("MY_SECRET", PC_SECRET)
    assert vdedup("--repo", repo_path, "connect", "-p", "pinecone", "--name", "idx", pc_url(pc, "idx"),
                  "--secret-env", "MY_SECRET") == 0
    assert vdedup("--repo", repo_path, "connect", "-p", "pinecone", "--name", "keyless", pc_url(pc, "idx"),
                  "--no-secret") == 0
    monkeypatch.delenv("MY_SECRET")
    before = dict(os.environ)
    monkeypatch.setenv("PINECONE_API_KEY", "the-users-own-wrong-value")
    assert vdedup("--repo", repo_path, "backup", "--asset", "idx") == 0    # the stored key, not this one
    assert os.environ["PINECONE_API_KEY"] == "the-users-own-wrong-value"
    # the right key in the environment: an asset connected without a secret still uses none
    monkeypatch.setenv("PINECONE_API_KEY", PC_SECRET)
    r = run("backup", "--asset", "keyless", env={**proc_env(VDEDUP_REPOSITORY=str(repo_path)),
                                                "PINECONE_API_KEY": PC_SECRET}, expect=2)
    assert "no Pinecone API key" in r.stderr and "Traceback" not in r.stderr
    assert vdedup("--repo", repo_path, "backup", "--asset", "keyless") == 2
    monkeypatch.delenv("PINECONE_API_KEY")
    assert dict(os.environ) == before
    # what the command line itself reads: a plain URL uses the documented variable
    r = run("backup", pc_url(pc, "idx"), env={**proc_env(VDEDUP_REPOSITORY=str(repo_path)),
                                             "PINECONE_API_KEY": PC_SECRET})
    assert "saved" in r.stdout


def test_nightly_code_never_writes_the_environment():
    import inspect
    import vdedup.engine.nightly as nightly
    source = inspect.getsource(nightly)
    assert "os.environ" not in source and "putenv" not in source and not hasattr(nightly, "secret_in_env")


def test_wrong_password_cannot_read_the_store_recovery_key_can(tmp_path, repo_path, capsys):
    chroma_source(tmp_path / "chroma", n=5)
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "init", "--json") == 0
    recovery = json.loads(capsys.readouterr().out)["recovery_key"]
    os.environ["S"] = PC_SECRET
    try:
        assert vdedup("--repo", repo_path, "connect", "-p", "pinecone", "--name", "prod", "pinecone://prod",
                      "--secret-env", "S") == 0
    finally:
        del os.environ["S"]
    r = run("--repo", repo_path, "assets", "list", env={"VDEDUP_PASSWORD": "wrong password"}, expect=12)
    assert "prod" not in r.stdout + r.stderr
    with pytest.raises(WrongPassword):
        Repository.open(open_backend(str(repo_path)), "wrong password")
    # the recovery key unlocks the master key, hence the store, secret included
    r = run("--repo", repo_path, "assets", "show", "prod", env={"VDEDUP_PASSWORD": recovery})
    assert f"pc-…({len(PC_SECRET)} chars)" in r.stdout
    with Repository.open(open_backend(str(repo_path)), recovery) as repo:
        store = AssetStore(repo)
        asset = store.get("prod")
        assert store.secret(asset) == PC_SECRET
        # the secret is bound to its asset's name: moved into another record, it does not open
        other = store.add("other", "pinecone", "pinecone://other", "x" * 30)
        other._sealed_secret = asset._sealed_secret
        with pytest.raises(IntegrityError):
            store.secret(other)


def test_backup_all_continues_past_an_unreachable_asset(tmp_path, repo_path, pc, cli):
    pinecone_asset_index(pc, "products", n=30)
    chroma_source(tmp_path / "a", n=40, seed=1)
    cli("init")
    cli("connect", "-p", "chroma", "--name", "a-docs", f"chroma://{tmp_path / 'a'}")
    cli("connect", "-p", "chroma", "--name", "b-down", f"chroma://127.0.0.1:{closed_port()}", "--no-secret")
    cli("connect", "-p", "pinecone", "--name", "c-products", pc_url(pc, "products"), "--secret-stdin",
        input=PC_SECRET + "\n")
    # a real process: the exit code and the streams as a scheduler sees them
    r = run("backup", "--all", "--json", env=proc_env(VDEDUP_REPOSITORY=str(repo_path)), expect=3)
    summary = json.loads(r.stdout)
    by = {a["asset"]: a for a in summary["assets"]}
    assert [a["asset"] for a in summary["assets"]] == ["a-docs", "b-down", "c-products"]
    assert by["a-docs"]["outcome"] == "ok" and by["a-docs"]["records"] == 40
    assert by["c-products"]["outcome"] == "ok" and by["c-products"]["records"] == 60
    assert by["b-down"]["outcome"] == "error" and by["b-down"]["exit_code"] == 15
    assert summary["failed"] == ["b-down"]
    assert "1 of 3 asset backups failed: b-down" in r.stderr
    assert "Traceback" not in r.stderr
    snaps = cli.json("snapshots", "--json")
    assert sorted(t for s in snaps for t in s["tags"]) == ["asset:a-docs", "asset:c-products"]
    # the audit log has one entry per asset, the failure with its exit code and class
    log = cli.json("audit", "--json", "--verify")
    backups = [e for e in log["entries"] if e["operation"] == "backup"]
    assert [(e["asset"], e["outcome"], e["exit_code"], e["error"]) for e in backups] == [
        ("a-docs", "ok", 0, None), ("b-down", "error", 15, "SourceError"), ("c-products", "ok", 0, None)]
    assert backups[0]["snapshot"] and backups[0]["counts"]["records"] == 40


def test_forget_policy_applies_to_the_assets_own_snapshots(tmp_path, repo_path, capsys):
    chroma_source(tmp_path / "a", n=10)
    chroma_source(tmp_path / "b", n=10, seed=2)
    r = str(repo_path)
    assert vdedup("--repo", r, "init") == 0
    assert vdedup("--repo", r, "connect", "-p", "chroma", "--name", "a", f"chroma://{tmp_path / 'a'}",
                  "--keep-last", "1") == 0
    assert vdedup("--repo", r, "connect", "-p", "chroma", "--name", "b", f"chroma://{tmp_path / 'b'}") == 0
    assert vdedup("--repo", r, "backup", f"chroma://{tmp_path / 'a'}") == 0     # by hand: not the asset's
    for _ in range(3):
        assert vdedup("--repo", r, "backup", "--all") == 0
    capsys.readouterr()
    assert vdedup("--repo", r, "snapshots", "--json") == 0
    snaps = json.loads(capsys.readouterr().out)
    tags = sorted(",".join(s["tags"]) or "(none)" for s in snaps)
    assert tags == ["(none)", "asset:a", "asset:b", "asset:b", "asset:b"]
    # a policy can be set later, and cleared
    assert vdedup("--repo", r, "assets", "policy", "b", "--keep-last", "2") == 0
    assert vdedup("--repo", r, "backup", "--asset", "b") == 0
    assert vdedup("--repo", r, "assets", "policy", "b", "--clear") == 0
    capsys.readouterr()
    assert vdedup("--repo", r, "snapshots", "--json") == 0
    assert sum("asset:b" in s["tags"] for s in json.loads(capsys.readouterr().out)) == 2
    assert vdedup("--repo", r, "assets", "show", "b", "--json") == 0
    assert json.loads(capsys.readouterr().out)["forget_policy"] is None


def test_bad_input_is_one_line_with_an_exit_code(tmp_path, repo_path, cli):
    run = cli
    run("init")
    # no terminal and no secret source
    r = run("connect", "-p", "pinecone", "--name", "x", "pinecone://x", expect=2)
    assert "--secret-stdin" in r.err and "Traceback" not in r.err
    # a credential in the URL is refused and not repeated
    r = run("connect", "-p", "qdrant", "--name", "q", "qdrant://admin:hunter2-secret@db:6333", "--no-secret",
            expect=2)
    assert "hunter2" not in r.out + r.err
    r = run("connect", "-p", "pinecone", "--name", "y", "pinecone://y?api_key=hunter2-secret", "--no-secret",
            expect=2)
    assert "hunter2" not in r.out + r.err
    # duplicates, unknown names and providers, contradictory arguments
    run("connect", "-p", "chroma", "--name", "c", f"chroma://{tmp_path / 'c'}")
    run("connect", "-p", "chroma", "--name", "c", f"chroma://{tmp_path / 'c'}", expect=13)
    run("connect", "-p", "chroma", "--name", "bad name!", f"chroma://{tmp_path / 'c'}", expect=2)
    run("assets", "show", "nope", expect=14)
    run("assets", "remove", "nope", expect=14)
    run("connect", "-p", "mongo", "--name", "m", "mongo://m", "--no-secret", expect=2)
    run("backup", expect=2)
    run("backup", "--asset", "c", f"chroma://{tmp_path}", expect=2)
    run("backup", "--asset", "c", "--collection", "x", expect=2)
    run("ai-assets", "list", "--type", "object_storage", expect=2)
    # remove works and leaves nothing behind
    run("assets", "remove", "c")
    assert list((repo_path / "assets").iterdir()) == []
    assert run.json("assets", "list", "--json") == []
    assert all("Traceback" not in o for o in run.outputs)
