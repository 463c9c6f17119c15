"""Repository: keys, recovery key, sealing, tamper detection, index cache rebuild, locks."""
import json
import os
import shutil

import numpy as np
import pytest

from vdedup.backend import LocalBackend
from vdedup.errors import IntegrityError, RepositoryExists, RepositoryLocked, RepositoryNotFound, WrongPassword
from vdedup.format.objects import BlobType, ObjectType
from vdedup.format.vectors import encode_payload
from vdedup.repository import Repository
from vdedup.repository.packer import Packer


def _init(path):
    return Repository.init(LocalBackend(str(path)), "pw")


def test_init_open_password_and_recovery(repo_path):
    repo, recovery = _init(repo_path)
    rid = repo.id
    repo.close()
    assert Repository.open(LocalBackend(str(repo_path)), "pw").id == rid
    assert Repository.open(LocalBackend(str(repo_path)), recovery).id == rid
    assert Repository.open(LocalBackend(str(repo_path)), recovery.lower().replace("-", " ")).id == rid
    with pytest.raises(WrongPassword):
        Repository.open(LocalBackend(str(repo_path)), "not the password")
    with pytest.raises(RepositoryExists):
        _init(repo_path)
    with pytest.raises(RepositoryNotFound):
        Repository.open(LocalBackend(str(repo_path / "nothing")), "pw")


def test_key_files_hold_no_plain_master_and_use_scrypt(repo_path):
    repo, _ = _init(repo_path)
    docs = [json.loads(p.read_text()) for p in (repo_path / "keys").iterdir()]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["password", "recovery"]
    pw = next(d for d in docs if d["kind"] == "password")
    assert pw["kdf"]["name"] == "scrypt" and pw["kdf"]["n"] >= 1024 and pw["kdf"]["r"] == 8
    blob = b"".join(p.read_bytes() for p in repo_path.rglob("*") if p.is_file())
    assert repo.master.secret not in blob


def test_objects_are_bound_to_their_name(repo_path):
    repo, _ = _init(repo_path)
    repo.save_json_object(ObjectType.SNAPSHOT, "a" * 64, {"version": 1, "x": 1})
    repo.save_json_object(ObjectType.SNAPSHOT, "b" * 64, {"version": 1, "x": 2})
    snaps = repo_path / "snapshots"
    a, b = (snaps / ("a" * 64)).read_bytes(), (snaps / ("b" * 64)).read_bytes()
    (snaps / ("a" * 64)).write_bytes(b)          # swap contents: AAD binds the name
    with pytest.raises(IntegrityError):
        repo.load_json_object(ObjectType.SNAPSHOT, "a" * 64)
    flipped = bytearray(a)
    flipped[-5] ^= 1
    (snaps / ("a" * 64)).write_bytes(bytes(flipped))
    with pytest.raises(IntegrityError):
        repo.load_json_object(ObjectType.SNAPSHOT, "a" * 64)


def _store_vectors(repo, n, seed=0):
    rng = np.random.default_rng(seed)
    packer = Packer(repo)
    ids = []
    for _ in range(n):
        ids.append(packer.add(BlobType.VECTORS, encode_payload({"": rng.standard_normal(32).astype(np.float32)}, {}))[0])
    packer.flush()
    return ids


def test_blobs_dedup_and_index_cache_rebuilds(repo_path, tmp_path, monkeypatch):
    repo, _ = _init(repo_path)
    ids = _store_vectors(repo, 500)
    packs_before = sorted(p.name for p in (repo_path / "data").rglob("*") if p.is_file())
    again = _store_vectors(repo, 500)            # same content: nothing new stored
    assert again == ids
    assert sorted(p.name for p in (repo_path / "data").rglob("*") if p.is_file()) == packs_before
    expected = repo.load_blob(ids[42], BlobType.VECTORS)
    repo.close()
    # "another machine": a fresh, empty cache directory
    monkeypatch.setenv("VDEDUP_CACHE_DIR", str(tmp_path / "other-cache"))
    repo2 = Repository.open(LocalBackend(str(repo_path)), "pw")
    assert repo2.load_blob(ids[42], BlobType.VECTORS) == expected
    assert repo2.index.count() == 500
    repo2.close()


