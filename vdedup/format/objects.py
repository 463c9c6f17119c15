"""The one codec for standalone objects: object types, the sealed envelope, sealed fields and
versioned JSON objects (format layer).

Every object in a repository except key files and packs (config, index files, snapshots,
locks, audit entries, assets, key lists) is sealed here and nowhere else, the way borg's
repoobj does it: AES-256-GCM under a subkey derived from the master key and a fresh random
salt of its own, with counter nonces, never random ones. The associated data binds the
envelope header (magic, version, type, salt) and the object's name, so an object cannot be
renamed, moved to another type or swapped for another without failing authentication.

    b"VDDO" | u8 version | u8 type | 16-byte salt | AES-GCM(subkey, nonce(type, 0), plaintext)
    plaintext = u8 compression (0 none, 1 zstd) | data

An object may carry *sealed fields* (an asset's secret): sealed again under the same subkey
with the nonce `nonce(0x100 | type, n)` (n counts the object's fields from 0) and the
associated data `aad ‖ "|field:" ‖ label`, so a field opens only in the object and under the
label it was sealed for, and stays sealed in memory until it is asked for.

JSON objects carry a `version` (and may list `features`): `versions.py` says which this
vdedup writes and reads; an object it does not know is refused (UnsupportedFormat).
"""
from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Mapping

import zstandard

from ..crypto.aead import counter_nonce, open_sealed, seal
from ..crypto.keys import CTX_LOCAL_FILE, MasterKey, derive
from ..errors import FormatError, IntegrityError

MAGIC = b"VDDO"
VERSION = 1
SALT_SIZE = 16
HEADER = len(MAGIC) + 2 + SALT_SIZE
FIELD_NONCE = 0x100          # nonce prefix of sealed fields: FIELD_NONCE | object type
LOCAL_NONCE = 0x200          # nonce prefix of a local cache file (seal_local)
MAX_FIELDS = 1 << 16


class ObjectType(IntEnum):
    CONFIG = 1
    INDEX = 2
    SNAPSHOT = 3
    LOCK = 4
    AUDIT = 5
    ASSET = 6
    KEYLIST = 7


class BlobType(IntEnum):
    VECTORS = 1   # vector payloads (byte-shuffled in blocks)
    TREE = 2      # manifest segments, deltas and segment lists


def describe(otype: ObjectType, name: str) -> str:
    """How messages name an object: `snapshot 1a2b3c4d5e6f7a8b`, `config`."""
    return "config" if otype == ObjectType.CONFIG else f"{otype.name.lower()} {name[:16]}"


