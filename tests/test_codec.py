"""The one codec for stored objects (format/objects.py, docs/design.md §3.2, §4.1, §11).

Every kind of sealed object the product writes is taken from the repository as the product
wrote it and opened *by hand*, from the spec alone (BLAKE3 contexts, AES-GCM, the documented
counter nonce and associated data), so these fail if any object is sealed another way: with a
random nonce, under a long-lived key, or without binding its type and name. Then: readers
refuse versions and features they do not know, with a message naming them (exit 17), and
nothing in vdedup/ makes a random nonce any more.
"""
from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from blake3 import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from vdtest import PASSWORD, vdedup
from vdedup.assets.audit import AuditLog
from vdedup.assets.store import AssetStore
from vdedup.backend import open_backend
from vdedup.errors import FormatError, IntegrityError, RepositoryLocked, UnsupportedFormat
from vdedup.format.objects import ObjectKey, ObjectType, open_json_object, seal_json_object
from vdedup.repository import Repository

SECRET = "pc-codec-test-secret-0123456789abcdefghij"
DIRS = {ObjectType.CONFIG: "", ObjectType.INDEX: "index", ObjectType.SNAPSHOT: "snapshots",
        ObjectType.LOCK: "locks", ObjectType.AUDIT: "audit", ObjectType.ASSET: "assets",
        ObjectType.KEYLIST: "keylist"}


# ---- the spec, independently of the code ----------------------------------------------------

def subkey(master: bytes, salt: bytes) -> bytes:
    root = blake3(master, derive_key_context="vdedup 2026-11-25 object encryption root").digest()
    return blake3(root + salt, derive_key_context="vdedup 2026-11-25 per-object subkey").digest()


def nonce(prefix: int, counter: int) -> bytes:
    return prefix.to_bytes(4, "big") + counter.to_bytes(8, "big")


def open_by_hand(master: bytes, otype: int, name: str, blob: bytes, prefix: int | None = None,
                 counter: int = 0) -> bytes:
    assert blob[:4] == b"VDDO" and blob[4] == 1 and blob[5] == otype
    header, salt = blob[:22], blob[6:22]
    plain = AESGCM(subkey(master, salt)).decrypt(nonce(otype if prefix is None else prefix, counter),
                                                 blob[22:], header + b"|" + name.encode())
    assert plain[:1] in (b"\x00", b"\x01")
    if plain[:1] == b"\x01":
        import zstandard
        return zstandard.ZstdDecompressor().decompress(plain[1:], max_output_size=1 << 30)
    return plain[1:]


# ---- a repository with one object of every kind ----------------------------------------------

