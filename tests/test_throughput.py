"""What the faster data path must keep: the files target writes the same bytes as one
`json.dumps` per line, its writer thread reports a failed write, and the garbage-collector
setting of a backup or restore is undone afterwards (issue 14)."""
from __future__ import annotations

import gc
import json
import random
from pathlib import Path

import numpy as np
import pytest

from vdedup.connectors.files.connector import FilesConnector
from vdedup.engine.workers import GC_THRESHOLDS, few_collections
from vdedup.errors import SourceError
from vdedup.format.values import meta_bytes, meta_bytes_many
from vdedup.model import CollectionSchema, IdType, Metric, RecordBatch, VectorField


def _value(rnd: random.Random, depth: int = 0):
    k = rnd.randrange(9 if depth < 3 else 7)
    if k == 7:
        return {"b": _value(rnd, depth + 1), "a": [_value(rnd, depth + 1)], "ü": 1}
    if k == 8:
        return [_value(rnd, depth + 1), _value(rnd, depth + 1)]
    return [None, True, 1, -2 ** 70, 1.5e-7, "é\u2028x\"\\\x7f\x01\n", "plain"][k]


def _export(d: Path) -> FilesConnector:
    conn = FilesConnector(str(d), "c", Metric.UNKNOWN)
    schema = CollectionSchema(provider="files", name="c", id_type=IdType.STRING,
                              vectors=(VectorField(name="", dim=2, metric=Metric.UNKNOWN, dtype="float32"),),
                              namespaces=("",))
    conn.create_collection(schema, "c")
    return conn


def test_files_target_lines_are_the_bytes_of_json_dumps_per_record(tmp_path):
    rnd = random.Random(1)
    def column(kind: int, n: int, text: str) -> list | None:
        """kind 0: no column, 1: every row has a value, 2: some rows do, 3: none does."""
        return [None, [text + str(i) for i in range(n)],
                [None if rnd.random() < .5 else text for _ in range(n)], [None] * n][kind]

    for trial in range(96):
        n = rnd.randrange(1, 12)
        ids = [f"id-{i}é\ud800\"" for i in range(n)] if trial % 2 else [rnd.randrange(-10 ** 20, 10 ** 20)
                                                                         for _ in range(n)]
        if trial % 7 == 3:
            ids[-1] = True if ids[-1] == 1 else ids[-1] * 1.0 if trial % 2 == 0 else 7     # mixed types
        metas = [None if rnd.random() < .1 else {f"k{j}": _value(rnd) for j in range(rnd.randrange(4))}
                 for _ in range(n)]
        docs = column(trial % 4, n, "doc\n\"é\x7f")
        uris = column(trial // 4 % 4, n, "s3://x/é")
        d = tmp_path / str(trial)
        conn = _export(d)
        conn.write("c", RecordBatch(ids=ids, dense={"": np.zeros((n, 2), np.float32)}, metadata=metas,
                                    documents=docs, uris=uris))
        conn.finish("c")
        want = ""
        for i in range(n):
            line = {"id": ids[i], "metadata": metas[i]}
            if docs and docs[i] is not None:
                line["document"] = docs[i]
            if uris and uris[i] is not None:
                line["uri"] = uris[i]
            want += json.dumps(line, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
        assert (d / "records.jsonl").read_text(encoding="utf-8") == want


def test_meta_bytes_many_equals_meta_bytes_one_by_one():
    rnd = random.Random(2)
    for _ in range(500):
        values = [_value(rnd) if rnd.random() < .3 else {"x": [1, "a", None, 2.5], "y": _value(rnd)}
                  for _ in range(rnd.randrange(1, 8))]
        assert meta_bytes_many(values) == [meta_bytes(v) for v in values]


def test_a_failed_write_of_the_writer_thread_is_a_source_error(tmp_path):
    conn = _export(tmp_path / "out")
    conn._writing["vec"].close()              # the next write of the vectors fails (ValueError)
    conn.write("c", RecordBatch(ids=["a"], dense={"": np.zeros((1, 2), np.float32)}, metadata=[None]))
    with pytest.raises(SourceError, match="cannot write the export"):
        conn.finish("c")
    assert not (tmp_path / "out" / "vectors.npy").exists()
    conn.close()


def test_few_collections_is_undone_after_nested_uses():
    before = gc.get_threshold()
    with few_collections():
        assert gc.get_threshold() == GC_THRESHOLDS
        with few_collections():
            assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_threshold() == GC_THRESHOLDS     # still inside the outer one
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
