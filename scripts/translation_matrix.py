"""Write docs/translation-matrix.md: the translation plan for every source -> target provider
pair, made by the engine itself (vdedup.engine.translate.build_plan) from a typical rich
schema of each provider. tests/test_translation_docs.py checks the file is current.

    .venv/bin/python scripts/translation_matrix.py            # rewrite the file
    .venv/bin/python scripts/translation_matrix.py --check    # exit 1 if it is stale
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from vdedup.engine.capabilities import CAPABILITIES
from vdedup.engine.translate import build_plan
from vdedup.model import CollectionSchema, IdType, MetadataField, Metric, SparseField, VectorField

OUT = Path(__file__).resolve().parent.parent / "docs" / "translation-matrix.md"
M, F = Metric, MetadataField

EXAMPLES = {
    "chroma": CollectionSchema(
        provider="chroma", name="docs", id_type=IdType.STRING,
        vectors=(VectorField("", 384, M.EUCLIDEAN),),
        metadata_fields=(F("source", "str"), F("page", "int"), F("score", "float"), F("tags", "list")),
        has_documents=True, has_uris=True),
    "pinecone": CollectionSchema(
        provider="pinecone", name="docs", id_type=IdType.STRING,
        vectors=(VectorField("", 1536, M.DOT),), sparse=(SparseField("", M.DOT),),
        metadata_fields=(F("title", "str"), F("price", "float"), F("in_stock", "bool"), F("tags", "list")),
        namespaces=("", "archive")),
    "qdrant": CollectionSchema(
        provider="qdrant", name="docs", id_type=IdType.INT,
        vectors=(VectorField("text", 768, M.COSINE), VectorField("image", 512, M.EUCLIDEAN, "float16")),
        sparse=(SparseField("bm25", M.DOT, "idf"),),
        metadata_fields=(F("source", "str"), F("page", "int"), F("nested", "dict"), F("maybe", "str", nullable=True))),
    "milvus": CollectionSchema(
        provider="milvus", name="docs", id_type=IdType.INT,
        vectors=(VectorField("dense", 768, M.EUCLIDEAN),), sparse=(SparseField("terms", M.DOT),),
        metadata_fields=(F("title", "str"), F("page", "int"), F("score", "float"), F("info", "dict"),
                         F("tags", "list")),
        namespaces=("_default", "archive")),
    "postgresql": CollectionSchema(
        provider="postgresql", name="docs", id_type=IdType.INT,
        vectors=(VectorField("embedding", 1536, M.COSINE),), sparse=(SparseField("sp", M.EUCLIDEAN),),
        metadata_fields=(F("title", "str"), F("created", "datetime"), F("price", "decimal"),
                         F("tags", "list"), F("extra", "json"))),
    "weaviate": CollectionSchema(
        provider="weaviate", name="Docs", id_type=IdType.UUID,
        vectors=(VectorField("body", 768, M.COSINE), VectorField("head", 256, M.DOT)),
        metadata_fields=(F("title", "str"), F("n", "int"), F("score", "float"), F("when", "datetime"),
                         F("info", "dict"), F("tags", "list")),
        namespaces=("tenant_a", "tenant_b")),
}
NAMES = {"postgresql": "pgvector (PostgreSQL)"}


def _describe(schema: CollectionSchema) -> str:
    vecs = ", ".join(f"`{v.name or '(unnamed)'}` {v.dim}-d {v.metric.value}"
                     + ("" if v.dtype == "float32" else f" {v.dtype}") for v in schema.vectors)
    sparse = ", ".join(f"`{s.name or '(unnamed)'}`" for s in schema.sparse) or "none"
    meta = ", ".join(f"{f.name}: {f.type}" for f in schema.metadata_fields)
    ns = ", ".join(f"`{n}`" if n else "`\"\"`" for n in schema.namespaces)
    return (f"{schema.id_type.value} ids; dense {vecs}; sparse {sparse}; metadata {meta}; "
            f"namespaces {ns}" + ("; documents, uris" if schema.has_documents else ""))


def _options(schema: CollectionSchema, target: str) -> tuple[list[str], object]:
    """The options the plan asks for, as a user would add them after reading its errors."""
    kw: dict = {}
    for _ in range(4):
        plan = build_plan(schema, target, **kw)
        errors = " | ".join(plan.errors)
        if not errors:
            break
        m = re.search(r"\(([^)]*)\): choose one with --vector", errors)
        if m and "vector" not in kw:
            kw["vector"] = sorted(n.strip() for n in m.group(1).split(","))[0]
        if "--drop-sparse" in errors:
            kw["drop_sparse"] = True
        if "dotproduct" in errors:
            kw["metric"] = Metric.DOT
        if "--allow-lossy" in errors:
            kw["allow_lossy"] = True
    flags = {"vector": lambda v: f"--vector {v}", "drop_sparse": lambda v: "--drop-sparse",
             "metric": lambda v: f"--metric {v.value}", "allow_lossy": lambda v: "--allow-lossy"}
    return [flags[k](v) for k, v in kw.items()], plan


def _table(plan) -> list[str]:
    lines = ["| part | step | fidelity | accepted by |", "|---|---|---|---|"]
    for s in plan.steps:
        detail = s.detail.replace("|", "\\|")
        kind = f"inexact (within {s.bound:g})" if s.inexact else s.kind
        lines.append(f"| {s.part} | {detail} | {kind} | {s.accepted_by or ''} |")
    return lines + [""]


def render() -> str:
    lines = ["# Translation matrix", "",
             "Generated by `scripts/translation_matrix.py` from the engine's own planner "
             "(`vdedup/engine/translate.py`); `tests/test_translation_docs.py` fails when it is stale.",
             "For each source provider, a typical rich collection (described below) and, for each target, "
             "the plan `vdedup restore --target` shows: every step, whether it is lossless (a restore back "
             "into the source provider gives the original records), inexact (the target engine's own "
             "float rounding, which it applies to every write: the values stay within the bound shown, "
             "and the largest deviation observed is reported after the write) or lossy, and the options "
             "the plan asks for. Inexact steps go ahead unless `--exact` refuses them. A lossy step is "
             "refused unless an option accepts it: `--vector`, `--drop-sparse` and `--metric` accept "
             "their own losses, `--allow-lossy` the others. Rules: docs/restore.md; the whole matrix is "
             "run end to end by tests/test_cross_provider.py.", ""]
    providers = list(EXAMPLES)
    for src in providers:
        schema = EXAMPLES[src]
        lines += [f"## From {NAMES.get(src, src)}", "", f"Example source: {_describe(schema)}.", ""]
        for dst in providers:
            if dst == src:
                plan = build_plan(schema, dst)
                lines += [f"### {NAMES.get(src, src)} -> {NAMES.get(dst, dst)}", "",
                          "Same provider: no translation; the schema as backed up (with its "
                          "provider-specific settings) is recreated."
                          + (" The target's own rounding still applies:" if plan.steps else ""), ""]
                if plan.steps:
                    lines += _table(plan)
                continue
            opts, plan = _options(schema, dst)
            lines += [f"### {NAMES.get(src, src)} -> {NAMES.get(dst, dst)}", "",
                      f"Options needed: {' '.join(f'`{o}`' for o in opts) if opts else 'none'}. "
                      f"Plan: {plan.fidelity}."
                      + (f" Still refused: {'; '.join(plan.errors)}." if plan.errors else ""), ""]
            lines += _table(plan)
    assert sorted(CAPABILITIES) == sorted(providers)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python scripts/translation_matrix.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
