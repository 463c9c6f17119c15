"""The portal end to end, in a real browser: connect a Pinecone project (the emulator the
official SDK talks to) by pasting a key and ticking two of its three indexes; back it up
twice with live progress; see both versions in the list and the plot, and their diff;
restore the first version into a local Qdrant through the wizard after reading its plan,
and compare every record bit for bit; read the verified audit log; run a check. Then the
pasted key must not be found anywhere: in a page, a response body or header the browser
saw, the portal's output, or any file under the repository, the cache or the test's tmp dir
(the browser's profile included).

With VDEDUP_PORTAL_SCREENSHOTS=DIR, the screenshots taken along the way are copied into DIR
(scripts/portal-screenshots.sh writes docs/portal/ this way).
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vdtest import require_module  # noqa: E402  (fails, not skips: tests/vdtest.py)
pinecone = require_module("pinecone")
qdrant_client = require_module("qdrant_client")

from portaltest import job_json, pinecone_emulator_class, start_portal  # noqa: E402

# (name, dim, metric, namespaces, records per namespace)
INDEXES = [("products", 16, "dotproduct", ("", "eu"), 240),
           ("faq", 8, "euclidean", ("",), 150),
           ("scratch", 4, "cosine", ("",), 20)]
CHOSEN = ("products", "faq")
ASSET = "customer-rag-index"
DEPLOYMENT = {"deployment_type": "managed", "cloud": "gcp", "region": "europe-west4"}


def make_vectors(name: str, dim: int, ns: str, n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((n, dim)).astype(np.float32)
    out = []
    for i in range(n):
        v: dict[str, Any] = {"id": f"{name}-{ns or 'default'}-{i:04d}", "values": dense[i].tolist()}
        if i % 5:
            v["metadata"] = {"title": f"{name} item {i} ü", "price": float(i) / 4, "in_stock": i % 2 == 0,
                             "tags": [f"t{i % 3}", f"c{i % 4}"][: i % 3]}
        out.append(v)
    return out


def seed(client: Any) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """Create the three indexes; returns (index, namespace) -> id -> record as written."""
    data: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for k, (name, dim, metric, namespaces, n) in enumerate(INDEXES):
        model = client.indexes.create(
            name=name, schema={"fields": {"_values": {"type": "dense_vector", "dimension": dim, "metric": metric}}},
            deployment=DEPLOYMENT, timeout=-1)
        index = client.index(host=model.host)
        for j, ns in enumerate(namespaces):
            vectors = make_vectors(name, dim, ns, n, seed=10 * k + j)
            index.upsert(vectors=vectors, namespace=ns)
            data[(name, ns)] = {v["id"]: v for v in vectors}
    return data


def change(client: Any) -> dict[str, int]:
    """Between the two backups: 10 records added, 5 vectors changed, 3 deleted in products/''."""
    index = client.index(host=client.indexes.describe("products").host)
    added = make_vectors("products", 16, "", 250, seed=99)[240:]
    index.upsert(vectors=added, namespace="")
    moved = make_vectors("products", 16, "", 5, seed=77)
    index.upsert(vectors=moved, namespace="")
    index.delete(ids=[f"products-default-{i:04d}" for i in range(100, 103)], namespace="")
    return {"added": 10, "changed": 5, "removed": 3}


def read_qdrant(path: Path) -> dict[str, dict[str, tuple[bytes, dict[str, Any]]]]:
    """Every point of every collection: collection -> original id -> (float32 bytes, payload)."""
    from qdrant_client import QdrantClient
    out: dict[str, dict[str, tuple[bytes, dict[str, Any]]]] = {}
    with contextlib.closing(QdrantClient(path=str(path))) as client:
        for c in client.get_collections().collections:
            points: dict[str, tuple[bytes, dict[str, Any]]] = {}
            offset = None
            while True:
                batch, offset = client.scroll(c.name, limit=500, offset=offset, with_payload=True, with_vectors=True)
                for p in batch:
                    payload = dict(p.payload or {})
                    original = payload.pop("_vdedup_id")
                    assert original.startswith("str:")
                    vec = p.vector if not isinstance(p.vector, dict) else p.vector[""]
                    points[original[4:]] = (np.asarray(vec, dtype=np.float32).tobytes(), payload)
                if offset is None:
                    break
            out[c.name] = points
    return out


def typed(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [typed(x) for x in v]
    if isinstance(v, float):
        return ("float", np.float64(v).tobytes())
    return (type(v).__name__, v)


class Seen:
    """Everything the browser received: pages, response bodies and headers."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, int, dict[str, str], bytes]] = []
        self.pages: list[str] = []

    def attach(self, page: Any) -> None:
        def on_response(r: Any) -> None:
            try:
                body = r.body()
            except Exception:
                body = b""           # redirects have none
            self.responses.append((r.url, r.status, r.all_headers(), body))
        page.on("response", on_response)

    def statuses(self, pattern: str) -> list[dict[str, Any]]:
        import json
        return [json.loads(b) for url, status, _, b in self.responses
                if re.search(pattern, url) and status == 200 and b]


