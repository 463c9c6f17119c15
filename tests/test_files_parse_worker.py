"""A files backup parses the export's lines in a helper process (repository/lines.py,
vdedup/lineworker.py, connectors/files/chunks.py): the batches, the metadata bytes, the
schema pairs and every error must be exactly those of the plain scan on the reading thread."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vdedup.connectors.registry import open_connector
from vdedup.engine import backup as backup_mod
from vdedup.errors import SourceError
from vdedup import jsonlines, lineworker
from vdedup.lineworker import job
from vdedup.model import Partition
from vdedup.model.partition import whole
from vdedup.linememo import LineMemo
from vdedup.repository.lines import LinePool, metadata_pairs
from vdedup.repository.rows import meta_bytes_many
from vdtest import PASSWORD, vdedup

DIM = 8


def _values(i: int):
    """Metadata of every shape the JSON form and the typed fallback take."""
    kinds = [
        None,
        {"s": f"caf\u00e9 {i}", "n": i, "f": i / 7.0, "b": i % 2 == 0, "z": None},
        {"nested": {"b": [1, 2.5, {"x": "y"}], "a": -0.0}, "big": 10 ** 30 + i},
        {"esc": "line\u2028sep \"q\" \\ \t\u0001", "emoji": "\U0001F600", "ctl": "\x7f"},
        {"inf": float("inf")} if i % 2 else {"ninf": -1e999},
        {},
        {"tags": ["a", "b"], "k\u00e9y": "v"},
    ]
    return kinds[i % len(kinds)]


def _line(i: int, int_ids: bool = False) -> str:
    obj = {"id": i if int_ids else f"doc-{i:05d}", "metadata": _values(i)}
    if i % 5 == 1:
        obj["document"] = f"text {i} \u00e9"
    if i % 6 == 2:
        obj["uri"] = f"s3://b/{i}"
    text = json.dumps(obj, ensure_ascii=i % 3 == 0, sort_keys=i % 2 == 0)
    return text.replace("Infinity", "1e999")


def _export(d: Path, lines: list[str], rows: int | None = None, ending: str = "\n", raw: bytes | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    n = len(lines) if rows is None else rows
    np.save(d / "vectors.npy", np.random.default_rng(len(lines)).standard_normal((n, DIM)).astype(np.float32))
    (d / "records.jsonl").write_bytes(raw if raw is not None else "".join(x + ending for x in lines).encode())
    return d


def _plain(conn, batch_size: int):
    out = []
    for b in conn.scan(conn.list_collections()[0], "", batch_size):
        metas = b.metadata or [None] * len(b)
        out.append((b.ids, b.dense[""].tobytes(), meta_bytes_many(metas), metadata_pairs(metas),
                    b.documents, b.uris))
    return out


def _derived(conn, batch_size: int, pmap):
    out = []
    name = conn.list_collections()[0]
    for b, got in conn.scan_derived(name, whole("", None), batch_size, pmap):
        if got is None:
            metas = b.metadata or [None] * len(b)
            got = (meta_bytes_many(metas), metadata_pairs(metas))
        else:
            assert b.metadata is None
        out.append((b.ids, b.dense[""].tobytes(), got[0], got[1], b.documents, b.uris))
    return out


def _local(chunks):
    return ((c, job(c)) for c in chunks)


def _outcome(fn):
    try:
        return "ok", fn()
    except SourceError as e:
        return "error", str(e)


@pytest.fixture
def pool():
    p = LinePool()
    yield p
    p.close()


@pytest.mark.parametrize("int_ids", [False, True])
def test_helper_gives_the_plain_scans_batches_and_metadata_bytes(tmp_path, pool, int_ids):
    d = _export(tmp_path / "e", [_line(i, int_ids) for i in range(2345)])
    conn = open_connector(f"files://{d}")
    want = _plain(conn, 100)
    assert _derived(conn, 100, pool.pmap) == want
    assert _derived(conn, 100, _local) == want
    assert len(want) == 24 and any(w[4] for w in want) and any(w[5] for w in want)
    # both kinds of metadata bytes occur: JSON text and the typed encoding (infinity)
    raws = [r for w in want for r in w[2]]
    assert any(r[:1] == b"{" for r in raws) and any(r[:1] < b" " for r in raws)


@pytest.mark.parametrize("case", ["crlf", "cr", "bad-json", "empty-line", "mix-across", "mix-within",
                                  "more-lines", "fewer-lines", "not-utf8", "unknown-key", "blank-tail",
                                  "bom", "no-final-newline", "two-values", "bool-id", "nan", "nbsp-lead",
                                  "document-not-text", "metadata-list"])
def test_helper_path_raises_the_plain_scans_errors(tmp_path, pool, case, monkeypatch):
    lines = [_line(i) for i in range(350)]
    rows, ending, raw = None, "\n", None
    if case == "crlf":
        ending = "\r\n"
    elif case == "cr":
        ending = "\r"
    elif case == "bad-json":
        lines[257] = '{"id": "x", "metadata": {"secret-value": 1}'
    elif case == "empty-line":
        lines[130] = "  "
    elif case == "mix-across":
        lines[200:] = [_line(i, True) for i in range(200, 350)]
    elif case == "mix-within":
        lines[123] = _line(123, True)
    elif case == "more-lines":
        rows = 340
    elif case == "fewer-lines":
        rows = 360
    elif case == "not-utf8":
        raw = ("\n".join(lines[:150]) + "\n").encode() + b'{"id": "\xff"}\n' + \
            ("\n".join(lines[151:]) + "\n").encode()
    elif case == "unknown-key":
        lines[301] = '{"id": "y", "vector": [1]}'
    elif case == "blank-tail":
        lines[-1] += "   \t"
    elif case == "bom":
        raw = b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode()
    elif case == "no-final-newline":
        raw = "\n".join(lines).encode()
    # lines a run's one parse as a JSON array (jsonlines.parse_lines) must not take as right
    elif case == "two-values":
        lines[77] = '{"id": "a", "metadata": null}, {"id": "b", "metadata": null}'
    elif case == "bool-id":
        lines[12] = '{"id": true, "metadata": null}'
    elif case == "nan":
        lines[99] = '{"id": "n", "metadata": {"v": NaN}}'
    elif case == "nbsp-lead":
        lines[5] = "\u00a0" + lines[5]
    elif case == "document-not-text":
        lines[260] = '{"id": "d", "document": 5}'
    elif case == "metadata-list":
        lines[3] = '{"id": "m", "metadata": [1, 2]}'
    parsed_whole = []                    # runs answered by the one parse of their lines
    real = jsonlines.parse_lines
    monkeypatch.setattr(jsonlines, "parse_lines", lambda ls: parsed_whole.append(real(ls)) or parsed_whole[-1])
    monkeypatch.setattr(lineworker, "parse_lines", jsonlines.parse_lines)
    d = _export(tmp_path / "e", lines, rows, ending, raw)
    conn = open_connector(f"files://{d}")
    want = _outcome(lambda: _plain(conn, 100))
    assert _outcome(lambda: _derived(conn, 100, pool.pmap)) == want
    assert _outcome(lambda: _derived(conn, 100, _local)) == want
    if case in ("crlf", "cr", "blank-tail", "no-final-newline"):
        assert want[0] == "ok" and sum(len(w[0]) for w in want[1]) == 350
    elif case not in ("bom", "nbsp-lead"):
        assert want[0] == "error" and "secret-value" not in want[1]
    if want[0] == "ok" and case != "nbsp-lead":    # the local runs (_local) were each parsed whole
        assert parsed_whole and None not in parsed_whole
    if case in ("two-values", "bool-id", "nan", "document-not-text", "metadata-list", "bad-json", "nbsp-lead"):
        assert None in parsed_whole      # ...and a run holding such a line was not (JSON knows no NBSP)


def _range(conn, part, batch_size: int, pmap=None):
    """The batches of a partition through the helper (pmap given) or the plain scan."""
    name = conn.list_collections()[0]
    out = []
    scan = conn.scan_derived(name, part, batch_size, pmap) if pmap else None
    if scan is None:                 # as backup does: the plain scan reads the partition
        scan = ((b, None) for b in conn.scan_partition(name, part, batch_size))
    for b, got in scan:
        if got is None:
            metas = b.metadata or [None] * len(b)
            got = (meta_bytes_many(metas), metadata_pairs(metas))
        out.append((b.ids, b.dense[""].tobytes(), got[0], got[1], b.documents, b.uris))
    return out


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_row_ranges_read_through_the_helper_give_the_plain_scans_batches(tmp_path, pool, ending):
    """A partition of an export (a row range) is read through the helper from the byte
    offset of its first line; with "\r" line ends before it, the plain scan reads it."""
    pool._ready.wait(30)
    d = _export(tmp_path / "e", [_line(i) for i in range(1234)], ending=ending)
    conn = open_connector(f"files://{d}")
    name = conn.list_collections()[0]
    parts = conn.partitions(name, "", 500)
    assert [p.spec for p in parts] == [{"start": 0, "stop": 500}, {"start": 500, "stop": 1000},
                                       {"start": 1000, "stop": None}]
    for part in parts:
        want = _range(conn, part, 64)
        if ending == "\r\n" and part.spec["start"]:
            assert conn.scan_derived(name, part, 64, pool.pmap) is None
        else:
            assert _range(conn, part, 64, pool.pmap) == want
    # a short export: the range's check is the plain scan's
    short = _export(tmp_path / "s", [_line(i) for i in range(700)], rows=1234)
    conn = open_connector(f"files://{short}")
    fresh = LinePool()              # a pmap left at a "\r" leaves answers behind: one pool per scan
    try:
        fresh._ready.wait(30)
        for part in conn.partitions(conn.list_collections()[0], "", 500):
            assert _outcome(lambda: _range(conn, part, 64, fresh.pmap)) == _outcome(lambda: _range(conn, part, 64))
    finally:
        fresh.close()


@pytest.mark.parametrize("block", [40, 701, 1 << 20])
@pytest.mark.parametrize("final_newline", [True, False])
def test_chunks_cut_from_blocks_of_any_size_are_the_plain_scans_lines(tmp_path, monkeypatch, block,
                                                                       final_newline):
    """The records file is read in blocks (READ_BLOCK) and cut at line ends: blocks shorter
    than a line (40 bytes), blocks ending mid-line, one block for everything; with and
    without a final newline, whole and as row ranges: the batches are the plain scan's."""
    from vdedup.connectors.files import chunks
    monkeypatch.setattr(chunks, "READ_BLOCK", block)
    lines = [_line(i) for i in range(1234)]
    raw = ("\n".join(lines) + ("\n" if final_newline else "")).encode()
    d = _export(tmp_path / "e", lines, raw=raw)
    conn = open_connector(f"files://{d}")
    assert _derived(conn, 100, _local) == _plain(conn, 100)
    name = conn.list_collections()[0]
    for part in conn.partitions(name, "", 500):
        assert _range(conn, part, 64, _local) == _range(conn, part, 64)


