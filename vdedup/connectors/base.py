"""The connector interface (connector layer; depends only on model and errors).

A connector talks to one database. The engine drives it through `Connector` and never imports
an SDK itself. All SDK errors are wrapped at this boundary into `SourceError` /
`CollectionNotFound` (see vdedup.errors).

`Connector` declares everything the engine may call, optional capabilities included, so the
engine never probes with getattr. `ConnectorBase` gives the optional members their defaults;
every built-in connector derives from it, and so should a third-party one (or implement every
member itself: the protocol is what the engine relies on).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Protocol, runtime_checkable

from ..errors import NotSupported
from ..model import CollectionSchema, DiscoveredIndex, Partition, RecordBatch, RecordId
from ..model.partition import WHOLE, whole

if TYPE_CHECKING:
    import numpy as np

    from .credentials import Credentials
    from .descriptor import Descriptor
    from .url import SourceURL


@runtime_checkable
class Connector(Protocol):
    provider: str                       # the provider name written into schemas
    descriptor: "Descriptor"            # what the registry knows of it
    key_ordered_scan: bool              # scan() yields records in id order (see engine/backup.py)
    url_collection: str | None          # the collection the URL names: a restore writes there
    concurrent_writes: bool             # several processes may write one collection at once
    concurrent_reads: bool              # several processes may read it at once (scale-out backup)

    @classmethod
    def from_url(cls, url: "SourceURL", credentials: "Credentials") -> "Connector":
        """Open a connection to the database a URL names, with exactly these credentials."""

    def list_collections(self) -> list[str]:
        """Names of every collection (index, table, class) the credentials can see."""

    def describe(self, collection: str) -> CollectionSchema:
        """The collection's schema, namespaces included; raises CollectionNotFound."""

    def count(self, collection: str, namespace: str = "") -> int:
        """Number of records in one namespace."""

    def scan(self, collection: str, namespace: str = "", batch_size: int = 1000) -> Iterator[RecordBatch]:
        """Every record of one namespace, in batches of at most batch_size (bounded memory)."""

    def partitions(self, collection: str, namespace: str = "", target_size: int = 100_000) -> list[Partition]:
        """The namespace split into independently readable partitions of about target_size
        records (model/partition.py). Default: one partition, the whole namespace."""

    def scan_partition(self, collection: str, partition: Partition, batch_size: int = 1000) -> Iterator[RecordBatch]:
        """Every record of one partition (as partitions() gave it), in batches."""

    def discover(self) -> list[DiscoveredIndex]:
        """What the credentials reach: each collection with its record count, dimensions,
        metric and namespaces where they are cheap to learn (None where not)."""

    def create_collection(self, schema: CollectionSchema, name: str) -> None:
        """Create an empty collection `name` from `schema`."""

    def exists(self, collection: str) -> bool:
        """Whether a collection of that name exists."""

    def write(self, collection: str, batch: RecordBatch) -> None:
        """Insert or replace the batch's records (in batch.namespace)."""

    def write_new(self, collection: str, batch: RecordBatch) -> None:
        """Insert records the caller guarantees are not in the collection (a restore into a
        collection it has just created, every id once): a faster write where replacing
        costs a look-up. Default: write()."""

    def settle(self, collection: str, namespace: str = "") -> None:
        """Return once everything written so far is readable (eventually consistent
        providers). Default: at once."""

    def finish(self, collection: str) -> None:
        """A collection's records are all written (e.g. build indexes after a bulk load).
        Default: nothing to do."""

    def delete(self, collection: str, ids: list[RecordId], namespace: str = "") -> None:
        """Delete records by id."""

    def query(self, collection: str, namespace: str, vector: "np.ndarray", k: int,
              vector_name: str = "") -> list[RecordId]:
        """The ids of the k records nearest to `vector`, by the collection's own metric and
        index, as the database serves them (verify compares them with exact answers).
        Default: NotSupported."""

    def close(self) -> None:
        """Release clients and connections."""


