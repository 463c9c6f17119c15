"""Backend conformance suite: every backend must pass the same tests (local, memory, S3 on a
real S3 protocol server, and S3 / local through the retry wrapper with injected faults);
then S3-specific tests: multipart, conditional writes racing, error mapping, and retries
through a real fault-injecting HTTP proxy between boto3 and the S3 server."""
from __future__ import annotations

import http.client
import os
import socket
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

from vdedup.backend import FaultyBackend, LocalBackend, MemoryBackend, RetryBackend, open_backend
from vdedup.backend.faults import FaultRule, parse_rules
from vdedup.errors import (BackendError, ObjectExists, ObjectNotFound, TransientBackendError,
                           UsageError)
from vdtest import add_records, assert_same_records, chroma_collection, make_records, read_all, vdedup

MiB = 1 << 20
FAULTS = ("save:*:fail-after:every=2;load:*:fail:every=2;stat:*:fail:every=3;"
          "list:*:fail-after:every=2;remove:*:fail-after:every=2;exists:*:fail:every=2")


@pytest.fixture
def s3_endpoint(monkeypatch, tmp_path) -> str:
    endpoint = os.environ.get("VDEDUP_TEST_S3_ENDPOINT")
    if not endpoint:
        pytest.fail("VDEDUP_TEST_S3_ENDPOINT is not set: start the test servers with "
                    "'bash scripts/servers.sh start' and source $(bash scripts/servers.sh envfile)")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    return endpoint


def _bucket() -> str:
    return f"vdedup-be-{uuid.uuid4().hex[:16]}"


def _s3(endpoint: str, bucket: str | None = None, prefix: str = "repo/x", **kw):
    from vdedup.backend.s3 import S3Backend
    b = S3Backend(bucket or _bucket(), prefix, endpoint, **kw)
    b.create_layout()
    return b


@pytest.fixture(params=["local", "memory", "s3", "local+faults", "s3+faults"])
def backend(request, tmp_path):
    kind = request.param
    if kind.startswith("local"):
        b = LocalBackend(str(tmp_path / "store"))
        b.create_layout()
    elif kind == "memory":
        return MemoryBackend()
    else:
        b = _s3(request.getfixturevalue("s3_endpoint"), list_page_size=3)
    if kind.endswith("+faults"):
        b = RetryBackend(FaultyBackend(b, FAULTS), base_delay=0.001)
        b.create_layout()
    return b


def test_save_load_stat_list_remove(backend):
    backend.save("data", "ab" + "0" * 62, b"hello world")
    backend.save("snapshots", "s1", b"x")
    assert backend.load("data", "ab" + "0" * 62) == b"hello world"
    assert backend.stat("data", "ab" + "0" * 62) == 11
    assert list(backend.list("data")) == [("ab" + "0" * 62, 11)]
    assert list(backend.list("snapshots")) == [("s1", 1)]
    assert list(backend.list("index")) == []
    backend.remove("snapshots", "s1")
    assert list(backend.list("snapshots")) == []


def test_list_is_complete_and_in_name_order(backend):
    names = [f"{c}{i}" + "e" * 62 for c in "fa0c9" for i in range(3)]
    for n in names:
        backend.save("data", n, n.encode()[:7])
    for i in range(8):                      # more than a listing page on S3 (page size 3 here)
        backend.save("index", f"i{i}", b"x" * i)
    assert list(backend.list("data")) == [(n, 7) for n in sorted(names)]
    assert list(backend.list("index")) == [(f"i{i}", i) for i in range(8)]
    assert list(backend.list("keys")) == []


def test_load_ranges(backend):
    backend.save("data", "cd" * 32, bytes(range(100)))
    assert backend.load("data", "cd" * 32, 10, 5) == bytes(range(10, 15))
    assert backend.load("data", "cd" * 32, 95) == bytes(range(95, 100))
    assert backend.load("data", "cd" * 32, -4) == bytes(range(96, 100))
    assert backend.load("data", "cd" * 32, -4, 2) == bytes(range(96, 98))
    assert backend.load("data", "cd" * 32, 98, 10) == bytes(range(98, 100))    # short at the end
    assert backend.load("data", "cd" * 32, 100) == b""
    assert backend.load("data", "cd" * 32, 0, 0) == b""