@dataclass(frozen=True)
class ObjectKey:
    """One object's subkey and associated data: what seals and opens its body and fields."""
    otype: ObjectType
    name: str
    salt: bytes
    key: bytes = field(repr=False)

    @classmethod
    def new(cls, master: MasterKey, otype: ObjectType, name: str) -> "ObjectKey":
        return cls.of(master, otype, name, secrets.token_bytes(SALT_SIZE))

    @classmethod
    def of(cls, master: MasterKey, otype: ObjectType, name: str, salt: bytes) -> "ObjectKey":
        return cls(ObjectType(otype), name, salt, master.subkey(salt))

    @property
    def header(self) -> bytes:
        return MAGIC + bytes([VERSION, int(self.otype)]) + self.salt

    @property
    def aad(self) -> bytes:
        return self.header + b"|" + self.name.encode()

    @property
    def what(self) -> str:
        return describe(self.otype, self.name)

    def seal_body(self, plaintext: bytes) -> bytes:
        return self.header + seal(self.key, counter_nonce(int(self.otype), 0), plaintext, self.aad)

    def open_body(self, blob: bytes) -> bytes:
        return open_sealed(self.key, counter_nonce(int(self.otype), 0), blob[HEADER:], self.aad, self.what)

    def _field_aad(self, label: str) -> bytes:
        return self.aad + b"|field:" + label.encode()

    def seal_field(self, label: str, number: int, plaintext: bytes) -> dict[str, Any]:
        """A field's JSON form: {"n": its number, "data": base64 of ciphertext and tag}."""
        if not 0 <= number < MAX_FIELDS:
            raise ValueError(f"field number {number} out of range")
        ct = seal(self.key, counter_nonce(FIELD_NONCE | int(self.otype), number), plaintext,
                  self._field_aad(label))
        return {"n": number, "data": base64.b64encode(ct).decode()}

    def open_field(self, label: str, sealed: Any) -> bytes:
        what = f"{self.what} field {label!r}"
        try:
            number, data = sealed["n"], base64.b64decode(sealed["data"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise IntegrityError(f"{what}: damaged (not a sealed field)") from None
        if type(number) is not int or not 0 <= number < MAX_FIELDS:
            raise IntegrityError(f"{what}: damaged (bad field number)")
        return open_sealed(self.key, counter_nonce(FIELD_NONCE | int(self.otype), number), data,
                           self._field_aad(label), what)


def read_header(master: MasterKey, otype: ObjectType, name: str, blob: bytes) -> ObjectKey:
    """Check length, magic, envelope version and type before anything is decrypted."""
    what = describe(otype, name)
    if len(blob) < HEADER + 16 or blob[:4] != MAGIC:
        raise FormatError(f"{what}: not a vdedup object")
    if blob[4] != VERSION:
        raise FormatError(f"{what}: format version {blob[4]} is not supported")
    if blob[5] != int(otype):
        raise FormatError(f"{what}: wrong object type {blob[5]}")
    return ObjectKey.of(master, otype, name, blob[6:HEADER])


def _pack_body(data: bytes, compress: bool) -> bytes:
    return b"\x01" + zstandard.ZstdCompressor(level=3).compress(data) if compress else b"\x00" + data


def _unpack_body(what: str, body: bytes) -> bytes:
    if body[:1] == b"\x01":
        return zstandard.ZstdDecompressor().decompress(body[1:], max_output_size=1 << 31)
    if body[:1] == b"\x00":
        return body[1:]
    raise FormatError(f"{what}: unknown compression {body[0]}")


def seal_local(root: bytes, kind: bytes, data: bytes) -> bytes:
    """A file of the local cache, not a repository object (the line memo): salt (16 random
    bytes) | AES-256-GCM of `data` under a subkey derived from `root` (a purpose key of the
    master key) and the salt, nonce LOCAL_NONCE | 0 (one message per subkey), associated
    data `kind`."""
    salt = secrets.token_bytes(SALT_SIZE)
    return salt + seal(derive(CTX_LOCAL_FILE, root + salt), counter_nonce(LOCAL_NONCE, 0), data, kind)


def open_local(root: bytes, kind: bytes, blob: bytes) -> bytes:
    """Inverse of seal_local (IntegrityError if damaged or sealed under another root)."""
    if len(blob) < SALT_SIZE + 16:
        raise IntegrityError("local cache file: truncated")
    return open_sealed(derive(CTX_LOCAL_FILE, root + blob[:SALT_SIZE]), counter_nonce(LOCAL_NONCE, 0),
                       blob[SALT_SIZE:], kind, "local cache file")


def seal_object(master: MasterKey, otype: ObjectType, name: str, data: bytes, compress: bool = True) -> bytes:
    """A binary object (index files) under a fresh subkey."""
    return ObjectKey.new(master, otype, name).seal_body(_pack_body(data, compress))


def open_object(master: MasterKey, otype: ObjectType, name: str, blob: bytes) -> bytes:
    okey = read_header(master, otype, name, blob)
    return _unpack_body(okey.what, okey.open_body(blob))


@dataclass(frozen=True)
class JsonObject:
    """A JSON object as stored: its data (sealed fields still sealed), its version (1 for
    objects written before versions existed) and the key that opens its sealed fields."""
    data: dict[str, Any]
    version: int
    key: ObjectKey
    size: int = 0

    def open_field(self, label: str) -> bytes:
        return self.key.open_field(label, self.data.get(label))


def seal_json_object(master: MasterKey, otype: ObjectType, name: str, obj: Mapping[str, Any],
                fields: Mapping[str, bytes] | None = None) -> tuple[bytes, JsonObject]:
    """Seal a JSON object of the version this vdedup writes; each of `fields` (label ->
    plaintext) is sealed on its own under the same subkey and stored under its label."""
    from .versions import check_writable
    data = dict(obj)
    check_writable(otype, name, data)
    okey = ObjectKey.new(master, otype, name)
    for number, (label, plaintext) in enumerate(sorted((fields or {}).items())):
        data[label] = okey.seal_field(label, number, plaintext)
    text = json.dumps(data, separators=(",", ":")).encode()
    blob = okey.seal_body(_pack_body(text, True))
    return blob, JsonObject(data, data["version"], okey, len(blob))


def open_json_object(master: MasterKey, otype: ObjectType, name: str, blob: bytes, check: bool = True) -> JsonObject:
    """Open a JSON object; with `check`, refuse a version or feature this vdedup does not know
    (without: the caller checks later, e.g. unlock, where only authentication may fail)."""
    from .versions import check_readable, object_version
    okey = read_header(master, otype, name, blob)
    try:
        data = json.loads(_unpack_body(okey.what, okey.open_body(blob)))
    except (ValueError, UnicodeDecodeError):
        raise FormatError(f"{okey.what}: not a JSON object") from None
    if not isinstance(data, dict):
        raise FormatError(f"{okey.what}: not a JSON object")
    if check:
        check_readable(otype, name, data)
    return JsonObject(data, object_version(otype, data), okey, len(blob))
