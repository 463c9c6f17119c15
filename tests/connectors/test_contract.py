"""Every connector passes the connector contract (contract.py) against its real server or
emulator: files, Chroma (embedded and `chroma run`), pgvector (PostgreSQL from
scripts/servers.sh), Milvus (the milvus-lite server from scripts/servers.sh), Qdrant (local
mode, and its REST path through qdrant_rest_bridge.py), Pinecone and Weaviate (the emulators
of their documented HTTP APIs in tests/emulators, reached through the official SDKs)."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from vdtest import require_module

from contract import CASES, Target
from vdedup.connectors import Credentials
from vdedup.model import IdType

TARGETS = ["files", "chroma-embedded", "chroma-server", "pgvector", "milvus", "qdrant-local",
           "qdrant-rest", "pinecone", "weaviate"]
KEY = "contract-key-SECRET-7"
NONE = Credentials()


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    require_module("psycopg")
    from pg_fixtures import fresh_database
    with fresh_database("vdedup_contract") as db:
        yield db


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """Local storage on tmpfs where there is one (SQLite-backed local modes fsync a lot)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="vdedup-contract-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _files(base: Path) -> Target:
    return Target("files", lambda c, m: f"files://{base}/{c}?collection={c}&metric={m.value}", NONE,
                  unenforced="an export is local files: nothing takes a secret",
                  partitioned=(IdType.STRING,),
                  written_once="an export is written once, by one restore")


def _pg_refused(db: str, target: Target) -> tuple[str, Credentials]:
    """A role with a SCRAM password, and a pg_hba rule for it ahead of the trust rules (put
    back by the target's cleanup)."""
    from psycopg import sql

    from pg_fixtures import connect, url
    role = "vdedup_contract_role"
    with connect() as admin:
        hba = admin.execute("SHOW hba_file").fetchone()[0]
        original = admin.execute("SELECT pg_read_file(%s)", (hba,)).fetchone()[0]
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right-pw-123'")

        def write_hba(text: str) -> None:
            with connect() as a:
                a.execute(sql.SQL("COPY (SELECT line FROM unnest({}::text[]) WITH ORDINALITY "
                                  "u(line, n) ORDER BY n) TO {}").format(
                    sql.Literal(text.replace("\t", " ").split("\n")), sql.Literal(hba)))
                a.execute("SELECT pg_reload_conf()")

        write_hba(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + original)

    def restore() -> None:
        write_hba(original.rstrip("\n"))
        with connect() as a:
            a.execute(f"DROP ROLE IF EXISTS {role}")
    target.cleanup.append(restore)
    time.sleep(0.2)                                 # the reload is asynchronous
    return url(db, user=role), Credentials("wrong-pw-SECRET-456", "PGPASSWORD")