def test_empty_object(backend):
    backend.save("locks", "empty", b"")
    assert backend.load("locks", "empty") == b""
    assert backend.stat("locks", "empty") == 0
    assert list(backend.list("locks")) == [("empty", 0)]


def test_never_overwrites(backend):
    backend.save("keys", "k", b"one")
    with pytest.raises(ObjectExists):
        backend.save("keys", "k", b"two")
    with pytest.raises(ObjectExists):
        backend.save("keys", "k", b"one")     # not even with the same bytes, without a failure first
    assert backend.load("keys", "k") == b"one"


def test_not_found(backend):
    with pytest.raises(ObjectNotFound):
        backend.load("snapshots", "nope")
    with pytest.raises(ObjectNotFound):
        backend.load("snapshots", "nope", 0, 0)
    with pytest.raises(ObjectNotFound):
        backend.stat("snapshots", "nope")
    with pytest.raises(ObjectNotFound):
        backend.remove("snapshots", "nope")


def test_config_and_exists(backend):
    assert not backend.exists()
    backend.save("config", "config", b"c")
    assert backend.exists()
    assert backend.load("config", "config") == b"c"
    backend.remove("config", "config")
    assert not backend.exists()


@pytest.mark.parametrize("backend", ["local", "s3", "local+faults", "s3+faults"], indirect=True)
def test_bad_names_are_refused(backend):      # not "memory": the memory backend takes any name
    for bad in ("", "a/b", ".hidden"):
        with pytest.raises(BackendError):
            backend.save("keys", bad, b"x")


def test_local_save_leaves_no_temporary_files(tmp_path):
    b = LocalBackend(str(tmp_path / "s"))
    b.create_layout()
    for i in range(5):
        b.save("index", f"i{i}", b"x" * i)
    leftovers = [p for p in (tmp_path / "s").rglob(".tmp-*")]
    assert leftovers == []


# ---- the wrappers ---------------------------------------------------------------------------

def test_retry_gives_up_after_bounded_attempts_and_passes_permanent_errors():
    sleeps = []
    b = RetryBackend(FaultyBackend(MemoryBackend(), "load:*:fail"), attempts=4, base_delay=0.1,
                     max_delay=0.3, sleep=sleeps.append)
    b.save("keys", "k", b"x")
    with pytest.raises(TransientBackendError, match="gave up after 4 attempts"):
        b.load("keys", "k")
    assert len(sleeps) == 3 and all(0 <= s <= 0.3 for s in sleeps)     # capped, jittered
    sleeps.clear()
    with pytest.raises(ObjectExists):
        b.save("keys", "k", b"y")              # permanent errors are not retried
    with pytest.raises(ObjectNotFound):
        b.stat("keys", "nope")
    assert sleeps == []


def test_retry_verifies_a_save_whose_response_was_lost():
    inner = FaultyBackend(MemoryBackend(), "save:*:fail-after:times=1")
    b = RetryBackend(inner, sleep=lambda s: None)
    b.save("data", "ab" * 32, b"payload")      # written, then 'lost'; the retry finds it: success
    assert inner.faults == 1 and b.retries == 1
    assert b.load("data", "ab" * 32) == b"payload"
    # a different object under the name after a lost response is a real conflict
    inner.rules = parse_rules("save:*:fail:times=1")
    inner.inner.save("data", "cd" * 32, b"someone else's")
    with pytest.raises(ObjectExists):
        b.save("data", "cd" * 32, b"mine, same len")


def test_retry_remove_after_lost_response_and_list_resumes_without_duplicates():
    inner = FaultyBackend(MemoryBackend(), "remove:*:fail-after:times=1;list:*:fail-after:times=2")
    b = RetryBackend(inner, sleep=lambda s: None)
    for i in range(5):
        b.save("index", f"i{i}", b"x")
    b.remove("index", "i0")                    # removed, response lost, retry finds it gone: fine
    assert [n for n, _ in b.list("index")] == ["i1", "i2", "i3", "i4"]
    assert inner.faults == 3


