"""The `ai-assets` command set exactly as BackupEngine's documentation writes it, run as real
processes through the `backupengine` entry point (`python -m vdedup_cli.aiassets`, what the
console script runs) and as `vdedup ai-assets`: an emulated Pinecone index restored into a
real (local-mode) Qdrant, as the product text's cross-provider example does."""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
import uuid
from typing import Any

import numpy as np
import pytest

from vdedup.engine.translate import ID_NAMESPACE
from vdedup.errors import SnapshotNotFound
from vdedup.repository.snapshot import Snapshot
from emulators.pinecone_emulator import PineconeEmulator
from vdtest import typed, vdedup_proc
from test_assets import (PC_SECRET, Cli, assert_secret_absent, chroma_source, pc_url, pinecone_asset_index,
                         proc_env, read_pinecone)

def backupengine(*args: Any, env: dict, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vdedup_cli.aiassets", *map(str, args)], capture_output=True,
                          text=True, env=env, input=input, timeout=300)


def in_a_terminal(argv: list[str], answers: list[tuple[str, str]], env: dict, timeout: float = 120) -> tuple[int, str]:
    """Run argv with a pseudo-terminal as stdin/stdout/stderr (in a new session, so the hidden
    prompt cannot reach the test runner's own terminal) and answer each prompt as it appears."""
    master, slave = os.openpty()
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    buf, seen, i = b"", 0, 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:            # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                buf += chunk
            if i < len(answers) and answers[i][0].encode() in buf[seen:]:
                seen = len(buf)
                os.write(master, answers[i][1].encode() + b"\n")
                i += 1
            if time.monotonic() > deadline:
                p.kill()
                pytest.fail(f"no prompt {answers[i][0]!r} in time; got {buf[-500:]!r}")
        code = p.wait(timeout=30)
    finally:
        os.close(master)
    assert i == len(answers), f"only {i} of {len(answers)} prompts were asked: {buf[-500:]!r}"
    return code, buf.decode("utf-8", "replace")


@pytest.fixture
def source_pc():
    with PineconeEmulator(PC_SECRET) as emu:
        yield emu


def read_qdrant(path) -> dict:
    """Every point of a local Qdrant storage: (collection, id) -> (float32 vector, payload)."""
    from qdrant_client import QdrantClient
    client = QdrantClient(path=str(path))
    try:
        out = {}
        for c in client.get_collections().collections:
            offset = None
            while True:
                points, offset = client.scroll(c.name, limit=256, offset=offset, with_payload=True,
                                               with_vectors=True)
                for p in points:
                    out[(c.name, str(p.id))] = (np.asarray(p.vector, dtype=np.float32), p.payload)
                if offset is None:
                    break
        return out
    finally:
        client.close()


