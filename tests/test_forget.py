"""forget: restic retention semantics (pure policy tests on made-up snapshots), and end to end
after seven nightly backups of a Chroma collection: the chosen snapshots stay and restore
bit for bit, --dry-run changes nothing, and forget + prune shrink the repository by exactly
the data only the forgotten snapshots referenced."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import numpy as np
import pytest

from vdedup.backend import LocalBackend, open_backend
from vdedup.backend.base import FileType
from vdedup.engine.forget import Policy, apply_policy, parse_duration
from vdedup.errors import UsageError
from vdedup.repository import Repository, Snapshot
from vdedup.format.objects import ObjectType
from vdtest import (PASSWORD, add_records, assert_same_records, chroma_collection, make_records, read_all,
                    vdedup)

def backend_for(url: str):
    return open_backend(url, s3_endpoint=os.environ.get("VDEDUP_S3_ENDPOINT"))


START = dt.datetime(2026, 11, 19, 2, 0, tzinfo=dt.timezone.utc)    # a Thursday


def _snap(i: int, when: dt.datetime, source: str = "chroma:///a", tags=(), host: str = "h1") -> Snapshot:
    return Snapshot(id=f"{i:064x}", time=when.isoformat(), hostname=host, username="u", source=source,
                    provider="chroma", tags=list(tags))


def _kept(groups) -> dict[int, list[str]]:
    return {int(s.id, 16): r for g in groups for s, r in g.keep}


# ---- the policy ---------------------------------------------------------------------------------

def test_policy_buckets_in_utc_newest_first():
    # 40 snapshots, one every 9 hours
    snaps = [_snap(i, START + dt.timedelta(hours=9 * i)) for i in range(40)]
    kept = _kept(apply_policy(snaps, Policy(last=3)))
    assert sorted(kept) == [37, 38, 39] and kept[39] == ["last"]
    kept = _kept(apply_policy(snaps, Policy(daily=4)))
    # newest of each of the last 4 UTC days
    days = {}
    for s in snaps:
        days.setdefault(s.datetime.date(), int(s.id, 16))
        days[s.datetime.date()] = max(days[s.datetime.date()], int(s.id, 16))
    assert sorted(kept) == sorted(days.values())[-4:]
    kept = _kept(apply_policy(snaps, Policy(weekly=2, monthly=5)))
    weeks = {}
    for s in snaps:
        weeks[s.datetime.isocalendar()[:2]] = int(s.id, 16)
    assert {k for k, r in kept.items() if "weekly" in r} == set(sorted(weeks.values())[-2:])
    assert {k for k, r in kept.items() if "monthly" in r} == {39, max(i for i in range(40)
                                                                     if snaps[i].datetime.month == 11)}
    kept = _kept(apply_policy(snaps, Policy(hourly=2, yearly=1)))
    assert kept == {39: ["hourly", "yearly"], 38: ["hourly"]}


def test_policy_within_tags_groups_and_no_policy():
    snaps = [_snap(i, START + dt.timedelta(days=i)) for i in range(10)]
    snaps[2].tags = ["keep", "monthly"]
    snaps[4].tags = ["keep"]
    kept = _kept(apply_policy(snaps, Policy(within=parse_duration("2d3h"))))
    assert sorted(kept) == [7, 8, 9]             # 9 - 2d3h: days 7, 8, 9
    kept = _kept(apply_policy(snaps, Policy(tags=("keep,monthly",))))
    assert sorted(kept) == [2]                   # a,b means both tags
    kept = _kept(apply_policy(snaps, Policy(tags=("keep",), last=1)))
    assert kept == {2: ["tag"], 4: ["tag"], 9: ["last"]}
    assert parse_duration("1y2m3w4d5h").__str__() == "1y2m25d5h"
    with pytest.raises(UsageError):
        parse_duration("3 days")
    with pytest.raises(UsageError):
        apply_policy(snaps, Policy())
    # grouped per source by default: keep-last 1 keeps one per source
    mixed = [_snap(i, START + dt.timedelta(hours=i), source="chroma:///a" if i % 2 else "chroma:///b",
                   host="h1" if i < 5 else "h2") for i in range(10)]
    groups = apply_policy(mixed, Policy(last=1))
    assert sorted(_kept(groups)) == [8, 9] and len(groups) == 2
    assert sorted(_kept(apply_policy(mixed, Policy(last=1), ("host",)))) == [4, 9]
    assert sorted(_kept(apply_policy(mixed, Policy(last=1), ("source", "host")))) == [3, 4, 8, 9]
    # month arithmetic clamps to the month's end
    assert parse_duration("1m").before(dt.datetime(2026, 3, 31, tzinfo=dt.timezone.utc)).date() == dt.date(2026, 2, 28)


# ---- end to end ---------------------------------------------------------------------------------

NIGHTS = 7


def _backdate(repo_url: str, snap_id: str, when: dt.datetime) -> None:
    """Give a snapshot the time of a past night (snapshots are sealed, so re-seal it)."""
    backend = LocalBackend(repo_url)
    repo = Repository.open(backend, PASSWORD)
    try:
        d = repo.load_json_object(ObjectType.SNAPSHOT, snap_id)
        d["time"] = when.isoformat(timespec="microseconds")
        backend.remove(FileType.SNAPSHOTS, snap_id)
        repo.save_json_object(ObjectType.SNAPSHOT, snap_id, d)
    finally:
        repo.close()


def _json(capsys, *args, code: int | None = 0):
    """Run the CLI in-process and parse its JSON output; code None: any exit code."""
    capsys.readouterr()
    rc = vdedup(*args)
    assert code is None or rc == code
    return json.loads(capsys.readouterr().out)


def build_nightly(base, nights: int = NIGHTS, n: int = 800, dim: int = 64, mixed: bool = False) -> dict:
    """Seven nightly backups (backdated to 02:00 UTC on seven days) of a changing Chroma
    collection, in a local repository under `base`; built once per module and copied.

    `mixed`: night 5 replaces every vector except those of the records added on night 4
    and replaces a quarter of the records by new ones, so its delta outweighs the part and
    the part's base is rewritten: night 4's pack then holds vectors night 5 still uses
    (those records') and vectors only night 4 used (those it replaced), a pack that
    forgetting night 4 leaves half used (test_prune's repack points)."""
    src, repo = base / "src", base / "repo"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VDEDUP_SCRYPT_N", "1024")
        mp.setenv("VDEDUP_CACHE_DIR", str(base / "cache"))
        mp.setenv("VDEDUP_PASSWORD", PASSWORD)
        mp.setenv("VDEDUP_PACK_SIZE", "1")
        mp.setenv("ANONYMIZED_TELEMETRY", "False")
        mp.delenv("VDEDUP_REPOSITORY", raising=False)
        _, col = chroma_collection(src, "docs", "l2")
        add_records(col, *make_records(n, dim=dim))
        assert vdedup("--repo", repo, "init", "--json") == 0
        rng = np.random.default_rng(3)
        states, ids = [], []
        for night in range(nights):
            if night:
                # 20% of vectors replaced (so bases get rewritten and old layers fall out of
                # use), some records added and deleted
                cur = sorted(read_all(src, "docs"))
                # night 5 replaces every vector: its parts' delta runs outgrow them, so their
                # bases are rewritten and night 4's layer is used by no later snapshot
                k = len(cur) if night == 5 else n // 5
                pick = [cur[i] for i in rng.choice(len(cur), k, replace=False)]
                gone = cur[night * 7:night * 7 + 5]
                if mixed and night == 5:
                    pick = [r for r in cur if r not in added_on_4]
                    gone = [r for r in pick[::4] if r not in gone][:len(cur) // 4] + gone
                    add_records(col, *make_records(len(gone), dim=dim, seed=99, start=90_000))
                col.update(ids=pick, embeddings=rng.standard_normal((len(pick), dim)).astype(np.float32))
                add_records(col, *make_records(20, dim=dim, seed=night, start=10_000 * night))
                col.delete(ids=gone)
                if night == 4:
                    added_on_4 = set(read_all(src, "docs")) - set(cur)
            states.append(read_all(src, "docs"))
            rc, out = _run_json("--repo", repo, "backup", f"chroma://{src}", "--json")
            assert rc == 0
            _backdate(str(repo), out["snapshot_id"], START + dt.timedelta(days=night))
            ids.append(out["snapshot_id"])
    return {"src": src, "states": states, "ids": ids, "repo": str(repo)}


def _run_json(*args):
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = vdedup(*args)
    return rc, json.loads(buf.getvalue() or "null")


def copy_repo(src_url: str, dst_url: str) -> None:
    """Copy a repository object by object (works for any pair of backends)."""
    src, dst = backend_for(src_url), backend_for(dst_url)
    if hasattr(dst, "create_layout"):
        dst.create_layout()
    for t in FileType.ALL:
        if t in (FileType.LOCKS, FileType.CONFIG):
            continue
        for name, _ in src.list(t):
            dst.save(t, name, src.load(t, name))
    dst.save(FileType.CONFIG, "config", src.load(FileType.CONFIG, "config"))


@pytest.fixture(scope="module")
def nightly_source(tmp_path_factory):
    return build_nightly(tmp_path_factory.mktemp("nightly"))


@pytest.fixture
def nightly(nightly_source, repo_url, monkeypatch):
    monkeypatch.setenv("VDEDUP_PACK_SIZE", "1")
    copy_repo(nightly_source["repo"], repo_url)
    return {**nightly_source, "repo": repo_url}


def repo_fingerprint(repo_url: str) -> dict:
    """Every stored object's hash, except locks and the audit log (which records operations,
    dry runs included)."""
    backend = backend_for(repo_url)
    return {(t, name): hashlib.sha256(backend.load(t, name)).hexdigest()
            for t in FileType.ALL if t not in (FileType.CONFIG, FileType.LOCKS, FileType.AUDIT)
            for name, _ in backend.list(t)}


def test_forget_keeps_the_chosen_snapshots_and_prune_frees_exactly_their_data(nightly, tmp_path, capsys):
    repo, ids = nightly["repo"], nightly["ids"]
    # nights 1-4 fall in ISO week 47, nights 5-7 in week 48
    before = repo_fingerprint(repo)
    plan = _json(capsys, "--repo", repo, "forget", "--keep-last", "2", "--keep-weekly", "2", "--dry-run", "--json")
    assert repo_fingerprint(repo) == before                   # dry run: not one byte changed
    (group,) = plan["groups"]
    assert {k["id"]: k["reasons"] for k in group["keep"]} == {ids[6]: ["last", "weekly"], ids[5]: ["last"],
                                                              ids[3]: ["weekly"]}
    assert [r["id"] for r in group["remove"]] == [ids[4], ids[2], ids[1], ids[0]]
    assert plan["would_remove"] == 4 and plan["removed"] == 0
    doomed = [ids[0], ids[1], ids[2], ids[4]]
    # what only the doomed snapshots reference, measured before anything is removed
    st = _json(capsys, "--repo", repo, "stats", "--json")
    one = _json(capsys, "--repo", repo, "stats", ids[6], "--json")
    assert one["snapshots"] == 1 and one["records"] == len(nightly["states"][6])
    assert one["exclusive_bytes"] > 0   # its newest delta layer; the older layers are shared with earlier nights
    nothing = _json(capsys, "--repo", repo, "prune", "--max-unused", "0%", "--json")
    assert nothing["packs_deleted"] == nothing["packs_repacked"] == nothing["bytes_freed"] == 0
    assert repo_fingerprint(repo) == before                   # nothing unused while every snapshot exists

    res = _json(capsys, "--repo", repo, "forget", "--keep-last", "2", "--keep-weekly", "2", "--json")
    assert res["removed"] == 4
    snaps = _json(capsys, "--repo", repo, "snapshots", "--json")
    assert [s["id"] for s in snaps] == [ids[3], ids[5], ids[6]]
    # the data exclusive to the forgotten snapshots, measured as one set
    gone = _exclusive_raw(repo, doomed_set=set(doomed))
    assert gone > 0
    stored_before = sum(size for _, size in backend_for(repo).list(FileType.DATA))
    after_forget = repo_fingerprint(repo)
    plan = _json(capsys, "--repo", repo, "prune", "--max-unused", "0%", "--dry-run", "--json")
    assert plan["packs_deleted"] + plan["packs_repacked"] > 0 and plan["bytes_freed"] > 0
    assert repo_fingerprint(repo) == after_forget

    pr = _json(capsys, "--repo", repo, "prune", "--max-unused", "0%", "--json")
    assert pr["packs_deleted"] + pr["packs_repacked"] > 0 and pr["bytes_freed"] > 0
    st2 = _json(capsys, "--repo", repo, "stats", "--json")
    # the repository's unique data shrank by exactly the bytes only the forgotten snapshots used,
    # and every blob left is used by a kept snapshot (nothing unused remains with 0%)
    assert st2["unique_bytes"] == st["unique_bytes"] - gone
    assert _used_blob_count(repo) == st2["blobs"]
    assert st2["pack_bytes"] < stored_before
    assert pr["bytes_before"] - pr["bytes_after"] == pr["bytes_freed"]
    assert pr["packs_deleted"] == plan["packs_deleted"] and pr["packs_repacked"] == plan["packs_repacked"]
    # a second prune finds nothing to do
    again = _json(capsys, "--repo", repo, "prune", "--max-unused", "0%", "--json")
    assert again["packs_deleted"] == again["packs_repacked"] == again["unindexed_deleted"] == 0
    assert again["bytes_freed"] == 0
    capsys.readouterr()
    assert vdedup("--repo", repo, "check", "--read-data") == 0
    for night in (3, 6):
        dst = tmp_path / f"dst{night}"
        assert vdedup("--repo", repo, "restore", ids[night], "--target", f"chroma://{dst}") == 0
        assert_same_records(nightly["states"][night], read_all(dst, "docs"))


def _open(repo_url: str) -> Repository:
    return Repository.open(backend_for(repo_url), PASSWORD)


def _exclusive_raw(repo_url: str, doomed_set: set[str]) -> int:
    """Raw bytes of blobs referenced by no remaining snapshot (the snapshots are gone already:
    every indexed blob not referenced now)."""
    from vdedup.engine.prune import BlobMarks, mark_snapshots
    repo = _open(repo_url)
    try:
        with BlobMarks() as marks:
            mark_snapshots(repo, repo.list_snapshots(), marks)
            assert not doomed_set & {s.id for s in repo.list_snapshots()}
            return sum(loc.raw_length for blob_id, loc in repo.index.items() if marks.get(blob_id) is None)
    finally:
        repo.close()


def _used_blob_count(repo_url: str) -> int:
    from vdedup.engine.prune import BlobMarks, mark_snapshots
    repo = _open(repo_url)
    try:
        with BlobMarks() as marks:
            mark_snapshots(repo, repo.list_snapshots(), marks)
            return marks.count()
    finally:
        repo.close()


def test_forget_refuses_without_policy_and_forget_prune_in_one_go(nightly, capsys):
    repo, ids = nightly["repo"], nightly["ids"]
    capsys.readouterr()
    assert vdedup("--repo", repo, "forget") == 2
    assert "no retention policy" in capsys.readouterr().err
    assert vdedup("--repo", repo, "forget", "--keep-within", "3 days") == 2
    assert vdedup("--repo", repo, "forget", "--keep-last", "1", "--group-by", "planet") == 2
    res = _json(capsys, "--repo", repo, "forget", "--keep-within", "1d", "--keep-tag", "none",
                "--prune", "--json")
    assert res["removed"] == 5 and res["prune"]["bytes_freed"] > 0
    assert [s["id"] for s in _json(capsys, "--repo", repo, "snapshots", "--json")] == ids[5:]
    assert vdedup("--repo", repo, "check", "--read-data") == 0


def test_damaged_pack_names_the_affected_snapshots_and_subsets_split_the_packs(nightly, capsys):
    from vdedup.engine.prune import BlobMarks, mark_snapshots
    repo_url, ids = nightly["repo"], nightly["ids"]
    repo = _open(repo_url)
    try:
        snaps = repo.list_snapshots()
        with BlobMarks() as marks:
            for s in snaps:
                mark_snapshots(repo, [s], marks, s.id)
            choice = None
            for body in (b for _, b in repo.index_files()):
                for pid, blocks in body.items():
                    vector_blocks = [b for b in blocks if b.blob_type == 1]   # VECTORS: only reading sees it
                    if not vector_blocks:
                        continue
                    blk = vector_blocks[0]
                    hit = {s.id for s in snaps if any(marks.get(b, s.id) is not None for b, _ in blk.blobs)}
                    if 0 < len(hit) < len(snaps):
                        choice = (pid.hex(), blk, hit)
            assert choice, "no pack whose damage affects only some snapshots"
    finally:
        repo.close()
    name, blk, expected = choice
    backend = backend_for(repo_url)
    data = bytearray(backend.load(FileType.DATA, name))
    data[blk.offset + blk.length // 2] ^= 0x01
    backend.remove(FileType.DATA, name)
    backend.save(FileType.DATA, name, bytes(data))

    capsys.readouterr()
    assert vdedup("--repo", repo_url, "check") == 0                  # structure alone cannot see it
    res = _json(capsys, "--repo", repo_url, "check", "--read-data", "--json", code=17)
    assert {a["snapshot"] for a in res["affected"]} == expected
    assert {a["collection"] for a in res["affected"]} == {"docs"}
    capsys.readouterr()
    assert vdedup("--repo", repo_url, "check", "--read-data") == 17
    err = capsys.readouterr().err
    assert all(sid[:8] in err for sid in expected) and f"pack {name[:16]}" in err
    assert not any(sid[:8] in err.split("affects:")[1] for sid in set(ids) - expected)

    # n/t subsets: each pack is in exactly one of the t groups; only the damaged pack's group fails
    packs = len(list(backend.list(FileType.DATA)))
    total = 0
    for n in (1, 2, 3):
        mine = int(name, 16) % 3 == n - 1
        res = _json(capsys, "--repo", repo_url, "check", "--read-data-subset", f"{n}/3", "--json",
                    code=17 if mine else 0)
        total += res["packs_read"]
    assert total == packs
    res = _json(capsys, "--repo", repo_url, "check", "--read-data-subset", "50%", "--json",
                code=None)
    assert res["packs_read"] == -(-packs // 2)
    for bad in ("0/3", "4/3", "0%", "1/0", "half"):
        assert vdedup("--repo", repo_url, "check", "--read-data-subset", bad) == 2
