"""No test skips itself when something is missing: a suite that skipped would pass without
testing anything. tests/vdtest.py's unavailable() and require_module() fail instead (or skip
with VDEDUP_ALLOW_SKIP=1, never set in CI); this reads every test module for the ways pytest
offers to skip, so a new one cannot slip in."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ALLOWED = {TESTS / "vdtest.py"}                  # unavailable(): the one place that may skip
SKIPPERS = {"skip", "importorskip", "skipif"}


def _skips(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in SKIPPERS:
            base = node.value
            names = []
            while isinstance(base, ast.Attribute):
                names.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id == "pytest":
                dotted = ".".join([*reversed(names), node.attr])
                found.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: pytest.{dotted}")
    return found


def test_no_test_module_skips() -> None:
    bad = [s for p in sorted(TESTS.rglob("*.py")) if p not in ALLOWED for s in _skips(p)]
    assert not bad, "use vdtest.unavailable() / require_module() instead:\n" + "\n".join(bad)
