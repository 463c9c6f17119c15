"""Entry point: the one place that turns errors into exit codes, and the one place that
writes the audit entry of every operation (CLI layer)."""
from __future__ import annotations

import os
import re
import signal
import sys
import traceback

import click

def _kinds(name: str) -> tuple[type, ...]:
    """click's exception class `name`, plus typer's own copy of it (typer >= 0.29 bundles click)."""
    found = [getattr(click.exceptions, name)]
    try:
        import typer._click.exceptions as tce
        import typer.exceptions as te
        for mod in (tce, te):
            cls = getattr(mod, name, None)
            if isinstance(cls, type) and cls not in found:
                found.append(cls)
    except ImportError:
        pass
    return tuple(found)


_EXIT, _ABORT, _CLICK_ERROR = _kinds("Exit"), _kinds("Abort"), _kinds("ClickException")
import typer

from vdedup.errors import Interrupted, VdedupError, scrub

from . import context
from .app import app
from .commands import load_all, load_for
from .output import err

# root options that take a value (to find the command's name in argv)
_VALUE_OPTIONS = {"--repo", "-r", "--s3-endpoint", "--limit-upload", "--limit-download"}


def _fail(message: str, code: int, hint: str | None = None) -> int:
    """The one place errors become output: no secret passes (errors.scrub)."""
    err.print(f"vdedup: error: {scrub(message)}", markup=False)
    if hint:
        err.print(f"hint: {scrub(hint)}", markup=False)
    return code


# the app's own options that take a value (app.py), skipped when looking for the command
_VALUE_OPTIONS = {"--repo", "-r", "--s3-endpoint", "--limit-upload", "--limit-download"}


def command_named(args: list[str]) -> str | None:
    """The command an argument list names (its first word after the app's own options), or
    None: no command, or help or the version asked before one."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--help", "-h", "--version"):
            return None
        if a in _VALUE_OPTIONS:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return a
    return None


def _load(args: list[str] | None = None) -> None:
    """Register the commands `args` needs: the one it names (commands.load_for), or all."""
    name = command_named(args) if args is not None else None
    if name != "ai-assets":
        if name is not None and load_for(name):
            return
        load_all()
    from .aiassets import register
    register(app)


def operation_name(argv: list[str], cmd=None) -> str | None:
    """`backup`, `assets remove`, `ai-assets restore`...: the command path in argv (`cmd`:
    the app's click command, if already built)."""
    if cmd is None:
        try:
            cmd = typer.main.get_command(app)     # typer's own click: test by shape, not class
        except Exception:
            return None
    path: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("--help", "-h"):
            return None
        if tok.startswith("-"):
            i += 2 if (not path and tok in _VALUE_OPTIONS) else 1
            continue
        commands = getattr(cmd, "commands", None)
        if not isinstance(commands, dict):
            break
        sub = commands.get(tok)
        if sub is None:
            break
        path.append(tok)
        cmd = sub
        i += 1
    return " ".join(path) or None


def _audit(operation: str | None, code: int, error: BaseException | None) -> None:
    """Append this operation's entry to the repository it used; never fails the command."""
    note = context.AUDIT
    if operation is None or note.skip:
        return
    repo = note.repo
    try:
        if repo is None and operation == "init" and code == 0 and note.password is not None:
            # init creates the repository without going through open_repository
            from vdedup.repository import Repository
            backend = context.repository_backend()
            if backend.exists():
                repo = Repository.open(backend, note.password)
        if repo is None:
            return        # no repository was opened: there is nowhere to write
        from vdedup.assets.audit import AuditLog
        log = AuditLog(repo)
        if code == 0:
            outcome, err_class = note.outcome or "ok", None
        else:
            outcome = "error"
            err_class = type(error).__name__ if error is not None else None
        items = note.items or [{}]
        for item in items:
            log.append(operation, item.get("outcome", outcome),
                       asset=item.get("asset", note.asset), snapshot=item.get("snapshot", note.snapshot),
                       counts=item.get("counts", note.counts), exit_code=item.get("exit_code", code),
                       error=item.get("error", err_class), removed=item.get("removed", note.removed))
        from vdedup.engine.rollback import observe
        observe(repo)              # remember the repository as this command leaves it
    except Exception as e:    # the operation itself is done; say that its record is missing
        if os.environ.get("VDEDUP_DEBUG"):
            traceback.print_exc()
        err.print(f"vdedup: warning: could not write the audit entry ({type(e).__name__})", markup=False)


_RAY_ADDRESS = re.compile(r"^(auto|local|ray://\S+|[\w.\-]+:\d+)$")


def ray_flag(args: list[str]) -> list[str]:
    """`--ray` takes an optional ADDRESS (as ray.init does): a bare `--ray` (followed by
    nothing, another option, or a word that is no Ray address) becomes `--ray local`."""
    out = []
    for i, tok in enumerate(args):
        out.append(tok)
        if tok == "--ray" and not (i + 1 < len(args) and _RAY_ADDRESS.match(args[i + 1])):
            out.append("local")
    return out


def _after_interrupt(e: BaseException) -> bool:
    """Whether `e` was raised because of a Ctrl-C: a KeyboardInterrupt among its causes (Python
    3.11 wraps one raised inside a class's creation as RuntimeError "Error calling
    __set_name__", e.g. during a module's import)."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def run(argv: list[str] | None = None, prog_name: str = "vdedup") -> int:
    args = ray_flag(list(sys.argv[1:] if argv is None else argv))
    try:
        _load(args)
    except KeyboardInterrupt:
        code = _fail("interrupted", Interrupted.exit_code)
        if argv is None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            sys.exit(code)
        return code
    context.reset_audit()
    error: BaseException | None = None
    cmd = None
    try:
        cmd = typer.main.get_command(app)   # built once: the audit entry reads the command path off it
        rv = cmd(args=args, prog_name=prog_name, standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
        if code == Interrupted.exit_code:          # typer returns Ctrl-C as 130 (standalone_mode=False)
            error = KeyboardInterrupt()
            code = _fail("interrupted", code)
    except VdedupError as e:
        error = e
        code = _fail(e.message, e.exit_code, e.hint)
    except _EXIT as e:
        code = e.exit_code
        if code == Interrupted.exit_code:          # typer turns Ctrl-C into Exit(130)
            code = _fail("interrupted", code)
    except _ABORT as e:
        error = e
        code = _fail("interrupted", Interrupted.exit_code)
    except _CLICK_ERROR as e:
        error = e
        e.show(file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt as e:
        error = e
        code = _fail("interrupted", Interrupted.exit_code)
    except Exception as e:   # a bug: one line, the traceback only on request
        error = e
        if os.environ.get("VDEDUP_DEBUG"):
            traceback.print_exc()
        if _after_interrupt(e):
            code = _fail("interrupted", Interrupted.exit_code)
        else:
            code = _fail(scrub(f"internal error: {type(e).__name__}: {e}").splitlines()[0], 1,
                         "set VDEDUP_DEBUG=1 for a traceback and report it")
    try:
        _audit(operation_name(args, cmd), code, error)
    finally:
        context.AUDIT.password = None
    if argv is None:
        if code == Interrupted.exit_code:
            # handled (said, locks released, workers stopped): a SIGINT arriving while the
            # interpreter exits would end the process by the signal instead of exit code 130
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(code)
    return code


if __name__ == "__main__":
    run()