class Shots:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "screenshots"
        self.dir.mkdir()
        self.taken: list[Path] = []

    def take(self, page: Any, name: str) -> None:
        path = self.dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        self.taken.append(path)

    def publish(self) -> None:
        target = os.environ.get("VDEDUP_PORTAL_SCREENSHOTS")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            for p in self.taken:
                shutil.copyfile(p, Path(target) / p.name)


def wait_job(page: Any, timeout: float = 180_000) -> str:
    """On a job page: wait until the job has ended; returns its status."""
    page.wait_for_selector("#job-status[data-finished=yes]", timeout=timeout)
    return page.locator("#job-status .badge").inner_text()


def test_portal_end_to_end(repo: Path, tmp_path: Path, browser: Any) -> None:
    key = f"pcsk_{secrets.token_hex(6)}_PortalE2E_{secrets.token_hex(16)}"
    shots = Shots(tmp_path)
    emulator_cls = pinecone_emulator_class()
    with emulator_cls(key) as emu:
        client = pinecone.Pinecone(api_key=key, host=emu.url)
        originals = seed(client)
        portal = start_portal(repo, tmp_path / "logs", {"PINECONE_CONTROLLER_HOST": emu.url})
        try:
            seen = Seen()
            page = browser.new_page()
            seen.attach(page)
            try:
                _run_flow(page, browser, portal, emu, client, originals, key, tmp_path, shots, seen)
            except Exception:
                with contextlib.suppress(Exception):      # what the page showed, for the failure report
                    page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                    (tmp_path / "failure.html").write_text(page.content())
                raise
        finally:
            code = portal.stop()
    assert code == 0, portal.logs()[-2000:]
    logs = portal.logs()
    assert "Traceback" not in logs
    # ---- the key is nowhere --------------------------------------------------------------
    needle = key.encode()
    for url, status, headers, body in seen.responses:
        assert needle not in body, f"the key is in the response of {url}"
        assert key not in repr(headers), f"the key is in a header of {url}"
    for html in seen.pages:
        assert key not in html
    assert key not in logs
    roots = [repo, Path(os.environ["VDEDUP_CACHE_DIR"]), tmp_path]
    scanned = 0
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                scanned += 1
                with contextlib.suppress(OSError):
                    assert needle not in path.read_bytes(), f"the key is in {path}"
    assert scanned > 20
    # ... nor in what the repository holds encrypted: audit entries, snapshots, the asset's record;
    # the credential store itself holds it, sealed, and gives it back
    import json
    from vdedup.assets.audit import AuditLog
    from vdedup.assets.store import AssetStore
    from vdedup.backend import open_backend
    from vdedup.repository import Repository
    from vdtest import PASSWORD
    with Repository.open(open_backend(str(repo)), PASSWORD) as r:
        entries = AuditLog(r).verify()
        assert entries.ok
        stored = json.dumps([entries.entries, [s.to_dict() for s in r.list_snapshots()],
                             [a.to_public() for a in AssetStore(r).list()]])
        assert key not in stored and ASSET in stored
        store = AssetStore(r)
        assert store.secret(store.get(ASSET)) == key
    shots.publish()


