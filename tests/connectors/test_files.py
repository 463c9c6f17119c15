"""The files connector (vectors.npy + records.jsonl) against real files: scan returns every
record bit for bit, a backup from the export restores into Chroma and into a new export
exactly, nightly re-exports store only what changed, and bad exports and writes are refused."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vdedup.backend import open_backend
from vdedup.connectors.registry import open_connector
from vdedup.errors import CollectionNotFound, SourceError, UsageError
from vdedup.model import Metric, RecordBatch
from vdedup.repository import Repository, parts_of
from vdtest import PASSWORD, read_all, typed, vdedup

DIM = 24


def records(n: int, seed: int = 0, start: int = 0, floats: bool = True):
    rng = np.random.default_rng(seed)
    ids = [f"doc-{i:06d}#chunk-{i % 4}" for i in range(start, start + n)]
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    vecs[0, 0] = -0.0                       # signed zero must survive
    metas = [None if i % 9 == 0 else
             {"source": f"s{i % 5}", "page": i, "score": i / 3.0, "ok": i % 2 == 0, "tags": [f"t{i % 3}", "x"],
              "updated_at": f"2026-01-{1 + i % 28:02d}"} for i in range(start, start + n)]
    if not floats:      # Chroma may return a float metadata value one ulp off (docs/providers/chroma.md)
        metas = [m and {k: v for k, v in m.items() if k != "score"} for m in metas]
    return ids, vecs, metas


def write_export(d: Path, ids, vecs, metas, extra=None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / "vectors.npy", vecs)
    with open(d / "records.jsonl", "w") as f:
        for k, (rid, m) in enumerate(zip(ids, metas)):
            obj = {"id": rid, "metadata": m}
            if extra:
                obj.update(extra(k))
            f.write(json.dumps(obj, sort_keys=True) + "\n")
    return d


def scan_all(conn, name, batch_size=1000):
    out, sizes = {}, []
    for b in conn.scan(name, "", batch_size):
        assert isinstance(b, RecordBatch) and b.namespace == ""
        sizes.append(len(b))
        for r in b.records():
            out[r.id] = (r.vectors[""], r.metadata, r.document, r.uri)
    return out, sizes


def test_scan_returns_every_record_exactly_in_bounded_batches(tmp_path):
    ids, vecs, metas = records(2500)
    d = write_export(tmp_path / "export", ids, vecs, metas,
                     extra=lambda k: {"document": f"text {k} ü"} if k % 4 == 0 else {"uri": f"s3://b/{k}"})
    conn = open_connector(f"files://{d}?collection=docs&metric=euclidean")
    assert conn.list_collections() == ["docs"] and conn.exists("docs") and not conn.exists("other")
    schema = conn.describe("docs")
    assert schema.id_type.value == "str"
    assert schema.provider == "files" and schema.namespaces == ("",)
    assert schema.vectors[0].dim == DIM and schema.vectors[0].metric == Metric.EUCLIDEAN
    assert schema.vectors[0].dtype == "float32"
    assert conn.count("docs") == 2500
    got, sizes = scan_all(conn, "docs", 1000)
    assert sizes == [1000, 1000, 500]
    assert list(got) == ids
    for k, rid in enumerate(ids):
        vec, meta, doc, uri = got[rid]
        assert vec.dtype == np.float32 and vec.tobytes() == vecs[k].tobytes()
        assert typed(meta) == typed(metas[k])
        assert doc == (f"text {k} ü" if k % 4 == 0 else None)
        assert uri == (None if k % 4 == 0 else f"s3://b/{k}")


def test_default_collection_name_and_unknown_metric(tmp_path):
    ids, vecs, metas = records(10)
    d = write_export(tmp_path / "nightly-export", ids, vecs.astype(np.float16), metas)
    conn = open_connector(f"npy://{d}")
    schema = conn.describe("nightly-export")
    assert schema.vectors[0].metric == Metric.UNKNOWN and schema.vectors[0].dtype == "float16"
    got, _ = scan_all(conn, "nightly-export")
    assert got[ids[3]][0].dtype == np.float16
    assert got[ids[3]][0].tobytes() == vecs.astype(np.float16)[3].tobytes()
    with pytest.raises(CollectionNotFound):
        conn.describe("docs")


def test_vectors_are_memory_mapped_not_loaded(tmp_path, monkeypatch):
    ids, vecs, metas = records(50)
    d = write_export(tmp_path / "e", ids, vecs, metas)
    calls = []
    real = np.load

    def spy(*a, **kw):
        calls.append(kw.get("mmap_mode"))
        return real(*a, **kw)

    monkeypatch.setattr(np, "load", spy)
    conn = open_connector(f"files://{d}")
    scan_all(conn, "e")
    assert calls and all(m == "r" for m in calls)


@pytest.mark.parametrize("lines, message", [
    (["{\"id\": \"a\"}"], "lines but"),                              # fewer lines than rows
    (["{\"id\": \"a\"}", "{\"id\": \"b\"}", "{\"id\": \"c\"}"], "more lines"),
    (["{\"id\": \"a\"}", "not json secret-value"], "line 2: not valid JSON"),
    (["{\"id\": \"a\"}", "{\"id\": true}"], "line 2: the id"),
    (["{\"id\": \"a\"}", "{\"id\": 2}"], "line 2: ids mix"),
    (["{\"id\": \"a\"}", "{\"id\": \"b\", \"embedding\": [1]}"], "unknown key 'embedding'"),
    (["{\"id\": \"a\"}", "{\"id\": \"b\", \"metadata\": [1]}"], "metadata must be an object"),
    (["{\"id\": \"a\"}", "{\"id\": \"b\", \"metadata\": {\"x\": NaN}}"], "line 2: not valid JSON"),
])
def test_bad_exports_are_source_errors_without_record_data(tmp_path, lines, message):
    d = tmp_path / "bad"
    d.mkdir()
    np.save(d / "vectors.npy", np.zeros((2, 4), np.float32))
    (d / "records.jsonl").write_text("\n".join(lines) + "\n")
    conn = open_connector(f"files://{d}")
    with pytest.raises(SourceError) as e:
        scan_all(conn, "bad")
    assert message in str(e.value) and "secret-value" not in str(e.value)


def test_missing_files_and_bad_arrays(tmp_path):
    d = tmp_path / "x"
    d.mkdir()
    with pytest.raises(SourceError, match="vectors.npy is missing"):
        open_connector(f"files://{d}").list_collections()
    np.save(d / "vectors.npy", np.zeros(4, np.float32))
    (d / "records.jsonl").write_text("")
    with pytest.raises(SourceError, match="must be 2-D"):
        open_connector(f"files://{d}").describe("x")
    with pytest.raises(SourceError, match="does not exist"):
        open_connector(f"files://{tmp_path}/nope").list_collections()


@pytest.mark.parametrize("url, message", [
    ("files://relative/dir", "local directory"),
    ("files:///abs?metric=hamming", "unknown metric"),
    ("files:///abs?token=x", "unknown files URL parameter"),
    ("files://user:pw@/abs", "no credentials"),
])
def test_bad_urls_are_usage_errors(url, message):
    with pytest.raises(UsageError, match=message):
        open_connector(url)


def _lines(d: Path) -> dict:
    out = {}
    vecs = np.load(d / "vectors.npy")
    with open(d / "records.jsonl") as f:
        for k, line in enumerate(f):
            obj = json.loads(line)
            out[obj["id"]] = (vecs[k].tobytes(), typed(obj["metadata"]), obj.get("document"), obj.get("uri"))
    return out


def test_a_files_snapshot_restores_into_a_new_export_exactly(tmp_path, repo_path, capsys):
    ids, vecs, metas = records(2500)
    d = write_export(tmp_path / "e", ids, vecs, metas)
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"files://{d}?metric=euclidean") == 0
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"files://{tmp_path}/out", "--json") == 0
    assert json.loads(capsys.readouterr().out)["collections"] == {"e": 2500}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["records.jsonl", "vectors.npy"]
    assert _lines(tmp_path / "out") == _lines(d)            # every record, vector bytes, metadata types
    # the restored export is itself a source
    conn = open_connector(f"files://{tmp_path}/out?collection=e&metric=euclidean")
    assert conn.count("e") == 2500 and conn.describe("e").vectors[0].dim == DIM
    # an existing export is never overwritten, nor changed in place
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"files://{tmp_path}/out") == 16
    assert _lines(tmp_path / "out") == _lines(d)
    with pytest.raises(UsageError, match="new directory"):
        conn.delete("e", [ids[0]])


def test_a_restore_flushes_the_export_to_disk_as_it_goes(tmp_path, repo_path, capsys, monkeypatch):
    """The writing thread fdatasyncs each file every SYNC_EVERY bytes while the restore runs
    (the final fsync then waits for little); the export is the same."""
    import os as os_mod
    from vdedup.connectors.files import connector as files_mod
    synced = []
    real = os_mod.fdatasync
    monkeypatch.setattr(files_mod._Output, "SYNC_EVERY", 64 << 10)
    monkeypatch.setattr(files_mod.os, "fdatasync", lambda fd: (synced.append(fd), real(fd))[1])
    ids, vecs, metas = records(2500)
    d = write_export(tmp_path / "e", ids, vecs, metas)
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"files://{d}") == 0
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"files://{tmp_path}/out") == 0
    assert _lines(tmp_path / "out") == _lines(d)
    # 2500 x 24 float32 (240 KB) and their lines: several flushes of each file before the end
    assert len(synced) >= 2 * 2 and len(set(synced)) == 2


def test_only_files_snapshots_restore_into_files(tmp_path):
    from vdedup.model import CollectionSchema, VectorField
    conn = open_connector(f"files://{tmp_path}/x")
    with pytest.raises(UsageError, match="restore into a database"):
        conn.create_collection(CollectionSchema(provider="chroma", name="x", vectors=(VectorField("", 4),)), "x")
    two = CollectionSchema(provider="files", name="x", vectors=(VectorField("", 4), VectorField("b", 4)))
    with pytest.raises(UsageError, match="one dense vector"):
        conn.create_collection(two, "x")
    conn.create_collection(CollectionSchema(provider="files", name="x", vectors=(VectorField("", 4),)), "x")
    with pytest.raises(UsageError, match="4-d vector"):
        conn.write("x", RecordBatch(ids=["a"], dense={"": np.zeros((1, 5), np.float32)}))
    conn.close()                                        # unfinished: no complete export appears
    assert not (tmp_path / "x" / "vectors.npy").exists()


def test_restore_of_another_provider_into_files_is_a_one_line_usage_error(tmp_path, repo_path):
    from vdtest import add_records, chroma_collection, make_records
    _, col = chroma_collection(tmp_path / "src", "docs", "l2")
    rids, emb, ms, docs, uris = make_records(10, dim=8)
    add_records(col, rids, emb, ms, docs, uris)
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"chroma://{tmp_path / 'src'}") == 0
    p = subprocess.run([sys.executable, "-m", "vdedup_cli.main", "--repo", str(repo_path), "restore", "latest",
                        "--target", f"files://{tmp_path}/out"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    assert "files" in p.stderr and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_backup_from_export_restores_into_chroma_exactly_and_nightly_stores_only_changes(
        tmp_path, repo_path, capsys):
    ids, vecs, metas = records(3000, floats=False)
    d = write_export(tmp_path / "export", ids, vecs, metas)
    url = f"files://{d}?collection=docs&metric=euclidean"
    assert vdedup("--repo", repo_path, "init") == 0
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "backup", url, "--json") == 0
    first = json.loads(capsys.readouterr().out)
    assert first["records"] == 3000 and first["added"] == 3000

    # nightly re-export: 30 vectors updated, 10 metadata edits, 15 deleted, 30 added
    rng = np.random.default_rng(3)
    vecs2 = vecs.copy()
    vecs2[:30] = rng.standard_normal((30, DIM)).astype(np.float32)
    metas2 = [dict(m) if m else m for m in metas]
    for k in range(100, 110):
        metas2[k] = {**(metas2[k] or {}), "updated_at": "2026-11-25"}
    keep = [k for k in range(3000) if not 200 <= k < 215]
    nids, nvecs, nmetas = records(30, seed=7, start=10_000, floats=False)
    ids3 = [ids[k] for k in keep] + nids
    vecs3 = np.concatenate([vecs2[keep], nvecs])
    metas3 = [metas2[k] for k in keep] + nmetas
    write_export(d, ids3, vecs3, metas3)
    assert vdedup("--repo", repo_path, "backup", url, "--json") == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["added"], second["deleted"], second["changed"]) == (30, 15, 40)

    out = tmp_path / "restored"
    # --allow-lossy: the plan warns that Chroma may change floats inside lists (tags hold none)
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"chroma://{out}", "--allow-lossy") == 0
    got = read_all(out, "docs")
    assert sorted(got) == sorted(ids3)
    for k, rid in enumerate(ids3):
        vec, meta, doc, uri = got[rid]
        assert vec == vecs3[k].tobytes(), f"vector of {rid} differs"
        assert typed(meta) == typed(metas3[k]), f"metadata of {rid} differs"
        assert doc is None and uri is None


def _snapshot_entry(repo_path, capsys):
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "ls", "latest", "--json") == 0
    return json.loads(capsys.readouterr().out)["collections"][0]


def _prune_dry(repo_path, capsys):
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "prune", "--dry-run", "--json") == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("order", ["sorted", "late-disorder", "shuffled", "duplicate"])
def test_rows_stream_in_id_order_and_anything_else_is_read_again_into_a_spool(tmp_path, repo_path, capsys, order):
    """Backup streams rows that arrive in id order; one out of order (even after thousands
    of rows, segments already cut) makes it read the namespace again into a sorted spool,
    leaving no unreferenced manifest blob behind. Nightly backups of it then spool directly.
    Every way round, the snapshot restores the same records."""
    ids, vecs, metas = records(6000)
    perm = np.arange(6000)
    if order == "late-disorder":
        perm = np.r_[perm[1:], perm[:1]]     # the first id comes last: segments already cut differ
    elif order == "shuffled":
        perm = np.random.default_rng(1).permutation(6000)
    elif order == "duplicate":
        perm[5500] = perm[5499]          # one id twice: the later line wins, as in a spool
    d = write_export(tmp_path / "e", [ids[i] for i in perm], vecs[perm], [metas[i] for i in perm])
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"files://{d}?metric=euclidean") == 0
    streamed = order == "sorted"
    assert _snapshot_entry(repo_path, capsys)["namespaces"][0]["ordered"] is streamed
    unique = len(set(perm.tolist()))
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"files://{tmp_path}/out") == 0
    got = _lines(tmp_path / "out")
    want = {ids[i]: (vecs[i].tobytes(), typed(metas[i]), None, None) for i in perm}
    assert got == want and len(got) == unique
    pr = _prune_dry(repo_path, capsys)
    assert pr["unused_bytes"] == 0 and pr["blobs_used"] > 0
    # the next backup: the same ordering decision, nothing changed
    assert vdedup("--repo", repo_path, "backup", f"files://{d}?metric=euclidean", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["unchanged"] == unique and out["added"] == out["changed"] == out["deleted"] == 0
    assert _snapshot_entry(repo_path, capsys)["namespaces"][0]["ordered"] is streamed
    assert _prune_dry(repo_path, capsys)["unused_bytes"] == 0


def _delta_layers(repo_path) -> int:
    """How many delta layers the latest snapshot's namespace has on its base."""
    repo = Repository.open(open_backend(str(repo_path)), PASSWORD)
    try:
        return len(parts_of(repo.find_snapshot("latest").collections[0]["namespaces"][0])[0]["deltas"])
    finally:
        repo.close()


