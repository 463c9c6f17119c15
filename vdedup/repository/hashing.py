"""Keyed BLAKE3 of many small messages, in helper processes (repository layer).

Content ids are keyed BLAKE3 of each vector payload (a few KB), and BLAKE3 of a message that
small runs at about 0.5 GB/s and holds the GIL, so threads cannot share the work: at a
million 768-dim records, hashing alone is seconds of one core. HashWorkers runs it in child
processes (vdedup/hashworker.py): the messages are copied into a shared-memory file (mode
0600 in /dev/shm, unlinked as soon as it is made: the child gets its open descriptor, so
nothing stays behind after a kill), the child hashes them and sends the digests back through a pipe. The key
reaches the child through its standard input, never through its arguments or environment.

A caller that gets no worker (none started, or one died) hashes in its own thread: the
result is the same bytes either way.
"""
from __future__ import annotations

import os
import queue
import secrets
import struct
import subprocess
import sys
import tempfile
import threading
from typing import Sequence

import mmap

import numpy as np
from blake3 import blake3

from ..hashworker import keyed_digests

SLOT = 8 << 20                 # bytes of messages per job (larger inputs are split)
_JOB = struct.Struct(">III")
_CHILD = "from vdedup.hashworker import main; main()"


def digests_inline(key: bytes, data: bytes | memoryview, offsets: Sequence[int], prefix: bytes = b"",
                   dlen: int = 32) -> bytes:
    """What a worker computes, in the calling thread."""
    return keyed_digests(blake3(key=key), memoryview(data), offsets, prefix, dlen)


class _Worker:
    def __init__(self, key: bytes):
        directory = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) \
            else tempfile.gettempdir()
        path = os.path.join(directory, f"vdedup-hash-{os.getpid()}-{secrets.token_hex(8)}")
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        # unlinked at once: the child gets the open descriptor, so no kill at any moment can
        # leave the file behind
        os.unlink(path)
        try:
            os.ftruncate(fd, SLOT)
            self.shared = mmap.mmap(fd, SLOT)
            try:
                self.proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
                                             pass_fds=(fd,))
                self._send(key + struct.pack(">I", fd))
            except BaseException:
                if getattr(self, "proc", None) is not None:
                    self.proc.kill()
                self.shared.close()
                raise
        finally:
            os.close(fd)

    def ready(self) -> None:
        """Wait until the child has mapped the shared memory (it answers b"R"): the children
        of a HashWorkers start side by side, each waited for after."""
        if self._recv(1) != b"R":
            raise OSError("hash worker did not start")

    def _send(self, data: bytes) -> None:
        self.proc.stdin.write(data)         # type: ignore[union-attr]

    def _recv(self, n: int) -> bytes:
        parts = []
        while n:
            chunk = self.proc.stdout.read(n)  # type: ignore[union-attr]
            if not chunk:
                raise OSError("hash worker ended")
            parts.append(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def run(self, data: bytes | memoryview, offsets: np.ndarray, prefix: bytes, dlen: int) -> bytes:
        start, end = int(offsets[0]), int(offsets[-1])
        # copied by numpy, which lets go of the GIL meanwhile (a slice assignment to the map
        # holds it): the threads that decode blocks keep running
        np.frombuffer(self.shared, dtype=np.uint8, count=end - start)[:] = \
            np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
        n = len(offsets) - 1
        self._send(_JOB.pack(n, len(prefix), dlen) + (offsets - start).astype(">u8").tobytes() + prefix)
        return self._recv(n * dlen)

    def close(self) -> None:
        try:
            self.proc.stdin.close()           # type: ignore[union-attr]
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
        self.shared.close()


class HashWorkers:
    """`processes` hash workers; `digests` may be called from several threads at once."""

    def __init__(self, key: bytes, processes: int):
        self.key = key
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        started: list[_Worker] = []
        try:
            for _ in range(processes):
                try:
                    started.append(_Worker(key))
                except OSError:
                    break                   # fewer workers (or none): callers hash themselves
            while started:
                w = started.pop(0)
                try:
                    w.ready()
                except OSError:
                    w.close()
                    continue
                self._all.append(w)
                self._idle.put(w)
        except BaseException:
            for w in started + self._all:
                w.close()
            raise

    def __len__(self) -> int:
        return len(self._all)

    def digests(self, data: bytes | memoryview, offsets: Sequence[int], prefix: bytes = b"",
                dlen: int = 32) -> bytes:
        """BLAKE3(key, prefix || data[offsets[i]:offsets[i+1]]) cut to dlen bytes, for each i."""
        if len(offsets) < 2:
            return b""
        off = np.arange(offsets.start, offsets.stop, offsets.step, dtype=np.int64) \
            if isinstance(offsets, range) else np.asarray(offsets, dtype=np.int64)
        out = []
        i, last = 0, len(off) - 1
        while i < last:
            # the messages from i that fit into one job (at least one)
            j = min(max(int(np.searchsorted(off, off[i] + SLOT, side="right")) - 1, i + 1), last)
            out.append(self._job(data, off[i:j + 1], prefix, dlen))
            i = j
        return b"".join(out)

    def _job(self, data, offsets: np.ndarray, prefix: bytes, dlen: int) -> bytes:
        if offsets[-1] - offsets[0] > SLOT or not self._all or self._closed:
            return digests_inline(self.key, data, offsets.tolist(), prefix, dlen)
        w = self._idle.get()
        try:
            result = w.run(data, offsets, prefix, dlen)
        except (OSError, ValueError):        # the worker died: hash here from now on
            with self._lock:
                self._closed = True
            return digests_inline(self.key, data, offsets.tolist(), prefix, dlen)
        self._idle.put(w)
        return result

    def close(self) -> None:
        with self._lock:
            self._closed = True
        for w in self._all:
            w.close()
        self._all = []