@contextlib.contextmanager
def make_target(kind: str, request: pytest.FixtureRequest, tmp: Path) -> Iterator[Target]:
    if kind == "files":
        yield _files(tmp)
    elif kind == "chroma-embedded":
        require_module("chromadb")
        yield Target(kind, lambda c, m: f"chroma://{tmp / 'chroma'}", NONE,
                     unenforced="an embedded database has no server to check a secret",
                     partitioned=(IdType.STRING,))
    elif kind == "chroma-server":
        server = request.getfixturevalue("chroma_server")
        yield Target(kind, lambda c, m: server.url, NONE,
                     proxy_url=lambda c, p: f"chroma://127.0.0.1:{p}",
                     upstream=lambda c: (server.host, server.port),
                     unenforced="`chroma run` (Chroma 1.x) has no authentication to configure",
                     partitioned=(IdType.STRING,))
    elif kind == "pgvector":
        from pg_fixtures import pg_settings, url
        db = request.getfixturevalue("pg_database")
        s = pg_settings()
        target = Target(kind, lambda c, m: url(db), NONE,
                        proxy_url=lambda c, p: f"postgresql://{s['VDEDUP_TEST_PG_USER']}@127.0.0.1:{p}/{db}",
                        upstream=lambda c: (s["VDEDUP_TEST_PG_HOST"], int(s["VDEDUP_TEST_PG_PORT"])),
                        partitioned=(IdType.INT,))
        target.refused = lambda: _pg_refused(db, target)
        try:
            yield target
        finally:
            for undo in target.cleanup:
                undo()
    elif kind == "milvus":
        require_module("pymilvus")
        uri = os.environ.get("VDEDUP_TEST_MILVUS_URI")
        if not uri:
            pytest.fail("VDEDUP_TEST_MILVUS_URI is not set: start the servers with "
                        "`bash scripts/servers.sh start` and source its env file")
        host, port = urlsplit(uri).hostname, urlsplit(uri).port
        yield Target(kind, lambda c, m: f"milvus://{host}:{port}/default", NONE,
                     proxy_url=lambda c, p: f"milvus://127.0.0.1:{p}/default",
                     upstream=lambda c: (host, port),
                     unenforced="milvus-lite does not enforce authentication "
                                "(canary: test_milvus.py::test_milvus_lite_accepts_any_token)")
        # no `partitioned`: a collection vdedup creates carries its marker, and Milvus then
        # reads it whole (milvus/reader.py partitions); test_scaleout.py covers pk ranges
    elif kind == "qdrant-local":
        require_module("qdrant_client")
        path = request.getfixturevalue("fast_dir") / "qdrant"
        yield Target(kind, lambda c, m: f"qdrant+local://{path}", NONE,
                     unenforced="local mode is a directory: no server to check a secret",
                     partitioned=(IdType.INT, IdType.UUID))
    elif kind == "qdrant-rest":
        require_module("qdrant_client")
        from qdrant_rest_bridge import RestBridge
        with RestBridge(api_key=KEY) as bridge:
            yield Target(kind, lambda c, m: bridge.url, Credentials(KEY, "QDRANT_API_KEY"),
                         proxy_url=lambda c, p: f"qdrant://127.0.0.1:{p}",
                         upstream=lambda c: ("127.0.0.1", bridge.port),
                         refused=lambda: (bridge.url, Credentials("wrong-SECRET-1", "QDRANT_API_KEY")),
                         partitioned=(IdType.INT, IdType.UUID))
    elif kind == "pinecone":
        require_module("pinecone")
        from emulators.pinecone_emulator import PineconeEmulator
        from vdedup.connectors.pinecone import connector as pc_connector
        mp = request.getfixturevalue("monkeypatch")
        mp.setattr(pc_connector, "BACKOFF_BASE", 0.05)
        mp.setattr(pc_connector, "POLL_INTERVAL", 0.05)
        from pinecone._internal import http_client
        mp.setattr(http_client, "_retry_sleep", lambda d: time.sleep(min(d, 0.05)))
        with PineconeEmulator(KEY) as emu:
            def data_plane(c: str) -> tuple[str, int]:
                host = urlsplit(emu.indexes[c].host)
                return host.hostname, host.port
            yield Target(kind, lambda c, m: f"pinecone://?controller={emu.url}",
                         Credentials(KEY, "PINECONE_API_KEY"), naming="dash",
                         proxy_url=lambda c, p: f"pinecone://{c}?host=http://127.0.0.1:{p}&controller={emu.url}",
                         upstream=data_plane,
                         refused=lambda: (f"pinecone://?controller={emu.url}",
                                          Credentials("wrong-SECRET-2", "PINECONE_API_KEY")),
                         partitioned=(IdType.STRING,))
    elif kind == "weaviate":
        require_module("weaviate")
        from emulators.weaviate_emulator import WeaviateEmulator
        from vdedup.connectors.weaviate import connector as wv_connector
        request.getfixturevalue("monkeypatch").setattr(wv_connector, "BACKOFF", 0.01)
        with WeaviateEmulator(api_keys=[KEY]) as emu:
            yield Target(kind, lambda c, m: f"weaviate://{emu.host}:{emu.port}",
                         Credentials(KEY, "WEAVIATE_API_KEY"), naming="class",
                         proxy_url=lambda c, p: f"weaviate://127.0.0.1:{p}",
                         upstream=lambda c: (emu.host, emu.port),
                         refused=lambda: (f"weaviate://{emu.host}:{emu.port}",
                                          Credentials("wrong-SECRET-3", "WEAVIATE_API_KEY")),
                         partitioned=(IdType.UUID,))
    else:
        raise AssertionError(kind)


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")  # loopback
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", TARGETS)
def test_contract(kind: str, case: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    with make_target(kind, request, tmp_path) as target:
        CASES[case](target)


def test_every_registered_connector_is_a_target() -> None:
    from vdedup.connectors import descriptors
    covered = {"files", "chroma", "postgresql", "milvus", "qdrant", "pinecone", "weaviate"}
    assert {d.name for d in descriptors()} <= covered
