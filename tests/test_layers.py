"""The layers import one way (docs/design.md, "Layers"): the engine reaches stored bytes only
through the repository, and connectors depend on neither the repository nor the engine.

Every import statement of every module is read from its syntax tree (top-level and inside
functions alike), relative imports resolved against the module's package."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vdedup

PACKAGE = Path(vdedup.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, text: str | None = None) -> set[str]:
    """Every module an import statement in `path` (or `text`, as if it were that file)
    names (`from x import y` counts x and x.y)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _modules(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


def _violations(sub: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in _modules(sub):
        for mod in sorted(imported_modules(path)):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {mod}")
    return bad


def test_the_engine_imports_neither_format_nor_backend():
    assert _modules("engine")
    assert _violations("engine", ("vdedup.format", "vdedup.backend")) == []


def test_connectors_import_neither_repository_nor_engine():
    assert _modules("connectors")
    assert _violations("connectors", ("vdedup.repository", "vdedup.engine")) == []


@pytest.mark.parametrize("source, expected", [
    ("from ..format import pack\n", "vdedup.format.pack"),
    ("from ..backend.base import FileType\n", "vdedup.backend.base"),
    ("def f():\n    from vdedup.format.objects import BlobType\n", "vdedup.format.objects"),
    ("import vdedup.backend\n", "vdedup.backend"),
])
def test_the_import_reader_sees_every_form(source, expected):
    """The checks above can fail: each way of importing format/ or backend/ is seen."""
    assert expected in imported_modules(PACKAGE / "engine" / "probe.py", source)
