"""Peer benchmark: vdedup against restic and borg on the same vector data (see benchmarks/README.md).

One command measures every tool in the same run, on the same records:

    .venv/bin/python benchmarks/peers.py [--n 50000] [--dim 384] [--runs 3] [--pg] [--full]
                                          [--out benchmarks/results]

(default: 50,000 x 384, 3 repetitions, 7 nights, cost-vs-N 50k/100k; --full adds the cost-vs-N
series 50k..1M at dims 384, 768 and 1536, and --deep 200,000,1,000,000: the nightly change and
the restore at those N x 768 for the export tools, vdedup (files) also with --workers 1 and 2.)

Data comes from benchmarks/datagen.py (seeded, clustered, ids ``doc-000123#chunk-4``, metadata
{source, page, tags[], updated_at}) written into an embedded Chroma directory. vdedup backs up
that directory (``chroma://``, the "vdedup" rows); restic, borg and vdedup again (the
"vdedup-files" rows, through the read-only ``files://`` connector) back up the export a naive
user would make of it into a directory: ``vectors.npy`` (float32, N x dim), ``records.jsonl`` (one
``{"id": ..., "metadata": ...}`` per line) and, when pyarrow is installed, ``records.parquet``
(id, vector, metadata columns), all sorted by id and rewritten by every nightly export.

Scenarios, for every tool: initial backup; nightly change (1% vectors updated, 1% added, 0.5%
deleted); metadata-only change (updated_at on 10%); unchanged re-run; restore latest; restore
the first snapshot after the nightly runs (--nights, default 7). One history is measured: the
nightly scenario's samples are the nights; every other scenario is repeated --runs times (the
initial backup into a fresh repository each time). Every tool command is a
child process started through benchmarks/measure.py, which reports its wall time, CPU time
and peak RSS (os.wait4; the launcher keeps this process's own peak out of the child's).
Before each timed restore the tool's repository (and its caches) is read once, untimed, so
every restore starts from the page cache (not only the repositories written last, or through
the cache). Bytes added = growth of the repository directory (file sizes summed). The minimum of a change
is datagen's zstd-3 size of the changed records (vectors + ids + metadata).

Results: <out>/peers.json, <out>/peers.md and PNG plots (benchmarks/plots.py, if matplotlib
is installed). Working data in <out>/work (deleted at the end unless --keep).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import datagen  # noqa: E402
from foundation import du, environment  # noqa: E402

DATAGEN = HERE / "datagen.py"
MEASURE = HERE / "measure.py"
PASSWORD = "peers-benchmark"     # a benchmark-only throw-away passphrase, passed via env
MB = 1e6
ALL_TOOLS = ("vdedup", "vdedup-files", "restic", "borg-lz4", "borg-zstd3")
VDEDUP_TOOLS = ("vdedup", "vdedup-files", "vdedup-pg")     # the rows the targets are judged on
DISPLAY = {"vdedup": "vdedup (chroma)", "vdedup-files": "vdedup (files)", "vdedup-pg": "vdedup (pgvector)",
           "vdedup-files-w1": "vdedup (files) --workers 1", "vdedup-files-w2": "vdedup (files) --workers 2"}
DEEP_TOOLS = ("vdedup-files", "vdedup-files-w1", "vdedup-files-w2", "restic", "borg-zstd3", "borg-lz4")
PEERS = ("restic", "borg-zstd3")       # "the peer": the faster of these in the same run
CPU_PER_WALL_TARGET = 1.6              # initial backup at 1M x 768
CHROMA_RESTORE_VS_INSERT = 1.3
EXPORT_COLLECTION = "docs"     # datagen's collection name; the files connector is told to use it
EXPORT_METRIC = "euclidean"    # datagen creates the collection with Chroma's default space, l2
PG_TOOLS = ("vdedup-pg", "pg_dump")      # with --pg
SCENARIOS = ("initial", "nightly", "metadata", "unchanged", "restore_latest", "restore_first")
SCENARIO_TITLES = {
    "initial": "initial backup", "nightly": "nightly change (1% upd, 1% add, 0.5% del)",
    "metadata": "metadata-only (updated_at on 10%)", "unchanged": "unchanged re-run",
    "restore_latest": "restore latest", "restore_first": "restore first snapshot after the nights",
}
METRICS = ("wall_s", "cpu_s", "peak_rss_mb", "bytes_added", "ratio")
NIGHTLY_RATIO_TARGET = 1.2
METADATA_RATIO_TARGET = 2.0
UNCHANGED_FRACTION_TARGET = 0.001
NIGHTLY_WALL_VS_RESTIC = 0.5
RSS_TARGET_MB = 500          # at 1M x 768


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the naive export (child process)

def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export(chroma_dir: str, out_dir: str, batch: int = 1000) -> dict[str, Any]:
    """Write every record of the Chroma collection, sorted by id, as vectors.npy + records.jsonl
    (+ records.parquet when pyarrow is available). Files are rewritten in place, as a nightly
    export job would."""
    import numpy as np
    started = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    col = datagen.open_collection(datagen.open_client(chroma_dir))
    ids = sorted(datagen._all_ids(col))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        pa = pq = None
    vec_path = out / "vectors.npy"
    vectors = None
    writer = None
    with open(out / "records.jsonl", "w") as jl:
        for a in range(0, len(ids), batch):
            want = ids[a:a + batch]
            got = col.get(ids=want, include=["embeddings", "metadatas"])
            pos = {rid: k for k, rid in enumerate(got["ids"])}
            order = [pos[rid] for rid in want]
            emb = np.asarray(got["embeddings"], dtype=np.float32)[order]
            metas = [got["metadatas"][k] for k in order]
            if vectors is None:
                vectors = np.lib.format.open_memmap(vec_path, mode="w+", dtype="<f4",
                                                    shape=(len(ids), emb.shape[1]))
            vectors[a:a + len(want)] = emb
            for rid, m in zip(want, metas):
                jl.write(json.dumps({"id": rid, "metadata": m}, sort_keys=True, separators=(",", ":")) + "\n")
            if pa is not None:
                dim = emb.shape[1]
                table = pa.table({
                    "id": pa.array(want, pa.string()),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), dim),
                    "source": pa.array([m.get("source") for m in metas], pa.string()),
                    "page": pa.array([m.get("page") for m in metas], pa.int64()),
                    "tags": pa.array([m.get("tags") for m in metas], pa.list_(pa.string())),
                    "updated_at": pa.array([m.get("updated_at") for m in metas], pa.string()),
                })
                if writer is None:
                    writer = pq.ParquetWriter(out / "records.parquet", table.schema)
                writer.write_table(table)
    if vectors is not None:
        vectors.flush()
        del vectors
    if writer is not None:
        writer.close()
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    return {"records": len(ids), "digest": export_digest(out), "files": {f: {"bytes": (out / f).stat().st_size, "sha256": sha256(out / f)}
                                           for f in files},
            "bytes": sum((out / f).stat().st_size for f in files), "parquet": pa is not None,
            "seconds": round(time.monotonic() - started, 3)}


def export_digest(d: Path) -> str:
    """sha256 over the records of an export (vectors.npy + records.jsonl), in id order: equal for
    two exports of the same records whatever their line order (a vdedup restore into files
    writes them in its storage order)."""
    import numpy as np
    vecs = np.load(d / "vectors.npy", mmap_mode="r")
    with open(d / "records.jsonl") as f:
        keyed = sorted((json.loads(line)["id"], k, line) for k, line in enumerate(f))
    h = hashlib.sha256()
    for rid, k, line in keyed:
        obj = json.loads(line)
        h.update(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())
        h.update(np.ascontiguousarray(vecs[k]).astype("<f4").tobytes())
    return h.hexdigest()


def find_export(root: Path) -> dict[str, str]:
    """sha256 of the export files found (at any depth) under a restore target."""
    found: dict[str, str] = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f in ("vectors.npy", "records.jsonl", "records.parquet"):
                found[f] = sha256(Path(dirpath) / f)
    return found


# ------------------------------------------------------------------ PostgreSQL + pgvector (--pg)

PG_TABLE = "docs"
PG_CHECKSUM = ("SELECT count(*), md5(coalesce(string_agg(concat_ws(' ', id, embedding::text, source, page::text, "
               "tags::text, updated_at), E'\\n' ORDER BY id), '')) FROM docs")


def pg_settings() -> dict[str, str]:
    env = {k: os.environ.get(f"VDEDUP_TEST_PG_{k}") for k in ("HOST", "PORT", "USER", "BIN")}
    missing = [f"VDEDUP_TEST_PG_{k}" for k, v in env.items() if not v]
    if missing:
        raise SystemExit(f"--pg needs {', '.join(missing)}: start PostgreSQL with scripts/servers.sh "
                         "and source its env file")
    return env  # type: ignore[return-value]


def pg_connect(db: str, autocommit: bool = True):
    import psycopg
    s = pg_settings()
    return psycopg.connect(host=s["HOST"], port=int(s["PORT"]), user=s["USER"], dbname=db, autocommit=autocommit)


def pg_create_db(db: str) -> None:
    with pg_connect("postgres") as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{db}"')
    with pg_connect(db) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")


def pg_drop_db(db: str) -> None:
    with pg_connect("postgres") as c:
        c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def pg_checksum(db: str) -> list[Any]:
    with pg_connect(db) as c:
        n, md5 = c.execute(PG_CHECKSUM).fetchone()
    return [int(n), md5]


def pg_sync(db: str, export_dir: str) -> dict[str, Any]:
    """Make the pgvector table equal the export (what a nightly sync job does): load the export
    into a staging table, delete the rows that are gone, upsert only rows that differ."""
    import numpy as np
    started = time.monotonic()
    out = Path(export_dir)
    vectors = np.load(out / "vectors.npy", mmap_mode="r")
    with pg_connect(db, autocommit=False) as c:
        c.execute(f"CREATE TABLE IF NOT EXISTS {PG_TABLE} (id text PRIMARY KEY, embedding vector({vectors.shape[1]}) "
                  "NOT NULL, source text, page integer, tags text[], updated_at text)")
        c.execute(f"CREATE TEMP TABLE staging (LIKE {PG_TABLE}) ON COMMIT DROP")
        with c.cursor() as cur:
            with cur.copy("COPY staging (id, embedding, source, page, tags, updated_at) FROM STDIN") as cp:
                with open(out / "records.jsonl") as f:
                    for i, line in enumerate(f):
                        r = json.loads(line)
                        m = r["metadata"]
                        vec = "[" + ",".join(map(repr, vectors[i].tolist())) + "]"
                        cp.write_row((r["id"], vec, m.get("source"), m.get("page"), m.get("tags"),
                                      m.get("updated_at")))
        deleted = c.execute(f"DELETE FROM {PG_TABLE} d WHERE NOT EXISTS "
                            "(SELECT 1 FROM staging s WHERE s.id = d.id)").rowcount
        cols = ("embedding", "source", "page", "tags", "updated_at")
        upserted = c.execute(
            f"INSERT INTO {PG_TABLE} SELECT * FROM staging ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{k} = EXCLUDED.{k}" for k in cols)
            + f" WHERE ({', '.join(f'{PG_TABLE}.{k}' for k in cols)}) IS DISTINCT FROM "
            + f"({', '.join(f'EXCLUDED.{k}' for k in cols)})").rowcount
        c.commit()
    return {"deleted": deleted, "upserted": upserted, "checksum": pg_checksum(db),
            "seconds": round(time.monotonic() - started, 3)}


# ------------------------------------------------------------------ running children

class Runner:
    def __init__(self, work: Path):
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def run(self, argv: list[str], label: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            ok: tuple[int, ...] = (0,)) -> dict[str, Any]:
        """Run a child; wall seconds, its own CPU seconds and peak RSS (os.wait4), parsed JSON stdout."""
        self.count += 1
        stem = self.logs / f"{self.count:03d}-{label}"
        with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
            # through the small launcher, so this process's own peak RSS is not lent to the child
            subprocess.run([sys.executable, str(MEASURE), f"{stem}.rusage", "--", *argv], stdout=out,
                           stderr=err, env=env or dict(os.environ), cwd=str(cwd or ROOT))
        usage = json.loads(Path(f"{stem}.rusage").read_text())
        code = usage["exit"]
        stdout = Path(f"{stem}.out").read_text(errors="replace")
        if code not in ok:
            stderr = Path(f"{stem}.err").read_text(errors="replace")
            raise RuntimeError(f"{label} failed with exit code {code}: {Path(argv[0]).name} "
                               f"{' '.join(argv[1:3])} ...\n{stderr[-2000:]}")
        parsed: Any = None
        text = stdout.strip()
        if text.startswith(("{", "[")):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
        if parsed is None:
            for line in reversed(text.splitlines()):
                try:
                    parsed = json.loads(line)
                    break
                except ValueError:
                    continue
        return {"wall_s": usage["wall_s"], "cpu_s": usage["cpu_s"], "peak_rss_mb": usage["peak_rss_mb"],
                "json": parsed}

    def py(self, args: list[str], label: str) -> Any:
        return self.run([sys.executable, *args], label)["json"]


# ------------------------------------------------------------------ tools

def read_through(root: Path) -> int:
    """Read every file under root once, into the page cache; bytes read."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                with open(os.path.join(dirpath, f), "rb", buffering=0) as fh:
                    while chunk := fh.read(1 << 20):
                        total += len(chunk)
            except OSError:
                continue
    return total


