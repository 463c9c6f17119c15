"""Read-only openers for what was sealed before every object went through one codec (format layer).

Version-1 asset records (written before the codec of format/objects.py) hold their secret
sealed a second time under a long-lived key derived from the master key (the credential-store
key, `CTX_ASSETS`) with a random 96-bit nonce stored beside it and `"vdedup-asset:" ‖ name`
as associated data. Those records stay readable; nothing seals in this form any more: the
next change of the asset (`assets rotate`, a policy change) writes a version-2 record whose
secret is a sealed field of the object itself.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from ..crypto.aead import open_sealed
from ..crypto.keys import CTX_ASSETS, MasterKey
from ..errors import IntegrityError


def open_v1_asset_secret(master: MasterKey, asset_name: str, sealed: Any) -> bytes:
    """{"alg": "aes-256-gcm", "nonce": b64 of 12 bytes, "data": b64} -> the secret."""
    what = f"asset {asset_name} secret"
    try:
        if sealed.get("alg", "aes-256-gcm") != "aes-256-gcm":
            raise ValueError(sealed.get("alg"))
        nonce = base64.b64decode(sealed["nonce"], validate=True)
        data = base64.b64decode(sealed["data"], validate=True)
    except (AttributeError, KeyError, TypeError, ValueError, binascii.Error):
        raise IntegrityError(f"{what}: damaged") from None
    if len(nonce) != 12:
        raise IntegrityError(f"{what}: damaged (nonce of {len(nonce)} bytes)")
    return open_sealed(master.purpose_key(CTX_ASSETS), nonce, data,
                       b"vdedup-asset:" + asset_name.encode("utf-8"), what)
