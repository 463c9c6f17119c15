"""The console scripts (pyproject.toml): ctrl-c while the command line is still importing
ends it as ctrl-c later does, with one line and exit code 130, not a traceback."""
from __future__ import annotations

import signal
import sys

INTERRUPTED = 130                     # vdedup.errors.Interrupted.exit_code (not imported yet)


def _start(module: str):
    try:
        return getattr(__import__(f"vdedup_cli.{module}", fromlist=["run"]), "run")
    except KeyboardInterrupt:
        sys.stderr.write("vdedup: error: interrupted\n")
        signal.signal(signal.SIGINT, signal.SIG_IGN)      # as main.run: the exit is not cut short
        sys.exit(INTERRUPTED)


def vdedup() -> None:
    sys.exit(_start("main")())


def backupengine() -> None:
    sys.exit(_start("aiassets")())
