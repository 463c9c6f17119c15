"""Scale-out: one backup or restore spread over worker processes or a Ray cluster (engine
layer; docs/scale-out.md).

The coordinator (the `vdedup` process) makes the partition plan (model/partition.py), runs
one task per partition through an executor, and commits one snapshot. A backup task opens
the repository and the source itself, reads its partition, stores the new vector blobs in
packs of its own, saves their index, writes its manifest parts (repository/parts.py) and
returns them; the coordinator's snapshot, saved after every task has returned, names them
(the commit point stays the snapshot file). A restore task reads a share of a namespace's
manifest parts and writes its records into the target.

Executors: `LocalProcesses` (`--workers N`: N worker processes on this machine) and
`RayCluster` (`--ray [ADDRESS]`). Both retry a task whose worker died (a task is idempotent:
packs are named at random and blobs are content-addressed, so a retried task stores again
at worst what the dead one had saved unindexed, which prune removes; only the returned
parts of the successful attempt are committed). A task's own error (a VdedupError) is not
retried: the run stops with it, naming the partition.

Secrets: a task gets the repository's master key (repository/handle.py) and the source's
URL and credentials as arguments held in memory. They are never put in Ray's object store
with ray.put (small task arguments travel inline in the task specification), never logged
(their reprs hide them), and the Ray runtime environment sets no environment variables.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..connectors import Credentials, open_connector
from ..errors import MissingDependency, VdedupError, WorkerFailed
from ..model import CollectionSchema, Partition
from .events import Reporter

RETRIES = 2                    # more attempts of a task whose worker died
STOP_GRACE = 30.0              # seconds stopped local workers get to save their progress


@dataclass(frozen=True)
class SourceHandle:
    """How a worker opens the source or target: its URL (which may hold a password) and
    credentials, both hidden from repr."""
    url: str = field(repr=False)
    credentials: Credentials = field(repr=False)

    def open(self):
        return open_connector(self.url, self.credentials)


class Executor(Protocol):
    name: str
    task_seconds: list[float]          # each finished task's own run time
    startup_seconds: float             # connecting to (or starting) the cluster
    nodes: set[str]                    # where tasks ran

    def run(self, fn: Callable[[Any], Any], tasks: list[Any], names: list[str],
            on_done: Callable[[int, Any], None]) -> list[Any]:
        """fn(task) for every task, results in task order; on_done(i, result) as each ends."""


# ---- tasks (run in worker processes) ----------------------------------------------------------

@dataclass(frozen=True)
class BackupTask:
    repo: Any                          # RepositoryHandle
    source: SourceHandle
    collection: str
    partition: dict[str, Any]
    prev: dict[str, Any] | None        # the previous namespace entry, only this source's parts
    batch_size: int
    threads: int = 1
    trust_cache: bool = False          # the coordinator synced this machine's index cache just before


@dataclass(frozen=True)
class RestoreTask:
    repo: Any
    target: SourceHandle
    collection: str                    # the target collection
    namespace: str                     # the target namespace
    entry: dict[str, Any]              # a share of the namespace's parts (repository.sub_entry)
    batch_size: int
    fresh: bool                        # every record is new to the collection: write_new
    threads: int = 1


def _name(part: Partition, collection: str) -> str:
    return collection + (f"/{part.namespace}" if part.namespace else "") + (f" [{part.key}]" if part.key else "")


@contextlib.contextmanager
def _opened(repo_handle, source: SourceHandle, trust_cache: bool = False):
    """The repository and the source (or target) a task works on, closed after it."""
    repo = repo_handle.open()
    if trust_cache:
        repo.trust_index_cache()
    try:
        connector = source.open()
        try:
            yield repo, connector
        finally:
            connector.close()
    finally:
        repo.close()


def run_backup_task(task: BackupTask):
    """One partition: packs, index and manifest parts saved; returns a PartitionResult."""
    from .backup import backup_partition
    part = Partition.from_dict(task.partition)
    try:
        with _opened(task.repo, task.source, task.trust_cache) as (repo, connector):
            lock = repo.lock(exclusive=False, operation="backup task")
            try:
                writer = repo.writer(workers=task.threads)
            except BaseException:
                lock.release()
                raise
            try:
                result = backup_partition(writer, connector, task.collection, part, task.prev, Reporter(),
                                          task.batch_size, _name(part, task.collection))
                writer.flush()
                writer.close()
                result.bytes_written = writer.bytes_written
                return result
            except BaseException:
                writer.save_progress()
                raise
            finally:
                lock.release()
    except VdedupError as e:
        raise WorkerFailed(f"partition {_name(part, task.collection)}: {e.message}", e.exit_code, e.hint) from None


def run_restore_task(task: RestoreTask) -> int:
    """One share of a namespace written into the target; returns the records written."""
    try:
        with _opened(task.repo, task.target) as (repo, connector):
            write = connector.write_new if task.fresh else connector.write
            n = 0
            for batch in repo.read_namespace(task.entry, None, task.batch_size, task.namespace, task.threads):
                write(task.collection, batch)
                n += len(batch)
            return n
    except VdedupError as e:
        raise WorkerFailed(f"restore of {task.collection}: {e.message}", e.exit_code, e.hint) from None


# ---- the coordinator's side -----------------------------------------------------------------

class Scatter:
    """An executor and the handles its tasks need."""

    def __init__(self, executor: Executor, source: SourceHandle):
        self.executor = executor
        self.source = source
        self.report: dict[str, Any] = {}

    def close(self) -> None:
        """Stop worker processes started ahead of tasks that did not come."""
        close = getattr(self.executor, "close", None)
        if close is not None:
            close()

    # local processes split the work only if no task holds more than this share of it
    LOCAL_MAX_SHARE = 0.6

    def wants(self, sizes: list[int | None]) -> bool:
        """Whether to run tasks of these sizes (records, None: not known) through the
        executor. Ray: always. Local processes: only for more than one task, none of which
        holds more than LOCAL_MAX_SHARE of the known records. One partition in this process
        already keeps every core busy (its reading, its parse helper, compress and seal
        threads: CPU/wall ~1.6 on two cores); a task in a worker process runs alone there (one
        core), so a plan like 1,000,000 + 5,000 rows would run at the speed of one core."""
        if not isinstance(self.executor, LocalProcesses):
            return True
        if len(sizes) < 2:
            return False
        known = [s for s in sizes if s is not None]
        total = sum(known)
        return not known or total == 0 or max(known) <= self.LOCAL_MAX_SHARE * total

    def backup(self, repo, plan: list[tuple[CollectionSchema, str, list[Partition], dict[str, Any] | None]],
               batch_size: int, reporter: Reporter) -> dict[tuple[str, str, str], Any]:
        from ..repository import parts_of
        handle = repo.handle()
        # workers on this machine share its index cache: synced once here, not by each task
        # (which would load every index file the tasks finished before it wrote)
        local = isinstance(self.executor, LocalProcesses)
        if local:
            repo.sync_index()
        keys, tasks, names = [], [], []
        total = 0
        for schema, ns, partitions, prev in plan:
            for part in partitions:
                mine = None
                if prev is not None:
                    mine = {"name": prev["name"], "count": 0, "features": ["parts"],
                            "parts": [p for p in parts_of(prev) if p["source"] == part.key]}
                    if not mine["parts"]:
                        mine = None
                keys.append((schema.name, ns, part.key))
                tasks.append(BackupTask(handle, self.source, schema.name, part.to_dict(), mine, batch_size,
                                        trust_cache=local))
                names.append(_name(part, schema.name))
                total += part.estimate or 0
        reporter.phase(f"backup: {len(tasks)} partition(s) on {self.executor.name}", total or None)

        def done(i: int, result: Any) -> None:
            reporter.advance(sum(result.stats.get(k, 0) for k in ("added", "changed", "unchanged")))

        started = time.monotonic()
        results = self.executor.run(run_backup_task, tasks, names, done)
        wall = time.monotonic() - started
        reporter.done()
        busy = list(self.executor.task_seconds)
        self.report = {"executor": self.executor.name, "tasks": len(tasks),
                       "nodes": len(self.executor.nodes), "seconds": round(wall, 3),
                       "startup_seconds": round(self.executor.startup_seconds, 3),
                       "task_seconds": round(sum(busy), 3)}
        repo.sync_index()                    # the tasks' index files: the next operation knows their blobs
        return dict(zip(keys, results))

    def restore(self, repo, entry: dict[str, Any], collection: str, namespace: str, batch_size: int,
                fresh: bool, share_rows: int, reporter: Reporter) -> int:
        """Write one namespace entry into the target, a share of its parts per task."""
        from ..repository import parts_of, sub_entry
        shares: list[list[dict[str, Any]]] = [[]]
        rows = 0
        for p in parts_of(entry):
            if shares[-1] and rows + p["count"] > share_rows:
                shares.append([])
                rows = 0
            shares[-1].append(p)
            rows += p["count"]
        handle = repo.handle()
        tasks = [RestoreTask(handle, self.source, collection, namespace, sub_entry(entry, s), batch_size, fresh)
                 for s in shares if s]
        names = [f"{collection}/{namespace} share {i + 1}" for i in range(len(tasks))]
        results = self.executor.run(run_restore_task, tasks, names, lambda i, n: reporter.advance(n))
        return sum(results)


def _preload(provider: str | None) -> None:
    """A local worker process's start: SIGTERM asks it to stop (`_on_stop`; SIGINT it
    ignores from its first instruction, `_spawning`), then it imports what its tasks run (the
    engine, the repository and the connector of `provider`, with its SDK), while the
    coordinator is still planning."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_stop)
    if provider is None:
        return
    from ..connectors.registry import connector_class, lookup
    from . import backup, restore  # noqa: F401
    try:
        connector_class(lookup(provider))
    except VdedupError:
        pass                          # the task itself reports it


