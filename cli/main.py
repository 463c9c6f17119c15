"""Entry point: the one place that turns errors into exit codes (CLI layer)."""
from __future__ import annotations

import os
import sys
import traceback

import click

from vdedup.errors import Interrupted, VdedupError

from .app import app
from .commands import load_all
from .output import err


def _fail(message: str, code: int, hint: str | None = None) -> int:
    err.print(f"vdedup: error: {message}", markup=False)
    if hint:
        err.print(f"hint: {hint}", markup=False)
    return code


def run(argv: list[str] | None = None) -> int:
    load_all()
    try:
        rv = app(args=argv, prog_name="vdedup", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except VdedupError as e:
        code = _fail(e.message, e.exit_code, e.hint)
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.exceptions.Abort:
        code = _fail("interrupted", Interrupted.exit_code)
    except click.ClickException as e:
        e.show(file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:
        code = _fail("interrupted", Interrupted.exit_code)
    except Exception as e:   # a bug: one line, the traceback only on request
        if os.environ.get("VDEDUP_DEBUG"):
            traceback.print_exc()
        code = _fail(f"internal error: {type(e).__name__}: {e}".splitlines()[0], 1,
                     "set VDEDUP_DEBUG=1 for a traceback and report it")
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    run()
