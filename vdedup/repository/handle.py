"""How a worker opens the coordinator's repository (repository layer).

A scaled-out backup or restore runs tasks in other processes, maybe on other machines
(engine/scaleout.py). Each opens the same repository from a `RepositoryHandle`: its location,
the S3 endpoint, and the master key itself, so that no task runs the password's KDF and no
password travels. The handle is passed as an argument of the task, held in memory only: it
is never written to disk, logged (its repr hides the key), or put in an object store.
S3 credentials of the repository are not in it: workers use their own (boto3's chain on
each node: instance role, environment of the node's own process).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RepositoryHandle:
    location: str
    s3_endpoint: str | None
    key_id: str
    secret: bytes = field(repr=False)

    def open(self):
        from ..backend import open_backend
        from ..crypto.keys import MasterKey
        from .repo import Repository
        return Repository.open_with_key(open_backend(self.location, self.s3_endpoint), MasterKey(self.secret),
                                        self.key_id)
