"""Who may use the portal: without the one-time token every route answers 403; the token works
once and becomes an HttpOnly, SameSite=Strict cookie; the Host must be the portal's; a
state-changing request from another origin, or without the session's CSRF token, is refused,
also when a real browser submits it from another site's page."""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from portaltest import Portal, http, start_portal
from vdtest import PASSWORD, vdedup


def app_routes(repo: Path) -> list[tuple[str, str]]:
    """Every (method, path) the portal serves, from the application itself."""
    from vdedup.backend import open_backend
    from vdedup.repository import Repository
    from vdedup_portal.app import create_app, routes
    from vdedup_portal.state import PortalState

    with Repository.open(open_backend(str(repo)), PASSWORD) as r:
        found = routes(create_app(PortalState(r, str(repo), 1)))
    return [(m, re.sub(r"\{(\w+)\}", lambda g: {"name": "docs", "id": "0123456789abcdef"}[g.group(1)], p))
            for m, p in found]


def login(portal: Portal) -> tuple[str, str]:
    """(cookie header, CSRF token) of a session opened with the one-time link."""
    status, headers, _ = http("GET", portal.link)
    assert status == 303
    cookie = headers["set-cookie"].split(";", 1)[0]
    status, _, body = http("GET", portal.base + "/connect", headers={"Cookie": cookie})
    assert status == 200
    csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
    return cookie, csrf


@pytest.fixture
def docs_asset(repo: Path, tmp_path: Path) -> str:
    """A connected asset (an embedded Chroma directory: no secret) for routes that need one."""
    import chromadb
    from vdtest import add_records, chroma_collection, make_records
    client, col = chroma_collection(tmp_path / "chroma", "docs", None)
    add_records(col, *make_records(30, dim=8))
    del client, col
    assert vdedup("--repo", str(repo), "connect", "--provider", "chroma", "--name", "docs",
                  f"chroma://{tmp_path / 'chroma'}", "--no-secret") == 0
    return "docs"


def test_every_route_refuses_without_a_session(portal: Portal, repo: Path) -> None:
    routes = app_routes(repo)
    assert len(routes) >= 18
    assert ("POST", "/assets/docs/backup") in routes and ("GET", "/static/portal.css") in routes
    for method, path in routes + [("GET", "/no/such/page"), ("POST", "/no/such/page"), ("DELETE", "/assets")]:
        for suffix, headers in (("", {}), ("?token=not-the-token", {}),
                                ("", {"Cookie": "vdedup_portal_%d=forged" % int(portal.base.rsplit(":", 1)[1])})):
            data = b"csrf=x" if method == "POST" else None
            status, _, body = http(method, portal.base + path + suffix, data=data, headers=headers)
            assert status == 403, (method, path, suffix, headers)
            assert b"Traceback" not in body and b"portal.css" not in body


def test_the_token_works_once_and_becomes_a_strict_cookie(portal: Portal) -> None:
    assert portal.link.startswith(portal.base + "/?token=")
    status, headers, _ = http("GET", portal.link)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert http("GET", portal.link)[0] == 403                # used once: gone
    session = cookie.split(";", 1)[0]
    status, headers, body = http("GET", portal.base + "/assets", headers={"Cookie": session})
    assert status == 200 and b"Vector Databases" in body
    assert headers["cache-control"] == "no-store" and headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in headers["content-security-policy"]
    # the token in a later URL of a session is dropped, and not taken as a new login
    status, headers, _ = http("GET", portal.base + "/audit?token=whatever&x=1", headers={"Cookie": session})
    assert status == 303 and headers["location"] == "/audit?x=1" and "set-cookie" not in headers
    # another Host (DNS rebinding) is refused even with the session
    status, _, _ = http("GET", portal.base + "/assets", headers={"Cookie": session, "Host": "attacker.example"})
    assert status == 403


def test_state_changing_requests_need_origin_and_csrf(portal: Portal, repo: Path, docs_asset: str) -> None:
    cookie, csrf = login(portal)
    form = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    posts = [p for m, p in app_routes(repo) if m == "POST"]
    assert len(posts) >= 7
    for path in posts:
        url = portal.base + path
        # from another origin, or not saying where it comes from: refused before any route runs
        assert http("POST", url, f"csrf={csrf}".encode(), {**form, "Origin": "http://attacker.example"})[0] == 403
        assert http("POST", url, f"csrf={csrf}".encode(), {**form, "Origin": "http://127.0.0.1:1"})[0] == 403
        assert http("POST", url, f"csrf={csrf}".encode(), {**form, "Sec-Fetch-Site": "cross-site",
                                                           "Origin": portal.base})[0] == 403
        assert http("POST", url, f"csrf={csrf}".encode(), form)[0] == 403
        # from the portal's origin, but without the session's CSRF token
        assert http("POST", url, b"", {**form, "Origin": portal.base})[0] == 403
        assert http("POST", url, b"csrf=guessed", {**form, "Origin": portal.base})[0] == 403
    # with both, the request goes through (and nothing was started by the refused ones)
    status, _, body = http("GET", portal.base + "/jobs", headers={"Cookie": cookie})
    assert b"No jobs since the portal started" in body
    status, headers, _ = http("POST", portal.base + "/assets/docs/backup", f"csrf={csrf}".encode(),
                              {**form, "Origin": portal.base})
    assert status == 303 and headers["location"].startswith("/jobs/")


