"""The restore wizard's other modes, over HTTP with a session: a new index in the asset's own
database (an embedded Chroma), and in place after a safety snapshot; each restored collection
compared record by record with what was backed up."""
from __future__ import annotations

import re
import time
from pathlib import Path

from portaltest import Portal, http
from test_portal_security import login
from vdtest import PASSWORD, add_records, assert_same_records, chroma_collection, make_records, read_all, vdedup


def _release_chroma() -> None:
    """Drop this process's cached Chroma clients, so that the portal's process and this one
    never hold the same directory open at once."""
    from chromadb.api.client import SharedSystemClient
    SharedSystemClient.clear_system_cache()


def _wait(base: str, cookie: str, location: str) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status, _, body = http("GET", base + location, headers={"Cookie": cookie})
        page = body.decode()
        if 'data-finished="yes"' in page:
            return page
        time.sleep(0.3)
    raise AssertionError(f"job {location} did not end")


def test_new_index_and_in_place(repo: Path, tmp_path: Path) -> None:
    from portaltest import start_portal
    chroma = tmp_path / "chroma"
    client, col = chroma_collection(chroma, "docs", None)
    add_records(col, *make_records(120, dim=8))
    del client, col
    _release_chroma()
    assert vdedup("--repo", str(repo), "connect", "--provider", "chroma", "--name", "docs",
                  f"chroma://{chroma}", "--no-secret") == 0
    assert vdedup("--repo", str(repo), "backup", "--asset", "docs") == 0
    original = read_all(chroma, "docs")
    _release_chroma()
    portal = start_portal(repo, tmp_path / "logs")
    try:
        cookie, csrf = login(portal)
        base = portal.base
        form = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded", "Origin": base}

        def post(path: str, body: str) -> tuple[int, dict, str]:
            status, headers, raw = http("POST", base + path, f"csrf={csrf}&{body}".encode(), form)
            return status, headers, raw.decode()

        status, _, raw = http("GET", base + "/assets/docs/restore?snapshot=latest", headers={"Cookie": cookie})
        snap = re.search(r'name="snapshot" value="([0-9a-f]{64})"', raw.decode()).group(1)

        # a new index in the same database, under another name
        choice = f"snapshot={snap}&mode=new&as_name=docs_copy&collection=docs"
        status, _, page = post("/assets/docs/restore/plan", choice)
        assert status == 200, page[-800:]
        assert re.search(r'id="plan-total">120<', page)
        assert "docs_copy" in page
        status, headers, _ = post("/assets/docs/restore/run", choice)
        assert status == 303
        page = _wait(base, cookie, headers["location"])
        assert "restored 120 records into docs_copy" in page
        _release_chroma()
        assert_same_records(read_all(chroma, "docs_copy"), original)
        _release_chroma()

        # the same again is refused: the new index holds records now
        status, headers, _ = post("/assets/docs/restore/run", choice)
        page = _wait(base, cookie, headers["location"])
        assert "already holds records" in page and 'class="badge bad"' in page

        # change the source, then put it back in place
        client, col = chroma_collection(chroma, "docs", None)
        col.delete(ids=[f"doc-{i:06d}#chunk-{i % 4}" for i in range(10)])
        ids, emb, metas, docs, uris = make_records(5, dim=8, seed=9, start=200)
        col.add(ids=ids, embeddings=emb, metadatas=metas, documents=docs, uris=uris)
        del client, col
        _release_chroma()
        choice = f"snapshot={snap}&mode=inplace&collection=docs"
        status, _, page = post("/assets/docs/restore/plan", choice)
        assert status == 200, page[-800:]
        assert "Safety snapshot" in page
        row = re.search(r"<tr><td>docs</td><td><strong>docs</strong></td><td>\(default\)</td>"
                        r'<td class="num">([\d,]+)</td><td class="num">([\d,]+)</td><td class="num">([\d,]+)</td>', page)
        assert row is not None, page[-1500:]
        assert (row.group(1), row.group(2), row.group(3)) == ("10", "5", "110")    # write, delete, unchanged
        status, headers, _ = post("/assets/docs/restore/run", choice)
        page = _wait(base, cookie, headers["location"])
        assert "safety snapshot" in page and 'class="badge ok"' in page, page[-1500:]
        _release_chroma()
        assert_same_records(read_all(chroma, "docs"), original)
        _release_chroma()
    finally:
        assert portal.stop() == 0
    # the safety snapshots are the asset's versions too (so the portal can undo the restore)
    from vdedup.backend import open_backend
    from vdedup.repository import Repository
    with Repository.open(open_backend(str(repo)), PASSWORD) as r:
        tags = [s.tags for s in r.list_snapshots()]
    assert sum("safety" in t and "asset:docs" in t for t in tags) == 1       # the restore's (a plan takes none)
