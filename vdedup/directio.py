"""Writing large files past the page cache (O_DIRECT) where the system takes it (any layer).

A buffered write copies the bytes into fresh page-cache pages, and the fsync that follows
has the kernel write them back on the calling thread: on the 2-core benchmark machine that
costs 2-3 CPU seconds per GB (benchmarks/results/profile.md), more than sealing and
compressing the same bytes, on a machine whose cores the backup needs. With O_DIRECT the
disk reads the bytes straight from an aligned buffer of ours: ~0.05 CPU s per GB here, and
the write is as fast or faster. The data is as durable as before: the caller still fsyncs
(file and directory), and nothing of the file is left in the page cache to drop.

This module imports nothing of vdedup (numpy only, for copies that let go of the GIL). `write_all(fd, data)` writes the whole blocks of
ALIGN bytes that way, copied CHUNK bytes at a time into a page-aligned buffer of the calling
thread, and the rest (the tail, and everything when the file system refuses direct writes:
tmpfs on older kernels, some FUSE and network file systems answer EINVAL) through the page
cache, so the bytes on disk are the same either way. Real errors (a full disk, a size limit) are raised as from a plain write.
`Appender(fd)` does the same for a file written in many pieces (a restored export's
vectors): it stages them in an aligned buffer and writes it whenever it is full.
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading

import numpy as np

ALIGN = 4096                   # covers 512- and 4096-byte logical blocks
CHUNK = 8 << 20                # bytes copied into the aligned buffer per write
MIN_SIZE = 1 << 20             # smaller writes go through the page cache
O_DIRECT = getattr(os, "O_DIRECT", 0)

_local = threading.local()


def _buffer() -> tuple[mmap.mmap, memoryview]:
    held = getattr(_local, "buffer", None)
    if held is None:
        buf = mmap.mmap(-1, CHUNK)            # anonymous memory: page-aligned
        held = _local.buffer = (buf, memoryview(buf))
    return held


def write_all(fd: int, data: bytes | bytearray | memoryview) -> int:
    """Write `data` at the position of `fd` (a regular file opened for writing, position a
    multiple of ALIGN); the number of bytes that went past the page cache."""
    view = memoryview(data).cast("B")
    done = _write_direct(fd, view, staged=False) if O_DIRECT and len(view) >= MIN_SIZE else 0
    _write_plain(fd, view[done:])
    return done


def _copy(dst: memoryview, src: memoryview) -> None:
    """dst[:] = src, copied by numpy, which lets go of the GIL meanwhile (a memoryview's
    slice assignment holds it: other threads would wait for every chunk staged)."""
    np.frombuffer(dst, dtype=np.uint8)[:] = np.frombuffer(src, dtype=np.uint8)


def _write_plain(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]


def _write_direct(fd: int, view: memoryview, staged: bool) -> int:
    """Write the whole ALIGN blocks at the start of `view` with O_DIRECT (`staged`: `view`
    is page-aligned memory already, else each CHUNK is copied into this thread's buffer):
    the bytes written (0 when the file system refuses); `fd` is left as it was."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | O_DIRECT)
    except OSError:
        return 0
    done = 0
    try:
        mv = None if staged else _buffer()[1]
        head = len(view) - len(view) % ALIGN
        while done < head:
            n = min(CHUNK, head - done)
            if mv is None:
                wrote = os.write(fd, view[done:done + n])
            else:
                _copy(mv[:n], view[done:done + n])
                wrote = os.write(fd, mv[:n])
            done += wrote
            if wrote != n:                    # a short write: the rest through the cache
                break
    except OSError as e:
        if e.errno != errno.EINVAL:           # EINVAL: no direct writes here (nothing written)
            raise
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)
    return done


class Appender:
    """Appends to `fd` (a new, empty file) CHUNK bytes at a time past the page cache; `end`
    writes what is left (through the cache). After the first refusal or short write, every
    write goes through the cache. Like a file: write, flush (a no-op: pieces stay staged
    until a whole chunk is there), fileno, close (ends the file first)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = mmap.mmap(-1, CHUNK)
        self._mv = memoryview(self._buf)
        self._fill = 0
        self._direct = bool(O_DIRECT)
        self.bytes_direct = 0

    def fileno(self) -> int:
        return self.fd

    def flush(self) -> None:
        pass

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            n = min(len(view), CHUNK - self._fill)
            _copy(self._mv[self._fill:self._fill + n], view[:n])
            self._fill += n
            view = view[n:]
            if self._fill == CHUNK:
                self._write_staged()

    def _write_staged(self) -> None:
        staged = self._mv[:self._fill]
        done = _write_direct(self.fd, staged, staged=True) if self._direct else 0
        if done != self._fill:
            self._direct = False
        self.bytes_direct += done
        _write_plain(self.fd, staged[done:])
        self._fill = 0

    def end(self) -> None:
        """Write what is staged (the file's last, partial chunk)."""
        if self._fill:                        # its whole ALIGN blocks direct, the rest cached
            self._write_staged()

    def close(self) -> None:
        if self._buf.closed:
            return
        try:
            self.end()
        finally:
            self._mv.release()
            self._buf.close()
            os.close(self.fd)