_stopping = False                     # in a local worker: the coordinator asked it to stop
_in_task = False


def _on_stop(signum, frame) -> None:
    """SIGTERM in a local worker: a running task ends as if interrupted (it saves its
    progress on the way out, as a backup does on ctrl-c); tasks it has not begun end at once
    (timed_local). An idle worker stays up for the pool's orderly shutdown."""
    global _stopping
    _stopping = True
    if _in_task:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _spawning():
    """Around a pool's submit (where worker processes are spawned): SIGINT ignored, so the
    workers start with it ignored (a Python process keeps an ignored SIGINT ignored).
    Ctrl-C at a terminal goes to the whole process group; the coordinator alone handles it
    and stops its workers (LocalProcesses.stop); otherwise a worker hit while importing
    dies with a traceback and breaks the pool."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _ready() -> int:
    return os.getpid()


class LocalProcesses:
    """Tasks in `workers` processes of this machine (spawned: nothing of the coordinator's
    state is inherited but the task's arguments). `start` spawns them ahead of the tasks."""

    def __init__(self, workers: int):
        self.workers = workers
        self.name = f"{workers} local worker process(es)"
        self.task_seconds: list[float] = []
        self.nodes = {"local"}
        self.startup_seconds = 0.0
        self._pool: ProcessPoolExecutor | None = None

    def start(self, url: str) -> None:
        """Spawn the worker processes now, each importing what its tasks run (`_preload`: the
        provider's name crosses, not the URL), so that this overlaps with the coordinator
        opening the repository and planning."""
        from ..connectors.registry import descriptor_of
        if self._pool is None:
            self._pool = self._new_pool(self.workers, descriptor_of(url).name)
            with _spawning():
                for _ in range(self.workers):
                    self._pool.submit(_ready)

    @staticmethod
    def _new_pool(workers: int, provider: str | None = None) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_preload, initargs=(provider,))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @staticmethod
    def stop(pool: ProcessPoolExecutor) -> None:
        """After an interruption (or an error) in the coordinator: tasks not begun are
        cancelled, running ones are asked to end (SIGTERM: they save their progress and
        release their locks), and the workers are waited for STOP_GRACE seconds, then killed."""
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            with contextlib.suppress(OSError, ValueError):
                if p.is_alive():
                    os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for p in processes:
            with contextlib.suppress(ValueError):
                p.join(max(0.0, deadline - time.monotonic()))
                if p.is_alive():
                    p.kill()
                    p.join(5)

    def run(self, fn, tasks, names, on_done):
        results: list[Any] = [None] * len(tasks)
        pending = set(range(len(tasks)))
        attempts = [0] * len(tasks)
        try:
            while pending:
                pool, self._pool = self._pool or self._new_pool(min(self.workers, len(pending))), None
                with pool:
                    with _spawning():
                        futures = {pool.submit(timed_local, fn, tasks[i]): i for i in sorted(pending)}
                    waiting = set(futures)
                    try:
                        while waiting:
                            finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                            for f in finished:
                                i = futures[f]
                                try:
                                    seconds, results[i] = f.result()
                                except BrokenProcessPool:
                                    attempts[i] += 1
                                    if attempts[i] > RETRIES:
                                        raise WorkerFailed(f"task {names[i]}: its worker process died "
                                                           f"{attempts[i]} times") from None
                                    continue
                                pending.discard(i)
                                self.task_seconds.append(seconds)
                                on_done(i, results[i])
                    except BaseException:
                        for f in waiting:
                            f.cancel()
                        self.stop(pool)
                        raise
        finally:
            self.close()
        return results