def _run_flow(page: Any, context: Any, portal: Any, emu: Any, client: Any,
              originals: dict, key: str, tmp_path: Path, shots: Shots, seen: Seen) -> None:
    base = portal.base
    # ---- the one-time link becomes a session cookie -------------------------------------------
    page.goto(portal.link)
    assert page.url == base + "/assets"
    cookies = context.cookies(base)
    assert len(cookies) == 1 and cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert page.locator(".empty").is_visible()

    # ---- Connect Database: paste the key, tick two of three indexes ---------------------------
    page.click("text=Connect Database >> nth=0")
    assert page.url == base + "/connect"
    page.select_option("#provider", "pinecone")
    assert page.locator("#secret-label").inner_text() == "API key"
    page.fill("#name", ASSET)
    shots.take(page, "connect")
    wrong = "pcsk_wrong_" + secrets.token_hex(12)          # a wrong key: a plain message, not echoed
    page.fill("#secret", wrong)
    page.click("#discover")
    page.wait_for_selector("#error")
    assert "API key" in page.locator("#error").inner_text() or "401" in page.locator("#error").inner_text()
    assert wrong not in page.content() and page.input_value("#secret") == ""
    assert page.input_value("#name") == ASSET
    shots.take(page, "connect-error")
    page.fill("#secret", key)
    page.click("#discover")
    page.wait_for_selector("#found")
    seen.pages.append(page.content())
    rows = page.locator("#found tbody tr")
    assert rows.count() == 3
    found = {rows.nth(i).locator("td").nth(1).inner_text(): rows.nth(i).locator("td").nth(2).inner_text()
             for i in range(3)}
    assert found == {"products": "480", "faq": "150", "scratch": "20"}
    assert key not in page.content()
    assert page.locator("#secret").count() == 0       # the key is not carried in the form
    shots.take(page, "connect-indexes")
    for name in CHOSEN:
        page.check(f"#found input[value={name}]")
    page.click("#connect")
    page.wait_for_url(re.compile(rf"{re.escape(base)}/assets/{ASSET}\?connected=1"))
    assert "Connected" in page.locator(".notice.ok").inner_text()

    # ---- Test connection with the stored key ------------------------------------------------------
    page.click("#test-connection")
    page.wait_for_selector("#test-result")
    assert "reach 3 index" in page.locator("#test-result").inner_text()

    # ---- Backup now, with live progress -------------------------------------------------------------
    emu.slow = 0.1                       # long enough to watch it run
    page.click("#backup-now")
    page.wait_for_url(re.compile(rf"{re.escape(base)}/jobs/[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#phases .phase")
    assert wait_job(page) == "ok"
    emu.slow = 0.0
    polled = seen.statuses(rf"/jobs/{job_id}/status$")
    running = [s for s in polled if s["status"] == "running" and s["phases"]]
    assert running, "no progress was seen while the backup ran"
    assert any(p["done"] > 0 for s in running for p in s["phases"])
    result = page.locator("#job-result").inner_text()
    assert "630 records" in result and "saved" in result
    shots.take(page, "backup-job")
    final = job_json(context, base, job_id)
    assert final["status"] == "ok" and all(p["finished"] for p in final["phases"])

    # ---- a second backup after changes ------------------------------------------------------------
    delta = change(client)
    page.goto(f"{base}/assets/{ASSET}")
    page.click("#backup-now")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f]+$"))
    assert wait_job(page) == "ok"
    assert "637 records" in page.locator("#job-result").inner_text()

    # ---- the list, the versions and the plot ------------------------------------------------------
    page.goto(f"{base}/assets")
    row = page.locator(f"#assets tr[data-asset='{ASSET}']")
    text = row.inner_text()
    assert "pinecone" in text and "637" in text and "ok" in text
    assert row.locator(".chip").all_inner_texts() == ["faq", "products"]
    assert "2 versions" in text
    shots.take(page, "assets")
    page.click(f"text={ASSET}")
    page.wait_for_selector("#snapshots")
    assert page.locator("#snapshots tbody tr").count() == 2
    assert page.locator("svg.plot circle.pt.records").count() == 2
    assert page.locator("svg.plot circle.pt.data").count() == 2
    assert page.locator("svg.plot circle.pt.stored").count() == 2
    tips = page.locator("svg.plot circle.pt.records title").all_text_contents()
    assert any("630 records" in t for t in tips) and any("637 records" in t for t in tips)
    seen.pages.append(page.content())
    shots.take(page, "asset")

    # ---- diff between the two versions ----------------------------------------------------------------
    page.click("#compare")
    page.wait_for_selector("#diff")
    assert page.locator("#total-added").inner_text() == f"+{delta['added']}"
    assert page.locator("#total-removed").inner_text() == f"−{delta['removed']}"
    assert page.locator("#total-changed").inner_text() == f"~{delta['changed']}"
    shots.take(page, "diff")

    # ---- restore the first version into a local Qdrant, after reading the plan -----------------------
    qdrant_dir = tmp_path / "qdrant"
    page.goto(f"{base}/assets/{ASSET}")
    page.click("#restore")
    page.wait_for_selector("#version-form")
    first = page.locator("#version-form tbody tr").nth(1)          # newest first: the older one
    first.locator("input[type=radio]").check()
    shots.take(page, "restore-version")
    page.click("#choose-version")
    page.wait_for_selector("#restore-form")
    page.check("#mode-other")
    assert page.locator("#target_url").is_visible()
    assert not page.locator(".mode-detail[data-mode=inplace]").is_visible()
    page.fill("#target_url", f"qdrant+local://{qdrant_dir}")
    shots.take(page, "restore-options")
    page.click("#show-plan")
    page.wait_for_selector("#plan")
    plan = page.locator("#plan").inner_text()
    assert "pinecone → qdrant" in plan and "lossless" in plan
    assert page.locator("#plan-total").inner_text() == "630"
    targets = page.locator("#plan-table tbody tr td:nth-child(2)").all_inner_texts()
    assert sorted(targets) == ["faq", "products", "products__eu"]
    assert not qdrant_dir.exists()                                 # a dry run creates nothing
    seen.pages.append(page.content())
    shots.take(page, "restore-plan")
    page.click("#confirm")
    page.wait_for_url(re.compile(r".*/jobs/[0-9a-f]+$"))
    assert wait_job(page) == "ok"
    done = page.locator("#job-result").inner_text()
    for coll, n in (("products", 240), ("products__eu", 240), ("faq", 150)):
        assert f"restored {n} records into {coll}\n" in done + "\n"
    shots.take(page, "restore-job")
    restored = read_qdrant(qdrant_dir)
    expected = {"products": originals[("products", "")], "products__eu": originals[("products", "eu")],
                "faq": originals[("faq", "")]}
    assert set(restored) == set(expected)
    for coll, records in expected.items():
        got = restored[coll]
        assert set(got) == set(records), coll
        for rid, v in records.items():
            vec, payload = got[rid]
            assert vec == np.asarray(v["values"], dtype=np.float32).tobytes(), (coll, rid)
            assert typed(payload) == typed(v.get("metadata") or {}), (coll, rid)

    # ---- the audit log, verified ----------------------------------------------------------------------
    page.click("text=Audit log")
    page.wait_for_selector("#audit")
    assert "Chain verified" in page.locator("#verify").inner_text()
    ops = page.locator("#audit tbody tr td:nth-child(5)").all_inner_texts()
    assert ops.count("portal backup") == 2
    assert ops.count("portal connect") == 1
    assert ops.count("portal restore") == 2               # the plan (a dry run) and the restore
    assert "init" in ops
    seen.pages.append(page.content())
    shots.take(page, "audit")

    # ---- repository health: run a check --------------------------------------------------------------
    page.click("text=Health")
    page.wait_for_selector("#stats")
    page.check("input[name=read_data]")
    page.click("#run-check")
    assert wait_job(page) == "ok"
    assert "no errors were found" in page.locator("#job-result").inner_text()
    page.goto(f"{base}/health")
    assert "ok" in page.locator("#last-check").inner_text()
    seen.pages.append(page.content())
    shots.take(page, "health")
    page.goto(f"{base}/jobs")
    shots.take(page, "jobs")
    page.close()
