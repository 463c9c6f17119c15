"""Run one command and write its wall time, CPU time and peak RSS as JSON (a launcher).

    python benchmarks/measure.py OUT.json -- COMMAND [ARGS...]

Why a launcher: on Linux a process's peak RSS (ru_maxrss) starts at the high-water mark of
the memory it replaced at exec, i.e. of the process that forked it. A benchmark harness that
has touched a few hundred MB (reading an export to verify it, say) would otherwise lend that
figure to every small child it measures. This launcher is small, so the command it forks
starts from its small mark; its stdin/stdout/stderr are the command's. It exits with the
command's exit code.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

MB = 1_000_000


def main() -> int:
    out, sep, *argv = sys.argv[1:]
    if sep != "--" or not argv:
        print("usage: measure.py OUT.json -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    proc = subprocess.Popen(argv)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as f:
        json.dump({"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
                   "peak_rss_mb": round(usage.ru_maxrss * 1024 / MB, 1), "exit": code}, f)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
