"""A nightly backup from a parent that this machine's index cache vouches for takes the
parent's vector blobs as stored (docs/design.md section 6): it looks up only the content
ids the parent's rows do not hold, stores exactly what a backup that looks up every id
stores, and restores bit for bit. It looks every id up again when a pack the cache names is
gone (the lost vectors are stored again), when the cache was filled before it kept its
packs, or when tasks in other processes wrote part of the parent.

Real repositories and the files connector (an export read in id order), the CLI run
in-process so that the index cache's look-ups can be counted."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from vdedup.backend import open_backend
from vdedup.repository import Repository
from vdedup.repository.index_cache import PACKS_KEPT, IndexCache
from vdtest import PASSWORD, vdedup

DIM = 256            # 1 KiB vectors: 3,000 of them fill several packs of 1 MiB
N = 3000


def _write(d: Path, ids: list[int], vectors: np.ndarray) -> None:
    """An export in id order: vectors.npy and records.jsonl (typed metadata)."""
    d.mkdir(parents=True, exist_ok=True)
    for f in ("vectors.npy", "records.jsonl"):
        (d / f).unlink(missing_ok=True)
    np.save(d / "vectors.npy", vectors.astype(np.float32))
    lines = [json.dumps({"id": f"doc-{i:06d}", "metadata": {"n": i, "f": i / 3, "even": i % 2 == 0}})
             for i in ids]
    (d / "records.jsonl").write_text("".join(x + "\n" for x in lines))


def _first(n: int = N) -> tuple[list[int], np.ndarray]:
    ids = list(range(0, 2 * n, 2))
    return ids, np.random.default_rng(1).standard_normal((n, DIM)).astype(np.float32)


def _night(ids: list[int], vectors: np.ndarray) -> tuple[list[int], np.ndarray]:
    """30 vectors changed, 20 records gone, 25 new ones between the old ids."""
    rng = np.random.default_rng(2)
    v = vectors.copy()
    v[rng.choice(len(ids), 30, replace=False)] += 1.0
    gone = set(rng.choice(len(ids), 20, replace=False).tolist())
    rows = {i: v[k] for k, i in enumerate(ids) if k not in gone}
    for i in range(1, 2 * 25 * 40, 80):           # odd ids: new records
        rows[i] = rng.standard_normal(DIM).astype(np.float32)
    new_ids = sorted(rows)
    return new_ids, np.stack([rows[i] for i in new_ids])


class _Count:
    """Ids the index cache is asked for (IndexCache.get_many) while counting."""

    def __init__(self, monkeypatch):
        self.ids = 0
        orig = IndexCache.get_many

        def get_many(cache, blob_ids):
            self.ids += len(blob_ids)
            return orig(cache, blob_ids)
        monkeypatch.setattr(IndexCache, "get_many", get_many)


def _backup(repo: Path, src: Path, capsys, *extra: str) -> dict:
    capsys.readouterr()
    assert vdedup("--repo", repo, "backup", f"files://{src}?collection=c", "--json", *extra) == 0
    return json.loads(capsys.readouterr().out)


def _restored(repo: Path, out: Path) -> dict[str, tuple]:
    """The latest snapshot restored into a new export: id -> (vector bytes, metadata line)."""
    assert vdedup("--repo", repo, "restore", "latest", "--target", f"files://{out}") == 0
    vecs = np.load(out / "vectors.npy")
    lines = (out / "records.jsonl").read_text().splitlines()
    return {json.loads(x)["id"]: (vecs[k].tobytes(), json.loads(x)["metadata"]) for k, x in enumerate(lines)}


def _expected(ids: list[int], vectors: np.ndarray) -> dict[str, tuple]:
    return {f"doc-{i:06d}": (vectors[k].astype(np.float32).tobytes(),
                             {"n": i, "f": i / 3, "even": i % 2 == 0}) for k, i in enumerate(ids)}


def _vouched(repo: Path) -> list[str]:
    with Repository.open(open_backend(str(repo)), PASSWORD) as r:
        with r.index.env.begin(db=r.index.vouched) as txn:
            return sorted(bytes(k).hex() for k, _ in txn.cursor())


def _cache_of(repo: Path) -> Path:
    with Repository.open(open_backend(str(repo)), PASSWORD) as r:
        return Path(r.index.path)


KEYS = ("records", "added", "changed", "deleted", "unchanged", "vector_blobs_new")


def _first_night(tmp_path, monkeypatch, capsys, *extra: str):
    """A repository with one backup of the first export (backup options `extra`), and the
    night's export written in its place."""
    monkeypatch.setenv("VDEDUP_PACK_SIZE", "1")
    repo, src = tmp_path / "repo", tmp_path / "src"
    ids, vectors = _first()
    _write(src, ids, vectors)
    assert vdedup("--repo", repo, "init") == 0
    first = _backup(repo, src, capsys, *extra)
    night_ids, night_vectors = _night(ids, vectors)
    _write(src, night_ids, night_vectors)
    return repo, src, first, night_ids, night_vectors