def test_every_snapshot_of_a_long_delta_chain_restores_exactly(tmp_path, repo_path, capsys):
    """Ten nights in which the same records change again and again (vectors, metadata, deleted
    and added back), each backed up from a re-written export: the snapshots' manifests are
    deltas on deltas (several layers touch the same record), a new base is started on the way,
    and every snapshot restores exactly the records of its night."""
    rng = np.random.default_rng(7)
    ids, vecs, metas = records(300)
    state = {i: (v.copy(), m) for i, v, m in zip(ids, vecs, metas)}
    hot = ids[10:14]                               # changed every night
    gone: list[str] = []
    assert vdedup("--repo", repo_path, "init") == 0
    wanted, layers = [], []
    for night in range(10):
        if night:
            for rid in hot:
                v, m = state[rid]
                state[rid] = (rng.standard_normal(DIM).astype(np.float32), {"night": night, "tags": [rid]})
            for rid in rng.choice(sorted(state), 6, replace=False):
                v, m = state[rid]
                state[rid] = (v, {**(m or {}), "updated_at": f"night-{night}"})     # metadata only
            if gone:
                back = gone.pop()
                state[back] = (rng.standard_normal(DIM).astype(np.float32), None)     # deleted, then back
            victim = sorted(set(state) - set(hot))[night * 7]
            del state[victim]
            gone.append(victim)
            state[f"new-{night:02d}"] = (rng.standard_normal(DIM).astype(np.float32), {"n": night})
            if night in (5, 6):                    # every vector replaced: the credit of these
                for rid, (v, m) in list(state.items()):   # nights pays for a new base (design §5)
                    state[rid] = (rng.standard_normal(DIM).astype(np.float32), m)
        order = sorted(state)
        d = write_export(tmp_path / "e", order, np.stack([state[i][0] for i in order]), [state[i][1] for i in order])
        assert vdedup("--repo", repo_path, "backup", f"files://{d}?metric=euclidean") == 0
        wanted.append({i: (state[i][0].tobytes(), typed(state[i][1]), None, None) for i in order})
        layers.append(_delta_layers(repo_path))
    assert max(layers) >= 3 and 0 in layers[1:], layers     # deltas on deltas, and a new base later
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "snapshots", "--json") == 0
    snaps = [s["id"] for s in json.loads(capsys.readouterr().out)]
    assert len(snaps) == 10
    for night, (snap, want) in enumerate(zip(snaps, wanted)):
        out = tmp_path / f"out-{night}"
        assert vdedup("--repo", repo_path, "restore", snap, "--target", f"files://{out}") == 0
        assert _lines(out) == want, night