class Tool:
    name = ""
    source = "export"           # what it backs up: "chroma" or "export"

    def __init__(self, r: Runner, work: Path):
        self.r, self.work = r, work
        self.repo = work / f"repo-{self.name}"
        self.backups = 0

    def state_dirs(self) -> list[Path]:
        """Everything a fresh repository must not inherit (the repository, the tool's caches)."""
        return [self.repo]

    def reset(self) -> None:
        """Forget the repository, so the next init + backup is an initial backup again."""
        for d in self.state_dirs():
            shutil.rmtree(d, ignore_errors=True)
        self.backups = 0

    def warm(self) -> None:
        """Read the repository and the tool's caches once (not timed), so every tool's restore
        starts from the page cache whatever the order the repositories were written in, and
        whether or not the tool wrote them past the cache (vdedup writes packs with O_DIRECT)."""
        for d in self.state_dirs():
            read_through(d)

    def measure(self, argv: list[str], label: str, **kw: Any) -> dict[str, Any]:
        before = du(self.repo)
        m = self.r.run(argv, f"{self.name}-{label}", **kw)
        m.pop("json", None)
        m["repo_bytes_before"], m["repo_bytes_after"] = before, du(self.repo)
        m["bytes_added"] = m["repo_bytes_after"] - before
        return m


class Vdedup(Tool):
    name = "vdedup"
    source = "chroma"

    def __init__(self, r: Runner, work: Path):
        super().__init__(r, work)
        bindir = Path(sys.executable).parent
        self.exe = shutil.which("vdedup", path=str(bindir)) or shutil.which("vdedup")
        if not self.exe:
            raise SystemExit("vdedup CLI not found next to this Python or on PATH")
        self.env = {**os.environ, "VDEDUP_PASSWORD": PASSWORD, "VDEDUP_REPOSITORY": str(self.repo),
                    "VDEDUP_CACHE_DIR": str(work / f"cache-{self.name}"), "VDEDUP_SCRYPT_N": "16384"}

    def state_dirs(self) -> list[Path]:
        return [self.repo, Path(self.env["VDEDUP_CACHE_DIR"])]

    def init(self) -> None:
        self.r.run([self.exe, "init", "--json"], "vdedup-init", env=self.env)

    def backup(self, chroma: Path, export_dir: Path) -> dict[str, Any]:
        self.backups += 1
        return self.measure([self.exe, "backup", f"chroma://{chroma}", "--json"], f"backup{self.backups}",
                            env=self.env)

    def snapshot(self, which: str) -> str:
        """'latest', or the id of the first snapshot."""
        if which != "first":
            return "latest"
        return self.r.run([self.exe, "snapshots", "--json"], f"{self.name}-snapshots", env=self.env)["json"][0]["id"]

    def target_url(self, target: Path) -> str:
        return f"chroma://{target}"

    def restore(self, which: str, target: Path) -> dict[str, Any]:
        snap = self.snapshot(which)
        return self.measure([self.exe, "restore", snap, "--target", self.target_url(target), "--json"],
                            f"restore-{which}", env=self.env)


class VdedupFiles(Vdedup):
    """vdedup backing up the same export files restic and borg back up (files:// connector);
    restores write a new export (like restic's and borg's), verified record by record.
    `workers`: pass --workers to backup and restore (None: vdedup's default, the cores)."""
    name = "vdedup-files"
    source = "files"         # what a restore produces, for verification

    def __init__(self, r: Runner, work: Path, workers: int | None = None):
        if workers is not None:
            self.name = f"vdedup-files-w{workers}"
        super().__init__(r, work)
        self.workers = ["--workers", str(workers)] if workers is not None else []

    def backup(self, chroma: Path, export_dir: Path) -> dict[str, Any]:
        self.backups += 1
        url = f"files://{export_dir}?collection={EXPORT_COLLECTION}&metric={EXPORT_METRIC}"
        return self.measure([self.exe, "backup", url, "--json", *self.workers], f"backup{self.backups}",
                            env=self.env)

    def restore(self, which: str, target: Path) -> dict[str, Any]:
        snap = self.snapshot(which)
        return self.measure([self.exe, "restore", snap, "--target", self.target_url(target), "--json",
                             *self.workers], f"restore-{which}", env=self.env)

    def target_url(self, target: Path) -> str:
        return f"files://{target}"


