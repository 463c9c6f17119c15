"""Every command pays for what the CLI imports before it runs: keep that light.

typer 0.29 builds a pydantic TypeAdapter for every parameter (and imports pydantic), which
cost 0.1-0.3 s of every command (benchmarks/results/profile.md, 2026-12-06 night);
pyproject.toml keeps typer below it. Providers' SDKs and Ray load only when a command uses
them."""
from __future__ import annotations

import json
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
