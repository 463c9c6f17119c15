"""Credentials handed to a connector when it is opened (connector layer).

A connector never looks for a secret itself: it uses exactly the `Credentials` it is given.
The credential store gives an asset's stored secret (or none); the command line gives what
the provider's documented environment variables hold (`from_environment`, called with
`os.environ` at that edge). So an asset connected without a secret uses none, whatever the
environment of the process that backs it up holds, and nothing ever writes the environment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..errors import remember_secret
from .descriptor import Descriptor
from .url import SourceURL


@dataclass(frozen=True)
class Credentials:
    """A secret (API key, token or password) and where it came from, for error messages.

    `secret` is None when there is none. `origin` names the place without the value, e.g.
    "PINECONE_API_KEY" or "the credential store"; connectors use it to say which secret was
    refused."""
    secret: str | None = field(default=None, repr=False)
    origin: str = "none"

    def __post_init__(self) -> None:
        if self.secret is not None and not isinstance(self.secret, str):
            raise TypeError("a secret is a string")
        remember_secret(self.secret)          # kept out of every error message (errors.scrub)

    @property
    def present(self) -> bool:
        return bool(self.secret)

    @classmethod
    def stored(cls, secret: str | None) -> "Credentials":
        """A secret from the credential store (None: the asset has none)."""
        return cls(secret, "the credential store" if secret is not None else "none")


NO_CREDENTIALS = Credentials()


def from_environment(descriptor: Descriptor, url: SourceURL | None,
                     environ: Mapping[str, str]) -> Credentials:
    """The secret a provider's documented variables hold: the first of `secret_env` that is
    set; else, for a provider with a user/password pair (Milvus), `user:password` from
    `user_env` (or the URL's user name) and `password_env`. NO_CREDENTIALS when none is set.
    `environ` is passed in (os.environ at the command line): this module never reads it."""
    for var in descriptor.secret_env:
        if environ.get(var):
            return Credentials(environ[var], var)
    if descriptor.password_env:
        user = (environ.get(descriptor.user_env) if descriptor.user_env else None) \
            or (url.username if url is not None else None)
        if user:
            password = environ.get(descriptor.password_env, "")
            origin = " and ".join(v for v in (descriptor.user_env, descriptor.password_env)
                                  if v and environ.get(v)) or "the URL's user name"
            return Credentials(f"{user}:{password}", origin)
    return NO_CREDENTIALS
