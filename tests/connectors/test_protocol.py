"""The Connector protocol declares every member the engine calls, optional ones included, and
every built-in connector has them all (ConnectorBase supplies the defaults): the engine never
probes with getattr."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import numpy as np

from vdedup.connectors import registry
from vdedup.connectors.base import Connector, ConnectorBase
from vdedup.model import CollectionSchema, IdType, Metric, RecordBatch, VectorField

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = {"write_new", "settle", "finish", "discover", "key_ordered_scan"}


def protocol_members() -> set[str]:
    members = {n for n in vars(Connector) if not n.startswith("_")}
    members |= set(Connector.__annotations__)
    return members


def test_the_protocol_declares_the_optional_members():
    assert OPTIONAL <= protocol_members()
    assert {"from_url", "list_collections", "describe", "count", "scan", "create_collection",
            "exists", "write", "delete", "close", "provider", "descriptor"} <= protocol_members()


def test_every_builtin_connector_has_every_member():
    for d in registry.descriptors():
        module_name, cls_name = d.connector.split(":")
        cls = getattr(__import__(module_name, fromlist=[cls_name]), cls_name)
        assert issubclass(cls, ConnectorBase), d.name
        missing = sorted(m for m in protocol_members() if not hasattr(cls, m))
        assert not missing, (d.name, missing)
        assert cls.descriptor is d and isinstance(cls.key_ordered_scan, bool)
        params = inspect.signature(cls.from_url).parameters
        assert "credentials" in params, d.name


class Minimal(ConnectorBase):
    """Only the required members: what the defaults do is observable."""
    provider = "minimal"
    descriptor = registry.lookup("files")

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.schema = CollectionSchema("minimal", "c", IdType.STRING, (VectorField("", 2, Metric.DOT),),
                                       namespaces=("", "b"))

    def list_collections(self):
        return ["c"]

    def describe(self, collection):
        return self.schema

    def count(self, collection, namespace=""):
        return {"": 3, "b": 4}[namespace]

    def write(self, collection, batch):
        self.calls.append(("write", collection, len(batch)))

    def close(self):
        self.calls.append(("close",))


def test_the_defaults_of_the_optional_members():
    m = Minimal()
    batch = RecordBatch(ids=["a"], dense={"": np.zeros((1, 2), np.float32)})
    m.write_new("c", batch)                       # default: a plain write
    assert m.calls == [("write", "c", 1)]
    assert m.settle("c", "b") is None and m.finish("c") is None and m.key_ordered_scan is True
    found = m.discover()                          # default: describe + count per namespace
    assert [(f.provider, f.name, f.count, f.dims, f.metric, f.namespaces) for f in found] == [
        ("files", "c", 7, 2, "dot", ("", "b"))]
    with m:
        pass
    assert m.calls[-1] == ("close",)


def test_the_engine_does_not_probe_connectors_with_getattr():
    for path in (ROOT / "vdedup" / "engine").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr"):
                target = node.args[0]
                name = getattr(target, "id", "")
                assert "connector" not in name, f"{path.name}:{node.lineno} probes a connector"
