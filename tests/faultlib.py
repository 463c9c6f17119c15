"""The seeded fault campaign (tests/test_fault_campaign.py, benchmarks/faults.py): faults a
repository meets in life, each followed by the same questions.

Faults: SIGKILL of a backup or a prune at seeded moments; a flipped byte in every kind of
stored object (config, keys, key list, index, packs, snapshots, assets, audit, locks);
deleted and truncated packs and index files; a full disk (a small tmpfs, or where mounting is
not allowed, the storage refusing writes).

After each: `check --read-data` must find damage where there is damage and pass where there
is none; a restore must be bit-exact (to the newest snapshot, or to an older one with a
warning that the newest is damaged) or fail with exit 17 and a clear line, never give other
records silently; after a kill, running the operation again must finish it and leave no
blob indexed twice.

Killed runs are separate processes ("warm workers", started ahead with vdedup imported,
waiting for their command on stdin), so that the kill moment measures vdedup's work, not
Python's start-up. Everything else runs in-process. Every random choice comes from
`random.Random(seed)`: a failing trial is reproduced by its seed and number.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

PASSWORD = "correct horse battery staple"
KINDS = ("config", "keys", "keylist", "index", "data", "snapshots", "assets", "audit", "locks")
# a damaged object of these kinds must be found by check --read-data (locks are not data:
# a damaged lock is a stale lock)
CHECKED_KINDS = ("config", "keys", "keylist", "index", "data", "snapshots", "assets", "audit")

_WORKER = r"""
import json, os, sys
import vdedup_cli.main as m
from vdedup_cli.commands import load_all
load_all()
import vdedup.connectors.files.connector, vdedup.engine.prune, vdedup.engine.backup
sys.stdout.write("ready\n"); sys.stdout.flush()
job = json.loads(sys.stdin.readline())
os.environ.update(job["env"])
sys.exit(m.run(job["args"]))
"""


# ---- data ----------------------------------------------------------------------------------

def write_export(path: Path, n: int, dim: int, seed: int, changed: float = 0.0) -> dict[str, tuple]:
    """An export of n records (ids r0..); with `changed`, that share of the vectors (and their
    metadata) differs from seed's. Returns id -> (vector bytes, metadata)."""
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    metas = [{"i": i, "v": 0} for i in range(n)]
    if changed:
        rng2 = np.random.default_rng(seed + 1000)
        which = rng2.choice(n, int(n * changed), replace=False)
        vecs[which] = rng2.standard_normal((len(which), dim)).astype(np.float32)
        for i in which:
            metas[i] = {"i": int(i), "v": 1}
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / "vectors.npy", vecs)
    (path / "records.jsonl").write_text("".join(json.dumps({"id": f"r{i}", "metadata": metas[i]}) + "\n"
                                                for i in range(n)))
    return read_export(path)


def read_export(path: Path) -> dict[str, tuple]:
    vecs = np.load(path / "vectors.npy")
    lines = [json.loads(x) for x in (path / "records.jsonl").read_text().splitlines()]
    return {x["id"]: (vecs[i].tobytes(), json.dumps(x["metadata"], sort_keys=True)) for i, x in enumerate(lines)}


# ---- running vdedup --------------------------------------------------------------------------

@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def clear(self) -> bool:
        """A failure said in one line, not an internal error."""
        return "internal error" not in self.err and "Traceback" not in self.err


def base_env(cache: Path) -> dict[str, str]:
    return {"VDEDUP_PASSWORD": PASSWORD, "VDEDUP_SCRYPT_N": "1024", "VDEDUP_CACHE_DIR": str(cache),
            "VDEDUP_PACK_SIZE": "1", "ANONYMIZED_TELEMETRY": "False"}


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    for k in ("VDEDUP_PASSWORD_FILE", "VDEDUP_REPOSITORY", "VDEDUP_TEST_FAULTS"):
        if k not in env:
            old.setdefault(k, os.environ.pop(k, None))
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def vd(cache: Path, *args: Any, env: dict[str, str] | None = None) -> Run:
    """vdedup in this process, its output captured."""
    from vdedup_cli.main import run
    out, err = io.StringIO(), io.StringIO()
    with _environ({**base_env(cache), **(env or {})}), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        code = run([str(a) for a in args])
    return Run(code, out.getvalue(), err.getvalue())


