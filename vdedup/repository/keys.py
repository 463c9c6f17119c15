"""Key files: the master key wrapped per password and per recovery key (repository layer).

`keys/ID` is the only kind of object that is not sealed with the master key (it holds the
master key, wrapped). JSON: version, kind (password | recovery), created, kdf (name,
parameters, salt), nonce, the AES-256-GCM-wrapped master key with the key id bound as
associated data, and `checksum`, an unkeyed BLAKE3 of the other fields.

Everything that can be checked before unlocking is checked here, so that a damaged key file
is told apart from a wrong password: the JSON parses, every field has its type and length,
the KDF parameters are within bounds (a planted file cannot make scrypt allocate gigabytes),
and the checksum matches. The checksum only detects accidents (anyone can recompute it);
tampering is found after unlocking, by the keyed digests of the key list (keylist.py).
"""
from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from blake3 import blake3

from ..backend.base import FileType
from ..crypto import keys as ck
from ..errors import FormatError, IntegrityError, KeyFileDamaged, ObjectNotFound, WrongPassword

KEY_FILE_VERSION = 1
KINDS = ("password", "recovery")
KDF_OF_KIND = {"password": "scrypt", "recovery": "blake3-derive"}

B64 = lambda b: base64.b64encode(b).decode()  # noqa: E731