@pytest.fixture
def nightly(tmp_path, monkeypatch, capsys):
    return _first_night(tmp_path, monkeypatch, capsys)


def test_a_vouched_parent_spares_the_look_ups_of_its_blobs_and_stores_the_same(nightly, tmp_path, monkeypatch,
                                                                               capsys):
    repo, src, first, night_ids, night_vectors = nightly
    assert _vouched(repo) == [first["snapshot_id"]]
    # the cache knows every pack the backup saved (a pack it missed would go unchecked)
    cache = IndexCache(str(_cache_of(repo)))
    assert {p.hex() for p in cache.known_packs()} == {p.name for p in (repo / "data").rglob("*") if p.is_file()}
    cache.close()
    other = tmp_path / "repo-copy"                # the same repository, given a cache of its own below
    shutil.copytree(repo, other)
    count = _Count(monkeypatch)
    night = _backup(repo, src, capsys)
    trusted = count.ids
    assert _vouched(repo) == sorted([first["snapshot_id"], night["snapshot_id"]])
    # the same night with a new cache (filled from the index files), which vouches for nothing
    cache_dir = os.environ["VDEDUP_CACHE_DIR"]
    monkeypatch.setenv("VDEDUP_CACHE_DIR", str(tmp_path / "cache-control"))
    count.ids = 0
    control = _backup(other, src, capsys)
    assert count.ids >= len(night_ids)           # every content id looked up
    # only the 55 content ids the parent's rows lack (30 changed, 25 new) and the manifest's
    # own blobs were looked up
    assert trusted < 55 + 100, trusted
    assert {k: night[k] for k in KEYS} == {k: control[k] for k in KEYS}
    assert night["vector_blobs_new"] == 55
    assert night["bytes_added"] == pytest.approx(control["bytes_added"], rel=0.02)
    want = _expected(night_ids, night_vectors)
    assert _restored(repo, tmp_path / "out") == want
    assert _restored(other, tmp_path / "out-control") == want
    # the night after: its parent (the trusted night) is vouched for in turn
    monkeypatch.setenv("VDEDUP_CACHE_DIR", cache_dir)
    count.ids = 0
    again = _backup(repo, src, capsys)
    assert again["unchanged"] == len(night_ids) and again["vector_blobs_new"] == 0
    assert count.ids < 100


def test_a_lost_pack_takes_the_trust_away_and_its_vectors_are_stored_again(nightly, tmp_path, monkeypatch,
                                                                           capsys):
    repo, src, first, night_ids, night_vectors = nightly
    packs = sorted((p for p in (repo / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_mtime_ns)
    assert len(packs) >= 2
    packs[0].unlink()                             # the oldest pack: vectors only, the manifest intact
    count = _Count(monkeypatch)
    capsys.readouterr()
    assert vdedup("--repo", repo, "backup", f"files://{src}?collection=c", "--json") == 0
    out = capsys.readouterr()
    night = json.loads(out.out)
    assert packs[0].name[:16] in out.err          # said, and stored again
    assert "cannot be the parent" not in out.err  # the parent's manifest was read: diffed against it
    assert night["unchanged"] > 2000
    assert count.ids >= len(night_ids) - 25       # no trust: every id the parent held looked up
    assert night["vector_blobs_new"] > 55         # the lost pack's vectors too
    assert _restored(repo, tmp_path / "out") == _expected(night_ids, night_vectors)


def test_a_cache_filled_before_it_kept_its_packs_is_loaded_again_once(nightly, tmp_path, monkeypatch, capsys):
    repo, src, first, night_ids, night_vectors = nightly
    cache = IndexCache(str(_cache_of(repo)))
    with cache.env.begin(write=True) as txn:       # as an older vdedup left it
        txn.delete(PACKS_KEPT, db=cache.meta)
        txn.drop(cache.packs, delete=False)
    cache.close()
    count = _Count(monkeypatch)
    night = _backup(repo, src, capsys)
    assert count.ids >= len(night_ids) - 25       # the packs unknown: no trust this time
    cache = IndexCache(str(_cache_of(repo)))
    assert cache.known_packs() is not None and len(cache.known_packs()) >= 3
    cache.close()
    assert _vouched(repo) == [night["snapshot_id"]]   # loaded again: the first is not vouched
    assert _restored(repo, tmp_path / "out") == _expected(night_ids, night_vectors)


def test_a_parent_written_by_worker_processes_is_not_vouched_for(tmp_path, monkeypatch, capsys):
    repo, src, first, night_ids, night_vectors = _first_night(tmp_path, monkeypatch, capsys, "--workers", "2",
                                                              "--partition-size", "1000")
    assert first.get("scaleout"), first
    assert _vouched(repo) == []
    count = _Count(monkeypatch)
    _backup(repo, src, capsys)
    assert count.ids >= len(night_ids) - 25
    assert _restored(repo, tmp_path / "out") == _expected(night_ids, night_vectors)
