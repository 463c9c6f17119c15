"""The credential store: connected assets, their URLs and encrypted secrets (assets layer).

Each asset is one sealed object `assets/<id>-<rand>` (ObjectType.ASSET). The object id is a
keyed BLAKE3 hash of the asset name (the name itself lives only inside the encrypted
object), plus a random suffix so that `rotate` can write the new record before it removes
the old one (a crash in between leaves two records; the newer one wins).

The object is a versioned record sealed by the one codec (format/objects.py). Its secret is
a sealed field of it (record version 2): sealed on its own under the object's subkey with a
counter nonce of the field domain and the object's header, name and the label `secret` as
associated data, so it stays sealed in memory until a connector needs it and cannot be moved
to another record. Version-1 records (before the codec) sealed the secret with a random nonce
under a long-lived credential-store key; they are still read (format/legacy.py), and every
change of an asset (`rotate`, a policy change) writes version 2, re-sealing the secret under
the new object's subkey. Whoever unlocks the master key (a password or the recovery key) can
read the store; nobody else can.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from blake3 import blake3

from ..backend.base import FileType
from ..connectors.registry import descriptors, lookup
from ..crypto.keys import CTX_ASSET_IDS
from ..errors import IntegrityError, ObjectNotFound, UsageError, VdedupError
from ..format.legacy import open_v1_asset_secret
from ..format.objects import ObjectKey, ObjectType, JsonObject
from ..format.versions import FORMATS
from ..repository import Repository

VERSION = FORMATS[ObjectType.ASSET].writes
SECRET_FIELD = "secret"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
ASSET_TYPE = "ai_vector_db"


class _SecretEnv(Mapping[str, str]):
    """provider -> the environment variable named for its secret (from the connectors'
    descriptors: the variable the command line reads it from)."""

    def _table(self) -> dict[str, str]:
        return {d.name: d.primary_secret_env or "" for d in descriptors() if d.asset}

    def __getitem__(self, provider: str) -> str:
        return self._table()[provider]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


SECRET_ENV: Mapping[str, str] = _SecretEnv()


class AssetNotFound(VdedupError):
    exit_code = 14
    hint = "see the connected assets with 'vdedup assets list'"


class AssetExists(VdedupError):
    exit_code = 13
    hint = "choose another --name, or replace the secret with 'vdedup assets rotate NAME'"


def normalize_provider(provider: str) -> str:
    """The registry name of a provider that can be a connected asset (aliases accepted)."""
    known = ", ".join(sorted(SECRET_ENV))
    try:
        d = lookup(provider)
    except UsageError:
        raise UsageError(f"unknown provider {provider!r} (known: {known})") from None
    if not d.asset:
        raise UsageError(f"{d.title} cannot be a connected asset (known: {known})")
    return d.name


def secret_env_for(provider: str) -> str:
    return SECRET_ENV[normalize_provider(provider)]


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise UsageError(f"invalid asset name {name!r}: 1-128 letters, digits and . _ : -, "
                         "starting with a letter or digit")
    return name


def mask(secret: str | None) -> str:
    """`pc-…(40 chars)`: a short prefix only when the secret is long enough to spare it."""
    if secret is None:
        return "(none)"
    prefix = secret[:3] if len(secret) >= 20 else ""
    return f"{prefix}…({len(secret)} chars)"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Asset:
    name: str
    provider: str
    url: str                              # redacted: never holds a secret
    secret_env: str
    collections: list[str] = field(default_factory=list)
    forget_policy: dict[str, Any] | None = None
    created: str = ""
    rotated: str | None = None
    has_secret: bool = False
    type: str = ASSET_TYPE
    generation: int = 0                   # +1 on every replacement; the highest record wins
    object_name: str = field(default="", repr=False)
    _sealed_secret: dict[str, Any] | None = field(default=None, repr=False)
    record_version: int = field(default=VERSION, repr=False)   # 1: a secret of the legacy form
    _object_key: ObjectKey | None = field(default=None, repr=False)   # opens the secret field

    def to_public(self) -> dict[str, Any]:
        """Everything but the secret (for listings and --json)."""
        return {"name": self.name, "type": self.type, "provider": self.provider, "url": self.url,
                "secret_env": self.secret_env, "collections": list(self.collections),
                "forget_policy": self.forget_policy, "created": self.created,
                "rotated": self.rotated, "has_secret": self.has_secret}

    def _order(self) -> tuple:
        return (self.generation, self.object_name)

    def _record(self) -> dict[str, Any]:
        """The record to write (version 2); the codec adds the sealed secret field."""
        d = self.to_public()
        d["version"] = VERSION
        d["secret"] = None
        d["generation"] = self.generation
        return d

    @classmethod
    def _from_record(cls, d: dict[str, Any], object_name: str, record: JsonObject | None = None) -> "Asset":
        return cls(name=d["name"], provider=d["provider"], url=d["url"], secret_env=d["secret_env"],
                   collections=list(d.get("collections") or []), forget_policy=d.get("forget_policy"),
                   created=d.get("created", ""), rotated=d.get("rotated"),
                   has_secret=d.get("secret") is not None, type=d.get("type", ASSET_TYPE),
                   generation=int(d.get("generation", 0)), object_name=object_name, _sealed_secret=d.get("secret"),
                   record_version=record.version if record else VERSION,
                   _object_key=record.key if record else None)

    def _copy(self) -> "Asset":
        """A new record of the same asset (not yet saved: it has no object or secret yet)."""
        return Asset._from_record({**self._record(), "secret": None}, "")


class AssetStore:
    """Connected assets of one open repository."""

    def __init__(self, repo: Repository):
        self.repo = repo
        self._id_key = repo.master.purpose_key(CTX_ASSET_IDS)

    # ---- naming ---------------------------------------------------------------------
    def _name_id(self, name: str) -> str:
        return blake3(name.encode("utf-8"), key=self._id_key).hexdigest()[:32]

    def _objects(self, name: str) -> list[str]:
        prefix = self._name_id(name) + "-"
        return [n for n, _ in self.repo.backend.list(FileType.ASSETS) if n.startswith(prefix)]

    # ---- secret ---------------------------------------------------------------------
    def secret(self, asset: Asset) -> str | None:
        """The plaintext secret: give it only to the connector (as its credentials)."""
        s = asset._sealed_secret
        if s is None:
            return None
        if asset.record_version == 1:
            plain = open_v1_asset_secret(self.repo.master, asset.name, s)
        elif asset._object_key is None:
            raise IntegrityError(f"asset {asset.name}: its secret is not in a saved record")
        else:
            plain = asset._object_key.open_field(SECRET_FIELD, s)
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:
            raise IntegrityError(f"asset {asset.name}: damaged secret") from None

    # ---- read -------------------------------------------------------------------------
    def _load(self, object_name: str) -> Asset | None:
        try:
            rec = self.repo.load_object(ObjectType.ASSET, object_name)
        except ObjectNotFound:
            return None          # removed concurrently
        return Asset._from_record(rec.data, object_name, rec)

    def _load_checked(self, object_name: str) -> Asset | None:
        """The asset in an object, or None (with a warning naming the object) when it cannot
        be read or does not belong to the name it holds: one damaged object must not make
        the other assets unusable; `check` reports it."""
        try:
            a = self._load(object_name)
        except (IntegrityError, ValueError, KeyError, TypeError, AttributeError) as e:
            why = e.message if isinstance(e, IntegrityError) else f"malformed: {type(e).__name__}"
            self.repo.warn(f"assets/{object_name[:16]} cannot be read ({why}); skipped (see 'vdedup check')")
            return None
        if a is not None and object_name.split("-", 1)[0] != self._name_id(a.name):
            self.repo.warn(f"assets/{object_name[:16]} does not belong to the name it holds; skipped "
                           f"(see 'vdedup check')")
            return None
        return a

    def list(self) -> list[Asset]:
        newest: dict[str, Asset] = {}
        for object_name, _ in self.repo.backend.list(FileType.ASSETS):
            a = self._load_checked(object_name)
            if a is None:
                continue
            prev = newest.get(a.name)
            if prev is None or a._order() > prev._order():
                newest[a.name] = a
        return sorted(newest.values(), key=lambda a: a.name)

    def get(self, name: str) -> Asset:
        objects = self._objects(name)
        found = [a for a in (self._load_checked(n) for n in objects) if a is not None and a.name == name]
        if not found:
            if objects:
                raise IntegrityError(f"asset {name!r} is damaged: none of its {len(objects)} record(s) "
                                     f"can be read", hint="run 'vdedup check' to see what is damaged")
            raise AssetNotFound(f"no connected asset named {name!r}")
        return max(found, key=lambda a: a._order())

    # ---- write ------------------------------------------------------------------------
    def _save(self, asset: Asset, secret: str | None) -> Asset:
        """Write a new record (version 2) of the asset; its secret becomes a sealed field under
        the new object's subkey."""
        asset.object_name = f"{self._name_id(asset.name)}-{secrets.token_hex(8)}"
        fields = {SECRET_FIELD: secret.encode("utf-8")} if secret is not None else {}
        rec = self.repo.save_object(ObjectType.ASSET, asset.object_name, asset._record(), fields)
        asset.has_secret = secret is not None
        asset._sealed_secret = rec.data.get(SECRET_FIELD)
        asset.record_version, asset._object_key = rec.version, rec.key
        return asset

    def add(self, name: str, provider: str, url: str, secret: str | None,
            collections: list[str] | None = None, forget_policy: dict[str, Any] | None = None) -> Asset:
        check_name(name)
        provider = normalize_provider(provider)
        if self._objects(name):
            raise AssetExists(f"an asset named {name!r} is already connected")
        asset = Asset(name=name, provider=provider, url=url, secret_env=SECRET_ENV[provider],
                      collections=list(collections or []), forget_policy=forget_policy,
                      created=_now(), has_secret=secret is not None)
        return self._save(asset, secret)

    def _replace(self, old: Asset, new: Asset, secret: str | None) -> Asset:
        """Write the new record first, then remove every older one."""
        stale = self._objects(old.name)
        new.generation = old.generation + 1
        self._save(new, secret)
        for n in stale:
            try:
                self.repo.backend.remove(FileType.ASSETS, n)
            except ObjectNotFound:
                pass
        return new

    def rotate(self, name: str, secret: str | None) -> Asset:
        old = self.get(name)
        new = old._copy()
        new.rotated = _now()
        return self._replace(old, new, secret)

    def set_policy(self, name: str, policy: dict[str, Any] | None) -> Asset:
        """A new record with the policy; the secret is re-sealed under its object (a record
        of version 1 is thereby rewritten in the current form)."""
        old = self.get(name)
        new = old._copy()
        new.forget_policy = policy
        return self._replace(old, new, self.secret(old))

    def remove(self, name: str) -> Asset:
        asset = self.get(name)
        for n in self._objects(name):
            try:
                self.repo.backend.remove(FileType.ASSETS, n)
            except ObjectNotFound:
                pass
        return asset
