"""The repository: config, keys, objects, blobs, snapshots, locks (repository layer).

Write ordering (the commit protocol): packs first, then the index files naming them, then
the snapshot. A snapshot is only ever written after everything it references is stored
and indexed, and a backend save is atomic, so a crash at any moment leaves a repository
whose snapshots are all complete; anything written after the last snapshot is either
reused by the next backup (indexed packs) or unreferenced garbage that prune removes.
"""
from __future__ import annotations

import datetime as dt
import getpass
import os
import secrets
import socket
import threading
from collections import OrderedDict
from typing import Any, Callable, Iterable, Iterator

from blake3 import blake3

from .. import __version__
from ..backend.base import Backend, FileType
from ..crypto.keys import CTX_LINE_MEMO, MasterKey
from ..errors import (FormatError, IntegrityError, ObjectExists, ObjectNotFound, RepositoryExists,  # noqa: F401
                      RepositoryNotFound, SnapshotNotFound, UnsupportedFormat)
from ..format import block as blockfmt
from ..format import pack as packfmt
from ..format.objects import (BlobType, JsonObject, ObjectType, open_json_object, open_object, seal_json_object,
                              seal_object)
from ..format.versions import FORMATS, check_readable
from ..model import RecordBatch
from . import keylist
from . import keys as keyfiles
from . import packs, reachable, reader
from .availability import Availability
from .index_cache import IndexCache, cache_root
from .locks import Lock, LockInfo, NoLock, list_locks, read_lock
from .manifest import iter_state
from .rows import Row
from .snapshot import Snapshot, find
from .spool import TempRows, spool_dir
from .writer import Writer, batch_rows

FORMAT_VERSION = FORMATS[ObjectType.CONFIG].writes
CONFIG_NAME = "config"

BLOCK_CACHE_MIN = 4               # decoded blocks load_block keeps, whatever their size...
BLOCK_CACHE_BYTES = 32 << 20      # ...and more while they hold at most this many bytes of blobs
_LOC = packfmt.BlobLocation._S      # block, offset, length, ordinal, raw_length, type after the pack id


