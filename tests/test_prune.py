"""prune: a prune killed (SIGKILL) at several points leaves a repository that check --read-data
passes and whose kept snapshots restore bit for bit, and a re-run completes it; prune refuses
while another process holds a lock; packs no index names are kept for a grace period."""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time

import pytest

from test_forget import backend_for, copy_repo, build_nightly, _used_blob_count  # noqa: F401
from vdedup.backend.base import FileType
from vdtest import PASSWORD, assert_same_records, read_all, vdedup, vdedup_proc


@pytest.fixture(scope="module")
def nightly_source(tmp_path_factory):
    return build_nightly(tmp_path_factory.mktemp("nightly"))


@pytest.fixture(scope="module")
def mixed_source(tmp_path_factory):
    """The nightly repository whose night 4 pack ends up half used (build_nightly's `mixed`)."""
    return build_nightly(tmp_path_factory.mktemp("mixed"), mixed=True)


def _forget(source, repo_url, capsys):
    """A copy of a nightly repository with four of its seven snapshots forgotten."""
    copy_repo(source["repo"], repo_url)
    assert vdedup("--repo", repo_url, "forget", "--keep-last", "2", "--keep-weekly", "2") == 0
    capsys.readouterr()
    return {**source, "repo": repo_url}


@pytest.fixture
def forgotten(nightly_source, repo_url, monkeypatch, capsys):
    """The nightly repository with four of its seven snapshots forgotten."""
    monkeypatch.setenv("VDEDUP_PACK_SIZE", "1")
    return _forget(nightly_source, repo_url, capsys)


@pytest.fixture
def mixed_forgotten(mixed_source, repo_url, monkeypatch, capsys):
    """The mixed nightly repository with snapshots 0, 1, 2 and 4 forgotten: night 4's pack
    holds blobs snapshot 5 uses and blobs no kept snapshot uses."""
    monkeypatch.setenv("VDEDUP_PACK_SIZE", "1")
    return _forget(mixed_source, repo_url, capsys)


def _json(capsys, *args, code: int = 0):
    capsys.readouterr()
    assert vdedup(*args) == code
    return json.loads(capsys.readouterr().out)


def _names(backend, ftype) -> set[str]:
    return {n for n, _ in backend.list(ftype)}


POINTS = {
    # the step that must have happened when the prune is killed
    "first-new-pack": lambda b, p0, i0: bool(_names(b, FileType.DATA) - p0),
    "first-new-index": lambda b, p0, i0: bool(_names(b, FileType.INDEX) - i0),
    "first-index-deleted": lambda b, p0, i0: bool(i0 - _names(b, FileType.INDEX)),
    "first-pack-deleted": lambda b, p0, i0: bool(p0 - _names(b, FileType.DATA)),
}


# every point on the local backend; the last one on S3 too (slower). The repack points
# (first-new-pack, first-new-index) need a pack that holds both kept and forgotten blobs:
# under per-part compaction every row of a kept part's base and delta runs stays reachable, so
# the plain nightly repository only ever frees whole packs; they run on the mixed one.
REPACK_POINTS = {"first-new-pack", "first-new-index"}


@pytest.mark.parametrize("repo_url,point", [("local", p) for p in POINTS] + [("s3", "first-pack-deleted")],
                         indirect=["repo_url"])
