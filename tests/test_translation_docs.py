"""docs/translation-matrix.md is the planner's own output for every provider pair: it must be
regenerated (python scripts/translation_matrix.py) whenever the translation rules change."""
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_translation_matrix_doc_is_current(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["translation_matrix.py"])
    gen = runpy.run_path(str(ROOT / "scripts" / "translation_matrix.py"))
    text = gen["render"]()
    assert (ROOT / "docs" / "translation-matrix.md").read_text() == text, \
        "docs/translation-matrix.md is stale: run python scripts/translation_matrix.py"
    for src in ("chroma", "pinecone", "qdrant", "milvus", "pgvector (PostgreSQL)", "weaviate"):
        assert text.count(f"### {src} -> ") == 6, src