def write_export(path: Path, n: int = 12, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    np.save(path / "vectors.npy", rng.standard_normal((n, 4)).astype(np.float32))
    with open(path / "records.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"r{i:03d}", "metadata": {"i": i}}) + "\n")


@pytest.fixture
def every_kind(tmp_path, repo_path, monkeypatch):
    """A repository holding objects of all seven kinds, as the product writes them; the
    lock's bytes are kept before it is released. Returns (repo_path, master, {type: [names]}, lock bytes)."""
    src = tmp_path / "src"
    write_export(src)
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"files://{src}") == 0
    monkeypatch.setenv("CODEC_SECRET", SECRET)
    assert vdedup("--repo", repo_path, "connect", "-p", "pinecone", "--name", "prod", "pinecone://prod",
                  "--secret-env", "CODEC_SECRET") == 0
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        lock = repo.lock(exclusive=False, operation="test")
        lock_name = lock.name
        lock_bytes = (repo_path / "locks" / lock_name).read_bytes()
        lock.release()
        master = repo.master.secret
    names = {t: sorted(p.name for p in (repo_path / d).iterdir()) if d else ["config"] for t, d in DIRS.items()}
    names[ObjectType.LOCK] = [lock_name]
    return repo_path, master, names, lock_bytes


def _bytes(repo_path: Path, otype: ObjectType, name: str, lock_bytes: bytes) -> bytes:
    if otype == ObjectType.LOCK:
        return lock_bytes
    return (repo_path / DIRS[otype] / name).read_bytes() if DIRS[otype] else (repo_path / "config").read_bytes()


@pytest.mark.parametrize("otype", list(ObjectType), ids=lambda t: t.name.lower())
def test_every_kind_of_object_is_sealed_with_the_counter_nonce_under_its_own_subkey(every_kind, otype):
    repo_path, master, names, lock_bytes = every_kind
    assert names[otype], f"no {otype.name} object was written"
    salts = set()
    for name in names[otype]:
        blob = _bytes(repo_path, otype, name, lock_bytes)
        plain = open_by_hand(master, int(otype), name, blob)        # nonce(type, 0), AAD header|name
        if otype != ObjectType.INDEX:
            record = json.loads(plain)
            assert type(record["version"]) is int, record        # every JSON record carries its version
        else:
            assert plain[0] == 1                                  # index body version byte
        salts.add(blob[6:22])
        # any other nonce does not open it: the counter is the documented one
        for prefix, counter in ((int(otype), 1), (0x100 | int(otype), 0), (0, 0)):
            with pytest.raises(InvalidTag):
                open_by_hand(master, int(otype), name, blob, prefix, counter)
        # renamed: the name is associated data
        with pytest.raises(InvalidTag):
            open_by_hand(master, int(otype), name + "x", blob)
        # retyped: the type byte is in the header, which is associated data
        other = (int(otype) % 7) + 1
        retyped = blob[:5] + bytes([other]) + blob[6:]
        with pytest.raises(InvalidTag):
            open_by_hand(master, other, name, retyped)
    assert len(salts) == len(names[otype])                        # a fresh subkey per object


@pytest.mark.parametrize("otype", [t for t in ObjectType if t != ObjectType.INDEX], ids=lambda t: t.name.lower())
def test_the_codec_seals_each_record_under_a_fresh_subkey_and_binds_type_and_name(tmp_path, otype):
    from vdedup.crypto.keys import MasterKey
    master = MasterKey.generate()
    record = {"version": 2 if otype == ObjectType.ASSET else 1, "x": "same plaintext"}
    a, rec_a = seal_json_object(master, otype, "name-1", record)
    b, _ = seal_json_object(master, otype, "name-1", record)
    assert a != b and a[6:22] != b[6:22] and a[22:] != b[22:]       # two seals of one plaintext differ
    assert json.loads(open_by_hand(master.secret, int(otype), "name-1", a)) == record
    assert open_json_object(master, otype, "name-1", a).data == record
    with pytest.raises(IntegrityError):
        open_json_object(master, otype, "name-2", a)                     # renamed
    other = ObjectType((int(otype) % 7) + 1)
    with pytest.raises(IntegrityError):                              # retyped
        open_json_object(master, other, "name-1", a[:5] + bytes([int(other)]) + a[6:])
    with pytest.raises(ValueError, match="version"):                 # a record always carries its version
        seal_json_object(master, otype, "name-1", {"x": 1})


def test_an_asset_secret_is_a_sealed_field_of_its_object(every_kind):
    repo_path, master, names, _ = every_kind
    (name,) = names[ObjectType.ASSET]
    blob = (repo_path / "assets" / name).read_bytes()
    record = json.loads(open_by_hand(master, int(ObjectType.ASSET), name, blob))
    assert record["version"] == 2 and SECRET not in json.dumps(record)
    field = record["secret"]
    assert set(field) == {"n", "data"} and field["n"] == 0
    ct = base64.b64decode(field["data"])
    aad = blob[:22] + b"|" + name.encode() + b"|field:secret"
    key = AESGCM(subkey(master, blob[6:22]))
    assert key.decrypt(nonce(0x100 | 6, 0), ct, aad).decode() == SECRET     # the field's counter nonce
    for bad_nonce, bad_aad in ((nonce(6, 0), aad), (nonce(0x100 | 6, 1), aad),
                               (nonce(0x100 | 6, 0), aad.replace(b"secret", b"secreT"))):
        with pytest.raises(InvalidTag):
            key.decrypt(bad_nonce, ct, bad_aad)

    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        store = AssetStore(repo)
        asset = store.get("prod")
        assert store.secret(asset) == SECRET
        # the same secret in another asset: another subkey, other bytes; moved there, it does not open
        other = store.add("other", "pinecone", "pinecone://other", SECRET)
        assert other._sealed_secret["data"] != asset._sealed_secret["data"]
        other._sealed_secret = asset._sealed_secret
        with pytest.raises(IntegrityError):
            store.secret(other)
        # a rotate and a policy change re-seal it under the new object
        store.set_policy("prod", {"last": 2})
        again = store.get("prod")
        assert again.object_name != asset.object_name and store.secret(again) == SECRET
        assert again._sealed_secret["data"] != asset._sealed_secret["data"]


# ---- readers refuse what they do not know ------------------------------------------------------

def _reseal(repo_path: Path, otype: ObjectType, name: str, change) -> None:
    """Rewrite a record as a newer vdedup would (the codec writes only what it knows, so the
    envelope is sealed directly): `change(dict)` edits it in place."""
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        path = repo_path / DIRS[otype] / name if DIRS[otype] else repo_path / "config"
        d = open_json_object(repo.master, otype, name, path.read_bytes(), check=False).data
        change(d)
        blob = ObjectKey.new(repo.master, otype, name).seal_body(b"\x00" + json.dumps(d).encode())
    path.chmod(0o600)
    path.write_bytes(blob)


@pytest.fixture
def two_snapshots(tmp_path, repo_path):
    src = tmp_path / "src"
    write_export(src)
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"files://{src}") == 0
    shutil.rmtree(src)
    write_export(src, seed=1)
    assert vdedup("--repo", repo_path, "backup", f"files://{src}") == 0
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        ids = [s.id for s in repo.list_snapshots()]
    return repo_path, ids


