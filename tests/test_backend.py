"""Backend conformance suite: every backend must pass the same tests."""
import pytest

from vdedup.backend import LocalBackend, MemoryBackend
from vdedup.errors import ObjectExists, ObjectNotFound


@pytest.fixture(params=["local", "memory"])
def backend(request, tmp_path):
    if request.param == "local":
        b = LocalBackend(str(tmp_path / "store"))
        b.create_layout()
        return b
    return MemoryBackend()


def test_save_load_stat_list_remove(backend):
    backend.save("data", "ab" + "0" * 62, b"hello world")
    backend.save("snapshots", "s1", b"x")
    assert backend.load("data", "ab" + "0" * 62) == b"hello world"
    assert backend.stat("data", "ab" + "0" * 62) == 11
    assert list(backend.list("data")) == [("ab" + "0" * 62, 11)]
    assert list(backend.list("snapshots")) == [("s1", 1)]
    assert list(backend.list("index")) == []
    backend.remove("snapshots", "s1")
    assert list(backend.list("snapshots")) == []


def test_load_ranges(backend):
    backend.save("data", "cd" * 32, bytes(range(100)))
    assert backend.load("data", "cd" * 32, 10, 5) == bytes(range(10, 15))
    assert backend.load("data", "cd" * 32, 95) == bytes(range(95, 100))
    assert backend.load("data", "cd" * 32, -4) == bytes(range(96, 100))


def test_never_overwrites(backend):
    backend.save("keys", "k", b"one")
    with pytest.raises(ObjectExists):
        backend.save("keys", "k", b"two")
    assert backend.load("keys", "k") == b"one"


def test_not_found(backend):
    with pytest.raises(ObjectNotFound):
        backend.load("snapshots", "nope")
    with pytest.raises(ObjectNotFound):
        backend.stat("snapshots", "nope")
    with pytest.raises(ObjectNotFound):
        backend.remove("snapshots", "nope")


def test_config_and_exists(backend):
    assert not backend.exists()
    backend.save("config", "config", b"c")
    assert backend.exists()
    assert backend.load("config", "config") == b"c"


def test_local_save_leaves_no_temporary_files(tmp_path):
    b = LocalBackend(str(tmp_path / "s"))
    b.create_layout()
    for i in range(5):
        b.save("index", f"i{i}", b"x" * i)
    leftovers = [p for p in (tmp_path / "s").rglob(".tmp-*")]
    assert leftovers == []