def test_blob_tamper_is_detected(repo_path):
    repo, _ = _init(repo_path)
    ids = _store_vectors(repo, 50)
    pack = next(p for p in (repo_path / "data").rglob("*") if p.is_file())
    data = bytearray(pack.read_bytes())
    data[100] ^= 0x40
    os.chmod(pack, 0o600)
    pack.write_bytes(bytes(data))
    repo._block_cache.clear()
    with pytest.raises(IntegrityError):
        repo.load_blob(ids[0], BlobType.VECTORS)


def test_locks_exclusive_shared_and_stale(repo_path):
    repo, _ = _init(repo_path)
    shared = repo.lock(exclusive=False, operation="backup")
    second = repo.lock(exclusive=False, operation="backup")      # shared + shared is fine
    with pytest.raises(RepositoryLocked):
        repo.lock(exclusive=True, operation="prune")
    shared.release()
    second.release()
    ex = repo.lock(exclusive=True, operation="prune")
    with pytest.raises(RepositoryLocked):
        repo.lock(exclusive=False, operation="backup")
    ex.release()
    assert list((repo_path / "locks").iterdir()) == []
    # a lock left by a dead process is stale and does not block
    import socket, time
    repo.save_json_object(ObjectType.LOCK, "d" * 64, {"version": 1, "time": time.time(), "hostname": socket.gethostname(),
                                                      "pid": 2 ** 22 + 12345, "username": "x",
                                                      "exclusive": True, "operation": "prune"})
    assert repo.list_locks()[0].is_stale()
    repo.lock(exclusive=False, operation="backup").release()


def test_init_after_interrupted_init(repo_path):
    repo, _ = _init(repo_path)
    repo.close()
    (repo_path / "config").unlink()              # init stopped before writing its config
    repo2, recovery = _init(repo_path)
    assert len(list((repo_path / "keys").iterdir())) == 2
    assert Repository.open(LocalBackend(str(repo_path)), "pw").id == repo2.id
    assert Repository.open(LocalBackend(str(repo_path)), recovery).id == repo2.id


def test_unknown_feature_is_refused(repo_path):
    from vdedup.errors import FormatError
    from vdedup.format.objects import ObjectKey
    repo, _ = _init(repo_path)
    cfg = dict(repo.config, features=["time-travel"])     # a newer vdedup's config: sealed as it would
    body = b"\x00" + json.dumps(cfg).encode()
    (repo_path / "config").write_bytes(ObjectKey.new(repo.master, ObjectType.CONFIG, "config").seal_body(body))
    with pytest.raises(FormatError, match="time-travel"):
        Repository.open(LocalBackend(str(repo_path)), "pw")


def test_stale_row_spools_are_removed(tmp_path):
    from vdedup.repository.manifest import TempRows
    parent = tmp_path / "spool"
    parent.mkdir()
    stale = parent / f"vdedup-rows-{2 ** 22 + 4321}-abc"
    stale.mkdir()
    (stale / "data.mdb").write_bytes(b"plaintext rows")
    live = parent / f"vdedup-rows-{os.getpid()}-def"
    live.mkdir()
    with TempRows(str(parent)) as t:
        assert not stale.exists() and live.exists()
        assert os.path.basename(t.dir).startswith(f"vdedup-rows-{os.getpid()}-")
    assert not os.path.exists(t.dir)


def test_spool_iteration_that_drops_its_map_sees_every_entry_once(tmp_path):
    """Restore reads its spool dropping the LMDB map every so many entries (to bound resident
    memory); the entries must come out exactly once each, in key order, whatever the step."""
    import random

    from vdedup.repository.manifest import TempRows
    rnd = random.Random(4)
    with TempRows(str(tmp_path)) as t:
        assert list(t.items_released(3)) == []
        keys = sorted({rnd.randbytes(rnd.randint(1, 20)) for _ in range(3000)})
        with t.env.begin(write=True) as txn:
            for k in keys:
                txn.put(k, k[::-1], db=t.rows)
        for every in (1, 2, 7, 1000, 10_000):
            assert list(t.items_released(every)) == [(k, k[::-1]) for k in keys]
