"""Every command pays for what the CLI imports before it runs: keep that light.

typer 0.29 builds a pydantic TypeAdapter for every parameter (and imports pydantic), which
cost 0.1-0.3 s of every command (benchmarks/results/profile.md, 2026-12-06 night);
pyproject.toml keeps typer below it. Providers' SDKs and Ray load only when a command uses
them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("pydantic", "chromadb", "pymilvus", "qdrant_client", "weaviate", "pinecone", "psycopg",
         "boto3", "ray", "starlette", "uvicorn", "jinja2")


def test_loading_the_cli_imports_no_sdk_and_no_pydantic():
    code = ("import json, sys; from vdedup_cli.main import _load; _load(); import typer; "
            "from vdedup_cli.app import app; typer.main.get_command(app); "
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_a_command_runs_without_pydantic(tmp_path):
    """A command's options go through typer's parameter handling (where typer 0.29 imports
    pydantic); here `snapshots --json` of a repository that does not exist: its own error."""
    code = ("import sys\nfrom vdedup_cli.main import run\n"
            f"code = run(['--repo', {str(tmp_path / 'none')!r}, 'snapshots', '--json'])\n"
            "print('PYDANTIC' if 'pydantic' in sys.modules else 'LIGHT', code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "VDEDUP_PASSWORD": "x", "HOME": str(tmp_path)})
    word, rc = out.stdout.strip().splitlines()[-1].split()
    assert word == "LIGHT" and rc != "0", out.stdout + out.stderr


def test_the_command_table_names_every_command_where_it_is_registered():
    """commands.COMMAND_MODULES (what a command line loads alone) agrees with what loading
    every command module registers: each top-level command and group, in its own module."""
    code = ("import json, typer\nfrom vdedup_cli.commands import load_all\nload_all()\n"
            "from vdedup_cli.app import app\n"
            "found = {c.name or c.callback.__name__.replace('_', '-'): c.callback.__module__ for c in app.registered_commands}\n"
            "found.update({g.name: (g.typer_instance.registered_commands or [None])[0].callback.__module__ "
            "for g in app.registered_groups})\n"
            "print(json.dumps(found))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    from vdedup_cli.commands import COMMAND_MODULES
    assert {name: f"vdedup_cli.commands.{m}" for name, m in COMMAND_MODULES.items()} == found


def test_a_command_line_loads_only_its_command(tmp_path):
    """`snapshots` imports its own module and none of the others' (nor the engine's backup or
    restore); `--help` lists every command."""
    code = ("import sys\nfrom vdedup_cli.main import run\n"
            f"code = run(['--repo', {str(tmp_path / 'none')!r}, '-q', 'snapshots', '--json'])\n"
            "print(sorted(m.rpartition('.')[2] for m in sys.modules if m.startswith('vdedup_cli.commands.')),"
            " 'vdedup.engine.backup' in sys.modules, 'vdedup.engine.restore' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin", "VDEDUP_PASSWORD": "x", "HOME": str(tmp_path)})
    assert out.stdout.strip().splitlines()[-1] == "['snapshot_cmds'] False False", out.stdout + out.stderr
    from vdedup_cli.commands import COMMAND_MODULES
    helped = subprocess.run([sys.executable, "-m", "vdedup_cli", "--help"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert helped.returncode == 0
    assert all(name in helped.stdout for name in [*COMMAND_MODULES, "ai-assets"]), helped.stdout


def test_the_command_is_found_after_the_apps_own_options():
    from vdedup_cli.main import command_named
    assert command_named(["--repo", "x", "-q", "--s3-endpoint", "http://h", "restore", "latest"]) == "restore"
    assert command_named(["-r", "snapshots", "--limit-download=5MB/s", "backup", "u"]) == "backup"
    assert command_named(["--help", "restore"]) is None and command_named(["-q"]) is None
    assert command_named(["--version"]) is None and command_named(["ai-assets", "list"]) == "ai-assets"


_INTERRUPT_AT = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv = ["vdedup", "--repo", {repo!r}, "snapshots"]
from vdedup_cli.entry import vdedup
vdedup()
"""


def test_ctrl_c_while_the_command_line_imports_ends_it_with_one_line(tmp_path):
    """Ctrl-C while the console script imports the CLI, or while the CLI imports the command's
    module: exit 130 and "vdedup: error: interrupted", no traceback."""
    for module in ("vdedup_cli.main", "vdedup_cli.commands.snapshot_cmds"):
        code = _INTERRUPT_AT.format(module=module, repo=str(tmp_path / "none"))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                             env={"PATH": "/usr/bin:/bin", "VDEDUP_PASSWORD": "x", "HOME": str(tmp_path)})
        assert (out.returncode, out.stderr.strip()) == (130, "vdedup: error: interrupted"), (module, out.stderr)


def test_ctrl_c_inside_a_class_creation_is_an_interruption(tmp_path, monkeypatch, capsys):
    """A Ctrl-C that lands while a lazily imported module creates a class reaches the CLI
    wrapped (Python 3.11: RuntimeError "Error calling __set_name__"): exit 130 and
    "interrupted", not "internal error"; a real error still is one."""
    from vdedup_cli import main
    from vdedup_cli.commands import snapshot_cmds

    class Descriptor:
        def __set_name__(self, owner, name):
            raise KeyboardInterrupt

    def interrupted_import():
        type("Made", (), {"field": Descriptor()})          # what a dataclass module does

    monkeypatch.setattr(snapshot_cmds, "open_repository", interrupted_import)
    monkeypatch.setenv("VDEDUP_PASSWORD", "x")
    assert main.run(["--repo", str(tmp_path / "r"), "snapshots"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "vdedup: error: interrupted", err

    def broken():
        raise RuntimeError("a real bug")

    monkeypatch.setattr(snapshot_cmds, "open_repository", broken)
    assert main.run(["--repo", str(tmp_path / "r"), "snapshots"]) == 1
    assert "internal error: RuntimeError: a real bug" in capsys.readouterr().err
