"""Running per-pack or per-block work on several threads, in order (repository layer).

`Workers(repo, n)` gives a map that keeps the input order with at most 2 x n items in
flight (so memory stays bounded by a few packs), and, for n > 1, n hash worker processes
for the content ids that must be recomputed (hashing.py). With n = 1 everything runs on
the calling thread.
"""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np

from ..format.manifest import split_ids
from .hashing import HashWorkers, digests_inline

T = TypeVar("T")
R = TypeVar("R")


class Workers:
    def __init__(self, repo, workers: int, hash_processes: bool = True):
        self.repo = repo
        self.n = max(1, workers)
        self._pool = ThreadPoolExecutor(self.n, "vdedup-work") if self.n > 1 else None
        self._batch_pool: ThreadPoolExecutor | None = None
        self._hash_pool: ThreadPoolExecutor | None = None
        # one hash process per thread: a thread that has read and decoded a block need not
        # wait for another's hashing to end (restore 1M x 768 on 2 cores: ~7% faster than n - 1);
        # started on a thread of their own (a process start takes a few hundredths of a
        # second), blobs read before they are ready are hashed by the thread that read them
        self._hashers: HashWorkers | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._starter: threading.Thread | None = None
        if self.n > 1 and hash_processes:
            self._starter = threading.Thread(target=self._start_hashers, name="vdedup-hash-start", daemon=True)
            self._starter.start()

    def _start_hashers(self) -> None:
        try:
            hashers = HashWorkers(self.repo.master.id_key, self.n)
        except Exception:                 # none then: the threads hash what they read
            return
        with self._lock:
            if not self._closed:
                self._hashers = hashers
                return
        hashers.close()

    def content_ids(self, blob_type: int, blobs: list[bytes]) -> list[bytes]:
        """Every blob's content id (docs/design.md §3.6)."""
        offsets = [0]
        for b in blobs:
            offsets.append(offsets[-1] + len(b))
        data = b"".join(blobs)
        prefix = bytes([blob_type])
        hashers = self._hashers
        if hashers is not None and len(hashers):
            raw = hashers.digests(data, offsets, prefix)
        else:
            raw = digests_inline(self.repo.master.id_key, data, offsets, prefix)
        return split_ids(raw)

    def content_id_rows(self, blob_type: int, rows: np.ndarray) -> np.ndarray:
        """content_ids of blobs given as the rows of an (n, width) uint8 array, as (n, 32)."""
        n, width = rows.shape
        data = memoryview(np.ascontiguousarray(rows).reshape(-1))
        offsets = range(0, n * width + 1, width)
        prefix = bytes([blob_type])
        hashers = self._hashers
        if hashers is not None and len(hashers):
            raw = hashers.digests(data, offsets, prefix)
        else:
            raw = digests_inline(self.repo.master.id_key, data, offsets, prefix)
        return np.frombuffer(raw, dtype=np.uint8).reshape(n, 32)

    def content_id_rows_later(self, blob_type: int, rows: np.ndarray) -> Future:
        """content_id_rows as a future: with hash workers, a thread of a small pool hands the
        rows to one and waits for the answer, so the caller goes on to its next block while
        they are hashed; else computed at once."""
        hashers = self._hashers
        if hashers is None or not len(hashers):
            return self.submit_now(self.content_id_rows, blob_type, rows)
        with self._lock:
            if self._hash_pool is None:
                self._hash_pool = ThreadPoolExecutor(len(hashers), "vdedup-hash")
            return self._hash_pool.submit(self.content_id_rows, blob_type, rows)

    @staticmethod
    def submit_now(fn: Callable[..., R], *args) -> Future:
        """fn(*args) on this thread, as a future."""
        fut: Future = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:         # handed to whoever asks for the result
            fut.set_exception(e)
        return fut

    def submit(self, fn: Callable[..., R], *args) -> Future:
        """fn(*args) on a thread (n > 1) or at once on this one; a future either way."""
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        return self.submit_now(fn, *args)

    def submit_batch(self, fn: Callable[..., R], *args) -> Future:
        """submit, but on a thread of its own (n > 1): work the caller waits for next (the
        decoding of the next batch) does not queue behind the blocks read ahead."""
        if self._pool is None:
            return self.submit(fn, *args)
        if self._batch_pool is None:
            self._batch_pool = ThreadPoolExecutor(1, "vdedup-batch")
        return self._batch_pool.submit(fn, *args)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """fn over items, results in input order."""
        if self._pool is None:
            for item in items:
                yield fn(item)
            return
        ahead: deque[Future] = deque()
        for item in items:
            ahead.append(self._pool.submit(fn, item))
            if len(ahead) >= 2 * self.n:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()

    def close(self) -> None:
        for name in ("_batch_pool", "_pool", "_hash_pool"):   # the hash pool last: a block
            pool = getattr(self, name)                          # thread may still start it
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._closed = True
        if self._starter is not None:
            self._starter.join()
        if self._hashers is not None:
            self._hashers.close()

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
