"""Key files: the master key wrapped per password and per recovery key (repository layer).

`keys/ID` is the only kind of object that is not sealed with the master key (it holds the
master key, wrapped). JSON: version, kind (password | recovery), created, kdf (name,
parameters, salt), nonce and the AES-256-GCM-wrapped master key, with the key id bound
as associated data.
"""
from __future__ import annotations

import base64
import json
import secrets
import time

from ..crypto import keys as ck
from ..errors import ObjectNotFound, WrongPassword
from ..errors import FormatError
from ..backend.base import FileType

B64 = lambda b: base64.b64encode(b).decode()  # noqa: E731


def _store(backend, master: ck.MasterKey, kind: str, kdf: dict, wrapping_key: bytes) -> str:
    key_id = secrets.token_hex(32)
    nonce, data = ck.wrap(master, wrapping_key, key_id)
    doc = {"version": 1, "kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "kdf": kdf, "nonce": B64(nonce), "data": B64(data)}
    backend.save(FileType.KEYS, key_id, json.dumps(doc, indent=1).encode())
    return key_id


def add_password_key(backend, master: ck.MasterKey, password: str) -> str:
    kdf = {"name": "scrypt", **ck.scrypt_params(), "salt": B64(secrets.token_bytes(32))}
    return _store(backend, master, "password", kdf, ck.kdf_password(password, kdf))


def add_recovery_key(backend, master: ck.MasterKey) -> tuple[str, str]:
    raw, text = ck.new_recovery_key()
    kdf = {"name": "blake3-derive", "salt": B64(secrets.token_bytes(32))}
    return _store(backend, master, "recovery", kdf, ck.kdf_recovery(raw, kdf)), text


def list_keys(backend) -> list[tuple[str, dict]]:
    out = []
    for name, _ in backend.list(FileType.KEYS):
        try:
            out.append((name, json.loads(backend.load(FileType.KEYS, name))))
        except (ValueError, ObjectNotFound):
            continue
    return out


def unlock(backend, secret: str) -> tuple[ck.MasterKey, str]:
    """Try the secret as a recovery key (if it looks like one), then as a password."""
    keys = list_keys(backend)
    if not keys:
        raise FormatError("repository has no key files")
    recovery = ck.parse_recovery_key(secret)
    order = sorted(keys, key=lambda kv: 0 if (kv[1].get("kind") == "recovery") == (recovery is not None) else 1)
    for key_id, doc in order:
        kdf = doc.get("kdf", {})
        try:
            if doc.get("kind") == "recovery":
                if recovery is None:
                    continue
                wk = ck.kdf_recovery(recovery, kdf)
            else:
                wk = ck.kdf_password(secret, kdf)
            return ck.unwrap(wk, base64.b64decode(doc["nonce"]), base64.b64decode(doc["data"]), key_id), key_id
        except Exception:
            continue
    raise WrongPassword("wrong password or recovery key: no key of this repository opens with it")