def checksum(doc: dict[str, Any]) -> str:
    """Unkeyed BLAKE3 of every field but `checksum`, as canonical JSON."""
    body = {k: v for k, v in doc.items() if k != "checksum"}
    return blake3(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class KeyFile:
    """One key file as stored, and why it cannot be used (`problem`), if it cannot."""
    id: str
    raw: bytes
    doc: dict[str, Any] | None
    problem: str | None = None

    @property
    def kind(self) -> str:
        k = self.doc.get("kind") if isinstance(self.doc, dict) else None
        return k if k in KINDS else "unknown"

    @property
    def usable(self) -> bool:
        return self.problem is None


def _b64(doc: dict[str, Any], field: str, sizes: range) -> str | None:
    v = doc.get(field)
    if not isinstance(v, str):
        return f"field {field!r} is missing or not text"
    try:
        n = len(base64.b64decode(v, validate=True))
    except (binascii.Error, ValueError):
        return f"field {field!r} is not base64"
    return None if n in sizes else f"field {field!r} holds {n} bytes"


FIELDS = {"version", "kind", "created", "kdf", "nonce", "data"}        # and `checksum` since 0.2
KDF_FIELDS = {"scrypt": {"name", "n", "r", "p", "salt"}, "blake3-derive": {"name", "salt"}}


def _problem(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return "not a JSON object"
    if doc.get("version") != KEY_FILE_VERSION:
        return f"key file version {doc.get('version')!r} is not supported"
    unknown = set(doc) - FIELDS - {"checksum"}
    if unknown or not FIELDS <= set(doc):
        return f"unknown field {sorted(unknown)[0]!r}" if unknown else \
            f"field {sorted(FIELDS - set(doc))[0]!r} is missing"
    kind = doc.get("kind")
    if kind not in KINDS:
        return f"unknown key kind {kind!r}"
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != KDF_OF_KIND[kind]:
        return f"a {kind} key needs kdf {KDF_OF_KIND[kind]!r}"
    if set(kdf) != KDF_FIELDS[kdf["name"]]:
        return f"kdf fields {sorted(kdf)} are not those of {kdf['name']}"
    if not isinstance(doc.get("created"), str):
        return "field 'created' is not text"
    problem = _b64(kdf, "salt", range(16, 65)) or _b64(doc, "nonce", range(12, 13)) or \
        _b64(doc, "data", range(48, 49))
    if problem:
        return problem
    if kind == "password":
        problem = ck.scrypt_problem(kdf)
        if problem:
            return f"refused: {problem}"
    if "checksum" in doc and doc["checksum"] != checksum(doc):     # files before 0.2 have none
        return "checksum does not match (the file was damaged)"
    return None


def parse(key_id: str, raw: bytes) -> KeyFile:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return KeyFile(key_id, raw, None, "not valid JSON")
    return KeyFile(key_id, raw, doc if isinstance(doc, dict) else None, _problem(doc))


def load_key_files(backend) -> list[KeyFile]:
    """Every key file, parsed and classified, in name order."""
    out = []
    for name, _ in backend.list(FileType.KEYS):
        try:
            out.append(parse(name, backend.load(FileType.KEYS, name)))
        except ObjectNotFound:
            continue                    # removed concurrently
    return out


def _store(backend, master: ck.MasterKey, kind: str, kdf: dict, wrapping_key: bytes) -> KeyFile:
    key_id = secrets.token_hex(32)
    nonce, data = ck.wrap(master, wrapping_key, key_id)
    doc = {"version": KEY_FILE_VERSION, "kind": kind,
           "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "kdf": kdf, "nonce": B64(nonce), "data": B64(data)}
    doc["checksum"] = checksum(doc)
    raw = json.dumps(doc, indent=1).encode()
    backend.save(FileType.KEYS, key_id, raw)
    return KeyFile(key_id, raw, doc)


def write_password_key(backend, master: ck.MasterKey, password: str) -> KeyFile:
    kdf = {"name": "scrypt", **ck.scrypt_params(), "salt": B64(secrets.token_bytes(32))}
    return _store(backend, master, "password", kdf, ck.kdf_password(password, kdf))


def write_recovery_key(backend, master: ck.MasterKey) -> tuple[KeyFile, str]:
    raw, text = ck.new_recovery_key()
    kdf = {"name": "blake3-derive", "salt": B64(secrets.token_bytes(32))}
    return _store(backend, master, "recovery", kdf, ck.kdf_recovery(raw, kdf)), text


def list_keys(backend) -> list[tuple[str, dict]]:
    """(id, JSON) of every key file that parses as a JSON object (damaged ones included)."""
    return [(k.id, k.doc) for k in load_key_files(backend) if k.doc is not None]


def _open(key: KeyFile, secret: str, recovery: bytes | None) -> ck.MasterKey | None:
    doc = key.doc
    assert doc is not None
    if key.kind == "recovery":
        if recovery is None:
            return None
        wk = ck.kdf_recovery(recovery, doc["kdf"])
    else:
        wk = ck.kdf_password(secret, doc["kdf"])
    try:
        return ck.unwrap(wk, base64.b64decode(doc["nonce"]), base64.b64decode(doc["data"]), key.id)
    except IntegrityError:
        return None


def unlock(backend, secret: str, accept: Callable[[ck.MasterKey], bool] = lambda m: True
           ) -> tuple[ck.MasterKey, str]:
    """Try the secret as a recovery key (if it looks like one), then as a password; the
    first key that opens and whose master key `accept`s (opens the config: a key file copied
    from another repository with the same password must not stop the search) wins. When no
    key opens and a key file the secret could have opened is damaged, say so (exit 17)
    rather than "wrong password" (exit 12): the password may well be right."""
    files = load_key_files(backend)
    if not files:
        raise FormatError("repository has no key files")
    recovery = ck.parse_recovery_key(secret)
    usable = [k for k in files if k.usable]
    order = sorted(usable, key=lambda k: 0 if (k.kind == "recovery") == (recovery is not None) else 1)
    refused: tuple[ck.MasterKey, str] | None = None
    for key in order:
        master = _open(key, secret, recovery)
        if master is not None:
            if accept(master):
                return master, key.id
            refused = refused or (master, key.id)
    if refused:
        return refused          # the caller's own check fails again, with its own error
    damaged = [k for k in files if not k.usable and (k.kind != "recovery" or recovery is not None)]
    if damaged:
        k = damaged[0]
        more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
        raise KeyFileDamaged(f"no key opens with this secret, and key file {k.id[:8]} "
                             f"({k.kind}) is damaged: {k.problem}{more}")
    raise WrongPassword("wrong password or recovery key: no key of this repository opens with it")
