"""One damaged object does not take the repository down, a lost pack does not poison later
backups, and `repair index` / `repair snapshots` bring a damaged repository back to a state
that checks clean, keeping everything that is intact (issue 19, items 0 and 3).

Real processes, as a user: byte flips and deletions in the repository's files, restores
compared bit for bit with the source."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from vdtest import add_records, assert_same_records, chroma_collection, make_records, read_all, vdedup_proc


def _run(*args, code: int = 0, env: dict | None = None):
    proc = vdedup_proc(*args, env=env)
    assert proc.returncode == code, (args, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def _flip(path, offset=None):
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if offset is None else offset] ^= 0x01
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))


def _files(repo, kind):
    """The objects of one kind, oldest first."""
    return sorted((p for p in (repo / kind).rglob("*") if p.is_file()), key=lambda p: p.stat().st_mtime_ns)


def _source(tmp_path, name, n, seed, dim=8):
    path = tmp_path / name
    _, col = chroma_collection(path, "docs", None)
    add_records(col, *make_records(n, dim=dim, seed=seed))
    return path


def _restore(repo, ref, target, code=0):
    return _run("--repo", repo, "restore", ref, "--target", f"chroma://{target}", code=code)


def _check(repo, *extra, code=17):
    return json.loads(_run("--repo", repo, "check", "--json", *extra, code=code).stdout)


@pytest.fixture
def two_sources(tmp_path, repo_path):
    """Sources a and b backed up once each (a, then b): separate packs and index files."""
    a, b = _source(tmp_path, "a", 200, 1), _source(tmp_path, "b", 200, 2)
    _run("--repo", repo_path, "init")
    _run("--repo", repo_path, "backup", f"chroma://{a}")
    _run("--repo", repo_path, "backup", f"chroma://{b}")
    snaps = json.loads(_run("--repo", repo_path, "snapshots", "--json").stdout)
    return a, b, snaps[0]["id"], snaps[1]["id"]


def test_damaged_snapshot_spares_the_others_and_repair_moves_it_aside(two_sources, repo_path, tmp_path):
    a, b, sa, sb = two_sources
    _run("--repo", repo_path, "backup", f"chroma://{b}")          # latest is not the damaged one
    _flip(repo_path / "snapshots" / sa)
    warn = f"snapshots/{sa[:16]}"

    p = _run("--repo", repo_path, "snapshots", "--json")
    assert sa not in p.stdout and len(json.loads(p.stdout)) == 2 and warn in p.stderr
    assert p.stderr.count("\n") == 1                                   # one line
    p = _run("--repo", repo_path, "ls", sb)
    assert warn in p.stderr
    for n, ref in enumerate((sb, sb[:8], "latest")):
        p = _restore(repo_path, ref, tmp_path / f"d{n}")
        assert warn in p.stderr
        assert_same_records(read_all(b, "docs"), read_all(tmp_path / f"d{n}", "docs"))
    # a backup of the damaged snapshot's source finds no parent, and still works
    p = _run("--repo", repo_path, "backup", f"chroma://{a}", "--json")
    assert json.loads(p.stdout)["parent"] is None and warn in p.stderr
    # the damaged one itself: exit 17, by id and by prefix
    for ref in (sa, sa[:8]):
        p = _restore(repo_path, ref, tmp_path / "bad", code=17)
        assert "damaged" in p.stderr
    p = _run("--repo", repo_path, "forget", "--keep-last", "1")
    assert warn in p.stderr
    assert any(sa[:8] in e for e in _check(repo_path)["errors"])

    # repair: moved aside (not deleted), said so, and the repository checks clean
    p = _run("--repo", repo_path, "repair", "snapshots", "--dry-run")
    assert sa[:8] in p.stdout and (repo_path / "snapshots" / sa).exists()
    p = _run("--repo", repo_path, "repair", "snapshots")
    assert sa[:8] in p.stdout and "damaged/" in p.stdout
    assert not (repo_path / "snapshots" / sa).exists()
    assert (repo_path / "damaged" / f"snapshots-{sa}").read_bytes()
    _check(repo_path, code=0)
    p = _run("--repo", repo_path, "snapshots")
    assert "warning" not in p.stderr


def test_damaged_index_file_spares_what_it_does_not_describe(two_sources, repo_path, tmp_path):
    a, b, sa, sb = two_sources
    index_b = _files(repo_path, "index")[-1]                          # written by b's backup
    _flip(index_b)
    shutil.rmtree(tmp_path / "cache")                                 # as on another machine

    p = _restore(repo_path, sa, tmp_path / "da")
    assert index_b.name[:16] in p.stderr
    assert_same_records(read_all(a, "docs"), read_all(tmp_path / "da", "docs"))
    _run("--repo", repo_path, "backup", f"chroma://{a}")
    p = _restore(repo_path, sb, tmp_path / "db", code=17)
    # prune cannot know what b's snapshot needs: it refuses and deletes nothing
    before = sorted(p.name for p in _files(repo_path, "data"))
    p = _run("--repo", repo_path, "prune", "--max-unused", "0%", "--keep-unindexed-for", "0", code=17)
    assert "repair index" in p.stderr
    assert sorted(p.name for p in _files(repo_path, "data")) == before

    out = _check(repo_path)
    assert any(index_b.name[:16] in e for e in out["errors"])
    affected = {(x["snapshot"], x["records_affected"]) for x in out["affected"]}
    assert affected == {(sb, 200)}, out["affected"]

    p = _run("--repo", repo_path, "repair", "index", "--dry-run")
    assert index_b.exists()
    p = _run("--repo", repo_path, "repair", "index")
    assert index_b.name[:16] in p.stderr and not index_b.exists()
    _check(repo_path, "--read-data", code=0)
    _restore(repo_path, sb, tmp_path / "db2")
    assert_same_records(read_all(b, "docs"), read_all(tmp_path / "db2", "docs"))
    p = _run("--repo", repo_path, "repair", "index")
    assert "nothing to repair" in p.stdout


def test_check_names_damaged_index_even_when_this_cache_still_knows_it(two_sources, repo_path):
    _, _, _, sb = two_sources
    _flip(_files(repo_path, "index")[-1])                             # the cache loaded it before
    out = _check(repo_path)
    assert {(x["snapshot"], x["records_affected"]) for x in out["affected"]} == {(sb, 200)}


@pytest.fixture
def multi_pack(tmp_path, repo_path, monkeypatch):
    """One source of 3,000 records of 1 KiB vectors in packs of 1 MiB: several packs, the
    oldest holding vectors only."""
    monkeypatch.setenv("VDEDUP_PACK_SIZE", "1")
    src = _source(tmp_path, "src", 3000, 3, dim=256)
    _run("--repo", repo_path, "init")
    _run("--repo", repo_path, "backup", f"chroma://{src}")
    packs = _files(repo_path, "data")
    assert len(packs) >= 2
    snap = json.loads(_run("--repo", repo_path, "snapshots", "--json").stdout)[0]["id"]
    return src, snap, packs


def test_deleted_pack_does_not_poison_the_next_backup(multi_pack, repo_path, tmp_path):
    src, first, packs = multi_pack
    packs[0].unlink()
    p = _run("--repo", repo_path, "backup", f"chroma://{src}", "--json")
    second = json.loads(p.stdout)["snapshot_id"]
    assert packs[0].name[:16] in p.stderr                          # said, and stored again
    assert json.loads(p.stdout)["bytes_added"] > 1 << 20
    _restore(repo_path, second, tmp_path / "d2")
    assert_same_records(read_all(src, "docs"), read_all(tmp_path / "d2", "docs"))
    out = _check(repo_path, "--read-data")
    assert all(x["snapshot"] != second for x in out["affected"])
    assert any(packs[0].name[:16] in e for e in out["errors"])       # the index still names it
    # the same vectors were stored again: the first snapshot is whole again too
    _restore(repo_path, first, tmp_path / "d1")
    assert_same_records(read_all(src, "docs"), read_all(tmp_path / "d1", "docs"))
    _run("--repo", repo_path, "repair", "index")
    _check(repo_path, "--read-data", code=0)


def test_deleted_pack_check_counts_records_and_repair_snapshots_keeps_the_rest(multi_pack, repo_path, tmp_path):
    src, first, packs = multi_pack
    packs[0].unlink()
    out = _check(repo_path)
    [hit] = out["affected"]
    assert hit["snapshot"] == first and 0 < hit["records_affected"] < 3000
    lost = hit["records_affected"]
    _restore(repo_path, first, tmp_path / "bad", code=17)

    p = _run("--repo", repo_path, "repair", "snapshots", "--dry-run")
    assert f"{lost} of 3000 records dropped" in p.stdout
    assert len(json.loads(_run("--repo", repo_path, "snapshots", "--json").stdout)) == 1
    p = _run("--repo", repo_path, "repair", "snapshots", "--json", "--record-ids")
    [rep] = json.loads(p.stdout)["repairs"]
    assert rep["snapshot"] == first and rep["records_dropped"] == lost and not rep["forgotten"]
    [ns] = rep["namespaces"]
    assert ns["dropped"] == lost and len(ns["dropped_ids"]) == lost
    p = _run("--repo", repo_path, "repair", "snapshots")            # ids are never printed as text
    assert "doc-" not in p.stdout + p.stderr
    new = rep["new_snapshot"]
    _restore(repo_path, new, tmp_path / "d")
    want = {k: v for k, v in read_all(src, "docs").items() if k not in set(ns["dropped_ids"])}
    assert_same_records(want, read_all(tmp_path / "d", "docs"))
    snaps = {s["id"]: s for s in json.loads(_run("--repo", repo_path, "snapshots", "--json").stdout)}
    assert set(snaps) == {first, new} and "repaired" in snaps[new]["tags"]

    _run("--repo", repo_path, "repair", "index")                   # forget the lost pack's entries
    out = _check(repo_path)                                        # the original still lacks them
    assert {x["snapshot"] for x in out["affected"]} == {first}
    p = _run("--repo", repo_path, "repair", "snapshots", "--forget")   # a copy exists: no second one
    assert "original removed" in p.stdout
    assert {s["id"] for s in json.loads(_run("--repo", repo_path, "snapshots", "--json").stdout)} == {new}
    _check(repo_path, "--read-data", code=0)
    _run("--repo", repo_path, "audit", "--verify")


def test_damaged_index_of_a_data_pack_prune_runs_and_keeps_its_pack(multi_pack, repo_path, tmp_path):
    src, first, packs = multi_pack
    index = _files(repo_path, "index")[0]              # names the oldest pack: vectors only
    _flip(index)
    shutil.rmtree(tmp_path / "cache")
    out = _check(repo_path)
    [hit] = out["affected"]
    assert hit["snapshot"] == first and 0 < hit["records_affected"] < 3000
    # prune runs (every manifest is readable) but keeps the damaged file and the pack it names
    p = _run("--repo", repo_path, "prune", "--max-unused", "0%", "--keep-unindexed-for", "0")
    assert index.name[:16] in p.stderr
    assert index.exists() and packs[0].exists()
    _run("--repo", repo_path, "backup", f"chroma://{src}")
    _run("--repo", repo_path, "repair", "index")
    _check(repo_path, "--read-data", code=0)
    _restore(repo_path, first, tmp_path / "d")
    assert_same_records(read_all(src, "docs"), read_all(tmp_path / "d", "docs"))
