"""Milvus URLs and authentication (connector layer; imports no SDK).

    milvus://[USER@]HOST:PORT[/DB[/COLLECTION]][?secure=1]

One connector talks to one database (default "default"). With a collection in the URL, only
that collection is listed. Credentials never come from the URL: the secret the connector is
opened with is a token (`user:password` is one), or, with a user name in the URL and no colon
in the secret, that user's password. At the command line `MILVUS_TOKEN` holds it, or
`MILVUS_USER` (or the URL's user name) with `MILVUS_PASSWORD`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UsageError
from ..common import INSECURE_KEY, flag, plain_to_remote, refuse_credentials, refuse_secret_params, \
    refuse_unknown_params
from ..credentials import Credentials
from ..url import SourceURL

DEFAULT_PORT = 19530
DEFAULT_DB = "default"
URL_QUERY_KEYS = {"secure", INSECURE_KEY}
TOKEN_ENV = "MILVUS_TOKEN"
USER_ENV = "MILVUS_USER"
PASSWORD_ENV = "MILVUS_PASSWORD"


@dataclass(frozen=True)
class Address:
    """What a Milvus URL names."""
    host: str
    port: int
    secure: bool
    db: str
    collection: str | None
    user: str | None

    @property
    def netloc(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def where(self) -> str:
        """host:port/db, safe for messages."""
        return f"{self.netloc}:{self.port}/{self.db}"

    @property
    def uri(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.netloc}:{self.port}"


def parse(u: SourceURL) -> Address:
    refuse_credentials(u, "Milvus", f"set {PASSWORD_ENV} (with {USER_ENV}) or {TOKEN_ENV} instead",
                       user_allowed=True)
    refuse_secret_params(u, "Milvus", f"set {TOKEN_ENV} instead")
    refuse_unknown_params(u, "Milvus", URL_QUERY_KEYS)
    if u.scheme != "milvus":
        raise UsageError(f"unknown Milvus URL scheme {u.scheme!r}: use milvus://HOST:PORT")
    if not u.host:
        raise UsageError("a Milvus URL needs a host: milvus://HOST:PORT[/DB[/COLLECTION]]")
    parts = [p for p in u.path.split("/") if p]
    if len(parts) > 2:
        raise UsageError(f"too many path parts in Milvus URL (got {u.path!r}): "
                         "milvus://HOST:PORT[/DB[/COLLECTION]]")
    return Address(u.host, u.port or DEFAULT_PORT, flag(u.query.get("secure")),
                   parts[0] if parts else DEFAULT_DB, parts[1] if len(parts) == 2 else None,
                   u.username)


def plain_transport(u: SourceURL) -> tuple[str, str] | None:
    """See ConnectorBase.plain_transport."""
    return plain_to_remote(u, flag(u.query.get("secure")), "?secure=1")


def auth(address: Address, credentials: Credentials) -> dict[str, str]:
    """MilvusClient's authentication arguments (none without a secret)."""
    secret = credentials.secret
    if secret is None:
        return {}
    if address.user and ":" not in secret:
        return {"user": address.user, "password": secret}
    return {"token": secret}
