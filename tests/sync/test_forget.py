"""A source removed from the config, or renamed: its documents are not served (their content and
ACLs are frozen), `inlet status` lists them with the command that deletes them, and `inlet forget`
deletes every trace of them, directly or through the process holding the index, never those of a
configured source (docs/reference/cli.md, docs/daemon.md "Removing or renaming a source")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.config import load_config
from inlet.errors import ConfigError
from inlet.index.search import SearchRequest, answer
from inlet.index.store import Index
from inlet.storage import Filters, open_backend
from inlet.sync.engine import Engine

NOTES = {
    "note-1.md": "The harbour lantern is relit every dusk by the keeper. marker-harbour",
    "note-2.md": "Meadow survey: twelve hares counted near the old mill. marker-meadow",
}


def write_config(tmp_path: Path, file: str, index: str, *names: str) -> Path:
    """A config of `files` sources named `names`, all reading the same folder, on the index `index`
    describes (the lines of its [index] table)."""
    config = tmp_path / file
    config.write_text(
        f"[index]\n{index}\n"
        + "".join(
            f'[[sources]]\nname = "{n}"\ntype = "files"\npath = "docs"\nusers = ["ann@example.com"]\n' for n in names
        )
    )
    return config


def index_of(where: str, request: pytest.FixtureRequest) -> str:
    """The [index] lines of an index on the folder, or on PostgreSQL with a Chroma server."""
    if where == "postgresql":
        database, chroma = request.getfixturevalue("database_url"), request.getfixturevalue("chroma_server_url")
        return f'database_url = "{database}"\nchroma_url = "{chroma}"'
    return 'path = "index"'


@pytest.fixture
def renamed(tmp_path: Path, text_hash_embedder) -> Path:
    return make_renamed(tmp_path, text_hash_embedder, 'path = "index"')


def make_renamed(tmp_path: Path, text_hash_embedder, index_lines: str) -> Path:
    """`notes` backfilled, then renamed to `notes-new` and backfilled again: the config now names
    `notes-new` only, and the index holds both."""
    (tmp_path / "docs").mkdir()
    for name, text in NOTES.items():
        (tmp_path / "docs" / name).write_text(text)
    for file, name in (("old.toml", "notes"), ("config.toml", "notes-new")):
        settings = load_config(write_config(tmp_path, file, index_lines, name))
        with Index(settings.index, embedder=text_hash_embedder) as index:
            state = open_backend(settings).state()
            try:
                assert Engine(settings, index, state).run(name, "backfill").outcome == "ok"
            finally:
                state.close()
    return tmp_path / "config.toml"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_status_lists_the_documents_of_a_source_no_longer_configured(renamed: Path) -> None:
    code, out = invoke("status", "--json", "--config", str(renamed))
    assert code == 0, out
    payload = json.loads(out)
    assert [s["name"] for s in payload["sources"]] == ["notes-new"]
    assert payload["unconfigured"] == [
        {"name": "notes", "documents": 2, "chunks": 2, "remove": "inlet forget notes", "state_only": False}
    ]
    code, out = invoke("status", "--config", str(renamed))
    assert "not configured: notes, 2 documents" in out and "`inlet forget notes` deletes them" in out


def test_documents_of_an_unconfigured_source_are_not_served(renamed: Path, text_hash_embedder) -> None:
    settings = load_config(renamed)
    with Index(settings.index, embedder=text_hash_embedder, configured=settings.source_names()) as index:
        assert index.unserved() == ("notes",)
        for user in (None, "ann@example.com"):  # the operator, and a user the frozen ACL names
            got = answer(index, SearchRequest(query="marker-harbour harbour lantern", k=5, user=user))
            assert [h.doc_id for h in got.hits][:1] == ["notes-new:note-1.md"]
            assert {h.source for h in got.hits} == {"notes-new"}
        assert index.document("notes:note-1.md") is None and index.document("notes-new:note-1.md") is not None
        assert all(c.startswith("notes-new:") for c, _ in index.lexical("meadow hares", Filters(), 10))
    with Index(settings.index, embedder=text_hash_embedder) as index:  # tools copying an index see all
        assert index.unserved() == () and index.document("notes:note-1.md") is not None


@pytest.mark.parametrize("where", ["folder", "postgresql"])
def test_forget_deletes_every_trace_of_an_unconfigured_source_only(
    where: str, tmp_path: Path, text_hash_embedder, request: pytest.FixtureRequest
) -> None:
    """On the index folder, and on PostgreSQL with a Chroma server."""
    index_lines = index_of(where, request)
    from inlet.sync.forget import forget_source

    renamed = make_renamed(tmp_path, text_hash_embedder, index_lines)
    settings = load_config(renamed)
    code, out = invoke("forget", "notes-new", "--config", str(renamed))
    assert code == 2 and "remove it from the config first" in out
    backend = open_backend(settings)
    with Index(settings.index, embedder=text_hash_embedder, configured=settings.source_names()) as index:
        state, leases = backend.state(), backend.leases()
        try:
            with pytest.raises(ConfigError, match="holds nothing of a source named 'note'.*not configured: notes"):
                forget_source(settings, index, state, leases, "note")
            state.set_paused("notes", True)
            forgotten = forget_source(settings, index, state, leases, "notes")
            assert (forgotten.documents, forgotten.chunks, forgotten.state) == (2, 2, True)
            assert index.catalog.counts() == {"notes-new": (2, 2)} and index.unserved() == ()
            assert index.collection.get(where={"source": "notes"})["ids"] == []
            assert len(index.collection.get(where={"source": "notes-new"})["ids"]) == 2  # reused vectors kept
            assert index.catalog.lexical("meadow hares", Filters(), 10)[0][0] == "notes-new:note-2.md#0"
            assert state.source("notes").phase == "new" and state.recent_runs("notes") == []
            assert "notes" not in state.paused() and state.last_run("notes-new") is not None
        finally:
            state.close()
            leases.close()
    code, out = invoke("status", "--json", "--config", str(renamed))
    assert json.loads(out)["unconfigured"] == []


def test_forget_is_forwarded_to_the_process_holding_the_index(renamed: Path, text_hash_embedder) -> None:
    """With `inlet serve` or a daemon holding the folder, `inlet forget` asks it, as `inlet sync` does;
    the holder checks its own configuration too."""
    from inlet.compose import engine_runner
    from inlet.server.local_commands import start_local_commands

    import threading

    settings = load_config(renamed)
    with Index(settings.index, embedder=text_hash_embedder, configured=settings.source_names()) as index:
        state = open_backend(settings).state()
        local = start_local_commands(settings, index, state, engine_runner(settings, index, state, threading.Event()))
        assert local is not None
        try:
            code, out = invoke("forget", "notes", "--json", "--config", str(renamed))
            assert code == 0, out
            assert json.loads(out) == {"source": "notes", "documents": 2, "chunks": 2, "state": True}
            assert index.catalog.counts() == {"notes-new": (2, 2)}
            code, out = invoke("forget", "notes", "--config", str(renamed))
            assert code == 2 and "holds nothing of a source named 'notes'" in out
        finally:
            local.close()
            state.close()


def test_a_forwarded_forget_of_a_source_the_holder_still_names_says_to_restart_the_holder(
    renamed: Path, text_hash_embedder
) -> None:
    """Renamed in the file, then forgotten beside a process started with the old name: the refusal
    named the edited file ("configured in config.toml: remove it from the config first"), which no
    longer names it. It is that process (its pid) that has to be restarted."""
    import os
    import threading
    import time

    from inlet.compose import engine_runner
    from inlet.server.local_commands import start_local_commands

    started_with = load_config(renamed.parent / "old.toml")  # names `notes`; config.toml no longer does
    with Index(started_with.index, embedder=text_hash_embedder, configured=["notes"]) as index:
        state = open_backend(started_with).state()
        run = engine_runner(started_with, index, state, threading.Event())
        local = start_local_commands(started_with, index, state, run)
        assert local is not None
        try:
            code, out = invoke("forget", "notes", "--config", str(renamed))
            assert code == 1 and f"the running inlet process that holds the index (pid {os.getpid()})" in out
            assert f"still has source 'notes' configured: it read {started_with.file} when it started" in out
            assert "Restart it" in out and "remove it from the config first" not in out
            state.set_next_runs(os.getpid(), {"notes": time.time() + 600})  # as a daemon records its schedule
            code, out = invoke("forget", "notes", "--config", str(renamed))
            assert code == 1 and f"the running inlet daemon (pid {os.getpid()}) still has source 'notes' on its" in out
            assert index.catalog.counts() == {"notes": (2, 2), "notes-new": (2, 2)}  # nothing deleted
        finally:
            local.close()
            state.close()


class _Killed(BaseException):
    """Where the test stops a forget: its process ends there (kill -9, a reboot)."""


@pytest.mark.parametrize("where", ["folder", "postgresql"])
def test_a_forget_killed_after_the_documents_is_shown_and_the_source_configured_again_is_indexed_again(
    where: str, tmp_path: Path, text_hash_embedder, request: pytest.FixtureRequest
) -> None:
    """`inlet forget` stopped once the documents are deleted, before the rest of the sync state: the
    checkpoint is already gone (so the source configured again starts from a first backfill, not
    "indexed: everything" with 0 documents), and its runs left make `inlet status` name it with the
    command that finishes the forget."""
    import sys

    from inlet.storage.state import SqlState
    from inlet.sync.forget import forget_source

    index_lines = index_of(where, request)
    renamed = make_renamed(tmp_path, text_hash_embedder, index_lines)
    settings = load_config(renamed)
    backend = open_backend(settings)

    def stop_at_state_forget(frame, event, arg):  # a `sys.settrace` hook, as tests/crash_points.py sets
        if event == "call" and frame.f_code is SqlState.forget.__code__:
            raise _Killed
        return None

    with Index(settings.index, embedder=text_hash_embedder, configured=settings.source_names()) as index:
        state, leases = backend.state(), backend.leases()
        before = sys.gettrace()
        sys.settrace(stop_at_state_forget)
        try:
            with pytest.raises(_Killed):
                forget_source(settings, index, state, leases, "notes")
        finally:
            sys.settrace(before)
            state.close()
            leases.close()
        assert index.catalog.counts() == {"notes-new": (2, 2)}  # the documents went
    code, out = invoke("status", "--json", "--config", str(renamed))
    assert json.loads(out)["unconfigured"] == [
        {"name": "notes", "documents": 0, "chunks": 0, "remove": "inlet forget notes", "state_only": True}
    ]
    code, out = invoke("status", "--config", str(renamed))
    assert "not configured: notes, no documents left" in out and "`inlet forget notes` finishes" in out

    again = load_config(write_config(tmp_path, "again.toml", index_lines, "notes-new", "notes"))
    with Index(again.index, embedder=text_hash_embedder, configured=again.source_names()) as index:
        state = open_backend(again).state()
        try:
            result = Engine(again, index, state).run("notes", "sync")
            assert (result.outcome, result.upserted) == ("ok", 2)
            assert index.catalog.counts()["notes"] == (2, 2)
        finally:
            state.close()


def test_a_forget_run_again_finishes_an_interrupted_one(renamed: Path, text_hash_embedder) -> None:
    """What a forget stopped after the documents leaves (checkpoint and documents gone, runs kept)
    the next `inlet forget` deletes, and status lists nothing more."""
    settings = load_config(renamed)
    with Index(settings.index, embedder=text_hash_embedder, configured=settings.source_names()) as index:
        state = open_backend(settings).state()
        try:
            assert state.drop_checkpoint("notes") and index.forget("notes") == 2
        finally:
            state.close()
    code, out = invoke("forget", "notes", "--json", "--config", str(renamed))
    assert code == 0, out
    assert json.loads(out) == {"source": "notes", "documents": 0, "chunks": 0, "state": True}
    code, out = invoke("status", "--json", "--config", str(renamed))
    assert json.loads(out)["unconfigured"] == []
