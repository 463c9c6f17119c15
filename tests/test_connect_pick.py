"""`connect` with discovery: at a real terminal (a pseudo-terminal from the stdlib `pty`
module, the child its session leader) the key is asked for without echo, the indexes it
reaches are listed with their counts and two of three are picked; without a terminal
`--collection` picks. An asset covering several indexes backs up into one snapshot and
restores every index bit for bit. Against the Pinecone emulator (the official SDK over HTTP)."""
from __future__ import annotations

import os
import pty
import select
import sys
import time

import pytest

from test_assets import (PC_SECRET, Cli, assert_secret_absent, pinecone_asset_index, proc_env,
                         read_pinecone)
from emulators.pinecone_emulator import PineconeEmulator

N = 30          # records per namespace; each index has two namespaces


@pytest.fixture
def emu(monkeypatch):
    with PineconeEmulator(PC_SECRET) as e:
        for var in ("PINECONE_API_KEY", "PINECONE_CONTROLLER_HOST"):
            monkeypatch.delenv(var, raising=False)
        yield e


def three_indexes(emu: PineconeEmulator) -> dict[str, dict]:
    written = {name: pinecone_asset_index(emu, name, n=N, seed=k)
               for k, name in enumerate(("alpha", "beta", "gamma"))}
    emu.settle()
    return written


def in_a_pty(argv: list[str], answers: list[tuple[str, str]], env: dict, timeout: float = 120) -> tuple[int, str]:
    """Run argv as the session leader of a new pseudo-terminal (pty.fork: /dev/tty is that
    terminal, echo on as a user's would be) and type each answer once its prompt appears.
    Returns the exit code and everything the terminal showed."""
    pid, master = pty.fork()
    if pid == 0:                                  # the child: nothing but exec
        try:
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    buf, seen, i = b"", 0, 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:                   # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                buf += chunk
            if i < len(answers) and answers[i][0].encode() in buf[seen:]:
                seen = len(buf)
                time.sleep(0.1)                   # let the child switch echo off first
                os.write(master, answers[i][1].encode() + b"\r")
                i += 1
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                pytest.fail(f"no prompt {answers[min(i, len(answers) - 1)][0]!r} in time; got {buf[-800:]!r}")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    assert i == len(answers), f"only {i} of {len(answers)} prompts were asked: {buf[-800:]!r}"
    return os.waitstatus_to_exitcode(status), buf.decode("utf-8", "replace")


def test_connect_at_a_terminal_lists_the_indexes_and_picks_two(tmp_path, repo_path, emu, capsys, monkeypatch):
    written = three_indexes(emu)
    cli = Cli(capsys, monkeypatch, "--repo", repo_path)
    cli("init")
    env = proc_env(VDEDUP_REPOSITORY=str(repo_path), PINECONE_CONTROLLER_HOST=emu.url, PYTHONUNBUFFERED="1",
                   COLUMNS="120", TERM="dumb")
    # backupengine ai-assets connect --provider pinecone, exactly as the product text writes it;
    # the URL left empty (the whole project), a wrong pick explained and asked again
    code, screen = in_a_pty(
        [sys.executable, "-m", "vdedup_cli.aiassets", "ai-assets", "connect", "--provider", "pinecone"],
        [("asset name:", "rag-pair"), ("URL (", ""), ("input hidden", PC_SECRET),
         ("indexes to back up", "4"), ("indexes to back up", "1, 3")], env)
    assert code == 0, screen
    assert PC_SECRET not in screen and PC_SECRET[:12] not in screen       # never echoed
    for name in ("alpha", "beta", "gamma"):
        line = next(ln for ln in screen.splitlines() if f" {name} " in f" {ln} ")
        assert f"{2 * N}" in line.split() and "16" in line.split() and "cosine" in line.split(), line
    assert "choose numbers from 1 to 3" in screen
    assert "connected asset rag-pair (pinecone, pinecone://; alpha, gamma)" in screen
    [asset] = cli.json("assets", "list", "--json")
    assert (asset["name"], asset["url"], asset["collections"], asset["has_secret"]) == \
        ("rag-pair", "pinecone://", ["alpha", "gamma"], True)

    # the asset covers two indexes: one snapshot holds both; the third is left alone
    monkeypatch.setenv("PINECONE_CONTROLLER_HOST", emu.url)
    out = cli.json("backup", "--all", "--json")
    assert out["ok"] == 1 and out["assets"][0]["records"] == 4 * N
    [snap] = cli.json("ai-assets", "snapshots", "--asset", "rag-pair", "--json")
    assert snap["collections"] == {"alpha": 2 * N, "gamma": 2 * N}

    # both indexes lost; the asset restored into itself brings back each, bit for bit
    import pinecone
    client = pinecone.Pinecone(api_key=PC_SECRET, host=emu.url)
    for name in ("alpha", "gamma"):
        client.indexes.delete(name)
    out = cli.json("ai-assets", "restore", "--asset", "rag-pair", "--json")
    assert out["collections"] == {"alpha": 2 * N, "gamma": 2 * N}
    for name in ("alpha", "gamma"):
        assert read_pinecone(emu, name) == written[name], name
    assert read_pinecone(emu, "beta") == written["beta"]
    # the sources of the asset, through its stored secret
    found = cli.json("sources", "--asset", "rag-pair", "--json")
    assert [(i["name"], i["count"]) for i in found["indexes"]] == [("alpha", 60), ("beta", 60), ("gamma", 60)]
    assert_secret_absent(PC_SECRET, roots=(repo_path, tmp_path / "cache"), texts=(screen, *cli.outputs))