class _AttackerPage(BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:
        body = (f'<!doctype html><form id="f" method="post" action="{self.target}">'
                '<input name="csrf" value="guessed"></form>'
                '<script>document.getElementById("f").submit()</script>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def attacker() -> Iterator[tuple[ThreadingHTTPServer, type]]:
    handler = type("Handler", (_AttackerPage,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_cross_site_form_in_a_real_browser_is_refused(portal: Portal, docs_asset: str, browser: Any,
                                                        attacker: Any, host: str) -> None:
    """Another site's page (127.0.0.1 on another port is the same site, so the SameSite cookie
    goes along; localhost is another site, so it does not) submits a form to Backup now."""
    server, handler = attacker
    handler.target = portal.base + "/assets/docs/backup"
    page = browser.new_page()
    page.goto(portal.link)
    assert page.url == portal.base + "/assets"
    with page.expect_response(handler.target) as refused:
        page.goto(f"http://{host}:{server.server_address[1]}/")
    assert refused.value.status == 403
    assert "403 Forbidden" in page.content()
    page.goto(portal.base + "/jobs")
    assert "No jobs since the portal started" in page.content()
    page.goto(portal.base + "/audit")
    assert "portal backup" not in page.content()
    # the same button on the portal's own page works
    page.goto(portal.base + "/assets/docs")
    page.click("#backup-now")
    page.wait_for_selector("#job-status[data-finished=yes]", timeout=120_000)
    assert page.locator("#job-status .badge").inner_text() == "ok"


def test_bad_input_gets_a_plain_message(portal: Portal, repo: Path, docs_asset: str, tmp_path: Path) -> None:
    cookie, csrf = login(portal)
    base = portal.base
    form = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded", "Origin": base}

    def post(path: str, body: str) -> tuple[int, str]:
        status, _, raw = http("POST", base + path, f"csrf={csrf}&{body}".encode(), form)
        return status, raw.decode()

    def get(path: str) -> tuple[int, str]:
        status, _, raw = http("GET", base + path, headers={"Cookie": cookie})
        return status, raw.decode()

    cases = [
        (get("/assets/nope"), 404, "no connected asset named &#39;nope&#39;"),
        (get("/jobs/ffffffffffffffff"), 404, "no such job"),
        (get("/assets/docs/restore?at=not-a-time"), 400, "not a date and time"),
        (get("/assets/docs/restore?snapshot=abcdef12"), 404, "the asset has no versions yet"),
        (post("/connect", "provider=pinecone&name=bad+name%21&url=&secret=x"), 400, "invalid asset name"),
        (post("/connect", "provider=oracle&name=a&url=&secret=x"), 400, "unknown provider"),
        (post("/connect", "provider=pinecone&name=a&url=&secret="), 400, "paste the API key"),
        (post("/connect", "provider=chroma&name=docs&url=chroma%3A%2F%2F%2Ftmp%2Fx&secret="), 400,
         "already connected"),
        (post("/connect", "provider=qdrant&name=a&url=chroma%3A%2F%2F%2Ftmp&secret="), 400,
         "that is a chroma address, not Qdrant"),
        (post("/connect/save", "pending=nope&index=x"), 400, "has expired"),
        (post("/assets/nope/backup", ""), 404, "no connected asset named"),
    ]
    for (status, page), want_status, want in cases:
        assert status == want_status, (want, page[-600:])
        assert want in page, (want, page[-600:])
        assert "Traceback" not in page and 'File "' not in page
    # a password inside a connection string is taken out and never shown again
    status, page = post("/connect", "provider=qdrant&name=q1&url=qdrant%3A%2F%2Fadmin%3Ahunter2-pw%40127.0.0.1%3A1&secret=")
    assert status in (400, 502) and "hunter2-pw" not in page and 'class="notice bad"' in page
    # a restore of a version with a filter that does not parse, then a time before the first version
    assert vdedup("--repo", str(repo), "backup", "--asset", "docs") == 0
    status, page = get("/assets/docs/restore?snapshot=latest")
    snap = re.search(r'name="snapshot" value="([0-9a-f]{64})"', page).group(1)
    status, page = post("/assets/docs/restore/plan",
                        f"snapshot={snap}&mode=other&target_url=chroma%3A%2F%2F{tmp_path}%2Fout&collection=docs"
                        "&where=page+%3E%3E+3")
    assert status == 400 and "filter:" in page and "Traceback" not in page
    status, page = post("/assets/docs/restore/plan", f"snapshot={snap}&mode=other&target_url=&collection=docs")
    assert status == 400 and "choose a connected asset or give the target" in page
    status, page = post("/assets/docs/restore/plan", f"snapshot={snap}&mode=other&target_url=chroma%3A%2F%2F{tmp_path}%2Fout")
    assert status == 400 and "choose at least one index" in page
    status, page = get("/assets/docs/restore?at=2000-01-01T00:00")
    assert status == 404 and "no snapshot at or before" in page
