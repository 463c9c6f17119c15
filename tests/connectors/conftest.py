"""Fixtures for connector tests: an embedded Chroma directory and a real `chroma run` server."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from vdtest import require_module, unavailable

SERVER_START_TIMEOUT = 60.0


def free_port() -> int:
    """A port nothing listens on right now (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_dir(tmp_path: Path) -> Path:
    """An empty directory for an embedded Chroma (PersistentClient) database."""
    path = tmp_path / "chroma"
    path.mkdir()
    return path


@pytest.fixture
def closed_port() -> int:
    return free_port()


@dataclass
class ChromaServer:
    host: str
    port: int
    path: Path
    log: Path
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"chroma://{self.host}:{self.port}"

    def stop(self) -> None:
        _stop(self.proc)


def _chroma_command() -> str:
    beside = Path(sys.executable).parent / "chroma"
    if beside.exists():
        return str(beside)
    found = shutil.which("chroma")
    if found is None:
        unavailable("the chroma CLI is not installed")
    return found


def _heartbeat(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group: TERM, then KILL if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def running_chroma_server(base: Path) -> Iterator[ChromaServer]:
    """`chroma run` on a free loopback port under `base`; its process group is stopped after."""
    command = _chroma_command()
    for attempt in range(3):          # the free port can be taken before the server binds it
        port = free_port()
        data = base / f"data{attempt}"
        log = base / f"server{attempt}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [command, "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            while time.monotonic() < deadline and proc.poll() is None and not _heartbeat(port):
                time.sleep(0.1)
            if proc.poll() is None and _heartbeat(port):
                yield ChromaServer("127.0.0.1", port, data, log, proc)
                return
        finally:
            _stop(proc)
    tail = log.read_text(errors="replace")[-2000:]
    pytest.fail(f"chroma run did not answer its heartbeat; last log:\n{tail}")


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A real Chroma server shared by one test module."""
    require_module("chromadb")
    with running_chroma_server(tmp_path_factory.mktemp("chroma-server")) as server:
        yield server


@pytest.fixture
def own_chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    """A real Chroma server for one test, which may stop it (server.stop())."""
    require_module("chromadb")
    with running_chroma_server(tmp_path) as server:
        yield server
