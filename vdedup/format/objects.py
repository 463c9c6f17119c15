"""Object types, blob types and the sealed envelope of standalone objects (format layer).

Every file in a repository except key files is sealed with AES-256-GCM under a subkey
derived from the master key and a random per-object salt. The associated data binds the
envelope header and the object's name (its id) in the repository, so an object cannot be
swapped for another or renamed without detection.

    b"VDDO" | u8 version | u8 type | 16-byte salt | AES-GCM(subkey, nonce(type, 0), plaintext)
    plaintext = u8 compression (0 none, 1 zstd) | data
"""
from __future__ import annotations

import json
import secrets
from enum import IntEnum
from typing import Any

import zstandard

from ..crypto.aead import counter_nonce, open_sealed, seal
from ..crypto.keys import MasterKey
from ..errors import FormatError

MAGIC = b"VDDO"
VERSION = 1
HEADER = len(MAGIC) + 2 + 16


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


def seal_object(master: MasterKey, otype: ObjectType, name: str, data: bytes, compress: bool = True) -> bytes:
    salt = secrets.token_bytes(16)
    header = MAGIC + bytes([VERSION, int(otype)]) + salt
    body = b"\x01" + zstandard.ZstdCompressor(level=3).compress(data) if compress else b"\x00" + data
    aad = header + b"|" + name.encode()
    return header + seal(master.subkey(salt), counter_nonce(int(otype), 0), body, aad)


def open_object(master: MasterKey, otype: ObjectType, name: str, blob: bytes) -> bytes:
    if len(blob) < HEADER + 16 or blob[:4] != MAGIC:
        raise FormatError(f"{otype.name.lower()} {name[:16]}: not a vdedup object")
    if blob[4] != VERSION:
        raise FormatError(f"{otype.name.lower()} {name[:16]}: format version {blob[4]} is not supported")
    if blob[5] != int(otype):
        raise FormatError(f"{otype.name.lower()} {name[:16]}: wrong object type {blob[5]}")
    header, salt = blob[:HEADER], blob[6:HEADER]
    body = open_sealed(master.subkey(salt), counter_nonce(int(otype), 0), blob[HEADER:],
                       header + b"|" + name.encode(), f"{otype.name.lower()} {name[:16]}")
    if body[:1] == b"\x01":
        return zstandard.ZstdDecompressor().decompress(body[1:], max_output_size=1 << 31)
    if body[:1] == b"\x00":
        return body[1:]
    raise FormatError(f"{otype.name.lower()} {name[:16]}: unknown compression {body[0]}")


def seal_json(master: MasterKey, otype: ObjectType, name: str, obj: Any) -> bytes:
    return seal_object(master, otype, name, json.dumps(obj, separators=(",", ":")).encode())


def open_json(master: MasterKey, otype: ObjectType, name: str, blob: bytes) -> Any:
    return json.loads(open_object(master, otype, name, blob))
