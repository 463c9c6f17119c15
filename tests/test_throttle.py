"""Throttling (issue 19): --limit-rate on reads from a source and writes to a target,
--limit-upload / --limit-download on the repository's storage. A throttled small run takes
at least the time its rate allows (with a generous margin below, none above)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from vdtest import vdedup


def _export(path, n: int, dim: int = 16) -> str:
    path.mkdir(parents=True)
    rng = np.random.default_rng(5)
    np.save(path / "vectors.npy", rng.standard_normal((n, dim)).astype(np.float32))
    (path / "records.jsonl").write_text("".join(json.dumps({"id": i, "metadata": None}) + "\n" for i in range(n)))
    return f"files://{path}"


def _timed(*args) -> float:
    t = time.monotonic()
    assert vdedup(*args) == 0
    return time.monotonic() - t


def test_parse_rate():
    from vdedup.errors import UsageError
    from vdedup.ratelimit import parse_rate
    assert (parse_rate("500r/s").per_second, parse_rate("500r/s").unit) == (500, "records")
    assert parse_rate("20MB/s").per_second == 20e6 and parse_rate("20MB/s").unit == "bytes"
    assert parse_rate("512KiB/s").per_second == 512 * 1024
    assert parse_rate("1.5 records/s").per_second == 1.5
    for bad in ("fast", "0r/s", "20MB", "-1MB/s", "5 r/min"):
        with pytest.raises(UsageError):
            parse_rate(bad)
    with pytest.raises(UsageError):
        parse_rate("500r/s", "--limit-upload", records=False)


def test_token_bucket_keeps_to_its_rate():
    from vdedup.ratelimit import TokenBucket
    bucket = TokenBucket(1000.0, burst=100.0)
    t = time.monotonic()
    for _ in range(20):
        bucket.take(50)                 # 1000 units: (1000 - 100) / 1000 s at least
    assert time.monotonic() - t >= 0.85


def test_limit_rate_on_backup_reads_and_restore_writes(tmp_path, repo_path, capsys):
    n = 600
    src = _export(tmp_path / "src", n)
    assert vdedup("--repo", repo_path, "init") == 0
    # 600 records at 400 records/s: at least (600 - 100 of burst) / 400 = 1.25 s
    elapsed = _timed("--repo", repo_path, "backup", src, "--limit-rate", "400r/s")
    assert elapsed >= 1.2, elapsed
    capsys.readouterr()
    # the same run by bytes: 600 records of 16 float32 + an 8-byte id = 43.2 kB at 30 kB/s
    elapsed = _timed("--repo", repo_path, "backup", src, "--limit-rate", "30kB/s")
    assert elapsed >= (43_200 - 7_500) / 30_000 * 0.95, elapsed
    elapsed = _timed("--repo", repo_path, "restore", "latest", "--target", f"files://{tmp_path / 'dst'}",
                     "--limit-rate", "400r/s")
    assert elapsed >= 1.2, elapsed
    assert np.array_equal(np.sort(np.load(tmp_path / "dst" / "vectors.npy"), axis=0),
                          np.sort(np.load(tmp_path / "src" / "vectors.npy"), axis=0))


def test_limit_upload_and_download_on_the_repository(tmp_path, repo_path, capsys):
    src = _export(tmp_path / "src", 4000, dim=32)          # ~0.5 MB of vectors, stored compressed
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", src) == 0
    stored = sum(p.stat().st_size for p in (repo_path / "data").rglob("*") if p.is_file())
    rate = stored / 1.5                                     # about 1.5 s of upload at this rate
    limit = f"{rate / 1000:.0f}kB/s"
    src2 = _export(tmp_path / "src2", 4000, dim=32)
    np.save(tmp_path / "src2" / "vectors.npy", np.load(tmp_path / "src" / "vectors.npy") + 1)   # all new
    elapsed = _timed("--limit-upload", limit, "--repo", repo_path, "backup", src2)
    assert elapsed >= 1.0, elapsed
    elapsed = _timed("--limit-download", limit, "--repo", repo_path, "check", "--read-data")
    assert elapsed >= 2.0, elapsed                          # both snapshots' data: ~3 s at this rate
    capsys.readouterr()
    assert vdedup("--limit-upload", "fast", "--repo", repo_path, "snapshots") == 2
    assert "--limit-upload" in capsys.readouterr().err