class Restic(Tool):
    name = "restic"

    def __init__(self, r: Runner, work: Path):
        super().__init__(r, work)
        if not shutil.which("restic"):
            raise SystemExit("restic not found: run bash scripts/bench-deps.sh")
        self.env = {**os.environ, "RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": str(self.repo),
                    "RESTIC_CACHE_DIR": str(work / "cache-restic")}

    def state_dirs(self) -> list[Path]:
        return [self.repo, Path(self.env["RESTIC_CACHE_DIR"])]

    def init(self) -> None:
        self.r.run(["restic", "init", "--repository-version", "2"], "restic-init", env=self.env)

    def backup(self, chroma: Path, export_dir: Path) -> dict[str, Any]:
        self.backups += 1
        return self.measure(["restic", "backup", "--host", "bench", "--json", "."], f"backup{self.backups}",
                            env=self.env, cwd=export_dir)

    def restore(self, which: str, target: Path) -> dict[str, Any]:
        snap = "latest"
        if which == "first":
            snaps = self.r.run(["restic", "snapshots", "--json"], "restic-snapshots", env=self.env)["json"]
            snap = sorted(snaps, key=lambda s: s["time"])[0]["id"]
        return self.measure(["restic", "restore", snap, "--target", str(target)], f"restore-{which}",
                            env=self.env)


