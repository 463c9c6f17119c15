"""Temporary row spools: sorted, disk-backed sets of manifest rows (repository layer).

Backup spools the rows of a source that does not read in record-key order, and the
delta it computes; restore spools rows by where their vector blob lives. Spools hold
plaintext rows, so they are private to the process (a directory of mode 0700 under the
cache, named with the owning pid), deleted after use, and removed by the next process
when their owner was killed (docs/design.md §10).
"""
from __future__ import annotations

import fcntl
import os
import pickle
import shutil
import tempfile
from typing import Any, Iterator

import lmdb

from ..format import manifest as mf
from .columns import Cols
from .index_cache import cache_root

OWNER_FILE = "owner.lock"
RELEASE_ROWS = 65536           # spool entries read between two releases of its map


def spool_dir() -> str:
    """Where spools are made: `<cache root>/tmp`."""
    return os.path.join(cache_root(), "tmp")


def spool_dumps(obj: Any) -> bytes:
    """Encoding of spooled rows: pickle (C-fast, exact for every metadata type). Spools are
    private to the process that writes them (mode 0700, deleted after use) and never enter
    the repository, whose objects use the typed codec in format/values.py."""
    return pickle.dumps(obj, protocol=5)


def spool_loads(raw: bytes) -> Any:
    return pickle.loads(raw)


class TempRows:
    """A sorted, disk-backed set of rows (LMDB in a temporary directory)."""

    def __init__(self, parent_dir: str | None = None):
        if parent_dir:
            os.makedirs(parent_dir, mode=0o700, exist_ok=True)
            os.chmod(parent_dir, 0o700)
            remove_stale_spools(parent_dir)
        self.dir = tempfile.mkdtemp(prefix=f"vdedup-rows-{os.getpid()}-", dir=parent_dir)   # mode 0700
        # held for the spool's life: a spool whose lock can be taken has no owner any more
        self._owner = os.open(os.path.join(self.dir, OWNER_FILE), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        fcntl.flock(self._owner, fcntl.LOCK_EX)
        self._open()

    def _open(self) -> None:
        self.env = lmdb.open(self.dir, map_size=1 << 40, max_dbs=4, sync=False, metasync=False,
                             writemap=True, map_async=True, mode=0o600)
        self.rows = self.env.open_db(b"rows")
        self.delta = self.env.open_db(b"delta")

    def release_pages(self) -> None:
        """Close and reopen the spool (no transaction may be open): the pages of the map the
        process has written or read count in its resident memory until the map is dropped."""
        self.env.close()
        self._open()

    def items_released(self, every: int = RELEASE_ROWS) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of the rows table in key order, dropping the map every `every`
        entries. Nothing else may use this spool while the iteration runs."""
        last: bytes | None = None
        while True:
            n = 0
            with self.env.begin(db=self.rows) as txn:
                cur = txn.cursor()
                ok = cur.first() if last is None else cur.set_range(last)
                if ok and last is not None and cur.key() == last:
                    ok = cur.next()
                while ok and n < every:
                    last = cur.key()
                    yield last, cur.value()
                    n += 1
                    ok = cur.next()
                if not ok:
                    return
            self.release_pages()

    def put_many(self, rows: list[mf.Row]) -> None:
        """Store rows (a repeated record key: the later row wins)."""
        with self.env.begin(write=True) as txn:
            for r in rows:
                txn.put(r.key, spool_dumps((r.id, r.vref, r.mraw, r.doc, r.uri)), db=self.rows)

    def put_cols(self, run: "Cols") -> None:
        """Store a run of rows (a repeated record key: the later row wins)."""
        values = list(map(spool_dumps, zip(run.ids, run.vrefs, run.mraws, run.docs, run.uris)))
        with self.env.begin(write=True) as txn:
            txn.cursor(db=self.rows).putmulti(zip(run.keys, values))

    def iter_cols(self, size: int = 1024) -> Iterator["Cols"]:
        """The spooled rows in key order, as runs of `size`."""
        with self.env.begin(db=self.rows) as txn:
            run = Cols.empty()
            for k, v in txn.cursor():
                rid, vref, mraw, doc, uri = spool_loads(v)
                run.keys.append(bytes(k))
                run.ids.append(rid)
                run.vrefs.append(vref)
                run.mraws.append(mraw)
                run.docs.append(doc)
                run.uris.append(uri)
                if len(run) >= size:
                    yield run
                    run = Cols.empty()
            if len(run):
                yield run

    def put_delta(self, row: mf.Row, txn) -> None:
        mraw = row.mraw if row.op != mf.OP_DELETE and row.flags & (mf.F_META | mf.F_META_PATCH) else None
        txn.put(row.key, spool_dumps((row.id, row.op, row.flags, row.vref, mraw, row.doc, row.uri)),
                db=self.delta)

    def clear_delta(self) -> None:
        """Empty the delta table (the spool is then reused for the next part)."""
        with self.env.begin(write=True) as txn:
            txn.drop(self.delta, delete=False)

    def count(self, db=None) -> int:
        with self.env.begin() as txn:
            return txn.stat(db or self.rows)["entries"]

    def iter_rows(self) -> Iterator[mf.Row]:
        with self.env.begin(db=self.rows) as txn:
            Row, full, fields = mf.Row, mf.OP_FULL, mf.ALL_FIELDS
            for k, v in txn.cursor():
                rid, vref, mraw, doc, uri = spool_loads(v)
                row = Row(rid, vref, None, doc, uri, full, fields, mraw)
                row._key = k                         # the spool's key is the record key
                yield row

    def iter_delta(self) -> Iterator[mf.Row]:
        with self.env.begin(db=self.delta) as txn:
            for _, v in txn.cursor():
                rid, op, flags, vref, mraw, doc, uri = spool_loads(v)
                yield mf.Row(rid, vref, None, doc, uri, op, flags, mraw)

    def close(self) -> None:
        self.env.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._owner is not None:
            os.close(self._owner)
            self._owner = None

    def __enter__(self) -> "TempRows":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def remove_stale_spools(parent_dir: str) -> int:
    """Delete spools left by killed processes (they hold plaintext rows); how many. A spool
    is stale when its owner lock can be taken (its process is gone, whatever pid now runs)
    or, for a spool without one, when no process has its pid."""
    removed = 0
    try:
        names = os.listdir(parent_dir)
    except OSError:
        return 0
    for name in names:
        parts = name.split("-")
        if not name.startswith("vdedup-rows-") or len(parts) < 4 or not parts[2].isdigit():
            continue
        path = os.path.join(parent_dir, name)
        if int(parts[2]) == os.getpid() or not _unowned(path, int(parts[2])):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed += 1
    return removed


def _unowned(path: str, pid: int) -> bool:
    try:
        fd = os.open(os.path.join(path, OWNER_FILE), os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False                        # its owner holds it: in use
    finally:
        os.close(fd)                        # closing drops the lock taken here
    return True


def remove_stale_spools_at_start() -> int:
    """Called as a command starts: spools of dead processes go at once, not only when the
    next spool is made."""
    parent = spool_dir()
    return remove_stale_spools(parent) if os.path.isdir(parent) else 0