def test_fault_rules_parse_and_count():
    (r,) = parse_rules("save:data:fail:every=2,after=1,times=2")
    assert (r.op, r.ftype, r.kind, r.every, r.after, r.times) == ("save", "data", "fail", 2, 1, 2)
    assert [r.hit() for _ in range(8)] == [False, False, True, False, True, False, False, False]
    with pytest.raises(UsageError):
        parse_rules("save:data:explode")
    with pytest.raises(UsageError):
        FaultRule(op="copy")


def test_delay_rule_slows_calls():
    import time
    b = FaultyBackend(MemoryBackend(), "save:*:delay:seconds=0.05")
    t = time.monotonic()
    b.save("keys", "a", b"")
    b.save("keys", "b", b"")
    assert time.monotonic() - t >= 0.1


def test_open_backend_wraps_every_backend(tmp_path, s3_endpoint, monkeypatch):
    b = open_backend(str(tmp_path / "r"))
    assert isinstance(b, RetryBackend) and isinstance(b.inner, LocalBackend)
    s = open_backend("s3://some-bucket/a/b/", s3_endpoint)
    assert isinstance(s, RetryBackend) and s.location == "s3://some-bucket/a/b"
    assert s.bucket == "some-bucket" and s.prefix == "a/b"
    monkeypatch.setenv("VDEDUP_TEST_FAULTS", "save:*:fail:every=2")
    f = open_backend(str(tmp_path / "r"))
    assert isinstance(f.inner, FaultyBackend)
    for bad in ("s3://", "s3:///prefix", "s3://AKIAEXAMPLE:hunter2@bucket/x", "s3://bucket/a/../b",
                "gs://bucket/x"):
        with pytest.raises(UsageError) as e:
            open_backend(bad, s3_endpoint)
        assert "hunter2" not in str(e.value)


# ---- S3 only ---------------------------------------------------------------------------------

def _client(endpoint):
    import boto3
    return boto3.client("s3", endpoint_url=endpoint)


def test_s3_layout_mirrors_local(s3_endpoint):
    b = _s3(s3_endpoint, prefix="team/vectors")
    b.save("config", "config", b"c")
    b.save("keys", "k1", b"k")
    b.save("data", "ab" + "1" * 62, b"p")
    b.save("snapshots", "s1", b"s")
    keys = sorted(o["Key"] for o in _client(s3_endpoint).list_objects_v2(Bucket=b.bucket)["Contents"])
    assert keys == ["team/vectors/config", "team/vectors/data/ab/ab" + "1" * 62,
                    "team/vectors/keys/k1", "team/vectors/snapshots/s1"]
    # objects of another repository sharing the bucket, or stray keys, are not listed
    c = _client(s3_endpoint)
    c.put_object(Bucket=b.bucket, Key="team/vectors-old/keys/k9", Body=b"")
    c.put_object(Bucket=b.bucket, Key="team/vectors/data/ab/nested/x", Body=b"")
    c.put_object(Bucket=b.bucket, Key="team/vectors/keys/sub/k2", Body=b"")
    assert [n for n, _ in b.list("keys")] == ["k1"]
    assert [n for n, _ in b.list("data")] == ["ab" + "1" * 62]


def test_s3_multipart_for_large_objects_and_ranged_reads(s3_endpoint):
    b = _s3(s3_endpoint, multipart_threshold=6 * MiB, part_size=5 * MiB)
    big = os.urandom(11 * MiB + 123)
    small = os.urandom(6 * MiB)                # at the threshold: one PUT
    b.save("data", "ee" * 32, big)
    b.save("data", "ef" * 32, small)
    c = _client(s3_endpoint)
    assert c.head_object(Bucket=b.bucket, Key=b._key("data", "ee" * 32))["ETag"].strip('"').endswith("-3")
    assert "-" not in c.head_object(Bucket=b.bucket, Key=b._key("data", "ef" * 32))["ETag"]
    assert b.stat("data", "ee" * 32) == len(big)
    assert b.load("data", "ee" * 32) == big
    edge = 5 * MiB
    assert b.load("data", "ee" * 32, edge - 10, 20) == big[edge - 10:edge + 10]   # across a part edge
    assert b.load("data", "ee" * 32, -1000) == big[-1000:]
    assert b.load("data", "ee" * 32, 10 * MiB) == big[10 * MiB:]
    assert dict(b.list("data")) == {"ee" * 32: len(big), "ef" * 32: len(small)}
    assert not c.list_multipart_uploads(Bucket=b.bucket).get("Uploads")