class Repository:
    def __init__(self, backend: Backend, master: MasterKey, config: dict[str, Any], key_id: str):
        self.backend = backend
        self.master = master
        self.config = config
        self.key_id = key_id
        self._id_key = master.id_key
        self._index: IndexCache | None = None
        self._trust_cache = False
        self._block_cache: OrderedDict[tuple[bytes, int], tuple[list[bytes], int]] = OrderedDict()
        self._block_bytes = 0
        self._block_lock = threading.Lock()
        self._pack_keys: dict[bytes, bytes] = {}
        self.warnings: list[str] = []           # problems that did not stop the operation
        self.on_warning: Callable[[str], None] | None = None     # the CLI shows them as they come
        self.damaged_snapshots: set[str] = set()
        self.damaged_index_files: dict[str, str] = {}     # name -> why it cannot be read
        self._packs_listed: set[bytes] | None = None        # pack ids listed once (pack_present)
        self._packs_checked: dict[bytes, bool] = {}
        self._newer_snapshots: dict[str, UnsupportedFormat] = {}   # of a version we do not know

    # ---- lifecycle ------------------------------------------------------------------
    @classmethod
    def init(cls, backend: Backend, password: str,
             object_lock: dict[str, Any] | None = None) -> tuple["Repository", str]:
        """Create a repository; returns it and the one-time recovery key text.
        `object_lock` ({"mode": "GOVERNANCE"|"COMPLIANCE", "days": N}, S3 only): every object a
        backup needs is saved with that retention (docs/design.md §2)."""
        if backend.exists():
            raise RepositoryExists(f"a repository already exists at {backend.location}")
        if object_lock:
            backend.enable_object_lock(object_lock["mode"], object_lock["days"])
        backend.create_layout()
        # key files without a config are what an interrupted init leaves: they belong to no
        # repository (the config is written last), so they are removed, never reused
        for ftype in (FileType.KEYS, FileType.KEYLIST):
            for name, _ in list(backend.list(ftype)):
                backend.remove(ftype, name)
        master = MasterKey.generate()
        password_key = keyfiles.write_password_key(backend, master, password)
        recovery_key, recovery_text = keyfiles.write_recovery_key(backend, master)
        keylist.update(backend, master, add=[password_key, recovery_key], present=[])
        key_id = password_key.id
        config = {"version": FORMAT_VERSION, "id": secrets.token_hex(32),
                  "created": _now(), "program": f"vdedup {__version__}",
                  "features": [], "content_id": "blake3-keyed-256", "cipher": "aes-256-gcm",
                  "compression": "zstd+byte-shuffle"}
        if object_lock:
            config["object_lock"] = {"mode": object_lock["mode"], "days": int(object_lock["days"])}
        backend.save(FileType.CONFIG, CONFIG_NAME, seal_json_object(master, ObjectType.CONFIG, CONFIG_NAME, config)[0])
        return cls(backend, master, config, key_id), recovery_text

    @classmethod
    def open(cls, backend: Backend, password: str) -> "Repository":
        if not backend.exists():
            raise RepositoryNotFound(f"no repository at {backend.location}")
        raw = backend.load(FileType.CONFIG, CONFIG_NAME)
        configs: dict[bytes, Any] = {}

        def opens_config(master: MasterKey) -> bool:
            try:
                configs[master.secret] = open_json_object(master, ObjectType.CONFIG, CONFIG_NAME, raw, check=False).data
                return True
            except IntegrityError:
                return False

        master, key_id = keyfiles.unlock(backend, password, opens_config)
        config = configs.get(master.secret)
        if config is None:            # a key opened, but the config does not with it: say why
            config = open_json_object(master, ObjectType.CONFIG, CONFIG_NAME, raw, check=False).data
        check_readable(ObjectType.CONFIG, CONFIG_NAME, config)     # version and features (§11)
        lock = config.get("object_lock")
        if isinstance(lock, dict):           # the sealed config says so: saves get a retention
            backend.configure_object_lock(str(lock.get("mode")), float(lock.get("days", 0)))
        return cls(backend, master, config, key_id)

    def handle(self) -> "RepositoryHandle":
        """What a worker process or Ray task needs to open this repository again without
        the password (see handle.py); hold it in memory only."""
        from .handle import RepositoryHandle
        inner = getattr(self.backend, "inner", self.backend)
        return RepositoryHandle(self.backend.location, getattr(inner, "endpoint", None), self.key_id,
                                self.master.secret)

    @classmethod
    def open_with_key(cls, backend: Backend, master: MasterKey, key_id: str) -> "Repository":
        """Open with the master key itself (a worker given a RepositoryHandle)."""
        if not backend.exists():
            raise RepositoryNotFound(f"no repository at {backend.location}")
        raw = backend.load(FileType.CONFIG, CONFIG_NAME)
        config = open_json_object(master, ObjectType.CONFIG, CONFIG_NAME, raw, check=False).data
        check_readable(ObjectType.CONFIG, CONFIG_NAME, config)
        lock = config.get("object_lock")
        if isinstance(lock, dict):
            backend.configure_object_lock(str(lock.get("mode")), float(lock.get("days", 0)))
        return cls(backend, master, config, key_id)

    @property
    def id(self) -> str:
        return self.config["id"]

    @property
    def cache_dir(self) -> str:
        """This repository's directory in the local cache (index cache, prune state)."""
        return os.path.join(cache_root(), self.id)

    def line_memo(self, scope: str) -> tuple[bytes, str]:
        """(key, path) of the line memo of the source read as `scope` (vdedup/linememo.py):
        a file of the local cache named by a keyed hash of the scope."""
        key = self.master.purpose_key(CTX_LINE_MEMO)
        name = blake3(scope.encode("utf-8", "surrogatepass"), key=key).hexdigest()[:32]
        return key, os.path.join(self.cache_dir, "linememo", name)

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def __enter__(self) -> "Repository":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- objects ----------------------------------------------------------------------
    def seal(self, otype: ObjectType, name: str, data: bytes) -> bytes:
        return seal_object(self.master, otype, name, data)

    def save_object(self, otype: ObjectType, name: str, obj: dict[str, Any],
                    fields: dict[str, bytes] | None = None) -> JsonObject:
        """Seal and save a versioned JSON object (format/objects.py, the one codec), with
        `fields` (label -> plaintext) sealed on their own inside it."""
        blob, sealed = seal_json_object(self.master, otype, name, obj, fields)
        self.backend.save(_FILE_TYPE[otype], name, blob)
        return sealed

    def load_object(self, otype: ObjectType, name: str, check: bool = True) -> JsonObject:
        """A JSON object, refused (UnsupportedFormat) if its version or features are unknown;
        `check=False` for what needs only its bytes authenticated (the audit chain's hash)."""
        return open_json_object(self.master, otype, name, self.backend.load(_FILE_TYPE[otype], name), check)

    def save_json_object(self, otype: ObjectType, name: str, obj: dict[str, Any]) -> int:
        return self.save_object(otype, name, obj).size

    def load_json_object(self, otype: ObjectType, name: str) -> Any:
        return self.load_object(otype, name).data

    def content_id(self, blob_type: BlobType, data: bytes) -> bytes:
        h = blake3(bytes([int(blob_type)]), key=self._id_key)
        h.update(data)                     # not joined to the type byte first: no copy of a large blob
        return h.digest()

    # ---- index ------------------------------------------------------------------------
    @property
    def index(self) -> IndexCache:
        if self._index is None:
            self._index = IndexCache(os.path.join(cache_root(), self.id, "index"))
            if not self._trust_cache:
                self.sync_index()
        return self._index

    def trust_index_cache(self) -> None:
        """Open the local index cache as it is, without loading the index files it has not
        seen: for a worker process whose coordinator on this machine synced the same cache
        just before (engine/scaleout.py), so that N workers do not each load the index files
        the others write meanwhile. A blob another process stores meanwhile is then unknown
        here and stored again at worst (a duplicate, which prune removes), never lost."""
        self._trust_cache = True

    def sync_index(self) -> None:
        if self._index is None:
            _ = self.index          # opening the cache syncs it
            return
        loaded = self._index.loaded_files()      # before listing: a file another process adds
        present = {name for name, _ in self.backend.list(FileType.INDEX)}   # meanwhile is not "removed"
        self._index.sync(present, self._load_index_for_cache, loaded, self.pack_present)

    def _load_index_for_cache(self, name: str) -> list[tuple[bytes, packfmt.BlobLocation]] | None:
        """An index file's locations, or None (with a warning naming it) if it cannot be read:
        only the blobs of the packs it names are then unknown, everything else stays usable."""
        try:
            return self.load_index_file(name)
        except ObjectNotFound:
            return None              # removed by a concurrent prune
        except (IntegrityError, FormatError, UnsupportedFormat) as e:
            self.damaged_index_files[name] = e.message
            self.warn(f"{e.message}: the data of the packs this index file names is unknown until "
                      f"'vdedup repair index' (see 'vdedup check')")
            return None

    def load_index_file(self, name: str) -> list[tuple[bytes, packfmt.BlobLocation]]:
        body = open_object(self.master, ObjectType.INDEX, name, self.backend.load(FileType.INDEX, name))
        packs = packfmt.decode_index(body)
        return [e for pid, blocks in packs.items() for e in packfmt.locations(pid, blocks)]

    def index_files(self) -> Iterator[tuple[str, dict[bytes, list[packfmt.BlockInfo]]]]:
        """Every index file: (name, {pack id: block table})."""
        for name, _ in self.backend.list(FileType.INDEX):
            yield name, self.read_index_file(name)

    def list_index_files(self) -> dict[str, int]:
        """Name -> size of every index file."""
        return dict(self.backend.list(FileType.INDEX))

    def read_index_file(self, name: str) -> dict[bytes, list[packfmt.BlockInfo]]:
        """One index file: {pack id: block table}; IntegrityError/FormatError if it does not open."""
        body = open_object(self.master, ObjectType.INDEX, name, self.backend.load(FileType.INDEX, name))
        return packfmt.decode_index(body)

    def write_index_file(self, packs: dict[bytes, list[packfmt.BlockInfo]]) -> str:
        """Save a new index file naming these packs; returns its name."""
        name = secrets.token_hex(32)
        self.backend.save(FileType.INDEX, name, self.seal(ObjectType.INDEX, name, packfmt.encode_index(packs)))
        return name

    def remove_index_file(self, name: str) -> None:
        try:
            self.backend.remove(FileType.INDEX, name)
        except ObjectNotFound:
            pass

    # ---- packs ------------------------------------------------------------------------
    def list_packs(self) -> tuple[dict[str, int], list[str]]:
        """(pack name -> size, names in data/ that are not pack names)."""
        packs_, strays = {}, []
        for name, size in self.backend.list(FileType.DATA):
            if _is_pack_name(name):
                packs_[name] = size
            else:
                strays.append(name)
        return packs_, strays

    def pack_present(self, pack_id: bytes) -> bool:
        """Whether a pack exists: data/ is listed once per Repository, and a pack not in that
        listing (saved since, or gone) is asked for on its own, once."""
        if self._packs_listed is None:
            self._packs_listed = {bytes.fromhex(n) for n in self.list_packs()[0]}
        if pack_id in self._packs_listed:
            return True
        found = self._packs_checked.get(pack_id)
        if found is None:
            try:
                self.backend.stat(FileType.DATA, pack_id.hex())
                found = True
            except ObjectNotFound:
                found = False
            self._packs_checked[pack_id] = found
        return found

    def load_pack(self, name: str) -> bytes:
        return self.backend.load(FileType.DATA, name)

    def remove_pack(self, name: str) -> None:
        try:
            self.backend.remove(FileType.DATA, name)
        except ObjectNotFound:
            pass

    def remove_stale_temporaries(self, older_than: float) -> tuple[int, int]:
        """Temporary files of saves that never finished (a killed process, a full disk),
        older than `older_than` seconds: (files, bytes) removed. Backends that write no
        temporary files (S3, memory) have none."""
        remove = getattr(self.backend, "remove_stale_temporaries", None)
        return remove(older_than) if remove is not None else (0, 0)

    def verify_packs(self, names: Iterable[str], indexed: dict[bytes, list[packfmt.BlockInfo]],
                     workers: int = 1) -> Iterator[tuple[str, packs.PackCheck]]:
        """Read packs whole and verify them against the index (check --read-data), `workers`
        at a time; (name, findings) in the order given."""
        return packs.verify_packs(self, names, indexed, workers)

    def index_packs(self, names: Iterable[str], workers: int = 1
                    ) -> Iterator[tuple[str, list[packfmt.BlockInfo], list[str]]]:
        """Rebuild the block tables (with blob ids) of packs from the packs alone (repair
        index): (name, blocks that open, error lines), `workers` packs at a time, in order."""
        return packs.index_packs(self, names, workers)

    def repack(self, writer: Writer, items: list[tuple[str, int]], keep: Callable[[str, bytes], bool],
               workers: int = 1) -> Iterator[int]:
        """Copy the blobs `keep(pack name, id)` chooses out of packs (name, expected count)
        into new packs (prune); yields the count copied per pack."""
        return packs.repack(self, writer, items, keep, workers)

    def object_sizes(self) -> dict[str, int]:
        """Total bytes of the packs, index files, snapshots and key files."""
        return {t: sum(size for _, size in self.backend.list(t))
                for t in (FileType.DATA, FileType.INDEX, FileType.SNAPSHOTS, FileType.KEYS)}

    # ---- reading and writing namespaces -------------------------------------------------
    def writer(self, copy_all: bool = False, before_save: Callable[[bytes], None] | None = None,
               workers: int = 1) -> Writer:
        """A write session (see writer.py); `copy_all`/`before_save` are prune's (packer.py);
        `workers` > 1 compresses blocks and saves packs beside the caller."""
        return Writer(self, copy_all, before_save, workers)

    def namespace_rows(self, entry: dict[str, Any]) -> Iterator[Row]:
        """The manifest rows of a namespace entry, sorted by record key, each blob verified."""
        return iter_state(self, entry)

    def rows_of(self, batches: Iterable[RecordBatch]) -> Iterator[Row]:
        """The manifest rows a backup of these records would record, sorted by record key
        (spooled to disk: bounded memory), without storing anything."""
        with TempRows(spool_dir()) as tmp:
            for batch in batches:
                tmp.put_many(list(batch_rows(self, batch).rows()))
            yield from tmp.iter_rows()

    def read_namespace(self, entry: dict[str, Any], rows: Iterable[Row] | None = None,
                       batch_size: int = 1000, namespace: str = "", workers: int = 1,
                       metadata_json: bool = False) -> Iterator[RecordBatch]:
        """The records of a namespace entry (or of the given rows of it) as verified batches;
        `workers` > 1 reads and decodes blocks and batches ahead in that many threads;
        `metadata_json`: batches may carry JSON-form metadata bytes undecoded (reader.py)."""
        return reader.read_namespace(self, entry, rows, batch_size, namespace, workers, metadata_json)

    # ---- reachability -----------------------------------------------------------------
    def mark_snapshots(self, snaps: list[Snapshot], marks: reachable.BlobMarks, name: str = "used",
                       on_snapshot: Callable[[], None] | None = None) -> int:
        """Mark every blob the snapshots reference; returns how many are not indexed."""
        return reachable.mark_snapshots(self, snaps, marks, name, on_snapshot)

    def check_references(self, snaps: list[Snapshot], avail: Availability,
                         on_snapshot: Callable[[], None] | None = None) -> Iterator[reachable.NamespaceRefs]:
        """Per namespace entry of the snapshots: references that are not readable, and the
        records that lost their data."""
        return reachable.check_references(self, snaps, avail, on_snapshot)

    def split_namespace(self, entry: dict[str, Any], avail: Availability) -> Iterator[tuple[Any, list]]:
        """A namespace's rows run by run: (the rows whose data is readable, the ids of the
        records whose data is not); VdedupError if its manifest cannot be read."""
        from .availability import split_state
        return split_state(self, entry, avail)

    def availability(self, usable_packs: set[bytes], damaged: set[bytes] | None = None) -> Availability:
        """What can be read: blobs located in `usable_packs` and not in `damaged`."""
        return Availability(self, usable_packs, damaged)

    def missing_hint(self) -> str:
        """What to do about data the index does not locate."""
        if self.damaged_index_files:
            return "an index file is damaged: run 'vdedup repair index'"
        return "run 'vdedup check' to see what is damaged"

    def manifest_problem(self, entry: dict[str, Any]) -> str | None:
        """Why a namespace entry's manifest cannot be read, or None (backup: a parent whose
        manifest is lost is not diffed against)."""
        return reachable.manifest_problem(self, entry)

    # ---- blobs ------------------------------------------------------------------------
    def read_block(self, pack: bytes, number: int, offset: int, length: int, blob_type: int) -> list[bytes]:
        """The blobs of one block, fetched, authenticated and decoded (no cache; threads may
        call it at once)."""
        return self._read_block(pack, number, offset, length, blob_type, blockfmt.decode_block)

    def read_block_rows(self, pack: bytes, number: int, offset: int, length: int,
                        blob_type: int) -> "np.ndarray | list[bytes]":
        """read_block, with the blobs as the rows of one uint8 array when they all have the
        same layout (format/block.py decode_block_rows)."""
        return self._read_block(pack, number, offset, length, blob_type, blockfmt.decode_block_rows)

    def _read_block(self, pack: bytes, number: int, offset: int, length: int, blob_type: int, decode):
        name = pack.hex()
        try:
            key = self._pack_keys.get(pack)
            if key is None:
                header = self.backend.load(FileType.DATA, name, 0, packfmt.PACK_HEADER)
                key = self._pack_keys[pack] = packfmt.pack_key(self.master, header)
                if len(self._pack_keys) > 4096:
                    self._pack_keys.clear()
            sealed = self.backend.load(FileType.DATA, name, offset, length)
        except ObjectNotFound:
            raise IntegrityError(f"pack {name[:16]} is missing") from None
        if len(sealed) != length:
            raise IntegrityError(f"pack {name[:16]} is truncated")
        plain = packfmt.open_block(key, pack, number, blob_type, sealed)
        try:
            return decode(plain)
        except Exception as e:
            raise IntegrityError(f"pack {name[:16]} block {number}: cannot decode ({e})") from None

    def load_block(self, pack: bytes, number: int, offset: int, length: int, blob_type: int) -> list[bytes]:
        """read_block, through a cache of the blocks read last: at least BLOCK_CACHE_MIN, more
        while they hold at most BLOCK_CACHE_BYTES of blobs (a snapshot's manifest is read as
        several streams at once, its base and each delta layer, each from blocks of its own)."""
        key = (pack, number)
        with self._block_lock:
            cached = self._block_cache.get(key)
            if cached is not None:
                self._block_cache.move_to_end(key)
                return cached[0]
        blobs = self.read_block(pack, number, offset, length, blob_type)
        size = sum(map(len, blobs))
        with self._block_lock:
            if key not in self._block_cache:
                self._block_cache[key] = (blobs, size)
                self._block_bytes += size
            while len(self._block_cache) > BLOCK_CACHE_MIN and self._block_bytes > BLOCK_CACHE_BYTES:
                self._block_bytes -= self._block_cache.popitem(last=False)[1][1]
        return blobs

    def load_blob(self, blob_id: bytes, blob_type: BlobType) -> bytes:
        loc = self.index.get(blob_id)
        if loc is None:
            raise IntegrityError(f"blob {blob_id.hex()[:16]} is not in the index", hint=self.missing_hint())
        return self.blob_at(blob_id, blob_type, loc)

    def blob_at_raw(self, blob_id: bytes, blob_type: BlobType, raw_loc: bytes) -> bytes:
        """blob_at() for a location as the index cache stores it (BlobLocation.to_bytes)."""
        block, offset, length, ordinal, _, btype = _LOC.unpack_from(raw_loc, 32)
        if btype != int(blob_type):
            raise IntegrityError(f"blob {blob_id.hex()[:16]} has the wrong type")
        blobs = self.load_block(raw_loc[:32], block, offset, length, btype)
        if ordinal >= len(blobs):
            raise IntegrityError(f"blob {blob_id.hex()[:16]} is not where the index says")
        data = blobs[ordinal]
        if self.content_id(blob_type, data) != blob_id:
            raise IntegrityError(f"blob {blob_id.hex()[:16]} does not match its content id")
        return data

    def blob_at(self, blob_id: bytes, blob_type: BlobType, loc: packfmt.BlobLocation) -> bytes:
        """The blob at a location the index gave, verified against its content id."""
        if loc.blob_type != int(blob_type):
            raise IntegrityError(f"blob {blob_id.hex()[:16]} has the wrong type")
        blobs = self.load_block(loc.pack, loc.block, loc.offset, loc.length, loc.blob_type)
        if loc.ordinal >= len(blobs):
            raise IntegrityError(f"blob {blob_id.hex()[:16]} is not where the index says")
        data = blobs[loc.ordinal]
        if self.content_id(blob_type, data) != blob_id:
            raise IntegrityError(f"blob {blob_id.hex()[:16]} does not match its content id")
        return data

    def warn(self, message: str) -> None:
        """Report a problem that does not stop the operation (e.g. a damaged object skipped)."""
        if message not in self.warnings:
            self.warnings.append(message)
            if self.on_warning is not None:
                self.on_warning(message)

    # ---- snapshots --------------------------------------------------------------------
    def list_snapshots(self, strict: bool = False) -> list[Snapshot]:
        """Every snapshot, oldest first. One that cannot be read (damaged, junk) is skipped
        with a warning naming it, so the others stay usable; `strict` (prune: a snapshot it
        cannot read may reference data it must keep) raises instead."""
        snaps = []
        for name, _ in self.backend.list(FileType.SNAPSHOTS):
            try:
                snaps.append(Snapshot.from_dict(self.load_json_object(ObjectType.SNAPSHOT, name)))
            except ObjectNotFound:
                continue   # removed by a concurrent forget
            except UnsupportedFormat as e:      # a newer vdedup wrote it: never half-read it
                if strict:
                    raise
                self.damaged_snapshots.add(name)
                self._newer_snapshots[name] = e
                self.warn(f"{e.message}; skipped (upgrade vdedup to read it)")
            except (IntegrityError, ValueError, TypeError, KeyError, AttributeError) as e:
                if strict:
                    raise IntegrityError(f"snapshot {name[:8]} cannot be read: {_why(e)}",
                                         hint="run 'vdedup check' to see what is damaged") from None
                self.damaged_snapshots.add(name)
                self.warn(f"snapshots/{name[:16]} cannot be read ({_why(e)}); skipped (see 'vdedup check')")
        snaps.sort(key=lambda s: (s.time, s.id))
        return snaps

    def asset_object_names(self) -> list[str]:
        """The objects of the credential store (rollback evidence compares them)."""
        return [name for name, _ in self.backend.list(FileType.ASSETS)]

    def keylist_generations(self) -> list[int]:
        """The generations of the key list present (§3.7)."""
        return [int(name) for name, _ in self.backend.list(FileType.KEYLIST) if name.isdigit()]

    def snapshot_names(self) -> list[str]:
        return [name for name, _ in self.backend.list(FileType.SNAPSHOTS)]

    def load_snapshot(self, name: str) -> Snapshot:
        return Snapshot.from_dict(self.load_json_object(ObjectType.SNAPSHOT, name))

    def remove_snapshot(self, snapshot_id: str) -> None:
        """Remove a snapshot object (its data stays until prune); gone already is fine."""
        try:
            self.backend.remove(FileType.SNAPSHOTS, snapshot_id)
        except ObjectNotFound:
            pass

    def move_snapshot_aside(self, name: str) -> str:
        """Move an unreadable snapshot object to `damaged/snapshots-<name>` (its bytes as they
        are, for inspection; nothing reads them) and remove it from snapshots/; returns the
        new place."""
        raw = self.backend.load(FileType.SNAPSHOTS, name)
        aside = f"snapshots-{name}"
        try:
            self.backend.save(FileType.DAMAGED, aside, raw)
        except ObjectExists:          # moved aside before, by a run killed before the removal
            pass
        self.backend.remove(FileType.SNAPSHOTS, name)
        return f"{FileType.DAMAGED}/{aside}"

    def find_snapshot(self, ref: str, source: str | None = None) -> Snapshot:
        snaps = self.list_snapshots()
        try:
            return find(snaps, ref, source)
        except SnapshotNotFound:
            hit = [n for n in self.damaged_snapshots if ref and n.startswith(ref.lower())]
            if hit and hit[0] in self._newer_snapshots:
                raise self._newer_snapshots[hit[0]] from None
            if hit:
                raise IntegrityError(f"snapshot {hit[0][:8]} is damaged and cannot be read",
                                     hint="run 'vdedup check' to see what is damaged") from None
            raise

    def new_snapshot(self, source: str, provider: str, tags: list[str], parent: str | None) -> Snapshot:
        return Snapshot(id=secrets.token_hex(32), time=_now(), hostname=socket.gethostname(),
                        username=_username(), source=source, provider=provider, tags=list(tags),
                        parent=parent, program=f"vdedup {__version__}")

    def save_snapshot(self, snap: Snapshot) -> int:
        return self.save_json_object(ObjectType.SNAPSHOT, snap.id, snap.to_dict())

    # ---- locks ------------------------------------------------------------------------
    def lock(self, exclusive: bool, operation: str) -> Lock:
        return Lock(self, exclusive, operation).acquire()

    def read_lock(self, operation: str) -> Lock | NoLock:
        """A shared lock, or none (with a warning) when the storage refuses writes."""
        return read_lock(self, operation)

    def list_locks(self) -> list[LockInfo]:
        return list_locks(self)


_FILE_TYPE = {ObjectType.CONFIG: FileType.CONFIG, ObjectType.INDEX: FileType.INDEX,
              ObjectType.SNAPSHOT: FileType.SNAPSHOTS, ObjectType.LOCK: FileType.LOCKS,
              ObjectType.AUDIT: FileType.AUDIT, ObjectType.ASSET: FileType.ASSETS,
              ObjectType.KEYLIST: FileType.KEYLIST}


def _why(e: Exception) -> str:
    return e.message if isinstance(e, IntegrityError) else f"malformed: {type(e).__name__}"


def _is_pack_name(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def _username() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