@pytest.mark.parametrize("change, named", [
    (lambda d: d.update(version=2), "format version 2"),
    (lambda d: d.update(features=["time-travel"]), "time-travel"),
    (lambda d: d["collections"][0]["namespaces"][0].update(version=7), "format version 7"),
    (lambda d: d["collections"][0]["namespaces"][0].update(features=["bloom-segments"]), "bloom-segments"),
], ids=["snapshot-version", "snapshot-feature", "entry-version", "entry-feature"])
def test_a_snapshot_of_an_unknown_version_or_feature_is_refused_by_name(two_snapshots, tmp_path, capsys,
                                                                       change, named):
    repo_path, (old, new) = two_snapshots
    _reseal(repo_path, ObjectType.SNAPSHOT, new, change)
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        with pytest.raises(UnsupportedFormat, match=named):
            repo.load_snapshot(new)
        assert [s.id for s in repo.list_snapshots()] == [old]        # skipped, with a warning naming it
        assert any(named in w and "upgrade" in w for w in repo.warnings), repo.warnings
        with pytest.raises(UnsupportedFormat, match=named):
            repo.list_snapshots(strict=True)                          # prune's listing: refused
    capsys.readouterr()
    # asked for by id: exit 17, saying what is unknown; the other snapshot still restores
    assert vdedup("--repo", repo_path, "restore", new[:12], "--target", f"files://{tmp_path / 'r1'}") == 17
    err = capsys.readouterr().err
    assert named in err and "upgrade vdedup" in err and "Traceback" not in err
    assert vdedup("--repo", repo_path, "restore", old[:12], "--target", f"files://{tmp_path / 'r2'}") == 0
    assert vdedup("--repo", repo_path, "prune") == 17
    assert named in capsys.readouterr().err
    assert vdedup("--repo", repo_path, "check") == 17


def test_a_malformed_namespace_entry_is_a_format_error_naming_the_field(two_snapshots):
    repo_path, (_, new) = two_snapshots
    _reseal(repo_path, ObjectType.SNAPSHOT, new, lambda d: d["collections"][0]["namespaces"][0].update(count="7"))
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        with pytest.raises(FormatError, match=r"malformed \(count\)"):
            repo.load_snapshot(new)


def test_snapshots_written_now_carry_versions_and_old_ones_read_as_version_1(two_snapshots):
    repo_path, (old, new) = two_snapshots
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        d = repo.load_json_object(ObjectType.SNAPSHOT, new)
    assert d["version"] == 1 and d["features"] == []
    assert all(e["version"] == 1 for c in d["collections"] for e in c["namespaces"])

    def strip(d):
        del d["version"], d["features"]
        for c in d["collections"]:
            for e in c["namespaces"]:
                del e["version"]
    _reseal(repo_path, ObjectType.SNAPSHOT, new, strip)        # as written before versions existed
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        snap = repo.load_snapshot(new)
        assert snap.version == 1 and snap.collections[0]["namespaces"][0]["count"] == 12


