"""Secrets and plain transports (issue 19 item 6): a secret is never sent over plain http to
another machine unless the URL says so, `connect` does not store one for such a URL, qdrant's
own warning is not silenced, pgvector checks certificates of remote servers by default, a
secret that a provider library puts into its error text never reaches the output, and an
asset connected without a secret sends none, whatever the environment holds.

The HTTP listener below is not a database: it records the headers each request brings and
answers 404, which is all these tests need to see what a connector sends."""
from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

from vdtest import vdedup

SECRET = "topsecret-key-123"
REMOTE = "10.255.0.7"           # not this machine; nothing is ever sent there


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def _any(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

    def log_message(self, *a) -> None:
        pass


@pytest.fixture
def listener():
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server.server_address[1], _Recorder.seen
    server.shutdown()
    server.server_close()


def _cli(repo, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "vdedup_cli.main", "--repo", str(repo), *args],
                          capture_output=True, text=True, env=full, timeout=120)


@pytest.mark.parametrize("url,env", [
    (f"qdrant://{REMOTE}:6333", "QDRANT_API_KEY"),
    (f"weaviate://{REMOTE}:8080", "WEAVIATE_API_KEY"),
    (f"milvus://{REMOTE}:19530", "MILVUS_TOKEN"),
    (f"chroma://{REMOTE}:8000", "CHROMA_API_KEY"),
    (f"pinecone://idx?host=http://{REMOTE}:5080", "PINECONE_API_KEY"),
])
def test_a_secret_is_refused_over_plain_http_to_another_host(repo_path, url, env):
    assert vdedup("--repo", repo_path, "init") == 0
    r = _cli(repo_path, "backup", url, env={env: SECRET})
    assert r.returncode == 20, r.stderr
    assert "clear text" in r.stderr and "?insecure=1" in r.stderr and SECRET not in r.stderr


def test_what_counts_as_plain_and_remote():
    from vdedup.connectors.registry import refuse_plain_transport
    from vdedup.errors import InsecureTransport
    for ok in ("qdrant://127.0.0.1:6333", "qdrant://localhost:6333", "qdrant://[::1]:6333",
               f"qdrant://{REMOTE}:6333?https=1", f"qdrant://{REMOTE}:6333?insecure=1",
               f"chroma://{REMOTE}:8000?ssl=1", f"milvus://{REMOTE}:19530?secure=1",
               f"weaviate://{REMOTE}:8080?https=1", "chroma:///tmp/x", "qdrant+local:///tmp/x",
               f"pinecone://idx?host=https://{REMOTE}", "pinecone://idx"):
        refuse_plain_transport(ok)
    for bad in (f"qdrant://{REMOTE}:6333", "weaviate://db.example.com:8080",
                f"pinecone://idx?controller=http://{REMOTE}:1"):
        with pytest.raises(InsecureTransport):
            refuse_plain_transport(bad)


def test_connect_does_not_store_a_secret_for_a_plain_remote_url(repo_path, capsys):
    assert vdedup("--repo", repo_path, "init") == 0
    r = _cli(repo_path, "connect", "--provider", "qdrant", "--name", "q", "--url", f"qdrant://{REMOTE}:6333",
             "--secret-env", "MY_KEY", env={"MY_KEY": SECRET})
    assert r.returncode == 20, r.stderr
    r = _cli(repo_path, "connect", "--provider", "qdrant", "--name", "q2", "--url", f"qdrant://{REMOTE}:6333?insecure=1",
             "--secret-env", "MY_KEY", env={"MY_KEY": SECRET})
    assert r.returncode == 0, r.stderr
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "assets", "list", "--json") == 0
    names = [a["name"] for a in json.loads(capsys.readouterr().out)]
    assert names == ["q2"]


def test_qdrant_keeps_its_warning_and_the_secret_never_reaches_the_output(repo_path, listener):
    port, seen = listener
    assert vdedup("--repo", repo_path, "init") == 0
    key = f"{SECRET}\nsecond-line-of-it"       # a key with a newline: an illegal header value
    for url, env in ((f"qdrant://127.0.0.1:{port}", "QDRANT_API_KEY"),
                     (f"chroma://127.0.0.1:{port}", "CHROMA_API_KEY")):
        r = _cli(repo_path, "backup", url, env={env: key})
        assert r.returncode != 0
        text = r.stdout + r.stderr
        for form in (SECRET, "second-line-of-it", repr(key)[1:-1]):
            assert form not in text, f"{url}: the secret is in the output:\n{text}"
        assert "secret withheld" in text or "Illegal header" not in text
    r = _cli(repo_path, "backup", f"qdrant://127.0.0.1:{port}", env={"QDRANT_API_KEY": SECRET})
    assert "insecure connection" in r.stderr        # the client's own warning, not silenced
    assert SECRET not in r.stderr + r.stdout
    assert any(h.get("api-key") == SECRET for h in seen)   # it went out, to this machine only


def test_an_asset_connected_without_a_secret_sends_none(repo_path, listener):
    port, seen = listener
    assert vdedup("--repo", repo_path, "init") == 0
    r = _cli(repo_path, "connect", "--provider", "qdrant", "--name", "nokey", "--url", f"qdrant://127.0.0.1:{port}",
             "--no-secret")
    assert r.returncode == 0, r.stderr
    r = _cli(repo_path, "backup", "--asset", "nokey", env={"QDRANT_API_KEY": SECRET})
    assert r.returncode != 0              # the listener is no database; what matters is what it saw
    assert seen, "the connector sent nothing"
    assert not any("api-key" in h or "authorization" in h for h in seen), seen


def test_pgvector_checks_the_certificate_of_a_remote_server_by_default():
    from vdedup.connectors.pgvector.connector import tls_params
    from vdedup.connectors.url import parse_url
    from vdedup.errors import UsageError
    assert tls_params(parse_url(f"postgresql://u@{REMOTE}:5432/db")) == {"sslmode": "verify-full"}
    assert tls_params(parse_url("postgresql://u@db.example.com/db")) == {"sslmode": "verify-full"}
    assert tls_params(parse_url("postgresql://u@127.0.0.1:5432/db")) == {}
    assert tls_params(parse_url("postgresql://u@localhost/db")) == {}
    assert tls_params(parse_url("postgresql:///db")) == {}          # the local socket
    assert tls_params(parse_url(f"postgresql://u@{REMOTE}/db?sslmode=require")) == {"sslmode": "require"}
    assert tls_params(parse_url(f"postgresql://u@{REMOTE}/db?sslrootcert=system")) == \
        {"sslmode": "verify-full", "sslrootcert": "system"}
    with pytest.raises(UsageError):
        tls_params(parse_url(f"postgresql://u@{REMOTE}/db?sslmode=sometimes"))


def test_scrub_removes_every_form_of_a_remembered_secret():
    from vdedup.errors import SourceError, remember_secret, scrub
    key = "k3y-with\nnewline-and-more"
    remember_secret(key)
    msg = f"Illegal header value b{repr(key.encode())[1:]} and {key} and {repr(key)}"
    out = scrub(msg)
    assert "k3y-with" not in out and "newline-and-more" not in out
    assert "k3y-with" not in SourceError(msg).message and "k3y-with" not in str(SourceError(msg))
