"""Source/target URL grammar (connector layer).

    chroma:///abs/path/to/persist-dir        embedded Chroma (PersistentClient)
    chroma://HOST:PORT[?tenant=T&database=D] Chroma server (HttpClient; ssl=1 for https)
    qdrant://HOST:PORT, milvus://HOST:PORT[/db], postgresql://USER@HOST:PORT/DB?table=T,
    pinecone://INDEX, weaviate://HOST:PORT[/Class]   (later connectors follow the same rules)

The scheme is the connector's registry key. Credentials never belong in a URL: a password
or token found in one is removed from every form of the URL that is shown or stored
(`redacted`), and connectors read secrets from the environment or the credential store.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import UsageError


@dataclass(frozen=True)
class SourceURL:
    scheme: str
    host: str | None
    port: int | None
    path: str
    query: dict[str, str] = field(default_factory=dict)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def provider(self) -> str:
        return self.scheme.split("+", 1)[0]

    def redacted(self) -> str:
        """The URL without any secret: safe for output, logs and snapshots."""
        netloc = ""
        if self.host is not None:
            netloc = self.host if ":" not in self.host else f"[{self.host}]"
            if self.port is not None:
                netloc += f":{self.port}"
        if self.username:
            netloc = f"{self.username}@{netloc}"
        safe_q = {k: v for k, v in self.query.items() if k.lower() not in SECRET_KEYS}
        q = "&".join(f"{k}={v}" for k, v in sorted(safe_q.items()))
        return f"{self.scheme}://{netloc}{self.path}" + (f"?{q}" if q else "")

    def __str__(self) -> str:
        return self.redacted()


SECRET_KEYS = {"password", "api_key", "apikey", "token", "secret", "key"}


def parse_url(text: str) -> SourceURL:
    if "://" not in text:
        raise UsageError(f"not a source URL (expected SCHEME://...): {text.split('@')[-1]!r}")
    parts = urlsplit(text)
    if not parts.scheme:
        raise UsageError("source URL has no scheme")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"bad port in URL {parts.scheme}://{parts.hostname}") from None
    return SourceURL(
        scheme=parts.scheme.lower(),
        host=parts.hostname,
        port=port,
        path=unquote(parts.path),
        query=dict(parse_qsl(parts.query)),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
