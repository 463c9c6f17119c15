"""Master key, derived keys, and key wrapping per password or recovery key (crypto layer).

The master key is 32 random bytes made once at `init`. From it, BLAKE3 in key-derivation
mode gives: the encryption root (subkeys per object/pack are derived from it and a random
salt) and the content-id key (keyed BLAKE3 of blob contents). A password wraps the master
key through scrypt (memory-hard, parameters stored in the key file); a recovery key
(32 random bytes, shown once) wraps it through BLAKE3 key derivation.
"""
from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass

from blake3 import blake3
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import FormatError, UsageError
from .aead import open_sealed, seal

CTX_ENC = "vdedup 2026-11-25 object encryption root"
CTX_ID = "vdedup 2026-11-25 content id"
CTX_SUBKEY = "vdedup 2026-11-25 per-object subkey"
CTX_RECOVERY = "vdedup 2026-11-25 recovery key wrapping"
# keys for keyed hashes (MACs and name ids): never used to encrypt, so they need no nonces
CTX_AUDIT = "vdedup 2026-11-25 audit chain"
CTX_ASSET_IDS = "vdedup 2026-11-25 asset object ids"
CTX_KEY_DIGEST = "vdedup 2026-12-20 key file digest"
CTX_LINE_MEMO = "vdedup 2026-12-06 line memo"
CTX_LOCAL_FILE = "vdedup 2026-12-06 local cache file subkey"
# read only: the long-lived key that sealed asset secrets (random nonces) before every sealed
# object went through one codec (format/objects.py); format/legacy.py opens them, nothing seals
CTX_ASSETS = "vdedup 2026-11-25 credential store"

DEFAULT_SCRYPT = {"n": 2 ** 17, "r": 8, "p": 1}
# VDEDUP_SCRYPT_N (new keys, test suites only) must be a power of two in this range
SCRYPT_N_ENV_RANGE = (2 ** 10, 2 ** 20)
# what a key file may ask of us before scrypt runs: larger values are refused unread, so a
# planted key file cannot make an unlock allocate gigabytes or spin for hours
SCRYPT_MAX_N = 2 ** 20
SCRYPT_MAX_R = 32
SCRYPT_MAX_P = 16
SCRYPT_MAX_MEMORY = 1 << 30          # 128 * n * r bytes
SCRYPT_MAX_WORK = 2 ** 24            # n * r * p: 128 x the default's CPU work


def derive(context: str, material: bytes, length: int = 32) -> bytes:
    return blake3(material, derive_key_context=context).digest(length)


@dataclass(frozen=True)
class MasterKey:
    secret: bytes

    @classmethod
    def generate(cls) -> "MasterKey":
        return cls(secrets.token_bytes(32))

    @property
    def enc_root(self) -> bytes:
        return derive(CTX_ENC, self.secret)

    @property
    def id_key(self) -> bytes:
        return derive(CTX_ID, self.secret)

    def subkey(self, salt: bytes) -> bytes:
        return derive(CTX_SUBKEY, self.enc_root + salt)

    def purpose_key(self, context: str) -> bytes:
        """A key for a keyed hash of another component (audit chain, asset ids, key file
        digests), bound to this master key. Nothing is encrypted under it: encryption uses
        per-object subkeys with counter nonces (format/objects.py), and the line memo of the
        local cache a key derived from it and a fresh salt per file (vdedup/linememo.py)."""
        return derive(context, self.secret)


def scrypt_params() -> dict:
    """Scrypt parameters for new keys; VDEDUP_SCRYPT_N lowers N for test suites only, and only
    to a power of two in SCRYPT_N_ENV_RANGE (n=2 would make a password key worthless)."""
    params = dict(DEFAULT_SCRYPT)
    text = os.environ.get("VDEDUP_SCRYPT_N", "").strip()
    if text:
        lo, hi = SCRYPT_N_ENV_RANGE
        try:
            n = int(text)
        except ValueError:
            n = 0
        if not (lo <= n <= hi and n & (n - 1) == 0):
            raise UsageError(f"VDEDUP_SCRYPT_N={text!r}: must be a power of two from {lo} to {hi} "
                             f"(it lowers the scrypt cost of new keys for test suites; unset it otherwise)")
        params["n"] = n
    return params


def scrypt_problem(kdf: dict) -> str | None:
    """Why scrypt parameters read from a key file are refused (None: they are acceptable).
    Checked before scrypt runs: its memory is 128 * n * r bytes, its work n * r * p."""
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(type(v) is int for v in (n, r, p)):
        return "scrypt parameters n, r, p are not integers"
    if n < 2 or n & (n - 1) or n > SCRYPT_MAX_N:
        return f"scrypt n={n} is not a power of two from 2 to {SCRYPT_MAX_N}"
    if not 1 <= r <= SCRYPT_MAX_R or not 1 <= p <= SCRYPT_MAX_P:
        return f"scrypt r={r}, p={p} out of range (r 1-{SCRYPT_MAX_R}, p 1-{SCRYPT_MAX_P})"
    if 128 * n * r > SCRYPT_MAX_MEMORY:
        return (f"scrypt n={n}, r={r} needs {128 * n * r >> 20} MiB of memory "
                f"(at most {SCRYPT_MAX_MEMORY >> 20} MiB)")
    if n * r * p > SCRYPT_MAX_WORK:
        return f"scrypt n={n}, r={r}, p={p} asks for more than {SCRYPT_MAX_WORK // 2 ** 20}x2^20 rounds of work"
    return None


def kdf_password(password: str, kdf: dict) -> bytes:
    problem = scrypt_problem(kdf)
    if problem:                         # never reached through unlock, which checks first
        raise FormatError(f"key file refused: {problem}")
    salt = base64.b64decode(kdf["salt"])
    return Scrypt(salt=salt, length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(password.encode("utf-8"))


def kdf_recovery(recovery: bytes, kdf: dict) -> bytes:
    return derive(CTX_RECOVERY, recovery + base64.b64decode(kdf["salt"]))


RECOVERY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def new_recovery_key() -> tuple[bytes, str]:
    """32 random bytes and their printable form: base32 in groups of 4, dash separated."""
    raw = secrets.token_bytes(32)
    text = base64.b32encode(raw).decode().rstrip("=")
    return raw, "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def parse_recovery_key(text: str) -> bytes | None:
    s = "".join(ch for ch in text.upper() if ch not in "- \t\r\n")
    if len(s) != 52 or any(ch not in RECOVERY_ALPHABET for ch in s):
        return None
    return base64.b32decode(s + "=" * 4)


def wrap(master: MasterKey, wrapping_key: bytes, key_id: str) -> tuple[bytes, bytes]:
    nonce = secrets.token_bytes(12)   # the wrapping key is fresh per key file (fresh salt)
    return nonce, seal(wrapping_key, nonce, master.secret, b"vdedup-key:" + key_id.encode())


def unwrap(wrapping_key: bytes, nonce: bytes, data: bytes, key_id: str) -> MasterKey:
    return MasterKey(open_sealed(wrapping_key, nonce, data, b"vdedup-key:" + key_id.encode(), "key"))