def test_a_helper_that_is_gone_leaves_the_work_to_the_reading_thread(tmp_path):
    d = _export(tmp_path / "e", [_line(i) for i in range(1000)])
    conn = open_connector(f"files://{d}")
    want = _plain(conn, 50)
    p = LinePool()
    try:
        p._ready.wait(30)
        p._proc.kill()                              # the child dies before or while it answers
        assert _derived(conn, 50, p.pmap) == want
    finally:
        p.close()


def _snapshot(repo_path, capsys):
    capsys.readouterr()
    assert vdedup("--repo", repo_path, "ls", "latest", "--json") == 0
    return json.loads(capsys.readouterr().out)["collections"][0]


class _ReadyPool(LinePool):
    """A line helper waited for until it is ready: a backup this small would end before."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self._ready.wait(30)


def _backup_history(tmp_path, capsys, monkeypatch, parse_after: int, tag: str):
    monkeypatch.setattr(backup_mod, "PARSE_AFTER", parse_after)
    answered = []

    class Counted(_ReadyPool):
        def pmap(self, items):
            for item, answer in super().pmap(items):
                answered.append(answer is not None)
                yield item, answer
    monkeypatch.setattr(backup_mod, "LinePool", Counted)
    repo = tmp_path / f"repo-{tag}"
    lines = [_line(i) for i in range(3000) if i % 7 != 4]        # no infinity: a files target refuses it
    d = _export(tmp_path / f"e-{tag}", lines)
    assert vdedup("--repo", repo, "init") == 0
    capsys.readouterr()
    assert vdedup("--repo", repo, "backup", f"files://{d}?collection=c", "--workers", "2", "--json") == 0
    first = json.loads(capsys.readouterr().out)
    schema1 = _snapshot(repo, capsys)["schema"]
    # a nightly re-export: 30 metadata changes, 100 records gone, 10 new ones
    lines2 = lines[:-100] + [_line(i) for i in range(3000, 3014) if i % 7 != 4]
    for i in range(0, 300, 10):
        lines2[i] = lines2[i].replace("caf", "CAF")
    for f in ("records.jsonl", "vectors.npy"):
        (d / f).unlink()
    _export(d, lines2)
    # the first backup's 2,572 lines went through the helper too (1,000-line chunks), which
    # kept their memo for the night (vdedup/linememo.py): the nightly answers come from it
    assert (len(answered) == 3 and all(answered)) if parse_after == 0 else not answered
    key, cache = _memo_of(repo)
    memos = list(Path(cache, "linememo").glob("*"))
    assert len(memos) == (1 if parse_after == 0 else 0)
    if memos:
        assert len(LineMemo(key, str(memos[0])).old["d0"]) > 500
    answered.clear()
    assert vdedup("--repo", repo, "backup", f"files://{d}?collection=c", "--workers", "2", "--json") == 0
    night = json.loads(capsys.readouterr().out)
    assert (len(answered) == 3 and all(answered)) if parse_after == 0 else not answered
    out = tmp_path / f"out-{tag}"
    assert vdedup("--repo", repo, "restore", "latest", "--target", f"files://{out}") == 0
    keys = ("records", "added", "changed", "deleted", "unchanged")
    return ({k: first[k] for k in keys}, {k: night[k] for k in keys}, schema1, _snapshot(repo, capsys),
            (out / "records.jsonl").read_bytes(), (out / "vectors.npy").read_bytes(), len(lines2))


def _memo_of(repo: Path) -> tuple[bytes, str]:
    """The key of a repository's line memos and its local cache directory."""
    from vdedup.backend import open_backend
    from vdedup.repository import Repository
    with Repository.open(open_backend(str(repo)), PASSWORD) as r:
        return r.line_memo("")[0], r.cache_dir