TRICKY = [None, {}, {"a": 1}, {"é": "ü", "k": "\x7f", "ctl": "\x00\x01\n\t\"\\/", "smile": "\U0001f600"},
          {"big": 2 ** 80, "neg": -(2 ** 70), "f": -0.0, "g": 1e16, "h": 5e-324, "i": 0.1, "t": True, "n": None},
          {"nested": {"z": [1, [2, {"y": "DEL\x7fhere", "x": []}]], "a": {"b": {}}}, "list": [None, False, 1.5]},
          {"ascii": "plain text with spaces, commas: and \"quotes\""}, {"only-non-ascii-key-Ω": 1}]


def test_stored_metadata_text_gives_the_lines_the_decoded_values_give():
    from vdedup.connectors.files.connector import _ENCODE_COLUMN, _json_texts
    from vdedup.format.values import meta_bytes, meta_bytes_many
    rng = np.random.default_rng(5)
    alphabet = [chr(c) for c in range(0, 0x80)] + ["é", "ü", "\u2028", "\U0001f600", "\x7f", "\ufeff"]
    values = list(TRICKY)
    for _ in range(300):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 12))))
        values.append({text: [text, int(rng.integers(-10 ** 6, 10 ** 6)), float(rng.standard_normal())],
                       "k": {"x": text}})
    raws = [meta_bytes(v) for v in values]
    assert raws == meta_bytes_many(values) and all(r[0] >= 0x20 for r in raws)
    assert _json_texts(raws) == _ENCODE_COLUMN(values)              # mixed: row by row
    ascii_only = [r for r in raws if r.isascii() and b"\x7f" not in r]
    assert len(ascii_only) > 50
    assert _json_texts(ascii_only) == _ENCODE_COLUMN([json.loads(r) for r in ascii_only])   # whole batch