@pytest.mark.parametrize("connect", ["terminal", "stdin"])
def test_the_documented_commands_run_as_written(connect, tmp_path, repo_path, source_pc, capsys, monkeypatch):
    """The five commands of the product text, as written, from Pinecone to a local Qdrant
    connected as `qdrant-prod-02`: schema translated, the cosine normalisation shown as
    inexact, and every record there (ids mapped to UUIDs, the original kept, metadata types
    kept, vector directions kept within the step's bound)."""
    written = pinecone_asset_index(source_pc, "customer-rag-index", n=40)
    chroma_source(tmp_path / "chroma", n=10)
    env = proc_env(VDEDUP_REPOSITORY=str(repo_path), PYTHONUNBUFFERED="1")
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    cli = Cli(capsys, monkeypatch, "--repo", repo_path)
    cli("init")
    cli("connect", "-p", "chroma", "--name", "local-notes", f"chroma://{tmp_path / 'chroma'}")
    outputs: list[str] = []

    # backupengine ai-assets connect --provider pinecone
    if connect == "terminal":        # as written: it asks for the name, the URL and the hidden key
        code, screen = in_a_terminal(
            [sys.executable, "-m", "vdedup_cli.aiassets", "ai-assets", "connect", "--provider", "pinecone"],
            [("asset name:", "customer-rag-index"), ("URL (", pc_url(source_pc, "customer-rag-index")),
             ("input hidden", PC_SECRET)], env)
    else:                            # no terminal: the same command, its answers as options, the key on stdin
        r = backupengine("ai-assets", "connect", "--provider", "pinecone", "--name", "customer-rag-index",
                         "--url", pc_url(source_pc, "customer-rag-index"), "--secret-stdin",
                         env=env, input=PC_SECRET + "\n")
        code, screen = r.returncode, r.stdout + r.stderr
    outputs.append(screen)
    assert code == 0, screen
    assert "connected asset customer-rag-index" in screen

    # backupengine ai-assets list --type ai_vector_db   (and the vdedup form)
    r = backupengine("ai-assets", "list", "--type", "ai_vector_db", env=env)
    r2 = vdedup_proc("ai-assets", "list", "--type", "ai_vector_db", env=env)
    for x in (r, r2):
        outputs += [x.stdout, x.stderr]
        assert x.returncode == 0, x.stderr
        assert "customer-rag-index" in x.stdout and "local-notes" in x.stdout and "ai_vector_db" in x.stdout

    # backupengine ai-assets backup --type ai_vector_db --provider pinecone   (pinecone assets only)
    r = backupengine("ai-assets", "backup", "--type", "ai_vector_db", "--provider", "pinecone", env=env)
    outputs += [r.stdout, r.stderr]
    assert r.returncode == 0, r.stderr
    assert "customer-rag-index: snapshot" in r.stdout and "local-notes" not in r.stdout + r.stderr

    # backupengine ai-assets snapshots --asset "customer-rag-index"
    r = backupengine("ai-assets", "snapshots", "--asset", "customer-rag-index", env=env)
    outputs += [r.stdout, r.stderr]
    assert r.returncode == 0, r.stderr
    snaps = cli.json("ai-assets", "snapshots", "--asset", "customer-rag-index", "--json")
    assert len(snaps) == 1 and snaps[0]["records"] == 80 and snaps[0]["short_id"] in r.stdout

    # the target: a local Qdrant, connected as qdrant-prod-02
    qdrant_dir = tmp_path / "qdrant-prod-02"
    r = vdedup_proc("ai-assets", "connect", "--provider", "qdrant", "--name", "qdrant-prod-02",
                    "--url", f"qdrant+local://{qdrant_dir}", "--no-secret", env=env)
    outputs += [r.stdout, r.stderr]
    assert r.returncode == 0, r.stderr
    # a dry run shows the plan, the inexact step among it, and creates nothing
    r = vdedup_proc("ai-assets", "restore", "--asset", "customer-rag-index", "--version", "latest",
                    "--target-instance", "qdrant-prod-02", "--dry-run", env=env)
    assert r.returncode == 0 and "customer-rag-index__tenant-b: write 40" in r.stdout, r.stderr
    assert "normalised to unit length" in r.stderr and not qdrant_dir.exists()
    # --exact refuses the target's own rounding (exit 19), and writes nothing
    r = vdedup_proc("ai-assets", "restore", "--asset", "customer-rag-index", "--version", "latest",
                    "--target-instance", "qdrant-prod-02", "--exact", env=env)
    assert r.returncode == 19 and "--exact" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not qdrant_dir.exists()

    # backupengine ai-assets restore --asset "customer-rag-index" --version latest --target-instance "qdrant-prod-02"
    r = backupengine("ai-assets", "restore", "--asset", "customer-rag-index", "--version", "latest",
                     "--target-instance", "qdrant-prod-02", env=env)
    outputs += [r.stdout, r.stderr]
    assert r.returncode == 0, r.stderr
    assert "translated from pinecone to qdrant (inexact)" in r.stderr
    assert "inexact: customer-rag-index: vector '(default)': qdrant stores the vectors of a cosine index " \
           "normalised to unit length" in r.stderr
    assert "observed in 40 records read back from customer-rag-index: vector directions moved by up to" in r.stderr
    assert "restored 40 records into qdrant-prod-02/customer-rag-index from version" in r.stdout
    assert "restored 40 records into qdrant-prod-02/customer-rag-index__tenant-b from version" in r.stdout

    got = read_qdrant(qdrant_dir)
    assert len(got) == len(written) == 80
    for (ns, rid), (vec, meta) in written.items():
        point = str(uuid.uuid5(ID_NAMESPACE, f"str:{rid}"))
        coll = "customer-rag-index" + (f"__{ns}" if ns else "")
        stored, payload = got[(coll, point)]
        assert typed(payload) == typed({**meta, "_vdedup_id": f"str:{rid}"}), f"metadata of {rid} differs"
        # the direction is kept (local mode normalises in memory and may keep the written values
        # on disk, so the length read back depends on the client's life; a server normalises)
        v = np.frombuffer(vec, dtype=np.float32).astype(np.float64)
        s64 = stored.astype(np.float64)
        assert np.abs(s64 / np.linalg.norm(s64) - v / np.linalg.norm(v)).max() <= 1e-6, rid
    # the restored copy serves the same answers: vdedup verify, recall@10 = 1.0
    r = vdedup_proc("verify", snaps[0]["id"][:12], "--target", f"qdrant+local://{qdrant_dir}", "--json",
                    "--sample", "80", "--queries", "20", env=env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["recall_at_10"] == 1.0
    assert [(n["expected"], n["found"], n["sampled"], n["sample"]["differing"]) for n in report["namespaces"]] \
        == [(40, 40, 40, 0), (40, 40, 40, 0)]
    # restore --verify: the same comparison right after a restore (here under another name)
    r = vdedup_proc("ai-assets", "restore", "--asset", "customer-rag-index", "--target-instance", "qdrant-prod-02",
                    "--as", "checked", "--verify", env=env)
    assert r.returncode == 0, r.stderr
    assert "checked__tenant-b: records 40 of 40; sampled 40, differing 0, missing 0; recall@10 1.0000" in r.stdout
    assert "verify ok" in r.stdout
    # a second restore into the same target refuses to overwrite (exit 16), one line
    r = vdedup_proc("ai-assets", "restore", "--asset", "customer-rag-index", "--version", snaps[0]["id"][:8],
                    "--target-instance", "qdrant-prod-02", env=env)
    assert r.returncode == 16 and "Traceback" not in r.stderr

    # the console script's name, and no secret anywhere
    r = backupengine("--help", env=env)
    assert r.returncode == 0 and "backupengine" in r.stdout and "ai-assets" in r.stdout
    assert_secret_absent(PC_SECRET, roots=(repo_path, tmp_path / "cache", qdrant_dir), texts=tuple(outputs))
    log = cli.json("audit", "--verify", "--json")
    ops = [(e["operation"], e["asset"]) for e in log["entries"]]
    assert ("ai-assets connect", "customer-rag-index") in ops and ("ai-assets restore", "customer-rag-index") in ops


def test_without_a_terminal_connect_needs_its_options(repo_path, capsys, monkeypatch):
    cli = Cli(capsys, monkeypatch, "--repo", repo_path)
    cli("init")
    assert "--name" in cli("ai-assets", "connect", "--provider", "pinecone", expect=2).err
    assert "--url" in cli("ai-assets", "connect", "--provider", "pinecone", "--name", "x", expect=2).err
    assert "--secret-stdin" in cli("ai-assets", "connect", "--provider", "pinecone", "--name", "x",
                                   "--url", "x", expect=2).err
    cli("ai-assets", "connect", "--provider", "pinecone", "--name", "x", "--url", "x", "--secret-stdin",
        input="k" * 30 + "\n")
    assert cli.json("assets", "list", "--json")[0]["url"] == "pinecone://x"     # a bare index name
    cli("ai-assets", "snapshots", "--asset", "nope", expect=14)
    cli("ai-assets", "restore", "--asset", "x", expect=14)                       # no snapshots yet
    cli("ai-assets", "restore", "--asset", "x", "--version", "yesterday", expect=2)


@pytest.fixture(params=["UTC", "America/New_York", "Asia/Kolkata"])
def local_zone(request, monkeypatch):
    """Run under this local time zone (TZ), whatever the machine's own zone is."""
    import time
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def test_version_is_latest_an_id_or_a_time(local_zone):
    import datetime as dt
    from zoneinfo import ZoneInfo
    from vdedup_cli.aiassets import pick_version
    snaps = [Snapshot(id=f"{c}" * 64, time=t, hostname="h", username="u", source="s", provider="p")
             for c, t in (("a", "2026-11-01T03:00:00+00:00"), ("b", "2026-11-02T03:00:00+00:00"),
                          ("c", "2026-11-03T03:00:00+00:00"))]
    assert pick_version(snaps, "latest").id[0] == "c"
    assert pick_version(snaps, "bbbb").id[0] == "b"
    assert pick_version(snaps, "2026-11-02T12:00:00+00:00").id[0] == "b"
    # a time without a zone is local time: midnight of the 3rd is 00:00 UTC, 05:00 UTC in New
    # York (after the 3rd's 03:00 UTC run) and 18:30 UTC on the 2nd in Kolkata
    midnight = dt.datetime(2026, 11, 3, tzinfo=ZoneInfo(local_zone))
    expect = "c" if midnight >= dt.datetime(2026, 11, 3, 3, tzinfo=dt.timezone.utc) else "b"
    assert expect == {"UTC": "b", "America/New_York": "c", "Asia/Kolkata": "b"}[local_zone]
    assert pick_version(snaps, "2026-11-03").id[0] == expect
    # 02:00 local on the 3rd: before the 03:00 UTC run in UTC, after it in New York (07:00 UTC)
    assert pick_version(snaps, "2026-11-03 02:00").id[0] == ("c" if local_zone == "America/New_York" else "b")
    with pytest.raises(SnapshotNotFound):
        pick_version(snaps, "2026-10-01T00:00:00+00:00")


def test_an_asset_restores_into_itself_under_another_name(repo_path, source_pc, capsys, monkeypatch):
    """The asset's own URL names its index (pinecone://INDEX): restoring the asset into itself
    with --as writes a new index of that name; into another instance whose URL names an index,
    the restore goes there, and --as naming another one is a usage error."""
    written = pinecone_asset_index(source_pc, "customer-rag-index", n=10)
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    cli = Cli(capsys, monkeypatch, "--repo", repo_path)
    cli("init")
    cli("connect", "--provider", "pinecone", "--name", "customer-rag-index",
        pc_url(source_pc, "customer-rag-index"), "--secret-stdin", input=PC_SECRET + "\n")
    cli("connect", "--provider", "pinecone", "--name", "staging", pc_url(source_pc, "staging-index"),
        "--secret-stdin", input=PC_SECRET + "\n")
    cli("ai-assets", "backup", "--asset", "customer-rag-index")
    out = cli.json("ai-assets", "restore", "--asset", "customer-rag-index", "--as", "rag-copy", "--json")
    assert out["collections"] == {"rag-copy": 20}
    assert sorted(read_pinecone(source_pc, "rag-copy")) == sorted(written)
    out = cli.json("ai-assets", "restore", "--asset", "customer-rag-index", "--target-instance", "staging", "--json")
    assert out["collections"] == {"staging-index": 20}
    cli("ai-assets", "restore", "--asset", "customer-rag-index", "--target-instance", "staging",
        "--as", "elsewhere", expect=2)
