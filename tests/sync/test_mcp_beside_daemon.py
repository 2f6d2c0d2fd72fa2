"""`inlet mcp` (stdio) while `inlet daemon` holds the index: the `mcp` SDK's stdio client gets the
same tools and the same answers, per user, as without a daemon (docs/reference/mcp.md, docs/daemon.md)."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp import Client

from inlet.config import IndexConfig, Settings, load_config
from inlet.index.store import Index
from inlet.server.auth import Caller
from inlet.server.mcp import InletTools, McpFetchOutput, StdioTools, ToolError
from inlet.storage.lock import FileLock
from inlet.server.service import Retrieval
from inlet.server.local_channel import LocalClient, socket_path

from tests.server.conftest import corpus, corpus_sources
from tests.server.test_mcp import check_as_member, check_as_outsider, stdio_client, tool_session
from .test_daemon import Proc, wait_for

ANSWERS = ("search", "espresso", "public", "nolink")


@pytest.fixture
def indexed(tmp_path: Path) -> tuple[Path, dict]:
    """A config over an index of the server tests' corpus, and what alice sees without any daemon:
    the stdio server's tools (test_mcp.py runs them over real stdio) in this process."""
    with Index(IndexConfig(path=tmp_path / "index")) as idx:
        idx.apply(corpus())
        retrieval = Retrieval(idx)
        retrieval.warm()
        alice = Caller(key_name="stdio", user="alice@example.com", admin=False)
        direct = anyio.run(tool_session, Client(InletTools(retrieval, 180.0, lambda ctx: alice).server()))
    path = tmp_path / "config.toml"
    (tmp_path / "notes").mkdir()  # a source with no schedule: the daemon holds the index, runs nothing
    path.write_text(  # the corpus's sources too: an index serves the configured sources only
        f'[index]\npath = "{tmp_path / "index"}"\n'
        f'[[sources]]\nname = "notes"\ntype = "files"\npath = "{tmp_path / "notes"}"\n'
        + corpus_sources(tmp_path / "notes")
    )
    return path, direct


def same_answers(direct: dict, forwarded: dict) -> None:
    for name in ANSWERS:
        assert forwarded[name] == direct[name], name
    for name in ("private", "missing", "blank"):
        assert forwarded[name].is_error == direct[name].is_error, name
        assert forwarded[name].content == direct[name].content, name
    assert {n: t.model_dump() for n, t in forwarded["tools"].items()} == {
        n: t.model_dump() for n, t in direct["tools"].items()
    }


def test_stdio_mcp_beside_a_running_daemon_answers_as_without_it(tmp_path: Path, indexed: tuple[Path, dict]) -> None:
    config, direct = indexed
    daemon = Proc(tmp_path, "daemon", "--config", str(config), tag="daemon")
    try:
        # While the daemon holds the index, `inlet mcp` cannot open it: every answer below comes from
        # the daemon over the local channel.
        wait_for("the local channel", lambda: LocalClient.find(tmp_path / "index"), daemon, timeout=120)
        member = anyio.run(tool_session, stdio_client(config, "alice@example.com"))
        outsider = anyio.run(tool_session, stdio_client(config, "bob@other.org"))
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(120) == 0, daemon.stderr()[-3000:]
    assert not socket_path(tmp_path / "index").exists()
    check_as_member(member)
    check_as_outsider(outsider)
    same_answers(direct, member)


def test_stdio_tools_find_who_answers_again_once_the_holder_stops(tmp_path: Path, text_hash_embedder: Any) -> None:
    """The holder `inlet mcp` forwarded to stops (an upgrade, a crash): the next call does not keep
    answering "run the command again" but decides again, as at start: a process holding the index
    without answering (a direct `inlet backfill`) is a tool error saying what to do; once the index
    is free, it is opened here and answers as the holder did (in this process, no subprocess)."""
    from inlet.compose import local_commands_of_server

    settings = Settings(index=IndexConfig(path=tmp_path / "index"))
    with Index(settings.index, embedder=text_hash_embedder) as idx:
        idx.apply(corpus())
    alice = Caller(key_name="stdio", user="alice@example.com", admin=False)
    query = "espresso machine descaled"
    holder = ExitStack()  # a holder beside the agent, as `inlet serve` is: the index and its local channel
    held = holder.enter_context(Index(settings.index, embedder=text_hash_embedder))
    holder.enter_context(local_commands_of_server(settings, held))
    tools = agent_tools(settings, alice, text_hash_embedder)
    try:
        tools.start()
        assert tools.holder is not None and tools.retrieval.index is None  # forwarded: no index opened here
        forwarded = tools.search(query, alice)
        assert forwarded.results and tools.fetch("eng:C2/200", alice).id == "eng:C2/200"
        holder.close()  # the holder stops

        backfill = FileLock(tmp_path / "index" / "index.lock")
        assert backfill.acquire(role="backfill", command="inlet backfill notes")  # it answers nothing
        try:
            with pytest.raises(ToolError) as refused:
                tools.search(query, alice)
        finally:
            backfill.release()
        message = str(refused.value)
        assert f"pid {os.getpid()} (inlet backfill notes)" in message and "once it has finished" in message
        assert "stopped listening" not in message

        assert tools.search(query, alice) == forwarded  # the index is free: opened here, same answer
        assert tools.retrieval.index is not None and tools.holder is None
        assert tools.fetch("eng:C2/200", alice).id == "eng:C2/200"
        assert LocalClient.find(tmp_path / "index") is not None  # and local commands now run here
    finally:
        tools.close()
        holder.close()
    assert not socket_path(tmp_path / "index").exists()

    assert backfill.acquire(role="backfill", command="inlet backfill notes")  # held when `inlet mcp` starts:
    late = StdioTools(  # it serves, and each call says why it cannot answer yet
        settings, 180.0, lambda ctx: alice, open_index=lambda: Index(settings.index, embedder=text_hash_embedder)
    )
    try:
        late.start()
        with pytest.raises(ToolError, match="inlet backfill notes"):
            late.fetch("eng:C2/200", alice)
        backfill.release()
        assert late.fetch("eng:C2/200", alice).id == "eng:C2/200"
    finally:
        backfill.release()
        late.close()