def test_s3_conditional_complete_refuses_a_second_multipart_writer(s3_endpoint, monkeypatch):
    b = _s3(s3_endpoint, multipart_threshold=5 * MiB, part_size=5 * MiB)
    first = os.urandom(6 * MiB)
    b.save("data", "aa" * 32, first)
    # skip the early HEAD, so only the server's If-None-Match on the completion guards it
    monkeypatch.setattr(b, "_refuse_existing", lambda key: None)
    with pytest.raises(ObjectExists):
        b.save("data", "aa" * 32, os.urandom(6 * MiB))
    assert b.load("data", "aa" * 32) == first
    assert not _client(s3_endpoint).list_multipart_uploads(Bucket=b.bucket).get("Uploads")   # aborted


def test_s3_concurrent_multipart_writers_exactly_one_wins(s3_endpoint, monkeypatch):
    """Four writers upload the parts of one name at the same time; the condition is checked
    when an upload completes, so the first completion wins and the others get ObjectExists.
    (The completions are serialised: moto, unlike S3, does not make each one atomic.)"""
    bucket = _bucket()
    _s3(s3_endpoint, bucket)
    writers = [_s3(s3_endpoint, bucket, multipart_threshold=5 * MiB) for _ in range(4)]
    all_uploaded = threading.Barrier(len(writers))
    one_at_a_time = threading.Lock()
    for w in writers:
        monkeypatch.setattr(w, "_refuse_existing", lambda key: None)
        complete = w.client.complete_multipart_upload

        def serialised(complete=complete, **kw):
            all_uploaded.wait(60)
            with one_at_a_time:
                return complete(**kw)

        monkeypatch.setattr(w.client, "complete_multipart_upload", serialised)
    payloads = [bytes([i]) * (5 * MiB + 1) for i in range(len(writers))]
    results: list = [None] * len(writers)

    def write(i):
        try:
            writers[i].save("locks", "the-one", payloads[i])
            results[i] = "ok"
        except ObjectExists:
            results[i] = "exists"

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(writers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == ["exists"] * (len(writers) - 1) + ["ok"]
    assert writers[0].load("locks", "the-one") == payloads[results.index("ok")]
    assert not _client(s3_endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_s3_missing_bucket(s3_endpoint, capsys):
    from vdedup.backend.s3 import S3Backend
    b = S3Backend(_bucket(), "r", s3_endpoint)
    assert not b.exists()
    assert list(b.list("snapshots")) == []
    with pytest.raises(BackendError, match="does not exist"):
        b.save("keys", "k", b"x")
    url = f"s3://{b.bucket}/r"
    assert vdedup("--repo", url, "--s3-endpoint", s3_endpoint, "snapshots") == 10
    assert f"no repository at {url}" in capsys.readouterr().err
    assert vdedup("--repo", url, "--s3-endpoint", s3_endpoint, "init") == 0      # creates the bucket
    assert b.exists()
    assert vdedup("--repo", url, "--s3-endpoint", s3_endpoint, "init") == 13


def test_s3_bad_urls_and_missing_credentials_are_one_line_errors(s3_endpoint, monkeypatch, capsys):
    assert vdedup("--repo", "s3://AKIAEXAMPLE:hunter2@bucket/x", "init") == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "Traceback" not in err
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert vdedup("--repo", f"s3://{_bucket()}/x", "--s3-endpoint", s3_endpoint, "snapshots") == 1
    err = capsys.readouterr().err
    assert "no S3 credentials found" in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.startswith("vdedup: error")]) == 1