class ConnectorBase:
    """Defaults for the optional members of `Connector`; a connector overrides what it has.

    Subclasses set `provider` and `descriptor` and implement the required methods."""

    provider: ClassVar[str]
    descriptor: ClassVar["Descriptor"]
    # False for a connector whose scan order has no reason to follow the ids (table storage
    # order, insertion order): backup then spools the rows from the start instead of first
    # trying to stream them (engine/backup.py).
    key_ordered_scan: ClassVar[bool] = True
    # The collection (index, class, table) the URL the connector was opened with names, or
    # None: a restore writes there, as `--as` would say.
    url_collection: str | None = None
    # False for a target only one process may write at a time (a files export): a
    # scaled-out restore then writes it from the coordinator (engine/scaleout.py).
    concurrent_writes: ClassVar[bool] = True
    # False for a source only one process may open at a time (embedded storage that locks
    # its directory, such as Qdrant's local mode): a scaled-out backup then reads its
    # partitions one after the other in the coordinator (engine/backup.py), same plan.
    concurrent_reads: ClassVar[bool] = True
    # True for a target that writes metadata as JSON text: an untranslated restore may then
    # hand it batches whose metadata is the stored compact, key-sorted JSON text, not yet
    # decoded (RecordBatch.metadata_json), which it must accept besides decoded ones.
    takes_metadata_json: ClassVar[bool] = False

    @classmethod
    def storage_absent(cls, url: "SourceURL") -> bool:
        """Whether the URL names local storage that opening would create (a dry run then
        reads it as an empty database instead of opening it). Default: no local storage."""
        return False

    @classmethod
    def validate_url(cls, url: "SourceURL") -> None:
        """Raise UsageError for a URL from_url would refuse, without opening anything (so a
        bad URL naming absent storage is a usage error, not "nothing there"). Default: no
        check beyond from_url's own."""
        return None

    @classmethod
    def plain_transport(cls, url: "SourceURL") -> tuple[str, str] | None:
        """(host, the URL option that would turn TLS on) when the URL names a plain (http)
        connection to another machine without `?insecure=1`: a secret is then refused
        (registry.open_connector). None when a secret sent there would not cross a network
        in clear text. Default: None (no network, or TLS always)."""
        return None

    def query(self, collection: str, namespace: str, vector: "np.ndarray", k: int,
              vector_name: str = "") -> list[RecordId]:
        raise NotSupported(f"the {self.provider} connector has no nearest-neighbour query")

    def write_new(self, collection: str, batch: RecordBatch) -> None:
        self.write(collection, batch)        # type: ignore[attr-defined]

    def partitions(self, collection: str, namespace: str = "", target_size: int = 100_000) -> list[Partition]:
        return [whole(namespace)]

    def scan_partition(self, collection: str, partition: Partition, batch_size: int = 1000) -> Iterator[RecordBatch]:
        if partition.key != WHOLE:
            raise NotSupported(f"the {self.provider} connector does not read partition {partition.key!r}")
        return self.scan(collection, partition.namespace, batch_size)    # type: ignore[attr-defined]

    def settle(self, collection: str, namespace: str = "") -> None:
        return None

    def finish(self, collection: str) -> None:
        return None

    def discover(self) -> list[DiscoveredIndex]:
        """Each collection described and counted, namespace by namespace. A collection that
        cannot be read (e.g. a table without a primary key) is listed with the reason."""
        from ..errors import VdedupError

        found = []
        for name in self.list_collections():          # type: ignore[attr-defined]
            try:
                schema = self.describe(name)           # type: ignore[attr-defined]
                count = sum(self.count(name, ns) for ns in schema.namespaces)  # type: ignore[attr-defined]
            except VdedupError as e:
                found.append(DiscoveredIndex(self.descriptor.name, name, problem=e.message))
                continue
            found.append(DiscoveredIndex.of(self.descriptor.name, schema, count))
        return found

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()                           # type: ignore[attr-defined]