def test_backup_through_the_helper_stores_what_the_plain_scan_stores(tmp_path, capsys, monkeypatch):
    """The same snapshots (counts, schema, logical size) and the same restored export, with
    the lines parsed by the helper or on the reading thread, for an initial backup and a
    nightly change."""
    monkeypatch.setenv("VDEDUP_PASSWORD", PASSWORD)
    helper = _backup_history(tmp_path, capsys, monkeypatch, 0, "helper")
    plain = _backup_history(tmp_path, capsys, monkeypatch, 10 ** 9, "plain")
    assert helper[:3] == plain[:3]
    for k in ("count", "schema"):
        assert helper[3][k] == plain[3][k]
    assert [n["logical_bytes"] for n in helper[3]["namespaces"]] == [n["logical_bytes"] for n in plain[3]["namespaces"]]
    assert helper[4:] == plain[4:]
    first, night, schema = helper[:3]
    assert night["records"] == helper[6] and night["changed"] > 0 and night["added"] > 0 and night["deleted"] == 100
    fields = {f["name"]: f["type"] for f in schema["metadata_fields"]}
    assert fields["f"] == "float" and fields["big"] == "int" and fields["tags"] == "list"
    assert schema["has_documents"] and schema["has_uris"]


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f2", "<f8", "i1", "u1"])
def test_a_plain_dense_batch_gives_the_payloads_and_content_ids_of_each_record(dtype):
    """encode_batch hashes a batch of one dense vector per record over the array's own rows
    (payload prefix given apart) and builds payloads only for the rows stored: the same
    content ids and payload bytes as encoding every record on its own."""
    from vdedup.format.vectors import encode_payload
    from vdedup.model import RecordBatch
    from vdedup.repository.hashing import digests_inline
    from vdedup.repository.payloads import LEAD, encode_batch
    rng = np.random.default_rng(3)
    arr = (rng.standard_normal((37, 5)) * 50).astype(dtype)
    batch = RecordBatch(ids=list(range(37)), dense={"": arr})
    enc = encode_batch(batch)
    key = bytes(range(32))
    want = [encode_payload({"": arr[i].astype(arr.dtype.newbyteorder("="))}, {}) for i in range(37)]
    got_ids = digests_inline(key, enc.data, enc.offsets, enc.prefix)
    want_ids = b"".join(digests_inline(key, LEAD + p, [0, len(LEAD) + len(p)]) for p in want)
    assert got_ids == want_ids and enc.size == sum(map(len, want))
    picked = [0, 5, 36]
    rows = enc.rows.select(picked)
    assert rows.payloads() == [want[i] for i in picked]
    assert rows.head_len == len(want[0]) - 5 * arr.dtype.itemsize
    every = enc.rows.select(list(range(37)))       # every row: the batch's own rows, by reference
    assert every.payloads() == want and np.shares_memory(every.array, enc.rows.body)