# ---- a real fault-injecting proxy between boto3 and the S3 server ----------------------------

class FaultProxy:
    """An HTTP proxy in front of the S3 server; `decide(method, path, n)` picks, per request:
    "pass", "drop" (close without answering), "drop-response" (forward, then close without
    answering: the server did the work), "truncate" (half the body, then close), "503"
    (SlowDown), "500" (InternalError) or "403" (AccessDenied)."""

    def __init__(self, upstream: str):
        u = urlparse(upstream)
        self.host, self.port = u.hostname, u.port
        self.decide = lambda method, path, n: "pass"
        self.injected: Counter = Counter()
        self.requests = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self.server.daemon_threads = True
        self.server.proxy = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _error(self, status: int, code: str) -> None:
        body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                f"<Message>injected</Message></Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        proxy: FaultProxy = self.server.proxy
        body = self._read_body()
        with proxy.lock:
            proxy.requests += 1
            n = proxy.requests
        action = proxy.decide(self.command, self.path, n)
        if action != "pass":
            proxy.injected[action] += 1
        if action == "drop":
            return self._drop()
        if action in ("503", "500", "403"):
            return self._error(int(action), {"503": "SlowDown", "500": "InternalError",
                                             "403": "AccessDenied"}[action])
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("connection", "transfer-encoding", "expect", "content-length")}
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=60)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if action == "drop-response":
            return self._drop()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                self.send_header(k, v)
        length = resp.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD":
            if action == "truncate" and len(data) > 1:
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()
                return self._drop()
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


@pytest.fixture
def proxy(s3_endpoint):
    p = FaultProxy(s3_endpoint)
    yield p
    p.close()


def _proxied(proxy, **kw):
    from vdedup.backend.s3 import S3Backend
    inner = S3Backend(_bucket(), "repo", proxy.endpoint, **kw)
    return RetryBackend(inner, base_delay=0.01, max_delay=0.05)