def test_connect_without_a_terminal_picks_with_collection(repo_path, emu, capsys, monkeypatch):
    three_indexes(emu)
    monkeypatch.setenv("PINECONE_CONTROLLER_HOST", emu.url)
    cli = Cli(capsys, monkeypatch, "--repo", repo_path)
    cli("init")
    cli("connect", "--provider", "pinecone", "--name", "two", "--url", "pinecone://", "--collection", "beta",
        "-c", "gamma", "--secret-stdin", input=PC_SECRET + "\n")
    cli("connect", "--provider", "pinecone", "--name", "everything", "--url", "", "--secret-stdin",
        input=PC_SECRET + "\n")
    assets = {a["name"]: a for a in cli.json("assets", "list", "--json")}
    assert assets["two"]["collections"] == ["beta", "gamma"] and assets["everything"]["collections"] == []
    out = cli.json("backup", "--all", "--json")
    by_asset = {a["asset"]: a["records"] for a in out["assets"]}
    assert by_asset == {"two": 4 * N, "everything": 6 * N}
    # a picked index that is gone makes that asset's backup fail, one line, the others go on
    import pinecone
    pinecone.Pinecone(api_key=PC_SECRET, host=emu.url).indexes.delete("gamma")
    got = cli("backup", "--all", expect=3)
    assert "two: failed (exit 15)" in got.err and "everything: snapshot" in got.out


def test_wrong_key_at_the_terminal_is_one_line_and_stores_nothing(repo_path, emu, capsys, monkeypatch):
    three_indexes(emu)
    cli = Cli(capsys, monkeypatch, "--repo", repo_path)
    cli("init")
    env = proc_env(VDEDUP_REPOSITORY=str(repo_path), PINECONE_CONTROLLER_HOST=emu.url, TERM="dumb")
    wrong = "pc-wrong-key-aaaaaaaaaaaaaaaaaaaaaaaa"
    code, screen = in_a_pty([sys.executable, "-m", "vdedup_cli.main", "connect", "--provider", "pinecone"],
                            [("asset name:", "x"), ("URL (", ""), ("input hidden", wrong)], env)
    assert code == 15, screen
    assert "vdedup: error:" in screen and "Traceback" not in screen and wrong not in screen
    assert cli.json("assets", "list", "--json") == []


def test_sources_at_a_terminal_asks_for_the_key_without_echo(emu):
    three_indexes(emu)
    env = proc_env(PINECONE_CONTROLLER_HOST=emu.url, TERM="dumb", COLUMNS="120")
    code, screen = in_a_pty([sys.executable, "-m", "vdedup_cli.main", "sources", "pinecone://"],
                            [("input hidden, empty for none", PC_SECRET)], env)
    assert code == 0, screen
    assert PC_SECRET not in screen and PC_SECRET[:12] not in screen
    assert "alpha" in screen and "gamma" in screen and "3 collection(s) at pinecone://, 180 records" in screen
    # an empty answer is no key: Pinecone needs one, a usage error (exit 2)
    code, screen = in_a_pty([sys.executable, "-m", "vdedup_cli.main", "sources", "pinecone://"],
                            [("input hidden, empty for none", "")], env)
    assert code == 2 and "no Pinecone API key" in screen and "Traceback" not in screen, screen


def test_a_name_already_taken_is_refused_before_the_key_is_asked(repo_path, emu, capsys, monkeypatch):
    cli = Cli(capsys, monkeypatch, "--repo", repo_path)
    cli("init")
    cli("connect", "--provider", "pinecone", "--name", "taken", "--url", "x", "--secret-stdin", input="k" * 30 + "\n")
    env = proc_env(VDEDUP_REPOSITORY=str(repo_path), PINECONE_CONTROLLER_HOST=emu.url, TERM="dumb")
    code, screen = in_a_pty([sys.executable, "-m", "vdedup_cli.main", "connect", "--provider", "pinecone"],
                            [("asset name:", "taken")], env)
    assert code == 13 and "already connected" in screen and "URL (" not in screen, screen
