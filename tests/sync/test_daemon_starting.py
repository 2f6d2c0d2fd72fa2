"""The moments around a daemon's start (probe33d F1): a local command that finds the index locked
by a daemon or server not answering yet (it loads its model, upgrades the index) waits for it and
is answered by it, as beside a running daemon; a daemon that finds a one-shot command holding the
index waits for it to let go rather than exit (docs/daemon.md "Local commands beside a running
daemon"). Both sides in this process: the waiting is seen in the log line each writes once."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.config import IndexConfig, Settings, load_config
from inlet.index.store import Index
from inlet.storage.lock import FileLock

from tests.sync.test_mcp_beside_daemon import indexed_cheaply  # noqa: F401 (a fixture)


@contextmanager
def logged(logger: str, words: str, seen: threading.Event) -> Iterator[None]:
    """Set `seen` when `logger` writes a line holding `words` (at INFO, whatever the CLI sets)."""

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if words in record.getMessage():
                seen.set()

    target, watch = logging.getLogger(logger), Watch()
    level = target.level
    target.setLevel(logging.INFO)
    target.addHandler(watch)
    try:
        yield
    finally:
        target.removeHandler(watch)
        target.setLevel(level)


def test_a_search_beside_a_daemon_that_is_starting_waits_and_is_answered_by_it(
    indexed_cheaply: Path, text_hash_embedder: Any
) -> None:
    """It was refused at once, exit 1, "in use by pid ... wait for it to finish"."""
    from inlet.compose import local_commands_of_server

    config = indexed_cheaply
    settings = load_config(config)
    waiting_or_done = threading.Event()
    outcome: list[Any] = []

    def search() -> None:
        outcome.append(CliRunner().invoke(cli, ["search", "espresso machine", "--json", "--config", str(config)]))
        waiting_or_done.set()

    with ExitStack() as starting, logged("inlet.server.local_channel", "does not answer yet", waiting_or_done):
        held = starting.enter_context(Index(settings.index, embedder=text_hash_embedder, role="daemon"))
        call = threading.Thread(target=search)
        call.start()
        assert waiting_or_done.wait(60)
        assert not outcome, outcome[0].output  # refused at once: the old behaviour
        starting.enter_context(local_commands_of_server(settings, held))  # it has started: it answers
        call.join(60)
    assert not call.is_alive()
    result = outcome[0]
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"]  # answered from the daemon's index


def test_a_daemon_that_starts_beside_a_one_shot_command_waits_for_it(tmp_path: Path) -> None:
    """It exited at once, naming the `inlet search` that held the index for a second."""
    from inlet.compose import serving_index

    settings = Settings(index=IndexConfig(path=tmp_path / "index"))
    search = FileLock(tmp_path / "index" / "index.lock")
    assert search.acquire(command="inlet search token3x --k 1")  # a one-shot command: no role, no socket
    waiting_or_done = threading.Event()
    outcome: list[Any] = []

    def start() -> None:
        try:
            outcome.append(serving_index(settings, role="daemon"))
        except Exception as exc:  # noqa: BLE001 - the old refusal, reported below
            outcome.append(exc)
        waiting_or_done.set()

    with logged("inlet.server.local_channel", "answers no local commands", waiting_or_done):
        call = threading.Thread(target=start)
        try:
            call.start()
            assert waiting_or_done.wait(60)
            assert not outcome, outcome[0]
        finally:
            search.release()  # the search ends
            call.join(60)
    assert not call.is_alive()
    index = outcome[0]
    assert isinstance(index, Index), index
    try:
        assert FileLock(tmp_path / "index" / "index.lock").holder()["role"] == "daemon"
    finally:
        index.close()


def test_a_holder_that_begins_to_answer_just_as_the_command_is_refused_is_asked(
    indexed_cheaply: Path, text_hash_embedder: Any
) -> None:
    """The daemon's socket began to answer between the command's first look and its refusal of
    the index: the command asks it, rather than failing as if the holder would never answer."""
    from inlet.compose import local_commands_of_server
    from inlet.errors import IndexLockedError
    from inlet.server.local_channel import held_or_here

    settings = load_config(indexed_cheaply)
    with ExitStack() as starting:
        held = starting.enter_context(Index(settings.index, embedder=text_hash_embedder, role="daemon"))
        lock = Path(settings.index.path) / "index.lock"  # its record names another live process, as a
        lock.write_text(json.dumps({**json.loads(lock.read_text()), "pid": os.getppid()}))  # daemon's would

        def here() -> str:
            try:
                with Index(settings.index, embedder=text_hash_embedder):
                    return "here"
            except IndexLockedError:
                starting.enter_context(local_commands_of_server(settings, held))  # it answers from now on
                raise

        assert held_or_here(settings, lambda holder: holder.call("status")["sources"][0]["name"], here) == "notes"


def test_a_daemon_or_server_that_starts_while_the_chroma_server_is_down_starts_and_waits_for_it(
    tmp_path: Path, caplog
) -> None:
    """probe34c F5: it exited 1 within seconds ("... the next run resumes"), and stayed down once the
    server answered. Now it opens the index, says once that it waits for the server, and its index
    reaches the server when it answers (the runs and the API ride the outage out: test_chroma_server)."""
    from inlet.compose import serving_index
    from inlet.errors import IndexUnavailable
    from tests.servers import chroma_server, free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(index=IndexConfig(path=tmp_path / "index", chroma_url=url))
    with caplog.at_level(logging.WARNING, logger="inlet.index.record"):
        index = serving_index(settings, role="daemon")
    try:
        [said] = [r.getMessage() for r in caplog.records if r.name == "inlet.index.record"]
        assert f"Chroma server at {url}" in said and "starting without it" in said
        with pytest.raises(IndexUnavailable, match=f"Chroma server at {url} .*chroma_url"):
            index.check_reachable()
        with chroma_server(tmp_path / "server", port=port):
            index.check_reachable()  # reached: the vectors are open
            assert index.collection.count() == 0
    finally:
        index.close()
