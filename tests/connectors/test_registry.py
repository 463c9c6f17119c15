"""The connector registry: descriptors as the one source of provider facts, aliases defined
once, entry-point plug-ins, and no SDK imported before a connector is opened."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vdedup.assets.store import SECRET_ENV, normalize_provider, secret_env_for
from vdedup.connectors import registry
from vdedup.connectors.descriptor import Capabilities, Descriptor
from vdedup.engine.capabilities import CAPABILITIES, capabilities, canonical_provider
from vdedup.errors import MissingDependency, UsageError

ROOT = Path(__file__).resolve().parents[2]
SDKS = ("chromadb", "pinecone", "qdrant_client", "weaviate", "pymilvus", "psycopg")


def test_every_builtin_provider_is_declared_once():
    names = [d.name for d in registry.descriptors()]
    assert names[:7] == ["chroma", "pinecone", "qdrant", "weaviate", "milvus", "postgresql", "files"]
    every = [n for d in registry.descriptors() for n in (*d.all_names, *d.schemes)]
    assert len(every) == len(set(every)), "a name or alias belongs to two providers"
    for alias, name in (("pgvector", "postgresql"), ("postgres", "postgresql"), ("npy", "files"),
                        ("qdrant+local", "qdrant"), ("PGVECTOR", "postgresql")):
        assert registry.lookup(alias).name == name
        assert canonical_provider(alias) == name
    assert canonical_provider("nobody") == "nobody"
    with pytest.raises(UsageError, match=r"unknown provider 'nobody' \(known: chroma, files"):
        registry.lookup("nobody")


def test_the_planner_and_the_credential_store_read_the_descriptors():
    from vdedup.connectors.milvus.descriptor import DESCRIPTOR as milvus
    from vdedup.connectors.pgvector.descriptor import DESCRIPTOR as pg
    assert capabilities("pgvector") is pg.capabilities and CAPABILITIES["milvus"] is milvus.capabilities
    assert sorted(CAPABILITIES) == ["chroma", "milvus", "pinecone", "postgresql", "qdrant", "weaviate"]
    with pytest.raises(UsageError, match="no translation rules for provider 'files'"):
        capabilities("files")
    assert normalize_provider("pgvector") == "postgresql" and secret_env_for("postgres") == "PGPASSWORD"
    assert secret_env_for("milvus") == milvus.secret_env[0] == "MILVUS_TOKEN"
    assert dict(SECRET_ENV) == {d.name: d.secret_env[0] for d in registry.descriptors() if d.asset}
    with pytest.raises(UsageError, match="cannot be a connected asset"):
        normalize_provider("files")
    with pytest.raises(UsageError, match="unknown provider 'nope'"):
        normalize_provider("nope")


def test_a_registered_provider_is_known_to_the_planner(monkeypatch):
    from vdedup.engine.translate import build_plan
    from vdedup.model import CollectionSchema, IdType, Metric, VectorField
    caps = Capabilities("memdb", frozenset({Metric.COSINE}), frozenset({IdType.STRING}), 1, False,
                        False, False, frozenset({"float32"}), frozenset({"str"}), False, False, None,
                        False, False, metric_names={Metric.COSINE: "cos"})
    d = Descriptor(name="memdb", title="MemDB", connector="nowhere:Nothing", extra="memdb",
                   sdk=None, aliases=("mem",), capabilities=caps)
    saved = (dict(registry._by_name), dict(registry._names))
    try:
        registry.register(d)
        assert canonical_provider("mem") == "memdb" and "memdb" in CAPABILITIES
        schema = CollectionSchema("chroma", "docs", IdType.STRING, (VectorField("", 4, Metric.COSINE),))
        plan = build_plan(schema, "mem")
        assert not plan.errors and any("cosine -> cos" in s.detail for s in plan.steps)
    finally:
        registry._by_name.clear(), registry._by_name.update(saved[0])
        registry._names.clear(), registry._names.update(saved[1])
    assert canonical_provider("mem") == "mem"


def test_a_missing_sdk_names_the_extra_to_install():
    d = Descriptor(name="ghostdb", title="GhostDB", connector="ghost:Conn", extra="ghost",
                   sdk="vdedup_no_such_sdk_module")
    with pytest.raises(MissingDependency, match=r"pip install 'vdedup\[ghost\]'") as e:
        registry.connector_class(d)
    assert e.value.exit_code == 18


def test_importing_vdedup_and_the_registry_imports_no_sdk():
    code = textwrap.dedent(f"""
        import sys
        import vdedup, vdedup.connectors, vdedup.engine.translate, vdedup.engine.capabilities
        import vdedup.assets.store, vdedup_cli.main
        from vdedup.connectors import registry
        registry.descriptors(); registry.capabilities("qdrant"); registry.lookup("pgvector")
        for p in ("chroma", "pinecone", "qdrant", "weaviate", "milvus", "pgvector", "files"):
            __import__("vdedup.connectors." + p + ".connector")
        loaded = [m for m in {SDKS!r} if m in sys.modules]
        if loaded:
            sys.exit(f"imported: {{loaded}}")
        """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------ plug-ins


PLUGIN = '''
"""A third-party connector: records in memory, one collection per name."""
from vdedup.connectors.descriptor import Descriptor
from vdedup.model import CollectionSchema, IdType, RecordBatch, VectorField

DESCRIPTOR = Descriptor(name="memdb", title="MemDB", connector="memdb_vdedup:MemConnector",
                        extra="memdb", sdk=None, aliases=("mem",), secret_env=("MEMDB_KEY",),
                        account_url="memdb://")
STORE = {}


class MemConnector:
    provider = "memdb"
    descriptor = DESCRIPTOR

    def __init__(self, url, credentials):
        self.url, self.credentials = url, credentials

    @classmethod
    def from_url(cls, url, credentials=None):
        return cls(url, credentials)

    def list_collections(self):
        return sorted(STORE)

    def close(self):
        pass
'''


def plugin_dist(root: Path, entry: str) -> Path:
    """A distribution installed nowhere but in `root`, which goes on sys.path."""
    (root / "memdb_vdedup.py").write_text(PLUGIN)
    info = root / "memdb_vdedup-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: memdb-vdedup\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[vdedup.connectors]\n{entry}\n")
    return root


def run_with(root: Path, code: str) -> dict:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                       text=True, env={"PYTHONPATH": f"{root}:{ROOT}", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_third_party_connector_registers_through_an_entry_point(tmp_path):
    root = plugin_dist(tmp_path, "memdb = memdb_vdedup:DESCRIPTOR")
    got = run_with(root, """
        import json, sys
        from vdedup.connectors import registry
        from vdedup.connectors import open_connector
        from vdedup.assets.store import normalize_provider, secret_env_for
        conn = open_connector("mem://somewhere")
        print(json.dumps({"names": [d.name for d in registry.descriptors()],
                          "class": type(conn).__name__, "host": conn.url.host,
                          "asset": normalize_provider("mem"), "env": secret_env_for("memdb"),
                          "sdks": [m for m in ("chromadb", "pymilvus") if m in sys.modules]}))
        """)
    assert got["names"][-1] == "memdb" and got["names"][:2] == ["chroma", "pinecone"]
    assert got["class"] == "MemConnector" and got["host"] == "somewhere"
    assert got["asset"] == "memdb" and got["env"] == "MEMDB_KEY" and got["sdks"] == []


def test_a_broken_plugin_does_not_break_vdedup_and_is_named(tmp_path):
    root = plugin_dist(tmp_path, "brokendb = memdb_vdedup:NO_SUCH_NAME")
    got = run_with(root, """
        import json
        from vdedup.connectors import registry
        from vdedup.errors import UsageError
        try:
            registry.lookup("brokendb")
        except UsageError as e:
            message = e.message
        print(json.dumps({"names": [d.name for d in registry.descriptors()], "message": message}))
        """)
    assert "brokendb" not in got["names"] and "qdrant" in got["names"]
    assert "plug-ins that failed to load: brokendb" in got["message"]


def test_a_plugin_cannot_replace_a_builtin(tmp_path):
    root = plugin_dist(tmp_path, "qdrant = memdb_vdedup:DESCRIPTOR")
    (tmp_path / "memdb_vdedup.py").write_text(PLUGIN.replace('name="memdb"', 'name="qdrant"')
                                              .replace('aliases=("mem",)', 'aliases=()'))
    got = run_with(root, """
        import json
        from vdedup.connectors import registry
        print(json.dumps({"connector": registry.lookup("qdrant").connector}))
        """)
    assert got["connector"] == "vdedup.connectors.qdrant.connector:QdrantConnector"


# ------------------------------------------------------------------ docs


def test_the_providers_table_in_the_docs_is_current():
    import runpy
    gen = runpy.run_path(str(ROOT / "scripts" / "providers_table.py"))
    text = (ROOT / "docs" / "providers" / "README.md").read_text()
    assert gen["render"](text) == text, "docs/providers/README.md is stale: run scripts/providers_table.py"
    for d in registry.descriptors():
        assert f"| {d.title} |" in text and f"`{d.account_url}`" in text