def test_prune_killed_midway_loses_nothing_and_rerun_completes(request, repo_url, point, tmp_path, capsys):
    forgotten = request.getfixturevalue("mixed_forgotten" if point in REPACK_POINTS else "forgotten")
    repo, ids, states = forgotten["repo"], forgotten["ids"], forgotten["states"]
    backend = backend_for(repo)
    packs0, index0 = _names(backend, FileType.DATA), _names(backend, FileType.INDEX)
    reached = POINTS[point]
    proc = subprocess.Popen([sys.executable, "-m", "vdedup_cli.main", "--repo", str(repo), "prune",
                             "--max-unused", "0%"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 120
    hit = False
    while time.time() < deadline and proc.poll() is None:
        try:
            if reached(backend, packs0, index0):
                hit = True
                break
        except OSError:      # LocalBackend.list races with a concurrent remove: poll again
            continue
    if proc.poll() is not None:
        pytest.fail(f"prune finished (rc {proc.returncode}) before {point} could be caught: "
                    + proc.stderr.read().decode()[-500:])
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert hit
    # nothing lost: every snapshot's data is indexed, present and intact
    capsys.readouterr()
    assert vdedup("--repo", repo, "check", "--read-data") == 0, capsys.readouterr().err
    dst = tmp_path / "dst"
    assert vdedup("--repo", repo, "restore", ids[3], "--target", f"chroma://{dst}") == 0
    assert_same_records(states[3], read_all(dst, "docs"))
    # a re-run (the killed prune's lock is stale: its process is gone) finishes the work
    again = _json(capsys, "--repo", repo, "prune", "--max-unused", "0%", "--json")
    assert again["unindexed_kept"] == 0
    chk = _json(capsys, "--repo", repo, "check", "--json")
    assert chk["ok"] and chk["warnings"] == []                       # no pack left unindexed
    st = _json(capsys, "--repo", repo, "stats", "--json")
    assert _used_blob_count(repo) == st["blobs"]                     # nothing unused left
    done = _json(capsys, "--repo", repo, "prune", "--max-unused", "0%", "--json")
    assert done["packs_deleted"] == done["packs_repacked"] == done["bytes_freed"] == 0
    assert [s["id"] for s in _json(capsys, "--repo", repo, "snapshots", "--json")] == [ids[3], ids[5], ids[6]]


HOLD_LOCK = """
import sys, time
from vdedup.backend import open_backend
from vdedup.repository import Repository
repo = Repository.open(open_backend(sys.argv[1], s3_endpoint=sys.argv[2] or None), sys.argv[3])
lock = repo.lock(exclusive=False, operation="backup")
print("locked", flush=True)
time.sleep(120)
"""


def test_prune_and_forget_refuse_while_a_lock_is_held(forgotten):
    repo = forgotten["repo"]
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(repo), os.environ.get("VDEDUP_S3_ENDPOINT", ""),
                               PASSWORD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == b"locked", holder.stderr.read().decode()[-500:]
        before = _names(backend_for(repo), FileType.DATA)
        r = vdedup_proc("--repo", repo, "prune")
        assert r.returncode == 11, r.stderr
        assert "locked" in r.stderr and "backup" in r.stderr and "Traceback" not in r.stderr
        r = vdedup_proc("--repo", repo, "forget", "--keep-last", "1")
        assert r.returncode == 11, r.stderr
        assert _names(backend_for(repo), FileType.DATA) == before
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    # the holder is dead: its lock is stale and blocks nothing any more
    assert vdedup_proc("--repo", repo, "prune").returncode == 0


def test_unindexed_packs_are_kept_for_the_grace_period(forgotten, capsys):
    repo = forgotten["repo"]
    backend = backend_for(repo)
    # what an interrupted backup leaves: a pack that no index file names
    some = sorted(_names(backend, FileType.DATA))[0]
    stray = secrets.token_hex(32)
    backend.save(FileType.DATA, stray, backend.load(FileType.DATA, some))
    first = _json(capsys, "--repo", repo, "prune", "--json")
    assert first["unindexed_kept"] == 1 and stray in _names(backend, FileType.DATA)
    assert _json(capsys, "--repo", repo, "prune", "--keep-unindexed-for", "1h", "--json")["unindexed_kept"] == 1
    plan = _json(capsys, "--repo", repo, "prune", "--keep-unindexed-for", "0", "--dry-run", "--json")
    assert plan["unindexed_deleted"] == 1 and stray in _names(backend, FileType.DATA)
    last = _json(capsys, "--repo", repo, "prune", "--keep-unindexed-for", "0", "--json")
    assert last["unindexed_deleted"] == 1 and stray not in _names(backend, FileType.DATA)
    capsys.readouterr()
    assert vdedup("--repo", repo, "prune", "--max-unused", "lots") == 2
    assert vdedup("--repo", repo, "check", "--read-data") == 0


def test_index_files_shared_by_kept_and_removed_packs_are_rewritten(forgotten, capsys, tmp_path):
    """One index file naming every pack (as a repository with bigger index files has): prune
    must write a new index for the packs that stay before it removes that file."""
    from test_forget import _open
    from vdedup.format import pack as packfmt
    from vdedup.format.objects import ObjectType
    repo_url, ids, states = forgotten["repo"], forgotten["ids"], forgotten["states"]
    # data no kept snapshot uses: a backup of another source, then removed as forget does
    # (the nightly chain keeps every delta layer its newest snapshot reads: parts are
    # rewritten at most every 8 backups, so forgetting old nights frees nothing yet)
    from vdedup.assets.audit import AuditLog
    from vdtest import add_records, chroma_collection, make_records
    _, col = chroma_collection(tmp_path / "other", "docs", "l2")
    add_records(col, *make_records(300, dim=16, seed=9))
    extra = _json(capsys, "--repo", repo_url, "backup", f"chroma://{tmp_path / 'other'}", "--json")
    repo = _open(repo_url)
    try:
        repo.remove_snapshot(extra["snapshot_id"])
        AuditLog(repo).append("forget", removed=[extra["snapshot_id"]])
        merged, old = {}, []
        for name, body in repo.index_files():
            merged.update(body)
            old.append(name)
        name = secrets.token_hex(32)
        repo.backend.save(FileType.INDEX, name, repo.seal(ObjectType.INDEX, name, packfmt.encode_index(merged)))
        for o in old:
            repo.backend.remove(FileType.INDEX, o)
    finally:
        repo.close()
    res = _json(capsys, "--repo", repo_url, "prune", "--max-unused", "0%", "--json")
    assert res["packs_repacked"] + res["packs_deleted"] >= 1
    assert res["packs"] - res["packs_repacked"] - res["packs_deleted"] >= 1
    assert res["index_files_deleted"] == 1 and res["index_files_written"] == 1
    assert res["unused_after"] <= 0.1 / 0.9 * res["used_bytes"]
    capsys.readouterr()
    assert vdedup("--repo", repo_url, "check", "--read-data") == 0
    dst = tmp_path / "dst"
    assert vdedup("--repo", repo_url, "restore", ids[6], "--target", f"chroma://{dst}") == 0
    assert_same_records(states[6], read_all(dst, "docs"))


def test_prune_repacks_a_pack_holding_kept_and_forgotten_blobs(mixed_forgotten, capsys, tmp_path):
    """Night 4's pack holds vectors snapshot 5 still uses and vectors only the forgotten
    snapshot 4 used: prune copies the used ones into a new pack and deletes the old one;
    every kept snapshot then restores exactly and nothing unused is left."""
    repo, ids, states = mixed_forgotten["repo"], mixed_forgotten["ids"], mixed_forgotten["states"]
    backend = backend_for(repo)
    packs0 = _names(backend, FileType.DATA)
    res = _json(capsys, "--repo", repo, "prune", "--max-unused", "0%", "--json")
    assert res["packs_repacked"] >= 1, res
    assert _names(backend, FileType.DATA) - packs0                    # the repacked blobs' new pack
    capsys.readouterr()
    assert vdedup("--repo", repo, "check", "--read-data") == 0, capsys.readouterr().err
    st = _json(capsys, "--repo", repo, "stats", "--json")
    assert _used_blob_count(repo) == st["blobs"]
    for k in (3, 5, 6):
        dst = tmp_path / f"dst-{k}"
        assert vdedup("--repo", repo, "restore", ids[k], "--target", f"chroma://{dst}") == 0
        assert_same_records(states[k], read_all(dst, "docs"))
