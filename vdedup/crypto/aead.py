"""AES-256-GCM sealing with associated data (crypto layer).

Nonces are never random under a long-lived key: every sealed unit uses a subkey derived
from the master key and a fresh random salt (per object, per pack), and within one
subkey nonces are counters. This keeps each key far below GCM's 2^32-messages limit.
"""
from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IntegrityError

TAG_SIZE = 16


def counter_nonce(prefix: int, counter: int) -> bytes:
    """12-byte nonce: 4-byte domain prefix + 8-byte counter."""
    return prefix.to_bytes(4, "big") + counter.to_bytes(8, "big")


def seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def seal_into(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes, out: memoryview) -> int:
    """seal(), written into `out` (exactly len(plaintext) + TAG_SIZE bytes): no copy of the result."""
    return AESGCM(key).encrypt_into(nonce, plaintext, aad, out)


def open_sealed(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes, what: str) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise IntegrityError(f"{what}: authentication failed (data damaged, tampered or wrong key)") from None