def test_a_daemon_that_starts_takes_the_index_over_from_an_agents_inlet_mcp(
    tmp_path: Path, indexed_cheaply: Path, text_hash_embedder: Any
) -> None:
    """probe31d F5: a tool call while the daemon restarted made the agent's `inlet mcp` open the
    index, and the restarted daemon then exited 1 until the person quit the agent app. Now the
    daemon asks that `inlet mcp` to hand the index over, starts, and the agent's next call is
    forwarded to it (the agent here is `StdioTools` in this process; the daemon a real process)."""

    settings = load_config(indexed_cheaply)
    alice = Caller(key_name="stdio", user="alice@example.com", admin=False)
    tools = agent_tools(settings, alice, text_hash_embedder)
    lock = FileLock(settings.index.path / "index.lock")
    try:
        tools.start()
        assert tools.retrieval.index is not None and lock.holder()["role"] == "mcp"  # no daemon: opened here
        before = tools.fetch("eng:C2/200", alice)
        daemon = Proc(tmp_path, "daemon", "--config", str(indexed_cheaply), tag="daemon")
        try:
            wait_for("the daemon to hold the index", lambda: lock.holder().get("role") == "daemon", daemon)
            wait_for("its local channel", lambda: LocalClient.find(settings.index.path), daemon)
            assert tools.fetch("eng:C2/200", alice) == before  # the same answer, now from the daemon
            assert tools.retrieval.index is None and tools.holder is not None
        finally:
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(120) == 0, daemon.stderr()[-3000:]
        assert "hands it over" in daemon.stderr()
    finally:
        tools.close()


@pytest.fixture
def indexed_cheaply(tmp_path: Path, text_hash_embedder: Any) -> Path:
    """A config over the corpus, indexed with hashed vectors (what is fetched, not ranked, is asked)."""
    with Index(IndexConfig(path=tmp_path / "index"), embedder=text_hash_embedder) as idx:
        idx.apply(corpus())
    (tmp_path / "notes").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(
        f'[index]\npath = "{tmp_path / "index"}"\n'
        f'[[sources]]\nname = "notes"\ntype = "files"\npath = "{tmp_path / "notes"}"\n'
        + corpus_sources(tmp_path / "notes")
    )
    return path


def test_a_call_waits_for_a_serving_holder_that_is_not_listening_yet(tmp_path: Path, text_hash_embedder: Any) -> None:
    """probe31d F3: while another `inlet mcp`, `serve` or daemon held the index but was not
    listening yet (starting) or any more (stopping), a call failed "... holds the index and answers
    no searches" with backfill advice. Now it waits (bounded) for that process to listen or to let go."""
    from inlet.compose import local_commands_of_server

    settings = Settings(index=IndexConfig(path=tmp_path / "index"))
    with Index(settings.index, embedder=text_hash_embedder) as idx:
        idx.apply(corpus())
    alice = Caller(key_name="stdio", user="alice@example.com", admin=False)
    refused = threading.Event()

    def opening() -> Index:
        try:
            return Index(settings.index, embedder=text_hash_embedder, role="mcp")
        except Exception:
            refused.set()  # the call found the index held: the holder may start listening now
            raise

    tools = StdioTools(settings, 180.0, lambda ctx: alice, open_index=opening)
    answers: list[Any] = []
    with ExitStack() as starting:  # a server that took the index and is not listening yet
        held = starting.enter_context(Index(settings.index, embedder=text_hash_embedder, role="serve"))
        call = threading.Thread(target=lambda: answers.append(_outcome(lambda: tools.fetch("eng:C2/200", alice))))
        call.start()
        assert refused.wait(60)
        starting.enter_context(local_commands_of_server(settings, held))  # it listens
        call.join(60)
    assert not call.is_alive()
    assert isinstance(answers[0], McpFetchOutput) and answers[0].id == "eng:C2/200", answers
    tools.close()


def _outcome(call: Any) -> Any:
    try:
        return call()
    except ToolError as exc:
        return exc


def agent_tools(settings: Settings, caller: Caller, embedder: Any) -> StdioTools:
    """The tools of an agent's `inlet mcp`, as `run_stdio` makes them (the index opened with `embedder`)."""
    from inlet.compose import local_commands_of_server

    return StdioTools(
        settings,
        180.0,
        lambda ctx: caller,
        open_index=lambda: Index(settings.index, embedder=embedder, role="mcp"),
        holding=lambda index, hand_over: local_commands_of_server(settings, index, hand_over=hand_over),
    )