class Borg(Tool):
    def __init__(self, r: Runner, work: Path, compression: str, name: str):
        self.name, self.compression = name, compression
        super().__init__(r, work)
        if not shutil.which("borg"):
            raise SystemExit("borg not found: run bash scripts/bench-deps.sh")
        self.env = {**os.environ, "BORG_PASSPHRASE": PASSWORD, "BORG_BASE_DIR": str(work / f"home-{name}"),
                    "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
                    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"}
        self.archives: list[str] = []

    def state_dirs(self) -> list[Path]:
        return [self.repo, Path(self.env["BORG_BASE_DIR"])]

    def reset(self) -> None:
        super().reset()
        self.archives = []

    def init(self) -> None:
        self.r.run(["borg", "init", "--encryption", "repokey-blake2", str(self.repo)], f"{self.name}-init",
                   env=self.env)

    def backup(self, chroma: Path, export_dir: Path) -> dict[str, Any]:
        self.backups += 1
        name = f"night-{self.backups:03d}"
        self.archives.append(name)
        return self.measure(["borg", "create", "--compression", self.compression, f"{self.repo}::{name}", "."],
                            f"backup{self.backups}", env=self.env, cwd=export_dir, ok=(0, 1))

    def restore(self, which: str, target: Path) -> dict[str, Any]:
        target.mkdir(parents=True, exist_ok=True)
        name = self.archives[-1] if which == "latest" else self.archives[0]
        return self.measure(["borg", "extract", f"{self.repo}::{name}"], f"restore-{which}", env=self.env,
                            cwd=target, ok=(0, 1))


class VdedupPg(Vdedup):
    name = "vdedup-pg"
    source = "pg"

    def __init__(self, r: Runner, work: Path, db: str):
        super().__init__(r, work)
        self.db = db
        s = pg_settings()
        self.base = f"postgresql://{s['USER']}@{s['HOST']}:{s['PORT']}"

    def backup(self, chroma: Path, export_dir: Path) -> dict[str, Any]:
        self.backups += 1
        return self.measure([self.exe, "backup", f"{self.base}/{self.db}?table={PG_TABLE}", "--json"],
                            f"backup{self.backups}", env=self.env)

    def target_url(self, target: Path) -> str:
        pg_create_db(target.name)
        return f"{self.base}/{target.name}"


class PgDump(Tool):
    """pg_dump -Fc of the table every night, one file per night (the repository is that directory);
    restore = pg_restore into a new database."""
    name = "pg_dump"
    source = "pg"

    def __init__(self, r: Runner, work: Path, db: str):
        super().__init__(r, work)
        self.db = db
        s = pg_settings()
        self.bin = Path(s["BIN"])
        self.conn = ["-h", s["HOST"], "-p", s["PORT"], "-U", s["USER"]]
        self.dumps: list[Path] = []

    def reset(self) -> None:
        super().reset()
        self.dumps = []

    def init(self) -> None:
        self.repo.mkdir(parents=True, exist_ok=True)

    def backup(self, chroma: Path, export_dir: Path) -> dict[str, Any]:
        self.backups += 1
        f = self.repo / f"night-{self.backups:03d}.dump"
        self.dumps.append(f)
        return self.measure([str(self.bin / "pg_dump"), *self.conn, "-Fc", "-t", PG_TABLE, "-f", str(f), self.db],
                            f"backup{self.backups}")

    def restore(self, which: str, target: Path) -> dict[str, Any]:
        db = target.name
        pg_create_db(db)
        f = self.dumps[-1] if which == "latest" else self.dumps[0]
        return self.measure([str(self.bin / "pg_restore"), *self.conn, "-d", db, str(f)], f"restore-{which}")


def make_tools(names: list[str], r: Runner, work: Path, pg_db: str | None = None) -> list[Tool]:
    out: list[Tool] = []
    for n in names:
        if n in ("vdedup-pg", "pg_dump") and not pg_db:
            raise SystemExit(f"{n} needs --pg")
        if n == "vdedup-pg":
            out.append(VdedupPg(r, work, pg_db))  # type: ignore[arg-type]
        elif n == "pg_dump":
            out.append(PgDump(r, work, pg_db))  # type: ignore[arg-type]
        elif n == "vdedup":
            out.append(Vdedup(r, work))
        elif n == "vdedup-files":
            out.append(VdedupFiles(r, work))
        elif n.startswith("vdedup-files-w") and n[len("vdedup-files-w"):].isdigit():
            out.append(VdedupFiles(r, work, int(n[len("vdedup-files-w"):])))
        elif n == "restic":
            out.append(Restic(r, work))
        elif n == "borg-lz4":
            out.append(Borg(r, work, "lz4", n))
        elif n == "borg-zstd3":
            out.append(Borg(r, work, "zstd,3", n))
        else:
            raise SystemExit(f"unknown tool {n!r} (known: {', '.join(ALL_TOOLS)})")
    return out


# ------------------------------------------------------------------ one run

def night_sizes(n: int, nights: int) -> list[int]:
    """The n passed to datagen's nightly change for each night: night k adds ids from where night
    k-1 stopped, so every night's additions are new records."""
    sizes = [n]
    for _ in range(nights - 1):
        sizes.append(sizes[-1] + round(sizes[-1] * datagen.ADD_FRACTION))
    return sizes


def chain(args: argparse.Namespace, work: Path, pristine: Path, populate_min: int) -> dict[str, Any]:
    """One history, measured for every tool: the initial backup (repeated --runs times, each into a
    fresh repository), night 1, --runs metadata-only changes, --runs unchanged re-runs, --runs
    restores of the latest snapshot, nights 2..--nights, then --runs restores of the first
    snapshot. Every measurement is a sample of its scenario; the nightly scenario's samples are
    the nights."""
    reps = args.runs
    rdir = work / "chain"
    if rdir.exists():
        shutil.rmtree(rdir)
    rdir.mkdir(parents=True)
    r = Runner(rdir)
    src, exp = rdir / "chroma", rdir / "export"
    shutil.copytree(pristine, src)
    common = ["--dim", str(args.dim), "--seed", str(args.seed)]
    pg_db = "bench_peers" if args.pg else None
    if pg_db:
        pg_create_db(pg_db)
    tools = make_tools(args.tools, r, rdir, pg_db)
    res: dict[str, Any] = {"samples": {t.name: {s: [] for s in SCENARIOS} for t in tools},
                           "growth": {t.name: [] for t in tools}, "exports": [], "changes": {},
                           "verify": {t.name: {} for t in tools}, "pg_seconds": 0.0}
    me = str(Path(__file__).resolve())

    def change_export(label: str, kind: str = "none", n: int = 0,
                      rnd: int = 1) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Apply a datagen change to the Chroma source, then re-export it (one child process)."""
        got = r.py([me, "change", "--kind", kind, "--dir", str(src), "--out", str(exp), "--n", str(n),
                    "--round", str(rnd), *common, *(["--pg-db", pg_db] if pg_db else [])], f"change-export-{label}")
        e = got["export"]
        if got.get("pg"):
            e["pg_checksum"] = got["pg"]["checksum"]
            res.setdefault("pg_syncs", []).append({"label": label, **got["pg"]})
            res["pg_seconds"] += got["pg"]["seconds"]
        res["exports"].append({"label": label, **{k: e[k] for k in ("records", "bytes", "seconds")}})
        return got["change"], e

    def backup(t: Tool, label: str, scenario: str, minimum: int | None) -> dict[str, Any]:
        log(f"{t.name} backup ({label})")
        started = time.monotonic()
        m = t.backup(src, exp)
        if t.source == "pg":
            res["pg_seconds"] += time.monotonic() - started
        m["label"] = label
        if minimum:
            m["minimum_bytes"] = minimum
            m["ratio"] = m["bytes_added"] / minimum
        res["growth"][t.name].append({"label": label, "repo_bytes": m["repo_bytes_after"],
                                      "bytes_added": m["bytes_added"], "wall_s": m["wall_s"]})
        res["samples"][t.name][scenario].append(m)
        return m

    def backup_all(label: str, scenario: str, minimum: int | None) -> None:
        for t in tools:
            backup(t, label, scenario, minimum)

    def chroma_read(label: str, tag: str = "") -> None:
        """The time Chroma itself needs to read every record as a backup does (datagen scan):
        the floor of any backup from a Chroma source, reported beside vdedup (chroma)'s. The
        nightly read is taken after every night, as vdedup's nightly samples are, and reported
        as their median (one sample of a noisy read against a median of seven moved the
        difference by a second between two runs)."""
        if any(t.name == "vdedup" for t in tools):
            m = r.run([sys.executable, str(DATAGEN), "scan", "--dir", str(src)], f"chroma-scan-{label}{tag}")
            samples = res.setdefault("chroma_read_samples", {}).setdefault(label, [])
            samples.append({"wall_s": m["wall_s"], "cpu_s": m["cpu_s"], "peak_rss_mb": m["peak_rss_mb"],
                            "records": (m["json"] or {}).get("records")})
            res.setdefault("chroma_read", {})[label] = {
                **{k: statistics.median(x[k] for x in samples) for k in ("wall_s", "cpu_s", "peak_rss_mb")},
                "records": samples[0]["records"], "runs": len(samples)}

    _, first = change_export("initial")
    for k in range(reps):
        for t in tools:
            if k:                   # a fresh repository: the growth series keeps the last one
                t.reset()
                res["growth"][t.name].clear()
            t.init()
            backup(t, "initial", "initial", populate_min)
    chroma_read("initial")

    sizes = night_sizes(args.n, args.nights)
    ch, _ = change_export("night-1", "nightly", sizes[0])
    res["changes"]["nightly"] = ch
    backup_all("night 1", "nightly", ch["minimum_bytes"])
    chroma_read("nightly")

    for k in range(1, reps + 1):    # a new updated_at on the same 10% each round
        ch, _ = change_export(f"metadata-{k}", "touch", sizes[0], rnd=k)
        res["changes"]["metadata" if k == 1 else f"metadata{k}"] = ch
        backup_all("metadata" if reps == 1 else f"metadata {k}", "metadata", ch["minimum_bytes"])

    _, latest = change_export("unchanged")           # the nightly job re-exports even when nothing changed
    for k in range(1, reps + 1):
        backup_all("unchanged" if reps == 1 else f"unchanged {k}", "unchanged", None)
    for t in tools:
        for m in res["samples"][t.name]["unchanged"]:
            m["target_bytes"] = UNCHANGED_FRACTION_TARGET * m["repo_bytes_before"]

    for _ in range(reps):
        restore_all("latest", tools, r, rdir, latest, res, me)

    for k, size in enumerate(sizes[1:], start=2):
        ch, _ = change_export(f"night-{k}", "nightly", size)
        res["changes"][f"night{k}"] = {key: ch[key] for key in ("updated", "added", "deleted", "records",
                                                                "minimum_bytes")}
        backup_all(f"night {k}", "nightly", ch["minimum_bytes"])
        chroma_read("nightly", f"-{k}")

    for _ in range(reps):
        restore_all("first", tools, r, rdir, first, res, me)
    res["nights"] = len(sizes)
    if pg_db and not args.keep:
        pg_drop_db(pg_db)
    if not args.keep:
        shutil.rmtree(rdir, ignore_errors=True)
    return res


def restore_all(which: str, tools: list[Tool], r: Runner, rdir: Path, expected: dict[str, Any],
                res: dict[str, Any], me: str) -> None:
    """Restore `which` snapshot with every tool (one sample of restore_<which> each), then check
    the restored data against what was backed up (not timed)."""
    want = {f: v["sha256"] for f, v in expected["files"].items()}
    for t in tools:
        log(f"{t.name} restore {which}")
        started = time.monotonic()
        target = rdir / (f"bench_restore_{which}_{t.name.replace('-', '_')}" if t.source == "pg"
                         else f"restore-{which}-{t.name}")
        t.warm()
        m = t.restore(which, target)
        res["samples"][t.name][f"restore_{which}"].append(m)
        # verification (not timed): the restored data must equal what was backed up
        if t.source == "pg":
            have_sum = pg_checksum(target.name)
            pg_drop_db(target.name)
            ok = have_sum == expected["pg_checksum"]
            res["verify"][t.name][which] = ok and res["verify"][t.name].get(which, True)
            m["verified"] = ok
            if not ok:
                log(f"WARNING: {t.name} restore {which} differs from the table it backed up")
            res["pg_seconds"] += time.monotonic() - started
            continue
        if t.source == "chroma":
            check = rdir / f"check-{which}-{t.name}"
            got = r.py([me, "export", "--dir", str(target), "--out", str(check)], f"verify-{which}-{t.name}")
            ok = {f: v["sha256"] for f, v in got["files"].items()} == want
            shutil.rmtree(check, ignore_errors=True)
        elif t.source == "files":          # the same records, in vdedup's storage order
            ok = export_digest(target) == expected["digest"]
        else:
            ok = find_export(target) == want
        res["verify"][t.name][which] = ok and res["verify"][t.name].get(which, True)
        m["verified"] = ok
        if not ok:
            log(f"WARNING: {t.name} restore {which} differs from the export it backed up")
        shutil.rmtree(target, ignore_errors=True)


# ------------------------------------------------------------------ scaling (cost vs N)

def scaling(args: argparse.Namespace, work: Path, result: dict[str, Any], pristine: Path | None = None) -> None:
    """Initial backup of every tool at each N (one Chroma directory grown through the sizes), for
    each dimension in args.dims; result["scaling"] is the series at args.dim (or the first dim).
    At --dim, when no size is below --n, the main run's Chroma directory is grown further and
    (without --full) the point at N = --n is the main run's initial backup (medians), not
    measured again. With --full the export is written straight from the generator (no Parquet
    copy: datagen.write_export) and vdedup (chroma) is measured up to --chroma-max only."""
    by_dim = result.setdefault("scaling_by_dim", {})
    for dim in args.dims:
        grow = dim == args.dim and pristine is not None and min(args.scaling) >= args.n
        by_dim[str(dim)] = scaling_one(args, work, dim, pristine if grow else None,
                                       result.get("aggregate") if grow and not args.full else None)
    result["scaling"] = by_dim.get(str(args.dim)) or by_dim[str(args.dims[0])]


def scaling_one(args: argparse.Namespace, work: Path, dim: int, grow_from: Path | None = None,
                agg: dict[str, Any] | None = None) -> dict[str, Any]:
    sdir = work / f"scaling-{dim}"
    sdir.mkdir(parents=True, exist_ok=True)
    r = Runner(sdir)
    grow, exp = grow_from or sdir / "chroma", sdir / "export"
    names = [n for n in args.tools if n not in PG_TOOLS]
    common = ["--dim", str(dim), "--seed", str(args.seed)]
    me = str(Path(__file__).resolve())
    out: dict[str, Any] = {}
    keys = ("wall_s", "cpu_s", "peak_rss_mb", "bytes_added")
    for size in args.scaling:
        if agg is not None and size == args.n:
            out[str(size)] = {t: {k: agg[t]["initial"][k] for k in keys} for t in names if "initial" in agg.get(t, {})}
            continue
        log(f"scaling: N={size:,} x {dim}")
        here = [t for t in names if t != "vdedup" or size <= args.chroma_max]
        if args.full or "vdedup" not in here:
            r.py([str(DATAGEN), "export", "--out", str(exp), "--n", str(size), *common], f"export-{size}")
            if "vdedup" in here:
                r.py([str(DATAGEN), "populate", "--dir", str(grow), "--n", str(size), *common], f"populate-{size}")
        else:
            r.py([str(DATAGEN), "populate", "--dir", str(grow), "--n", str(size), *common], f"populate-{size}")
            r.py([me, "export", "--dir", str(grow), "--out", str(exp)], f"export-{size}")
        row: dict[str, Any] = {}
        for t in make_tools(here, r, sdir):
            t.init()
            m = t.backup(grow, exp)
            row[t.name] = {k: m[k] for k in keys}
            t.reset()
        out[str(size)] = row
    shutil.rmtree(sdir, ignore_errors=True)
    return out


# ------------------------------------------------------------------ nightly and restore at large N

def deep(args: argparse.Namespace, work: Path, result: dict[str, Any]) -> None:
    """At each N of args.deep (x args.deep_dim; --full: 200,000 and 1,000,000 x 768), for every
    export tool of DEEP_TOOLS: the initial backup, the nightly change (datagen's nightly plan
    applied to the export, written at the same path), and a restore of the latest snapshot
    into a new directory (checked against the nightly export, not timed). vdedup (files) runs
    three times: at its default --workers (the cores), with --workers 1 and with --workers 2."""
    out = result.setdefault("deep", {}).setdefault(str(args.deep_dim), {})
    names = [t for t in DEEP_TOOLS if t in args.tools or t.startswith("vdedup-files")]
    for size in args.deep:
        ddir = work / f"deep-{size}"
        shutil.rmtree(ddir, ignore_errors=True)
        ddir.mkdir(parents=True)
        r = Runner(ddir)
        exp = ddir / "export"
        common = ["--n", str(size), "--dim", str(args.deep_dim), "--seed", str(args.seed)]
        log(f"deep: N={size:,} x {args.deep_dim}: initial")
        r.py([str(DATAGEN), "export", "--out", str(exp), *common], f"export-{size}")
        tools = make_tools(names, r, ddir)
        row: dict[str, Any] = {t.name: {} for t in tools}
        for t in tools:
            t.init()
            row[t.name]["initial"] = t.backup(exp, exp)
        log(f"deep: N={size:,} x {args.deep_dim}: nightly")
        night = r.py([str(DATAGEN), "export", "--out", str(exp), "--night", *common], f"export-night-{size}")
        want = {f: sha256(exp / f) for f in ("vectors.npy", "records.jsonl")}
        digest = export_digest(exp)
        for t in tools:
            row[t.name]["nightly"] = t.backup(exp, exp)
        for t in tools:
            log(f"deep: N={size:,}: {t.name} restore latest")
            target = ddir / f"restore-{t.name}"
            t.warm()
            m = t.restore("latest", target)
            m["verified"] = (export_digest(target) == digest) if t.source == "files" else find_export(target) == want
            if not m["verified"]:
                log(f"WARNING: {t.name} restore at N={size:,} differs from the export it backed up")
            row[t.name]["restore_latest"] = m
            shutil.rmtree(target, ignore_errors=True)
            t.reset()
        row["_export"] = {"records": night.get("records"), "bytes": night.get("bytes")}
        out[str(size)] = row
        shutil.rmtree(ddir, ignore_errors=True)


def peer(row: dict[str, Any], scenario: str) -> tuple[str, float] | None:
    """The faster of restic and borg (zstd,3) for a scenario in one row of measurements."""
    have = [(t, row[t][scenario]["wall_s"]) for t in PEERS if scenario in row.get(t, {})]
    return min(have, key=lambda x: x[1]) if have else None


# ------------------------------------------------------------------ aggregation, targets, report

def aggregate(samples: dict[str, dict[str, list[dict[str, Any]]]], tools: list[str]) -> dict[str, Any]:
    """Median and (min, max) of every metric over a scenario's samples; "runs" = how many."""
    agg: dict[str, Any] = {}
    for t in tools:
        agg[t] = {}
        for s in SCENARIOS:
            ms = samples.get(t, {}).get(s, [])
            if not ms:
                continue
            row: dict[str, Any] = {"runs": len(ms)}
            for k in METRICS + ("minimum_bytes", "repo_bytes_before", "repo_bytes_after"):
                vals = [m[k] for m in ms if m.get(k) is not None]
                if vals:
                    row[k] = statistics.median(vals)
                    row[f"{k}_min"], row[f"{k}_max"] = min(vals), max(vals)
            if "verified" in ms[0]:
                row["verified"] = all(m.get("verified") for m in ms)
            agg[t][s] = row
    return agg


# What dominates where a wall-time target is missed, from pyinstrument profiles of the vdedup CLI
# (benchmarks/results/profile.md has the commands and the numbers). Static text: re-profile after
# changing the engine.
FILES_RESTORE_NOTE = ("profile (50k x 384): ~0.5 s start-up; of the rest ~34% loading and verifying every vector "
                      "blob (block decode, keyed hash), ~32% the spool that re-sorts rows by where their vectors "
                      "are stored (manifest decode, index lookups, LMDB), ~10% writing the export; restic streams "
                      "whole file chunks in Go")
PROFILE_NOTES = {
    ("chroma", "nightly"): "profile: ~2.5 s of every command is importing chromadb and starting its client, "
                           "~1 s reading all records through Collection.get; the rest is the per-record work of "
                           "the files row",
    ("files", "nightly"): "profile: ~0.5 s start-up (imports, scrypt, repository open); the rest is per-record "
                          "Python over all N: reading the export ~25%, metadata bytes ~17%, keyed hash of every "
                          "vector + index lookups ~14%, previous manifest ~9%, comparing rows ~5%; restic hashes "
                          "the rewritten files in Go on both cores",
    ("chroma", "initial"): "profile: ~2.5 s chromadb import + client, Chroma reads, then the per-record work of "
                           "the files row",
    ("files", "initial"): "profile: ~0.5 s start-up, then storing blobs ~39% (block shuffle + zstd, index, "
                          "pack writes, on the reading thread), reading the export ~16%, metadata bytes ~12%; "
                          "restic chunks, compresses and writes on both cores",
    ("chroma", "restore_latest"): "profile: ~71% in Chroma's own write (its Rust bindings: index build; "
                                  "Collection.upsert when profiled, Collection.add now), ~10% reading + decoding "
                                  "the repository, ~7% chromadb import; populating the same 50,000 records "
                                  "through datagen takes Chroma about as long",
    ("files", "restore_latest"): FILES_RESTORE_NOTE,
    ("pg", "nightly"): "profile: ~0.8 s start-up; of the rest reading the table ~38% (psycopg cursor ~14%, rows "
                       "into batches ~23%), merging with the previous manifest ~19%, metadata bytes ~16%, the "
                       "spool (storage order) ~9%, keyed hashes + index ~9%",
    ("pg", "initial"): "profile: storing blobs ~35% (block encoding, index files, pack writes, on the reading "
                       "thread), reading the table ~24%, metadata bytes ~11%",
    ("pg", "restore_latest"): "profile: writing into PostgreSQL ~55% (COPY rows built ~27%, psycopg COPY ~26%), "
                              "reading the repository ~43%",
}


def _is_default(p: dict[str, Any]) -> bool:
    return (p.get("n"), p.get("nights"), p.get("runs"), p.get("dim")) == (50000, 7, 3, 384) and \
        list(p.get("scaling") or []) == [50000, 100000]


def _options_text(p: dict[str, Any]) -> str:
    scaling = ",".join(str(n) for n in p.get("scaling") or []) or "none"
    return (f"--n {p.get('n')} --nights {p.get('nights')} --runs {p.get('runs')} --dim {p.get('dim')} "
            f"--scaling {scaling}" + (" --pg" if p.get("pg") else ""))


def targets(agg: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target for each vdedup row present (chroma source, files source, pgvector source)."""
    rs = agg.get("restic", {})
    out: list[dict[str, Any]] = []
    tools = [t for t in VDEDUP_TOOLS if t in agg]

    def add(tool: str, name: str, measured: str, holds: bool | None, note: str = "") -> None:
        out.append({"tool": tool, "target": name, "measured": measured, "holds": holds, "note": note})

    for tool in tools:
        v = agg[tool]
        if "nightly" in v:
            x = v["nightly"]["ratio"]
            add(tool, f"nightly change adds <= {NIGHTLY_RATIO_TARGET}x the minimum", f"{x:.2f}x",
                x <= NIGHTLY_RATIO_TARGET, _over_target(result, tool, "nightly", NIGHTLY_RATIO_TARGET))
        if "metadata" in v:
            x = v["metadata"]["ratio"]
            add(tool, f"metadata-only change adds <= {METADATA_RATIO_TARGET}x its minimum", f"{x:.2f}x",
                x <= METADATA_RATIO_TARGET, _over_target(result, tool, "metadata", METADATA_RATIO_TARGET))
        if "unchanged" in v:
            x, stored = v["unchanged"]["bytes_added"], v["unchanged"]["repo_bytes_before"]
            add(tool, "unchanged re-run adds < 0.1% of the stored size", f"{x:,.0f} B = {100 * x / stored:.4f}%",
                x < UNCHANGED_FRACTION_TARGET * stored)
        for s, factor, label in (("nightly", NIGHTLY_WALL_VS_RESTIC, "nightly wall time <= 0.5x restic's"),
                                 ("initial", 1.0, "initial backup wall time <= restic's"),
                                 ("restore_latest", 1.0, "restore (latest) wall time <= restic's")):
            if s in v and s in rs:
                a, b = v[s]["wall_s"], rs[s]["wall_s"]
                holds = a <= factor * b
                notes = []
                if s == "restore_latest" and tool != "vdedup-files":
                    notes.append("restic restores files only; re-importing them into a database is not counted")
                kind = {"vdedup": "chroma", "vdedup-files": "files", "vdedup-pg": "pg"}.get(tool)
                if not holds and (kind, s) in PROFILE_NOTES:
                    notes.append(PROFILE_NOTES[(kind, s)] + " (benchmarks/results/profile.md)")
                add(tool, label, f"{a:.2f} s vs {b:.2f} s ({a / b:.2f}x)", holds, "; ".join(notes))
    v, cr = agg.get("vdedup", {}), result.get("chroma_read") or {}
    if "nightly" in v and "nightly" in rs and "nightly" in cr:
        own = v["nightly"]["wall_s"] - cr["nightly"]["wall_s"]
        b = rs["nightly"]["wall_s"]
        add("vdedup", "nightly: vdedup's own time (total minus Chroma's read of the same records) <= 0.5x restic's",
            f"{v['nightly']['wall_s']:.2f} - {cr['nightly']['wall_s']:.2f} = {own:.2f} s vs {b:.2f} s "
            f"({own / b:.2f}x)", own <= NIGHTLY_WALL_VS_RESTIC * b,
            "Chroma's read: datagen scan of the same records"
            + (f" after each night, median of {cr['nightly']['runs']}" if cr["nightly"].get("runs", 1) > 1 else ""))
    insert = (result.get("populate") or {}).get("seconds")
    if "restore_latest" in v and insert:
        a = v["restore_latest"]["wall_s"]
        add("vdedup", f"restore into Chroma <= {CHROMA_RESTORE_VS_INSERT}x Chroma's own insert of the same records",
            f"{a:.2f} s vs {insert:.2f} s ({a / insert:.2f}x)", a <= CHROMA_RESTORE_VS_INSERT * insert,
            "Chroma's insert: datagen populate of the same records (it also generates them)")
    for dim, rows in (result.get("deep") or {}).items():
        for n, row in sorted(rows.items(), key=lambda kv: int(kv[0])):
            label = f"{int(n):,} x {dim}"
            for tool in [t for t in row if t.startswith("vdedup")]:
                m = row[tool]
                for s, factor, what in (("initial", 1.0, "initial backup"), ("nightly", NIGHTLY_WALL_VS_RESTIC,
                                        "nightly change"), ("restore_latest", 1.0, "restore latest")):
                    pr = peer(row, s)
                    if s not in m or pr is None:
                        continue
                    a = m[s]["wall_s"]
                    add(DISPLAY.get(tool, tool), f"{what} {label}: wall <= {factor}x the peer's",
                        f"{a:.2f} s vs {pr[1]:.2f} s ({pr[0]}; {a / pr[1]:.2f}x)", a <= factor * pr[1])
                if int(n) >= 1_000_000 and "initial" in m:
                    x = m["initial"]["cpu_s"] / max(m["initial"]["wall_s"], 1e-9)
                    add(DISPLAY.get(tool, tool), f"CPU/wall of the initial backup {label} >= {CPU_PER_WALL_TARGET}",
                        f"{x:.2f}", x >= CPU_PER_WALL_TARGET)
                    peak = max(m[s]["peak_rss_mb"] for s in ("initial", "nightly", "restore_latest") if s in m)
                    add(DISPLAY.get(tool, tool), f"peak RSS {label} <= {RSS_TARGET_MB} MB (backup, nightly, restore)",
                        f"{peak:.0f} MB", peak <= RSS_TARGET_MB)
    p = result["params"]
    by_dim = result.get("scaling_by_dim") or {}
    sc768 = by_dim.get("768") or (result.get("scaling") if p["dim"] == 768 else None) or {}
    sc = sc768 if len(sc768) >= 2 else result.get("scaling") or {}
    sc_dim = 768 if sc is sc768 else p["dim"]
    name = f"peak RSS for 1M x 768 under {RSS_TARGET_MB} MB"
    for tool in ("vdedup", "vdedup-files"):     # initial backups of the cost-vs-N series
        big = [row[tool]["peak_rss_mb"] for n, row in sc768.items() if int(n) >= 1_000_000 and tool in row]
        pts = sorted((int(n), row[tool]["peak_rss_mb"]) for n, row in sc.items() if tool in row)
        if not pts:
            continue
        if big:
            add(tool, name, f"{big[0]:.0f} MB (initial backup)", big[0] < RSS_TARGET_MB,
                "the cost-vs-N series measures initial backups only" + _rss_1m_note())
        elif tool == "vdedup" or not any(int(n) >= 1_000_000 for n in sc768):
            add(tool, name, f"not measured in this run (largest: {pts[-1][0]:,} x {sc_dim}, {pts[-1][1]:.0f} MB)",
                None, "1M figures come only from --full (cost-vs-N 50k..1M at dims 384/768/1536; vdedup (chroma) "
                f"up to --chroma-max)" + _full_1m_note() + _rss_1m_note())
        if len(pts) >= 2:
            (n0, r0), (n1, r1) = pts[0], pts[-1]
            add(tool, "peak RSS grows sub-linearly with N",
                f"x{n1 / n0:.1f} records -> x{r1 / r0:.2f} RSS ({n0:,} -> {n1:,} x {sc_dim})", r1 / r0 < n1 / n0)
        else:
            add(tool, "peak RSS grows sub-linearly with N", "needs --scaling with 2+ sizes", None)
    if not any(t["target"] == name for t in out):
        add("vdedup", name, "not measured in this run", None, "1M figures come only from --full" + _rss_1m_note())
        add("vdedup", "peak RSS grows sub-linearly with N", "needs --scaling with 2+ sizes", None)
    return out


def _over_target(result: dict[str, Any], tool: str, scenario: str, target: float) -> str:
    """A note naming the samples whose ratio is over the target (the verdict is on the median)."""
    ms = ((result.get("chain") or {}).get("samples") or {}).get(tool, {}).get(scenario, [])
    over = [m for m in ms if m.get("ratio") is not None and m["ratio"] > target]
    if not over:
        return ""
    worst = max(over, key=lambda m: m["ratio"])
    mean = statistics.mean(m["ratio"] for m in ms if m.get("ratio") is not None)
    return (f"judged on the median of {len(ms)} samples; {len(over)} over the target (largest: "
            f"{worst.get('label', '?')}, {worst['ratio']:.2f}x = {fmt_bytes(worst['bytes_added'])}; mean of all "
            f"{mean:.2f}x). Beside the changed records, a backup rewrites the bases of manifest parts, about "
            f"half as many rows as its delta rows (per-part compaction paced by credit: docs/design.md "
            f"section 5), so a night's ratio depends on whether it rewrote a part")


def _full_1m_note() -> str:
    """What the last committed --full run measured for vdedup (files) at 1M x 768."""
    try:
        res = json.loads((HERE / "results" / "full" / "peers.json").read_text())
        mb = res["scaling_by_dim"]["768"]["1000000"]["vdedup-files"]["peak_rss_mb"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    verdict = "holds" if mb < RSS_TARGET_MB else "does not hold"
    return (f"; the last --full run (benchmarks/results/full/peers.md, {res.get('started', '?')[:10]}) measured "
            f"vdedup (files) at {mb:.0f} MB for an initial backup of 1M x 768: {verdict}")


def _rss_1m_note() -> str:
    """What benchmarks/rss.py measured at 1M x 768 from the files source, if it ran."""
    try:
        res = json.loads((HERE / "results" / "rss.json").read_text())
    except (OSError, ValueError):
        return ""
    for r in res.get("sizes", []):
        if r.get("n", 0) >= 1_000_000 and r.get("dim") == 768:
            peak = max(r[s]["peak_rss_mb"] for s in ("initial", "nightly", "restore"))
            verdict = "holds" if peak < RSS_TARGET_MB else "does not hold"
            return (f"; benchmarks/rss.py (files source) measured {peak:.0f} MB at 1M x 768 as the largest of "
                    f"an initial backup, a nightly backup and a restore: {verdict} (benchmarks/results/rss.md)")
    return ""


def fmt_bytes(v: float | None) -> str:
    if v is None:
        return ""
    if abs(v) < 10_000:
        return f"{v:,.0f} B"
    return f"{v / MB:,.3f} MB" if abs(v) < 10 * MB else f"{v / MB:,.1f} MB"


def _spread(row: dict[str, Any], k: str, fmt: str) -> str:
    if k not in row:
        return ""
    s = format(row[k], fmt)
    if row.get("runs", 1) > 1 and row[f"{k}_min"] != row[f"{k}_max"]:
        s += f" ({format(row[f'{k}_min'], fmt)}-{format(row[f'{k}_max'], fmt)})"
    return s


def _mins(secs: float | None) -> str:
    return "?" if secs is None else f"{secs / 60:.1f} minutes"


def _took(res: dict[str, Any]) -> str:
    try:
        secs = (dt.datetime.fromisoformat(res["finished"]) - dt.datetime.fromisoformat(res["started"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return ""
    pg = (res.get("chain") or {}).get("pg_seconds")
    if pg:
        return (f"; this one took {secs / 60:.1f} minutes, of which {pg / 60:.1f} went to the --pg rows (their "
                f"backups, restores, checks and the table syncs), so {(secs - pg) / 60:.1f} without --pg")
    return f"; this one took {secs / 60:.1f} minutes"


def markdown(res: dict[str, Any]) -> str:
    p, env = res["params"], res.get("environment", {})
    lines = [
        "# Peer benchmark: vdedup vs restic vs borg on the same vector data", "",
        f"N={p['n']:,} records x {p['dim']} float32 (seed {p['seed']}), {p['runs']} repetition(s), "
        f"{p['nights']} nightly runs before 'restore first'; tools: {', '.join(p['tools'])}. "
        f"Run {res.get('started')} -> {res.get('finished', '(unfinished)')}; vdedup {env.get('vdedup')} "
        f"({env.get('vdedup_commit')}), restic {res.get('versions', {}).get('restic')}, "
        f"borg {res.get('versions', {}).get('borg')}; {env.get('cpus')} CPUs, {env.get('memory_gb')} GB RAM.", "",
        f"One history per tool: the initial backup is measured {p['runs']} time(s), each into a fresh "
        f"repository; the metadata-only change, the unchanged re-run and both restores {p['runs']} time(s) "
        f"each; the nightly change on each of the {p['nights']} nights. Medians of those samples, "
        "(min-max) when they differ (the 'runs' field in peers.json counts them). vdedup (chroma) reads the embedded "
        "Chroma directory; restic, borg and vdedup (files) back up the same naive export (vectors.npy + "
        f"records.jsonl{' + records.parquet' if res.get('export', {}).get('parquet') else ''}, "
        f"{fmt_bytes(res.get('export', {}).get('bytes'))} at the start; vdedup reads vectors.npy + records.jsonl "
        "through its files:// connector and ignores the Parquet copy)"
        + ("; vdedup-pg and pg_dump back up a pgvector table synced with the same changes." if p.get("pg") else "."),
        "",
        "Machine: " + str(p.get("shared_note") or "shared: other developers' test suites may have run at "
        "the same time on its CPUs, so wall times are noisier than CPU times; the (min-max) spread shows how "
        "much."),
        "",
        (("These are the default options" + (" plus --pg" if p.get("pg") else "") + " (50,000 records, "
          "7 nights, 3 runs, cost-vs-N 50k/100k" if _is_default(p) else
          f"Options: {_options_text(p)} (the default is 50,000 records, 7 nights, 3 runs, cost-vs-N 50k/100k") +
         _took(res) + "). The full sweep "
         "(cost-vs-N 50,000..1,000,000 at dims 384/768/1536) is opt-in with --full; figures at 1M come only "
         "from --full." if not p.get("full") else "Full sweep (--full" + (" --pg" if p.get("pg") else "") + ")"
         + _took(res) + "; the cost-vs-N series took " + _mins(res.get("scaling_seconds")) + "."),
        "",
        "| tool | scenario | wall s | CPU s | peak RSS MB | bytes added | minimum | ratio | restored ok |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in SCENARIOS:
        for t in p["tools"]:
            row = res.get("aggregate", {}).get(t, {}).get(s)
            if not row:
                continue
            ver = "" if "verified" not in row else ("yes" if row["verified"] else "**no**")
            lines.append("| " + " | ".join([
                DISPLAY.get(t, t), SCENARIO_TITLES[s], _spread(row, "wall_s", ".2f"), _spread(row, "cpu_s", ".2f"),
                _spread(row, "peak_rss_mb", ".0f"),
                fmt_bytes(row.get("bytes_added")) if not s.startswith("restore") else "",
                fmt_bytes(row.get("minimum_bytes")),
                _spread(row, "ratio", ".2f") if "ratio" in row else "", ver]) + " |")
    lines += ["", "## Targets for vdedup", "", "| row | target | measured | holds | note |", "|---|---|---|---|---|"]
    for t in res.get("targets", []):
        holds = "not measured" if t["holds"] is None else ("holds" if t["holds"] else "**does not hold**")
        lines.append(f"| {DISPLAY.get(t.get('tool', 'vdedup'), t.get('tool'))} | {t['target']} | {t['measured']} "
                     f"| {holds} | {t['note']} |")
    growth = res.get("growth") or res.get("growth_run0")
    if growth:
        lines += ["", "## Repository size after each backup", "",
                  "| backup | " + " | ".join(DISPLAY.get(t, t) for t in p["tools"]) + " |",
                  "|---|" + "---:|" * len(p["tools"])]
        labels = [g["label"] for g in growth[p["tools"][0]]]
        for i, lab in enumerate(labels):
            lines.append(f"| {lab} | " + " | ".join(fmt_bytes(growth[t][i]["repo_bytes"]) for t in p["tools"]) + " |")
    series = res.get("scaling_by_dim") or ({str(p["dim"]): res["scaling"]} if res.get("scaling") else {})
    if series:
        how = ("Each point is one initial backup into a new repository. The export is written straight from the "
               "generator (vectors.npy + records.jsonl, byte-identical to the export of the same records from "
               f"Chroma, no Parquet copy); vdedup (chroma) is measured up to N = {p.get('chroma_max', 0):,} "
               "(--chroma-max: embedded Chroma loads every vector into the reading process, and populating it "
               "is the slow part of the sweep)." if p.get("full") else
               "Each point is one initial backup into a new repository, of the Chroma directory grown to N and "
               f"its export (with Parquet); the point at N = {p['n']:,} is the main run's initial backup (medians). "
               f"Above N = {p.get('chroma_max', 0):,} (--chroma-max) the export is written straight from the "
               "generator (byte-identical records, no Parquet copy) and vdedup (chroma) is not measured.")
        lines += ["", "## Initial backup cost vs N", "", how, "",
                  "| N | dim | tool | wall s | CPU s | peak RSS MB | bytes added |",
                  "|---:|---:|---|---:|---:|---:|---:|"]
        for dim, sc in sorted(series.items(), key=lambda kv: int(kv[0])):
            for n, row in sorted(sc.items(), key=lambda kv: int(kv[0])):
                for t, m in row.items():
                    lines.append(f"| {int(n):,} | {dim} | {DISPLAY.get(t, t)} | {m['wall_s']:.2f} | {m['cpu_s']:.2f} | "
                                 f"{m['peak_rss_mb']:.0f} | {fmt_bytes(m['bytes_added'])} |")
    cr = res.get("chroma_read") or {}
    if cr or (res.get("populate") or {}).get("seconds"):
        lines += ["", "## Chroma's own time for the same records", "",
                  "What a Chroma source or target costs before vdedup does anything: reading every record as a "
                  "backup does (`datagen scan`, id pages then full rows) and inserting them "
                  "(`datagen populate`, which also generates them).", "",
                  "| step | records | Chroma's own wall s | vdedup (chroma) wall s (median) |", "|---|---:|---:|---:|"]
        agg_v = (res.get("aggregate") or {}).get("vdedup", {})
        for label, scen in (("initial", "initial"), ("nightly", "nightly")):
            if label in cr:
                mine = agg_v.get(scen, {}).get("wall_s")
                runs = cr[label].get("runs", 1)
                what = f"read ({label} backup{f', median of {runs} nights' if runs > 1 else ''})"
                lines.append(f"| {what} | {cr[label].get('records') or 0:,} | {cr[label]['wall_s']:.2f} | "
                             + (f"{mine:.2f}" if mine is not None else "-") + " |")
        pop = res.get("populate") or {}
        if pop.get("seconds"):
            mine = agg_v.get("restore_latest", {}).get("wall_s")
            lines.append(f"| insert (restore latest) | {pop.get('records', 0):,} | {pop['seconds']:.2f} | "
                         + (f"{mine:.2f}" if mine is not None else "-") + " |")
    deep_res = res.get("deep") or {}
    if deep_res:
        lines += ["", "## Nightly change and restore at large N (files source)", "",
                  "One history per tool and N: the initial backup of datagen's export, the export after one "
                  "nightly change set (1% updated vectors, 1% new records, 0.5% deleted) written at the same path "
                  "and backed up, then a restore of the latest snapshot into a new directory (checked against "
                  "that export, not timed). vdedup (files) runs at its default --workers (the cores), with "
                  "--workers 1 and with --workers 2.", "",
                  "| N | dim | tool | step | wall s | CPU s | CPU/wall | peak RSS MB | bytes added | ok |",
                  "|---:|---:|---|---|---:|---:|---:|---:|---:|---|"]
        for dim, rows in sorted(deep_res.items(), key=lambda kv: int(kv[0])):
            for n, row in sorted(rows.items(), key=lambda kv: int(kv[0])):
                for t, steps in row.items():
                    if t.startswith("_"):
                        continue
                    for step in ("initial", "nightly", "restore_latest"):
                        m = steps.get(step)
                        if not m:
                            continue
                        ok = {True: "yes", False: "NO"}.get(m.get("verified"), "")
                        lines.append(f"| {int(n):,} | {dim} | {DISPLAY.get(t, t)} | {step.replace('_', ' ')} | "
                                     f"{m['wall_s']:.2f} | {m['cpu_s']:.2f} | {m['cpu_s'] / max(m['wall_s'], 1e-9):.2f} | "
                                     f"{m['peak_rss_mb']:.0f} | {fmt_bytes(m.get('bytes_added'))} | {ok} |")
    lines += ["", "Bytes added: growth of the repository directory (file sizes summed). Minimum: zstd level 3 of "
              "the float32 vectors, ids and JSON metadata of the records written (initial: all records; nightly: "
              "updated + added; metadata-only: ids + metadata of the touched records). Ratio = bytes added / "
              "minimum. CPU s and peak RSS are the tool process's own (os.wait4). Restores: vdedup (chroma) "
              "restores into a new Chroma directory (a database, index built); vdedup (files) writes a new "
              "export, as restic and borg restore the export files. 'restored ok': the restored Chroma data "
              "re-exported (vdedup (chroma)) or the restored files (restic, borg) are byte-identical to the "
              "export taken when that snapshot was made, and the export vdedup (files) wrote holds the same "
              "records (ids, vector bytes, metadata; compared in id order); for vdedup-pg and pg_dump (restored into a new "
              "database) the row count and an md5 over every row's text form equal the table's at that time."]
    if res.get("error"):
        lines += ["", f"ERROR: {res['error']}"]
    return "\n".join(lines) + "\n"


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name, argv in (("restic", ["restic", "version"]), ("borg", ["borg", "--version"])):
        try:
            out[name] = subprocess.run(argv, capture_output=True, text=True).stdout.split()[1]
        except (OSError, IndexError):
            out[name] = None
    return out


def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    out = Path(args.out).resolve()
    work = out / "work"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    result.update({
        "benchmark": "peers", "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "params": {"n": args.n, "dim": args.dim, "seed": args.seed, "runs": args.runs, "full": args.full, "pg": args.pg,
                   "chroma_max": args.chroma_max,
                   "nights": args.nights, "tools": args.tools, "scaling": args.scaling, "dims": args.dims,
                   "deep": args.deep, "deep_dim": args.deep_dim,
                   "shared_note": args.note},
        "environment": environment(), "versions": versions(),
    })
    make_tools(args.tools, Runner(work), work, "check" if args.pg else None)   # fail early when a tool is missing
    compile_bytecode()
    pristine = work / "chroma-pristine"
    log(f"populating {args.n:,} records x {args.dim}")
    r = Runner(work)
    pop = r.py([str(DATAGEN), "populate", "--dir", str(pristine), "--n", str(args.n), "--dim", str(args.dim),
                "--seed", str(args.seed)], "populate")
    result["populate"] = pop
    one = chain(args, work, pristine, pop["minimum_bytes"])
    result["chain"] = one
    result["export"] = one["exports"][0]
    result["export"]["parquet"] = _has_pyarrow()
    result["growth"] = one["growth"]
    result["chroma_read"] = one.get("chroma_read")
    result["chroma_read_samples"] = one.get("chroma_read_samples")
    result["aggregate"] = aggregate(one["samples"], args.tools)
    if args.scaling:
        started = time.monotonic()
        scaling(args, work, result, pristine)
        result["scaling_seconds"] = round(time.monotonic() - started, 1)
    if args.deep:
        started = time.monotonic()
        deep(args, work, result)
        result["deep_seconds"] = round(time.monotonic() - started, 1)
    result["targets"] = targets(result["aggregate"], result)
    result["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def compile_bytecode() -> None:
    """Write vdedup's .pyc files first, as `pip install` does: with PYTHONDONTWRITEBYTECODE set
    (as on the development machines) every vdedup command would otherwise compile its own
    modules from source on start-up (~0.08 s), a cost no installed copy has."""
    import compileall
    for d in ("vdedup", "cli"):
        compileall.compile_dir(str(ROOT / d), quiet=1)


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
        return True
    except ImportError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("export", "change"):   # internal: run as child processes
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("--dir", required=True)
        ap.add_argument("--out", required=True)
        ap.add_argument("--kind", choices=("nightly", "touch", "none"), default="none")
        ap.add_argument("--n", type=int, default=0)
        ap.add_argument("--dim", type=int, default=datagen.DEFAULT_DIM)
        ap.add_argument("--seed", type=int, default=datagen.DEFAULT_SEED)
        ap.add_argument("--pg-db", default=None)
        ap.add_argument("--round", type=int, default=1)
        a = ap.parse_args(argv)
        if a.cmd == "export":
            print(json.dumps(export(a.dir, a.out)))
            return 0
        # a change through datagen, then the export, in one process (one chromadb start-up)
        ch = None
        if a.kind == "nightly":
            ch = datagen.nightly(a.dir, a.n, a.dim, a.seed)
        elif a.kind == "touch":
            ch = datagen.touch(a.dir, a.n, a.seed, rnd=a.round)
        e = export(a.dir, a.out)
        print(json.dumps({"change": ch, "export": e, "pg": pg_sync(a.pg_db, a.out) if a.pg_db else None}))
        return 0
    ap = argparse.ArgumentParser(description="vdedup vs restic and borg on the same vector data")
    ap.add_argument("--n", type=int, default=None, help="records (default 50,000)")
    ap.add_argument("--dim", type=int, default=384, help="vector dimension (default 384)")
    ap.add_argument("--runs", type=int, default=3,
                    help="repetitions of every scenario but the nightly one, whose samples are the nights; "
                         "medians are reported (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dims", default=None,
                    help="comma-separated dims for the cost-vs-N series (default --dim; with --full 384,768,1536)")
    ap.add_argument("--note", default=None,
                    help="what else ran on the machine (default: it is shared with other developers' tests)")
    ap.add_argument("--full", action="store_true",
                    help="the cost-vs-N series 50k..1M at dims 384, 768 and 1536 (about 40 more minutes on 2 "
                         "cores, ~20 GB of disk)")
    ap.add_argument("--chroma-max", type=int, default=200_000,
                    help="the largest N at which vdedup (chroma) is measured in the cost-vs-N "
                         "series (populating embedded Chroma is the slow part; default 200,000)")
    ap.add_argument("--nights", type=int, default=None, help="nightly runs before 'restore first' (default 7)")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS), help=f"comma-separated subset of {','.join(ALL_TOOLS)}")
    ap.add_argument("--scaling", default=None,
                    help="comma-separated N for the initial-backup cost-vs-N series, or none (default "
                         "50000,100000; with --full 50000,200000,500000,1000000)")
    ap.add_argument("--deep", default=None,
                    help="comma-separated N at which the export tools also back up a nightly change and "
                         "restore the latest snapshot, vdedup (files) with its default --workers, 1 and 2 "
                         "(default none; with --full 200000,1000000)")
    ap.add_argument("--deep-dim", type=int, default=768, help="vector dimension for --deep (default 768)")
    ap.add_argument("--pg", action="store_true",
                    help="also vdedup on a pgvector table (postgresql://) and pg_dump -Fc / pg_restore; needs "
                         "VDEDUP_TEST_PG_HOST/PORT/USER/BIN (scripts/servers.sh)")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite OUT/peers.md (targets recomputed) and the plots from OUT/peers.json")
    ap.add_argument("--keep", action="store_true", help="keep the working data (results/work)")
    ap.add_argument("--out", default=str(HERE / "results"), help="results directory")
    args = ap.parse_args(argv)
    if args.render:
        out = Path(args.out).resolve()
        res = json.loads((out / "peers.json").read_text())
        if res.get("aggregate"):
            res["targets"] = targets(res["aggregate"], res)
        (out / "peers.json").write_text(json.dumps(res, indent=2) + "\n")
        (out / "peers.md").write_text(markdown(res))
        log(f"rewrote {out / 'peers.md'}")
        if not args.no_plots:
            import plots
            plots.plot_all(out / "peers.json", out)
        return 0
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.pg:
        args.tools += [t for t in PG_TOOLS if t not in args.tools]
    args.n = args.n or 50_000
    args.nights = args.nights or 7
    if args.dims is None:
        args.dims = [384, 768, 1536] if args.full else [args.dim]
    else:
        args.dims = [int(x) for x in args.dims.split(",") if x.strip()]
    if args.scaling is None:
        args.scaling = [50_000, 200_000, 500_000, 1_000_000] if args.full else [50_000, 100_000]
    elif args.scaling.strip().lower() in ("", "none"):
        args.scaling = []
    else:
        args.scaling = [int(x.replace("_", "")) for x in args.scaling.split(",") if x.strip()]
    if args.deep is None:
        args.deep = [200_000, 1_000_000] if args.full else []
    elif args.deep.strip().lower() in ("", "none"):
        args.deep = []
    else:
        args.deep = [int(x.replace("_", "")) for x in args.deep.split(",") if x.strip()]
    if args.runs < 1 or args.n < 100 or args.nights < 1:
        ap.error("--runs and --nights must be >= 1 and --n >= 100")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {}
    code = 0
    try:
        run(args, res)
    except BaseException as e:   # write what was measured, then fail
        code = 1
        res["error"] = f"{type(e).__name__}: {e}"
        log(f"failed: {res['error']}")
    finally:
        if not args.keep:
            shutil.rmtree(out / "work", ignore_errors=True)
        if res.get("params"):
            (out / "peers.json").write_text(json.dumps(res, indent=2) + "\n")
            (out / "peers.md").write_text(markdown(res))
            log(f"wrote {out / 'peers.json'} and {out / 'peers.md'}")
            if not args.no_plots and code == 0:
                try:
                    import plots
                    for f in plots.plot_all(out / "peers.json", out):
                        log(f"wrote {f}")
                except ImportError as e:
                    log(f"plots skipped ({e}); bash scripts/bench-deps.sh installs matplotlib")
    return code


if __name__ == "__main__":
    sys.exit(main())
