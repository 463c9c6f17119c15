"""Connected assets and the audit log (repository-adjacent layer).

Both live in the repository as sealed objects: the credential store under `assets/`
(`store.py`), the hash-chained audit log under `audit/` (`audit.py`). They use only the
repository's object API and the crypto layer.
"""
from .store import Asset, AssetStore, SECRET_ENV, secret_env_for

__all__ = ["Asset", "AssetStore", "SECRET_ENV", "secret_env_for"]