class RayCluster:
    """Tasks on a Ray cluster: `address` as ray.init takes it (None: a local Ray instance,
    or the cluster RAY_ADDRESS names)."""

    def __init__(self, address: str | None):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise MissingDependency("--ray needs Ray: pip install 'vdedup[ray]'") from None
        self.address = address or None
        self.name = f"Ray ({self.address or 'local instance'})"
        self.task_seconds: list[float] = []
        self.nodes: set[str] = set()
        self.startup_seconds = 0.0

    def run(self, fn, tasks, names, on_done):
        # Ray prints the cluster's messages (a worker that died...) on standard output, which
        # is the data of `--json`: while Ray runs, they go to standard error
        with contextlib.redirect_stdout(sys.stderr):
            return self._run(fn, tasks, names, on_done)

    def _run(self, fn, tasks, names, on_done):
        import ray
        from ray.exceptions import RayError, RayTaskError
        started_here = not ray.is_initialized()
        t = time.monotonic()
        if started_here:
            # no runtime_env: nothing (no environment variable, no file) is shipped with it
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, ignore_reinit_error=True)
        self.startup_seconds = time.monotonic() - t
        try:
            remote = ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)(timed_call)
            refs = {remote.remote(fn, t): i for i, t in enumerate(tasks)}
            results: list[Any] = [None] * len(tasks)
            waiting = list(refs)
            try:
                while waiting:
                    finished, waiting = ray.wait(waiting, num_returns=1)
                    for ref in finished:
                        i = refs[ref]
                        try:
                            seconds, node, results[i] = ray.get(ref)
                        except RayTaskError as e:
                            cause = getattr(e, "cause", None)
                            if isinstance(cause, VdedupError):
                                raise cause from None
                            raise WorkerFailed(f"task {names[i]} failed: {type(cause or e).__name__}") from None
                        except RayError as e:
                            raise WorkerFailed(f"task {names[i]}: its Ray worker died {RETRIES + 1} times "
                                               f"({type(e).__name__})") from None
                        self.task_seconds.append(seconds)
                        self.nodes.add(node)
                        on_done(i, results[i])
            except BaseException:
                for ref in waiting:
                    ray.cancel(ref, force=True)
                raise
            return results
        finally:
            if started_here:
                ray.shutdown()


def timed_local(fn, task):
    """fn(task) and the seconds it took, in a local worker process; a task that comes after
    the coordinator asked this worker to stop (`_on_stop`) ends at once."""
    global _in_task
    _in_task = True
    try:
        if _stopping:
            raise KeyboardInterrupt
        t = time.monotonic()
        result = fn(task)
        return time.monotonic() - t, result
    finally:
        _in_task = False


def timed_call(fn, task):
    """fn(task), the seconds it took and the Ray node that ran it (the Ray overhead per task
    is the wall time the coordinator waited less these seconds)."""
    import ray
    t = time.monotonic()
    result = fn(task)
    return time.monotonic() - t, ray.get_runtime_context().get_node_id(), result