def test_other_records_of_unknown_versions_are_refused(two_snapshots, monkeypatch, capsys):
    repo_path, _ = two_snapshots
    monkeypatch.setenv("CODEC_SECRET", SECRET)
    assert vdedup("--repo", repo_path, "connect", "-p", "pinecone", "--name", "prod", "pinecone://prod",
                  "--secret-env", "CODEC_SECRET") == 0
    # an asset record of version 3
    (asset,) = [p.name for p in (repo_path / "assets").iterdir()]
    _reseal(repo_path, ObjectType.ASSET, asset, lambda d: d.update(version=3))
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "assets", "show", "prod") == 17
    assert "format version 3" in capsys.readouterr().err
    # an audit entry of version 9: verify stops there and says why; appending still chains onto it
    last = sorted(p.name for p in (repo_path / "audit").iterdir())[-1]
    _reseal(repo_path, ObjectType.AUDIT, last, lambda d: d.update(version=9))
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        log = AuditLog(repo)
        result = log.verify()
        assert not result.ok and "format version 9" in result.problem and result.position == int(last)
        log.append("test")
        assert AuditLog(repo).verify().position == int(last)       # still stops at the unknown one
    # a key list of version 4: key operations refuse to write over it
    (kl,) = [p.name for p in (repo_path / "keylist").iterdir()]
    _reseal(repo_path, ObjectType.KEYLIST, kl, lambda d: d.update(version=4))
    monkeypatch.setenv("VDEDUP_NEW_PASSWORD", "another password")
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "key", "add") == 17
    assert "format version 4" in capsys.readouterr().err
    # a config of version 2 (or with an unknown feature): the repository is refused, not "wrong password"
    _reseal(repo_path, ObjectType.CONFIG, "config", lambda d: d.update(version=2))
    with pytest.raises(UnsupportedFormat, match="repository: format version 2"):
        Repository.open(open_backend(str(repo_path)), PASSWORD)


def test_a_lock_of_an_unknown_version_counts_as_a_live_exclusive_lock(repo_path):
    import time
    repo, _ = Repository.init(open_backend(str(repo_path)), PASSWORD)
    repo.save_json_object(ObjectType.LOCK, "c" * 64, {"version": 1, "time": time.time(), "hostname": "elsewhere",
                                                      "pid": 1, "username": "x", "exclusive": False,
                                                      "operation": "backup"})
    repo.close()
    _reseal(repo_path, ObjectType.LOCK, "c" * 64, lambda d: d.update(version=5))
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        (info,) = repo.list_locks()
        assert info.exclusive and "version 5" in info.operation and not info.is_stale()
        with pytest.raises(RepositoryLocked):
            repo.lock(exclusive=False, operation="backup")
    # an hour old by its time: stale like any other, and unlock removes it
    _reseal(repo_path, ObjectType.LOCK, "c" * 64, lambda d: d.update(time=time.time() - 3600))
    with Repository.open(open_backend(str(repo_path)), PASSWORD) as repo:
        assert repo.list_locks()[0].is_stale()
        repo.lock(exclusive=True, operation="prune").release()


# ---- no random nonce under a long-lived key --------------------------------------------------

def test_nothing_in_vdedup_makes_a_random_nonce_or_seals_outside_the_codec():
    """Random 96-bit nonces and direct AEAD calls are allowed in exactly these places: the
    AEAD itself, the codec, packs (counter nonces under per-pack subkeys) and key files (a
    random nonce under a wrapping key made fresh for each key file)."""
    root = Path(__file__).resolve().parent.parent / "vdedup"
    allowed_aead = {"crypto/aead.py", "format/objects.py", "format/pack.py", "crypto/keys.py",
                    "format/legacy.py"}       # legacy: opens version-1 asset secrets, seals nothing
    allowed_nonce = {"crypto/keys.py"}
    random_nonce = re.compile(r"token_bytes\(\s*12\s*\)|urandom\(\s*12\s*\)|"
                              r"nonce\s*=\s*(secrets|os)\.|nonce\s*=\s*(token_bytes|urandom)\(")
    aead = re.compile(r"\bAESGCM\b|\bChaCha20Poly1305\b|crypto\.aead\b|from \.aead import|cryptography\.hazmat")
    seen = 0
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        text = path.read_text()
        seen += 1
        if rel not in allowed_nonce:
            assert not random_nonce.search(text), f"{rel} makes a random nonce"
        if rel not in allowed_aead:
            assert not aead.search(text), f"{rel} uses the AEAD directly, not through the codec"
    assert not re.search(r"\bseal\(", (root / "format" / "legacy.py").read_text())
    assert seen > 50
    # and the one allowed random nonce is under a key made fresh for that one use
    keys = (root / "crypto" / "keys.py").read_text()
    assert keys.count("token_bytes(12)") == 1 and "fresh per key file" in keys