def test_s3_retries_through_a_faulty_network(proxy):
    actions = ["503", "drop", "500", "truncate", "drop-response"]
    multipart = Counter()

    def decide(method, path, n):
        if "uploadId=" in path or "uploads" in path:
            # the first part upload and the first completion fail, once each: a retry then
            # has to redo the whole upload, or find the completed object and verify it
            kind = "complete" if method == "POST" and "uploadId=" in path else method
            multipart[kind] += 1
            if multipart[kind] == 1:
                return {"complete": "drop-response", "PUT": "503"}.get(kind, "pass")
            return "pass"
        return actions[(n // 6) % len(actions)] if n % 6 == 0 else "pass"     # one in six fails

    proxy.decide = decide
    b = _proxied(proxy, multipart_threshold=5 * MiB, part_size=5 * MiB, list_page_size=2)
    b.create_layout()
    blobs = {f"{i:02x}" * 32: os.urandom(1000 + i) for i in range(8)}
    blobs["ff" * 32] = os.urandom(6 * MiB)                   # multipart, through the faults too
    for name, data in blobs.items():
        b.save("data", name, data)
    for name, data in blobs.items():
        assert b.load("data", name) == data
        assert b.load("data", name, 100, 50) == data[100:150]
        assert b.stat("data", name) == len(data)
    assert dict(b.list("data")) == {n: len(d) for n, d in blobs.items()}
    for name in list(blobs)[:4]:
        b.remove("data", name)
    assert sorted(n for n, _ in b.list("data")) == sorted(blobs)[4:]
    assert b.retries >= 10 and set(proxy.injected) == set(actions)
    # the parts were uploaded again after the 503; the lost completion was found and verified
    assert multipart["PUT"] == 3 and multipart["complete"] == 1


def test_s3_lost_response_to_a_conditional_put_is_not_a_conflict(proxy):
    b = _proxied(proxy)
    b.create_layout()
    seen = Counter()

    def decide(method, path, n):
        if method == "PUT" and path.endswith("/index/i1"):
            seen[path] += 1
            return "drop-response" if seen[path] == 1 else "pass"
        return "pass"

    proxy.decide = decide
    b.save("index", "i1", b"the index")          # stored, answer lost, retried: 412, verified
    assert b.load("index", "i1") == b"the index" and b.retries == 1
    assert proxy.injected["drop-response"] == 1 and sum(seen.values()) == 2
    with pytest.raises(ObjectExists):            # without a failure it is a plain conflict
        b.save("index", "i1", b"the index")


def test_s3_access_denied_is_permanent_and_names_no_secret(proxy, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    b = _proxied(proxy)
    b.create_layout()
    b.save("keys", "k", b"x")
    proxy.decide = lambda m, p, n: "403" if m == "GET" else "pass"
    with pytest.raises(BackendError) as e:
        b.load("keys", "k")
    assert not isinstance(e.value, TransientBackendError) and b.retries == 0
    msg = str(e.value)
    assert "AccessDenied" in msg and b.bucket in msg and "s3cr3t" not in msg and "\n" not in msg


def test_cli_backup_and_restore_through_a_faulty_network(proxy, tmp_path, monkeypatch, capsys):
    src = tmp_path / "src"
    _, col = chroma_collection(src, "docs", None)
    add_records(col, *make_records(400, dim=32))
    actions = ["503", "drop", "drop-response", "truncate"]
    proxy.decide = lambda m, p, n: actions[(n // 7) % len(actions)] if n % 7 == 0 else "pass"
    url = f"s3://{_bucket()}/nightly"
    monkeypatch.setenv("VDEDUP_S3_ENDPOINT", proxy.endpoint)
    assert vdedup("--repo", url, "init") == 0
    assert vdedup("--repo", url, "backup", f"chroma://{src}") == 0
    dst = tmp_path / "dst"
    assert vdedup("--repo", url, "restore", "latest", "--target", f"chroma://{dst}") == 0
    assert_same_records(read_all(src, "docs"), read_all(dst, "docs"))
    proxy.decide = lambda m, p, n: "pass"
    assert vdedup("--repo", url, "check", "--read-data") == 0
    assert sum(proxy.injected.values()) >= 5


def test_saved_objects_leave_the_page_cache_only_after_they_are_on_disk(tmp_path, monkeypatch):
    """(Saves written through the page cache: small objects, or a file system without
    direct writes.) A local save fsyncs the object; the pages of the objects saved before the last
    KEEP_CACHED bytes are then dropped from the page cache (a backup writes gigabytes it
    will not read back), the latest stay (a restore soon after reads them); every object
    reads back whole afterwards."""
    from vdedup import directio as direct
    from vdedup.backend import local
    calls = []
    real_fsync, real_fadvise = os.fsync, os.posix_fadvise
    monkeypatch.setattr(direct, "MIN_SIZE", 1 << 40)        # every save through the page cache
    monkeypatch.setattr(local, "KEEP_CACHED", 7 << 20)
    monkeypatch.setattr(local.os, "fsync",
                        lambda fd: (calls.append(("fsync", os.fstat(fd).st_ino)), real_fsync(fd))[1])
    monkeypatch.setattr(local, "_FADVISE", lambda fd, off, n, advice: (
        calls.append(("fadvise", os.fstat(fd).st_ino, advice)), real_fadvise(fd, off, n, advice))[1])
    b = LocalBackend(str(tmp_path / "repo"))
    names = [f"ab{i:062d}" for i in range(4)]
    datas = [os.urandom(3 << 20) for _ in names]
    for name, data in zip(names, datas):
        b.save("data", name, data)
    inos = [os.stat(os.path.join(b.location, "data", "ab", n)).st_ino for n in names]
    dropped = [c[1] for c in calls if c[0] == "fadvise"]
    assert all(c[2] == os.POSIX_FADV_DONTNEED for c in calls if c[0] == "fadvise")
    assert dropped == inos[:2]                  # 12 MB saved: the first two leave, 6 MB stay
    for ino in dropped:
        assert calls.index(("fsync", ino)) < next(k for k, c in enumerate(calls) if c[:2] == ("fadvise", ino))
    for name, data in zip(names, datas):
        assert b.load("data", name) == data
