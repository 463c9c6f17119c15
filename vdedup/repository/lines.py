"""Parsing a files export's lines in a helper process while a backup reads on (repository layer).

A files backup spends most of its reading thread on per-line Python: the JSON scan of each
line and the canonical bytes of its metadata (docs/design.md §4.8). `LinePool.pmap(chunks)`
hands runs of raw lines to one child process (vdedup/lineworker.py, started like the hash
workers of hashing.py) and gives back `job(chunk)` for each, in order, with at most AHEAD
chunks outstanding (memory stays flat). Only the ids, the metadata bytes and pairs, the
documents and URIs cross back (pickled, through a pipe private to the two processes): the
parsed dicts never do (unpickling them costs as much as parsing the text).

The answers are the same whichever process computes them: until the child is ready, after
it fails, and for a chunk it could not answer, the caller's thread runs `job(chunk)` itself.
"""
from __future__ import annotations

import json
import queue
import pickle
import subprocess
import sys
import threading
from collections import deque
from typing import Any, Iterable, Iterator

from ..lineworker import LEN, job, metadata_pairs, read_frame

__all__ = ["AHEAD", "LinePool", "metadata_pairs"]

AHEAD = 8                      # chunks handed to the child and not yet taken back (an answer is ~0.2 MB)
_CHILD = "from vdedup.lineworker import main; main()"
_FAILED = object()


class LinePool:
    """One helper process; `pmap` may be used by one caller at a time.

    `memo`: (key, path) of the export's line memo (vdedup/linememo.py): the helper answers
    the lines it parsed in the last backup from it, and `save_memo` keeps this run's;
    `fallback`: the memo to read when there is none at that path."""

    def __init__(self, memo: tuple[bytes, str] | None = None, fallback: str | None = None) -> None:
        self._results: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._broken = False
        try:
            self._proc: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL)
        except OSError:
            self._proc = None
            self._broken = True
            return
        config = json.dumps({"key": memo[0].hex(), "memo": memo[1], "fallback": fallback}).encode() \
            if memo else b""
        try:            # before the child is ready, so that it loads the memo before answering
            self._proc.stdin.write(LEN.pack(len(config)) + config)       # type: ignore[union-attr]
            self._proc.stdin.flush()                                       # type: ignore[union-attr]
        except OSError:
            self._broken = True
        self._outbox: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="vdedup-lines-read", daemon=True)
        self._writer = threading.Thread(target=self._write, name="vdedup-lines-write", daemon=True)
        self._reader.start()
        self._writer.start()

    def _read(self) -> None:
        out = self._proc.stdout               # type: ignore[union-attr]
        try:
            if out.read(1) != b"R":
                return
            self._ready.set()
            while True:
                body = read_frame(out)
                if body is None:
                    return
                ok, value = pickle.loads(body)
                self._results.put(value if ok else _FAILED)
        except Exception:
            pass
        finally:
            self._broken = True
            self._results.put(_FAILED)        # wakes a caller waiting for an answer

    def _send(self, item: bytes) -> bool:
        """Queue a chunk for the child (a thread writes it: the pipe holds less than a chunk,
        and the caller must not wait while the child works on earlier ones)."""
        if self._broken or not self._ready.is_set():
            return False
        self._outbox.put(item)
        return True

    def _write(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                break
            try:
                self._proc.stdin.write(LEN.pack(len(item)) + item)     # type: ignore[union-attr]
                self._proc.stdin.flush()                                 # type: ignore[union-attr]
            except (OSError, ValueError, AttributeError):
                self._broken = True        # the reader sees the child end and wakes the caller
                break
        try:
            self._proc.stdin.close()                                     # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError):
            pass

    def pmap(self, items: Iterable[bytes]) -> Iterator[tuple[bytes, Any]]:
        """(item, job(item)) for each item, in order."""
        pending: deque[tuple[Any, bool]] = deque()     # (item, sent to the child)
        sent = 0

        def take() -> tuple[Any, Any]:
            nonlocal sent
            item, in_child = pending.popleft()
            if in_child:
                sent -= 1
                # answers arrive in the order of the items sent; after the child ended, the
                # answers it gave before are still queued (the reader marks it broken last)
                value = self._results.get() if not self._broken or not self._results.empty() else _FAILED
                if value is not _FAILED:
                    return item, value
            return item, job(item)

        for item in items:
            while pending and (len(pending) >= AHEAD or sent >= AHEAD):
                yield take()
            in_child = self._send(item)
            sent += in_child
            pending.append((item, in_child))
            while pending and not pending[0][1]:
                yield take()
        while pending:
            yield take()

    def save_memo(self) -> bool:
        """After every chunk was answered: have the helper write the memo of this run's lines
        (an empty job asks for it; `close` waits for it). False when the helper is gone."""
        return self._send(b"")

    def finish(self) -> None:
        """End the child's input (it answers what it was given, writes the memo if asked, then
        exits) without waiting for it: `close` waits."""
        if self._proc is not None:
            self._broken = True
            self._outbox.put(None)

    def close(self) -> None:
        """End the child (it answers what it was given, then sees its input close) and wait
        for it to exit."""
        proc = self._proc
        self._broken = True
        if proc is None:
            return
        self._outbox.put(None)
        try:
            self._writer.join(timeout=5)
            proc.wait(timeout=60)             # a memo being written (a second or so for 1M lines)
        except Exception:
            proc.kill()
            proc.wait()
        finally:
            self._proc = None
