"""Backups of connected assets: one, several, or every one (engine layer).

A connected asset's secret is decrypted from the credential store and handed to its connector
as the credentials it is opened with, and to nothing else: the process environment is never
written, and an asset stored without a secret is opened with none (whatever variables such as
PINECONE_API_KEY the process happens to hold). Each asset's
snapshot is tagged `asset:NAME`; its stored forget policy, if any, is applied to that
asset's snapshots only (never to other assets' or hand-made snapshots).
"""
from __future__ import annotations

import contextlib
import importlib.util
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..assets.store import Asset, AssetStore
from ..connectors import Credentials, open_connector, parse_url
from ..connectors.base import Connector
from ..errors import RetentionActive, VdedupError
from ..ratelimit import Rate
from ..repository import Repository, Snapshot
from .backup import BATCH_SIZE, BackupResult, backup
from .events import Reporter
from .throttle import throttled


def asset_tag(name: str) -> str:
    return f"asset:{name}"


def asset_snapshots(repo: Repository, name: str) -> list[Snapshot]:
    tag = asset_tag(name)
    return [s for s in repo.list_snapshots() if tag in s.tags]


@contextlib.contextmanager
def asset_connector(store: AssetStore, asset: Asset, read_only: bool = False,
                    create_on_write: bool = False, must_exist: bool = False) -> Iterator[Connector]:
    """An open connector for the asset, opened with its stored secret (or none)
    (`read_only`, `create_on_write`: see registry.open_connector)."""
    connector = open_connector(parse_url(asset.url), Credentials.stored(store.secret(asset)),
                               read_only=read_only, create_on_write=create_on_write,
                               must_exist=must_exist)
    try:
        yield connector
    finally:
        connector.close()


def forget_available() -> bool:
    """Whether the forget engine is installed (policies are kept but not applied without it)."""
    return importlib.util.find_spec("vdedup.engine.forget") is not None


def policy_from_dict(d: dict[str, Any]):
    from .forget import Policy, parse_duration
    return Policy(int(d.get("last", 0)), int(d.get("hourly", 0)), int(d.get("daily", 0)),
                  int(d.get("weekly", 0)), int(d.get("monthly", 0)), int(d.get("yearly", 0)),
                  parse_duration(d["within"]) if d.get("within") else None, tuple(d.get("tags") or ()))


def apply_asset_policy(repo: Repository, asset: Asset) -> list[str] | None:
    """Remove the asset's snapshots its policy does not keep; None when there is no policy
    (or no forget engine). Returns the removed snapshot ids."""
    if not asset.forget_policy or not forget_available():
        return None
    from .forget import apply_policy
    policy = policy_from_dict(asset.forget_policy)
    if policy.empty():
        return None
    lock = repo.lock(exclusive=True, operation="forget")
    try:
        decisions = apply_policy(asset_snapshots(repo, asset.name), policy, ("source",))
        removed = []
        for g in decisions:
            for s in g.remove:
                try:
                    repo.remove_snapshot(s.id)
                except RetentionActive:      # Object Lock: removed by a later run
                    continue
                removed.append(s.id)
        return removed
    finally:
        lock.release()


@dataclass
class AssetOutcome:
    asset: str
    provider: str
    ok: bool
    snapshot_id: str | None = None
    records: int = 0
    bytes_added: int = 0
    seconds: float = 0.0
    forgotten: list[str] | None = None
    error: str | None = None          # the error's one-line message (no secrets, no data)
    error_class: str | None = None
    exit_code: int = 0
    result: BackupResult | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"asset": self.asset, "provider": self.provider,
                "outcome": "ok" if self.ok else "error", "snapshot_id": self.snapshot_id,
                "records": self.records, "bytes_added": self.bytes_added,
                "duplicates": self.result.stats.get("duplicates", 0) if self.result is not None else 0,
                "seconds": round(self.seconds, 3), "forgotten": self.forgotten,
                "error": self.error, "error_class": self.error_class, "exit_code": self.exit_code}


def backup_asset(repo: Repository, store: AssetStore, asset: Asset, reporter: Reporter | None = None,
                 batch_size: int = BATCH_SIZE, extra_tags: list[str] | None = None,
                 rate: Rate | None = None) -> AssetOutcome:
    """Back up one asset and apply its forget policy (`rate`: --limit-rate); errors propagate."""
    started = time.monotonic()
    with asset_connector(store, asset, must_exist=True) as connector:
        result = backup(repo, throttled(connector, rate), parse_url(asset.url).redacted(), asset.collections or None,
                        [asset_tag(asset.name), *(extra_tags or [])], reporter, batch_size)
    forgotten = apply_asset_policy(repo, asset)
    return AssetOutcome(asset.name, asset.provider, True, result.snapshot.id, result.stats["records"],
                        result.bytes_added, time.monotonic() - started, forgotten, result=result)


def backup_assets(repo: Repository, store: AssetStore, assets: list[Asset],
                  reporter: Reporter | None = None, batch_size: int = BATCH_SIZE,
                  rate: Rate | None = None) -> list[AssetOutcome]:
    """Back up each asset in turn, continuing past failures (which are returned, not raised).
    An interrupt (Ctrl-C) still stops the whole run."""
    outcomes = []
    for asset in assets:
        started = time.monotonic()
        try:
            outcomes.append(backup_asset(repo, store, asset, reporter, batch_size, rate=rate))
        except VdedupError as e:
            outcomes.append(AssetOutcome(asset.name, asset.provider, False, seconds=time.monotonic() - started,
                                         error=e.message.splitlines()[0] if e.message else "",
                                         error_class=type(e).__name__, exit_code=e.exit_code))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:   # an unexpected failure of one asset must not stop the others
            outcomes.append(AssetOutcome(asset.name, asset.provider, False, seconds=time.monotonic() - started,
                                         error=f"internal error: {type(e).__name__}",
                                         error_class=type(e).__name__, exit_code=1))
    return outcomes