class Warm:
    """A vdedup process started ahead, vdedup imported, waiting for one command."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)

    def run_killed(self, cache: Path, args: list[Any], delay: float,
                   env: dict[str, str] | None = None) -> tuple[bool, float]:
        """Start the command, SIGKILL its process group after `delay` seconds (unless it
        ended first): (killed, seconds it ran)."""
        assert self.proc.stdout.readline().strip() == "ready", self.proc.stderr.read()
        job = {"args": [str(a) for a in args], "env": {**base_env(cache), **(env or {})}}
        started = time.monotonic()
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        try:
            self.proc.wait(timeout=delay)
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            killed = True
        elapsed = time.monotonic() - started
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.proc.stdin.close()
        return killed, elapsed

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# ---- the repository, looked at from outside ----------------------------------------------------

def objects(repo: Path, kind: str) -> list[Path]:
    if kind == "config":
        return [repo / "config"]
    root = repo / kind
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")) if root.exists() else []


def leftovers(repo: Path) -> list[Path]:
    return [p for p in repo.rglob(".tmp-*")]


def indexed_twice(repo: Path, cache: Path) -> int:
    """Blob ids the index names in more than one pack."""
    from vdedup.backend import open_backend
    from vdedup.repository import Repository
    with _environ(base_env(cache)):
        r = Repository.open(open_backend(str(repo)), PASSWORD)
        try:
            where: dict[bytes, set[bytes]] = {}
            for _, packs in r.index_files():
                for pack_id, blocks in packs.items():
                    for block in blocks:
                        for blob_id, _ in block.blobs:
                            where.setdefault(blob_id, set()).add(pack_id)
        finally:
            r.close()
    return sum(1 for packs in where.values() if len(packs) > 1)


def flip(path: Path, rng: random.Random) -> int:
    data = bytearray(path.read_bytes())
    pos = rng.randrange(len(data))
    data[pos] ^= 1 << rng.randrange(8)
    os.chmod(path, 0o600)
    path.write_bytes(bytes(data))
    return pos


# ---- one fault, then the questions ------------------------------------------------------------

@dataclass
class Outcome:
    name: str
    check_code: int | None = None
    restore_code: int | None = None
    restored: str | None = None           # "newest" | "older (warned)" | "WRONG" | None
    rerun_code: int | None = None
    twice: int | None = None
    killed: bool | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def restore_and_compare(repo: Path, cache: Path, work: Path, newest: dict, older: list[dict],
                        o: Outcome) -> None:
    dst = work / f"restored-{len(list(work.glob('restored-*')))}"
    r = vd(cache, "--repo", repo, "restore", "latest", "--target", f"files://{dst}")
    o.restore_code = r.code
    if r.code == 0:
        got = read_export(dst)
        if got == newest:
            o.restored = "newest"
        elif any(got == x for x in older) and "warning" in r.err:
            o.restored = "older (warned)"
        else:
            o.restored = "WRONG"
            o.problems.append("restore exited 0 with records of no snapshot (or an older one without a word)")
    elif r.code != 17 or not r.clear:
        o.problems.append(f"restore failed with exit {r.code}, not 17 and one line: {r.err.strip()[-300:]}")
    shutil.rmtree(dst, ignore_errors=True)


def check(repo: Path, cache: Path) -> Run:
    return vd(cache, "--repo", repo, "check", "--read-data")


# ---- campaigns ---------------------------------------------------------------------------------

@dataclass
class Bench:
    """The sources and base repositories every campaign starts from (copies are faulted)."""
    root: Path
    n: int = 4000
    dim: int = 64
    src: Path = field(init=False)
    v1: dict = field(init=False)
    v2: dict = field(init=False)

    def __post_init__(self) -> None:
        self.src = self.root / "src"
        self.bases = self.root / "bases"

    def prepare(self) -> None:
        """bases/backup: one snapshot of v1. bases/prune: v1 then v2, v1 forgotten (prune has
        packs to delete and repack). bases/full: v1 and v2, a connected asset, a stale lock."""
        self.v1 = write_export(self.src, self.n, self.dim, seed=1)
        b = self.bases / "backup"
        cache = self.root / "cache-bases"
        for args in (("init",), ("backup", f"files://{self.src}")):
            r = vd(cache, "--repo", b, *args)
            assert r.code == 0, r.err
        self.v2 = write_export(self.src, self.n, self.dim, seed=1, changed=0.6)
        for name in ("prune", "full"):
            shutil.copytree(b, self.bases / name)
            r = vd(cache, "--repo", self.bases / name, "backup", f"files://{self.src}")
            assert r.code == 0, r.err
        r = vd(cache, "--repo", self.bases / "prune", "forget", "--keep-last", "1")
        assert r.code == 0, r.err
        full = self.bases / "full"
        r = vd(cache, "--repo", full, "connect", "--provider", "chroma", "--name", "emb",
               "--url", f"chroma://{self.root / 'no-such-chroma'}", "--no-secret")
        assert r.code == 0, r.err
        # a stale lock: a backup killed while it holds one (its snapshot save slowed down)
        w = Warm()
        try:
            w.run_killed(cache, ["--repo", full, "backup", f"files://{self.src}"], 1.5,
                         env={"VDEDUP_TEST_FAULTS": "save:snapshots:delay:seconds=5"})
        finally:
            w.close()
        assert objects(full, "locks"), "no lock was left to damage"

    def trial_dir(self, name: str, base: str) -> tuple[Path, Path, Path]:
        work = self.root / "trials" / name
        repo, cache = work / "repo", work / "cache"
        shutil.copytree(self.bases / base, repo)
        return work, repo, cache

    def done(self, work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)


def calibrate(bench: Bench, op: str) -> float:
    """How long the operation runs unkilled (a warm process), in seconds."""
    work, repo, cache = bench.trial_dir(f"calibrate-{op}", op)
    w = Warm()
    try:
        killed, seconds = w.run_killed(cache, _op_args(bench, op, repo), 120.0)
    finally:
        w.close()
    bench.done(work)
    assert not killed
    return seconds


def _op_args(bench: Bench, op: str, repo: Path) -> list[Any]:
    if op == "backup":
        return ["--repo", repo, "backup", f"files://{bench.src}"]
    return ["--repo", repo, "prune", "--max-unused", "0", "--keep-unindexed-for", "0"]


def kill_campaign(bench: Bench, op: str, trials: int, seed: int, recheck: bool = False) -> list[Outcome]:
    """SIGKILL `op` (backup or prune) at `trials` seeded moments; after each, check, run it
    again (with `recheck`, check again), count blobs indexed twice, restore and compare."""
    rng = random.Random(f"{seed}-{op}")
    span = calibrate(bench, op)
    outcomes = []
    nxt = Warm()
    try:
        for t in range(trials):
            delay = rng.uniform(0.0, span * 1.05)
            o = Outcome(f"{op} killed at {delay:.3f}s (trial {t}, seed {seed})")
            started = time.monotonic()
            work, repo, cache = bench.trial_dir(f"kill-{op}-{t}", op)
            w, nxt = nxt, Warm()                    # the next one imports while this one is checked
            o.killed, _ = w.run_killed(cache, _op_args(bench, op, repo), delay)
            c = check(repo, cache)
            o.check_code = c.code
            if c.code != 0:
                o.problems.append(f"check after the kill: exit {c.code}: {c.err.strip()[-300:]}")
            again = vd(cache, *_op_args(bench, op, repo))
            o.rerun_code = again.code
            if again.code != 0:
                o.problems.append(f"{op} run again: exit {again.code}: {again.err.strip()[-300:]}")
            c = check(repo, cache) if recheck else None
            if c is not None and c.code != 0:
                o.problems.append(f"check after the re-run: exit {c.code}: {c.err.strip()[-300:]}")
            o.twice = indexed_twice(repo, cache)
            if o.twice:
                o.problems.append(f"{o.twice} blob(s) indexed in two packs after the re-run")
            restore_and_compare(repo, cache, work, bench.v2, [], o)
            if o.restored != "newest":
                o.problems.append(f"the re-run's snapshot did not restore bit for bit ({o.restored})")
            o.seconds = time.monotonic() - started
            outcomes.append(o)
            bench.done(work)
    finally:
        nxt.close()
    return outcomes


def flip_campaign(bench: Bench, per_kind: int, seed: int) -> list[Outcome]:
    """A flipped bit in `per_kind` seeded objects of every kind."""
    rng = random.Random(f"{seed}-flip")
    outcomes = []
    for kind in KINDS:
        for t in range(per_kind):
            started = time.monotonic()
            work, repo, cache = bench.trial_dir(f"flip-{kind}-{t}", "full")
            targets = objects(repo, kind)
            assert targets, f"no {kind} object to damage"
            target = rng.choice(targets)
            pos = flip(target, rng)
            o = Outcome(f"flip in {kind}/{target.name[:12]} at byte {pos} (seed {seed})")
            _after_damage(bench, repo, cache, work, o, must_find=kind in CHECKED_KINDS)
            o.seconds = time.monotonic() - started
            outcomes.append(o)
            bench.done(work)
    return outcomes


def loss_campaign(bench: Bench, seed: int) -> list[Outcome]:
    """Packs and index files deleted, or cut short."""
    rng = random.Random(f"{seed}-loss")
    outcomes = []
    for kind in ("data", "index"):
        for how in ("deleted", "truncated"):
            started = time.monotonic()
            work, repo, cache = bench.trial_dir(f"loss-{kind}-{how}", "full")
            target = rng.choice(objects(repo, kind))
            if how == "deleted":
                target.unlink()
            else:
                size = target.stat().st_size
                os.truncate(target, rng.randrange(size // 4, size - 1))
            o = Outcome(f"{kind}/{target.name[:12]} {how} (seed {seed})")
            _after_damage(bench, repo, cache, work, o, must_find=True)
            o.seconds = time.monotonic() - started
            outcomes.append(o)
            bench.done(work)
    return outcomes


def _after_damage(bench: Bench, repo: Path, cache: Path, work: Path, o: Outcome, must_find: bool) -> None:
    c = check(repo, cache)
    o.check_code = c.code
    if must_find and c.code == 0:
        o.problems.append("check --read-data found nothing wrong")
    if not c.clear:
        o.problems.append(f"check ended in an internal error: {c.err.strip()[-300:]}")
    restore_and_compare(repo, cache, work, bench.v2, [bench.v1], o)


def full_disk_trial(bench: Bench) -> Outcome:
    """The repository's disk fills up during a backup: the backup fails in one line and leaves
    no temporary files; check and restore still work; with space again, the backup completes.
    A tmpfs a little bigger than the repository where mounting is allowed (root); elsewhere
    the storage refusing writes (VDEDUP_TEST_FAULTS)."""
    o = Outcome("full disk during a backup")
    started = time.monotonic()
    work = bench.root / "trials" / "full-disk"
    mnt = work / "mnt"
    mnt.mkdir(parents=True)
    base = bench.bases / "backup"
    size = sum(p.stat().st_size for p in base.rglob("*") if p.is_file())
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size + 600 * 1024}", "tmpfs", str(mnt)],
                             capture_output=True).returncode == 0
    o.name += " (tmpfs)" if mounted else " (storage refusing writes)"
    repo, cache = mnt / "repo", work / "cache"
    faults = {} if mounted else {"VDEDUP_TEST_FAULTS": "save:data:refuse:after=1"}
    try:
        shutil.copytree(base, repo)
        r = vd(cache, "--repo", repo, "backup", f"files://{bench.src}", env=faults)
        o.rerun_code = r.code
        if r.code == 0:
            o.problems.append("the backup succeeded on a full disk")
        elif not r.clear or "space" not in r.err and "refuse" not in r.err:
            o.problems.append(f"the failed backup did not say why in one line: {r.err.strip()[-300:]}")
        if leftovers(repo):
            o.problems.append(f"{len(leftovers(repo))} .tmp-* file(s) left by the failed saves")
        c = check(repo, cache)
        o.check_code = c.code
        if c.code != 0:
            o.problems.append(f"check on the full disk: exit {c.code}: {c.err.strip()[-300:]}")
        restore_and_compare(repo, cache, work, bench.v1, [], o)
        if o.restored != "newest":
            o.problems.append("the snapshot from before did not restore from the full disk")
        if mounted:
            subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        r = vd(cache, "--repo", repo, "backup", f"files://{bench.src}")
        if r.code != 0:
            o.problems.append(f"the backup with space again: exit {r.code}: {r.err.strip()[-300:]}")
        c = check(repo, cache)
        if c.code != 0:
            o.problems.append(f"check after the completed backup: exit {c.code}")
        restore_and_compare(repo, cache, work, bench.v2, [], o)
        if o.restored != "newest":
            o.problems.append("the completed backup did not restore bit for bit")
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    o.seconds = time.monotonic() - started
    return o


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    return {"trials": len(outcomes), "ok": sum(o.ok for o in outcomes),
            "killed_midway": sum(1 for o in outcomes if o.killed),
            "check_found": sum(1 for o in outcomes if o.check_code not in (None, 0)),
            "restored_newest": sum(1 for o in outcomes if o.restored == "newest"),
            "restored_older_warned": sum(1 for o in outcomes if o.restored == "older (warned)"),
            "restore_refused_17": sum(1 for o in outcomes if o.restore_code == 17),
            "wrong_restores": sum(1 for o in outcomes if o.restored == "WRONG"),
            "seconds": round(sum(o.seconds for o in outcomes), 1)}