@pytest.mark.parametrize("takes_json", [True, False])
def test_restore_into_files_writes_the_source_lines_byte_for_byte(tmp_path, repo_path, capsys, monkeypatch,
                                                                  takes_json):
    """An export written the way vdedup writes one comes back byte for byte, whether the
    metadata text is copied from the stored bytes or decoded and encoded again."""
    from vdedup.connectors.files import connector as files_connector
    monkeypatch.setattr(files_connector.FilesConnector, "takes_metadata_json", takes_json)
    texts: list[int] = []
    stored_text = files_connector._json_texts
    monkeypatch.setattr(files_connector, "_json_texts", lambda raws: texts.append(len(raws)) or stored_text(raws))
    n = 3000
    ids, vecs, _ = records(n)
    metas = [TRICKY[i % len(TRICKY)] if i % 7 else {"page": i, "é": "x" * (i % 5)} for i in range(n)]
    d = tmp_path / "e"
    d.mkdir()
    np.save(d / "vectors.npy", vecs)
    with open(d / "records.jsonl", "w") as f:
        for k, (rid, m) in enumerate(zip(ids, metas)):
            obj = {"id": rid, "metadata": m}
            if k % 5 == 0:
                obj["document"] = f"doc {k} ü\x7f"
            if k % 11 == 0:
                obj["uri"] = f"s3://b/{k}"
            f.write(json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n")
    assert vdedup("--repo", repo_path, "init") == 0
    assert vdedup("--repo", repo_path, "backup", f"files://{d}?metric=euclidean") == 0
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "restore", "latest", "--target", f"files://{tmp_path}/out",
                  "--workers", "2") == 0
    assert (tmp_path / "out" / "records.jsonl").read_bytes() == (d / "records.jsonl").read_bytes()
    assert (tmp_path / "out" / "vectors.npy").read_bytes() == (d / "vectors.npy").read_bytes()
    assert sum(texts) == (n if takes_json else 0)          # the stored text was (not) used