def test_the_helper_writes_its_memo_while_the_backup_commits_and_is_waited_for(tmp_path, capsys, monkeypatch):
    """The line helper writes the memo of a whole partition after its last answer; the
    backup does not wait for that before writing the manifest and committing, but it waits
    before it returns: by then the snapshot was saved first, the helper has exited, and the
    memo is on disk for the next night."""
    from vdedup.repository.repo import Repository as Repo
    monkeypatch.setenv("VDEDUP_PASSWORD", PASSWORD)
    monkeypatch.setattr(backup_mod, "PARSE_AFTER", 0)
    events: list[str] = []
    procs: list = []
    save_snapshot, close, finish = Repo.save_snapshot, LinePool.close, LinePool.finish

    def saved(self, snap):
        events.append("snapshot")
        return save_snapshot(self, snap)

    def closed(self):
        procs.append(self._proc)
        events.append("helper waited")
        close(self)

    def finished(self):
        events.append("helper input ended")
        finish(self)

    class Ready(_ReadyPool):
        close, finish = closed, finished

    monkeypatch.setattr(Repo, "save_snapshot", saved)
    monkeypatch.setattr(backup_mod, "LinePool", Ready)
    d = _export(tmp_path / "export", [_line(i) for i in range(2500)])
    repo = str(tmp_path / "repo")
    assert vdedup("--repo", repo, "init") == 0
    assert vdedup("--repo", repo, "backup", f"files://{d}?collection=c", "--workers", "2", "--json") == 0
    assert events == ["helper input ended", "snapshot", "helper waited"]
    assert procs[0] is not None and procs[0].poll() is not None         # it had exited on return
    key, cache = _memo_of(repo)
    memos = list(Path(cache, "linememo").glob("*"))
    assert len(memos) == 1 and len(LineMemo(key, str(memos[0])).old["d0"]) > 500
