"""`inlet search|status|sync|backfill` beside a running `inlet daemon` (with and without `--serve`):
real processes, the real socket and model, a `files` source in a temp dir. Forwarded commands give
the shapes and exit codes of direct ones (docs/reference/cli.md, docs/daemon.md)."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from inlet.config import load_config
from inlet.errors import InletError, SourceBusyError
from inlet.index.store import Index
from inlet.server.local_commands import start_local_commands
from inlet.sync.engine import RunResult
from inlet.storage.lock import FileLock
from inlet.storage.sqlite.state import SqliteState
from inlet.server.local_channel import LocalClient, socket_path

from .test_daemon import Proc, cli, make_daemon, source_row, wait_for

NOTES = {
    "note-1.md": "The harbour lantern is relit every dusk by the keeper. marker-harbour",
    "note-2.md": "Meadow survey: twelve hares counted near the old mill. marker-meadow",
    "note-3.md": "Budget for the lantern repairs is forty crowns. marker-budget",
}
RUN_KEYS = {"source", "outcome", "upserted", "deleted", "skipped", "errors", "seconds"}
LAST_RUN_KEYS = {"started_at", "finished_at", "outcome", "upserted", "deleted", "skipped", "errors", "error"}


def make_workdir(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    for name, text in NOTES.items():
        (tmp_path / "docs" / name).write_text(text)
    config = tmp_path / "config.toml"
    config.write_text(
        '[index]\npath = "index"\n[daemon]\njitter = "0s"\n[server]\nport = 0\n'
        '[[sources]]\nname = "notes"\ntype = "files"\npath = "docs"\nevery = "1h"\n'
        'users = ["alice@example.com"]\n'
    )
    return config


def inlet(tmp_path: Path, *args: str, tag: str) -> tuple[int, str, str]:
    return cli(tmp_path, *args, "--config", str(tmp_path / "config.toml"), tag=tag)


def ok_json(tmp_path: Path, *args: str, tag: str) -> dict:
    code, out, err = inlet(tmp_path, *args, "--json", tag=tag)
    assert code == 0, err
    return json.loads(out)


def top_ids(payload: dict) -> list[str]:
    return [hit["doc_id"] for hit in payload["results"]]


@pytest.mark.parametrize("serve", [False, True], ids=["daemon", "daemon-serve"])
def test_commands_are_answered_by_a_running_daemon(tmp_path: Path, serve: bool) -> None:
    config = make_workdir(tmp_path)
    index = tmp_path / "index"
    daemon = Proc(tmp_path, "daemon", *(["--serve"] if serve else []), "--config", str(config), tag="daemon")
    try:
        wait_for("the local channel", lambda: LocalClient.find(index), daemon, timeout=120)
        wait_for("the first backfill", lambda: (source_row(index) or ("",))[0] == "incremental", daemon, timeout=300)

        status = ok_json(tmp_path, "status", tag="status")
        (row,) = status["sources"]
        assert {"name", "type", "documents", "chunks", "last_run", "next_run"} <= set(row)
        assert (row["name"], row["documents"]) == ("notes", 3) and LAST_RUN_KEYS <= set(row["last_run"])

        found = ok_json(tmp_path, "search", "who relights the harbour lantern", "--k", "2", tag="search")
        assert top_ids(found)[0] == "notes:note-1.md" and isinstance(found["took_ms"], float)
        as_alice = ok_json(tmp_path, "search", "marker-meadow hares", "--user", "alice@example.com", tag="alice")
        assert top_ids(as_alice)[0] == "notes:note-2.md"
        assert (
            ok_json(tmp_path, "search", "marker-meadow hares", "--user", "bob@example.com", tag="bob")["results"] == []
        )

        (tmp_path / "docs" / "note-3.md").unlink()
        runs = ok_json(tmp_path, "sync", "notes", tag="sync")["runs"]
        assert len(runs) == 1 and RUN_KEYS <= set(runs[0])
        assert (runs[0]["source"], runs[0]["outcome"], runs[0]["deleted"]) == ("notes", "ok", 1)
        if not serve:  # the rest does not depend on the API running beside: checked once
            code, out, err = inlet(tmp_path, "search", "lantern", "--source", "nope", tag="bad-source")
            assert code == 2 and "no source named 'nope'" in err
            code, out, err = inlet(tmp_path, "backfill", "notes", tag="backfill")
            assert code == 0 and out.startswith("notes: ok — "), err
            code, out, err = inlet(tmp_path, "sync", "nope", tag="sync-unknown")
            assert code == 2 and "no source named 'nope'" in err
            with (tmp_path / "config.toml").open("a") as added:  # configured after the daemon read it
                added.write('[[sources]]\nname = "added"\ntype = "files"\npath = "docs"\nevery = "1h"\n')
            code, out, err = inlet(tmp_path, "status", "added", tag="status-added")
            assert code == 2 and "the running daemon does not know it" in err and "restart" in err

            busy = FileLock(index / "locks" / "notes.lock")  # as a run of the source elsewhere holds it
            assert busy.acquire(source="notes")
            try:
                code, out, err = inlet(tmp_path, "sync", "notes", "--json", tag="sync-busy")
            finally:
                busy.release()
            assert code == 1 and "Traceback" not in err, err
            (refused,) = json.loads(out)["runs"]  # reported as a run of several would be
            assert refused["outcome"] == "failed" and "source 'notes' is already being synced" in refused["error"]
            assert "Traceback" not in err
            last = ok_json(tmp_path, "search", "lantern", "--user", "alice@example.com", tag="last")
    finally:
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(120) == 0, daemon.stderr()[-3000:]
    assert not socket_path(index).exists()

    if not serve:  # the same search run directly, now that nobody holds the index: same answer
        direct = ok_json(tmp_path, "search", "lantern", "--user", "alice@example.com", tag="direct")
        assert top_ids(direct) == top_ids(last) == ["notes:note-1.md", "notes:note-2.md"]
        assert [(h.keys(), h["text"]) for h in direct["results"]] == [(h.keys(), h["text"]) for h in last["results"]]


def test_commands_are_answered_by_inlet_serve(tmp_path: Path) -> None:
    """`inlet serve` holds the index too: a forwarded sync runs in it (no daemon there), then search."""
    config = make_workdir(tmp_path)
    index = tmp_path / "index"
    server = Proc(tmp_path, "serve", "--config", str(config), tag="serve")
    try:
        wait_for("the local channel", lambda: LocalClient.find(index), server, timeout=120)
        runs = ok_json(tmp_path, "sync", tag="sync")["runs"]
        assert [(r["source"], r["outcome"], r["upserted"]) for r in runs] == [("notes", "ok", 3)]
        as_alice = ok_json(tmp_path, "search", "marker-budget crowns", "--user", "alice@example.com", tag="alice")
        assert top_ids(as_alice)[0] == "notes:note-3.md"
        (row,) = ok_json(tmp_path, "status", tag="status")["sources"]
        assert row["documents"] == 3 and row["last_run"]["outcome"] == "ok"
    finally:
        server.signal(signal.SIGTERM)
        assert server.wait(120) == 0, server.stderr()[-3000:]  # cli.md: serve stopped by SIGTERM exits 0
    assert LocalClient.find(index) is None


def test_a_desktop_agents_inlet_mcp_holds_the_index_and_answers_local_commands(tmp_path: Path) -> None:
    """`inlet mcp` started by an agent app with no daemon running opens the index itself: `inlet
    sync` and `status` run through it (they were refused, the index in use), and an `inlet daemon`
    started then takes the index over from it (probe31d F5: it was refused until the agent app quit);
    the agent's `inlet mcp` lives on, and ends as usual at the end of its input."""
    config = make_workdir(tmp_path)
    index = tmp_path / "index"
    read_end, write_end = os.pipe()  # the agent app's end of the MCP server's input, held open
    agent = Proc(tmp_path, "mcp", "--user", "alice@example.com", "--config", str(config), tag="mcp", stdin=read_end)
    os.close(read_end)
    try:
        wait_for("the local channel", lambda: LocalClient.find(index), agent, timeout=120)
        runs = ok_json(tmp_path, "sync", tag="sync")["runs"]
        assert [(r["source"], r["outcome"], r["upserted"]) for r in runs] == [("notes", "ok", 3)]
        (row,) = ok_json(tmp_path, "status", tag="status")["sources"]
        assert row["documents"] == 3 and row["last_run"]["outcome"] == "ok"
        daemon = Proc(tmp_path, "daemon", "--config", str(config), tag="daemon")
        lock = FileLock(index / "index.lock")
        try:
            wait_for("the daemon to hold the index", lambda: lock.holder().get("role") == "daemon", daemon)
            wait_for("its local channel", lambda: LocalClient.find(index), daemon)
            assert ok_json(tmp_path, "status", tag="status2")["sources"][0]["documents"] == 3  # asked of the daemon
            assert agent.popen.poll() is None  # the agent's server handed the index over and lives on
        finally:
            daemon.signal(signal.SIGTERM)
            assert daemon.wait(120) == 0, daemon.stderr()[-3000:]
    finally:
        os.close(write_end)  # the agent app quits: the end of the server's input
        assert agent.wait(120) == 0, agent.stderr()[-3000:]
    assert LocalClient.find(index) is None


def test_a_forwarded_run_is_refused_while_its_source_runs_and_once_the_daemon_stops(tmp_path: Path) -> None:
    state = SqliteState(tmp_path / "index" / "state.db")
    try:
        daemon, engine = make_daemon(tmp_path, state, {"name": "docs", "every": "1h"})
        assert daemon.run_for_client("docs", "backfill").outcome == "ok"
        assert engine.calls == [("docs", "backfill")]
        with daemon._guards["docs"]:  # a scheduled run of it is in progress
            with pytest.raises(SourceBusyError, match="'docs' is already being synced"):
                daemon.run_for_client("docs", "sync")
        daemon.stop.set()
        with pytest.raises(InletError, match="is stopping"):
            daemon.run_for_client("docs", "sync")
        assert engine.calls == [("docs", "backfill")]
    finally:
        state.close()


def forwarded(settings, run, embedder, *args: str):
    """`inlet ARGS` (CliRunner) while this process holds the index and answers local commands,
    its runs made by `run`."""
    from click.testing import CliRunner

    from inlet.cli import cli as inlet_cli

    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(index.path / "state.db")
        local = start_local_commands(settings, index, state, run)
        assert local is not None
        try:
            return CliRunner().invoke(inlet_cli, list(args))
        finally:
            local.close()
            state.close()


def test_a_forwarded_sync_reports_a_source_that_runs_and_syncs_the_others(tmp_path: Path, text_hash_embedder) -> None:
    """`inlet sync` (all sources) forwarded while the holder runs one of them (its schedule's run):
    that one is reported failed with the holder's reason, and the sources after it are still synced
    and reported, exit 1, as when the command runs directly."""

    config = make_workdir(tmp_path)
    with config.open("a") as more:
        more.write('[[sources]]\nname = "more"\ntype = "files"\npath = "docs"\n')
    settings = load_config(config)
    asked: list[str] = []

    def run(name, kind, since, restart, cancel, env):  # the holder: "notes" is running on its schedule
        asked.append(name)
        if name == "notes":
            raise SourceBusyError("source 'notes' is already being synced (pid 4242)")
        return RunResult(name, "ok", 3, 0, 0, 0, 0.5)

    result = forwarded(settings, run, text_hash_embedder, "sync", "--json", "--config", str(config))
    assert result.exit_code == 1, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [(r["source"], r["outcome"]) for r in runs] == [("notes", "failed"), ("more", "ok")]
    assert runs[0]["error"] == "source 'notes' is already being synced (pid 4242)" and asked == ["notes", "more"]


def test_ctrl_c_on_a_forwarded_backfill_ends_the_holders_run_and_reports_it_interrupted(
    tmp_path: Path, text_hash_embedder
) -> None:
    """As a direct run: the first Ctrl-C ends the run at its next checkpoint and the command prints
    the `interrupted` run (with --json) and exits 1; the holder goes on serving."""
    settings = load_config(make_workdir(tmp_path))
    running, cancels = threading.Event(), []

    def run(name, kind, since, restart, cancel, env):  # the holder's run, until the command's Ctrl-C
        cancels.append(cancel)
        running.set()
        ended = cancel.wait(60)
        return RunResult(name, "interrupted" if ended else "ok", 1, 0, 0, 0, 0.5, error="stopped")

    with Index(settings.index, embedder=text_hash_embedder) as index:
        state = SqliteState(index.path / "state.db")
        local = start_local_commands(settings, index, state, run)
        assert local is not None
        try:
            command = Proc(tmp_path, "backfill", "notes", "--json", "--config", str(settings.file), tag="ctrl-c")
            assert running.wait(60), command.stderr()
            command.signal(signal.SIGINT)
            assert command.wait(60) == 1, command.stderr()
            runs = json.loads(command.out_path.read_text())["runs"]
            assert [(r["source"], r["outcome"]) for r in runs] == [("notes", "interrupted")]
            assert "stopping at the next checkpoint" in command.stderr() and "Aborted" not in command.stderr()
            assert len(cancels) == 1 and cancels[0].is_set()
        finally:
            local.close()
            state.close()


def test_an_interrupted_backfill_says_to_resume_it_on_the_same_config(tmp_path: Path, text_hash_embedder) -> None:
    """The resume hint keeps `--config`: copied without it, the backfill would run on whatever
    index $INLET_CONFIG or ./config.toml names."""

    settings = load_config(make_workdir(tmp_path))
    other = tmp_path / "my config.toml"
    settings.file.rename(other)
    settings = load_config(other)

    def run(name, kind, since, restart, cancel, env):  # the holder's run, stopped (as by a shutdown)
        return RunResult(name, "interrupted", 1, 0, 0, 0, 0.5, error="stopped")

    result = forwarded(settings, run, text_hash_embedder, "backfill", "notes", "--config", str(other))
    assert result.exit_code == 1, result.output
    assert f"`inlet backfill notes --config '{other}'` resumes from the last checkpoint" in result.output


def test_an_interrupted_since_backfill_says_to_resume_it_with_its_since(tmp_path: Path, text_hash_embedder) -> None:
    """Probe 31e F5: the resume hint of a `--since` backfill keeps its `--since` (without it the
    command starts the full pass instead), and the run says it read only items since that date."""
    from click.testing import CliRunner

    from inlet.cli import cli as inlet_cli

    settings = load_config(make_workdir(tmp_path))
    since = "2025-01-01T00:00:00+00:00"

    def run(name, kind, asked, restart, cancel, env):  # the holder's run of a --since pass, stopped
        return RunResult(name, "interrupted", 1, 0, 0, 0, 0.5, error="stopped", since=asked.isoformat())

    with Index(settings.index, embedder=text_hash_embedder) as index:
        state = SqliteState(index.path / "state.db")
        local = start_local_commands(settings, index, state, run)
        assert local is not None
        try:
            args = ["backfill", "notes", "--since", "2025-01-01", "--config", str(settings.file)]
            result = CliRunner().invoke(inlet_cli, args)
            as_json = CliRunner().invoke(inlet_cli, [*args, "--json"])
        finally:
            local.close()
            state.close()
    assert result.exit_code == 1, result.output
    assert f"a backfill of the items modified since {since} only" in result.output
    again = f"`inlet backfill notes --since {since} --config {settings.file}` resumes from the last checkpoint"
    assert again in result.output, result.output
    assert json.loads(as_json.stdout)["runs"][0]["since"] == since


@dataclass
class SlackHolder:
    """A holder answering local commands for the sandbox's config (an engine whose environment has
    no secret, as an `inlet serve` started without any): its config file, Slack source, token
    variable, the secrets of the shell, and its state."""

    config: Path
    slack: str
    token_var: str
    secrets: dict[str, str]
    state: SqliteState


@contextmanager
def slack_holder(tmp_path: Path, sandbox, embedder) -> Iterator[SlackHolder]:
    from inlet.sync.engine import Engine

    text, secrets = sandbox.config(tmp_path / "index")
    config = tmp_path / "config.toml"
    config.write_text(text)
    settings = load_config(config)
    slack = next(s for s in settings.sources if s.type == "slack")
    with Index(settings.index, embedder=embedder) as index:
        state = SqliteState(index.path / "state.db")
        engine = Engine(settings, index, state, env={})

        def run(name, kind, since, restart, cancel, env=None):
            return engine.run(name, kind, since=since, restart=restart, cancel=cancel, env=env)

        local = start_local_commands(settings, index, state, run)
        assert local is not None
        try:
            yield SlackHolder(config, slack.name, slack.model_dump()["token_env"], secrets, state)
        finally:
            local.close()
            state.close()


def test_a_forwarded_run_uses_the_secrets_of_the_shell_it_was_typed_in(
    tmp_path: Path, sandbox, text_hash_embedder
) -> None:
    """The holder runs a forwarded sync with the secret set where the command was typed, as a
    direct run would; with it unset there, the command fails as alone: exit 2 naming the variable."""
    from click.testing import CliRunner

    from inlet.cli import cli as inlet_cli

    with slack_holder(tmp_path, sandbox, text_hash_embedder) as holder:
        args = ["sync", holder.slack, "--json", "--config", str(holder.config)]
        unset = CliRunner().invoke(inlet_cli, args, env={var: None for var in holder.secrets})
        assert unset.exit_code == 2, unset.output
        assert f"environment variable {holder.token_var!r}" in unset.output and "is not set" in unset.output
        assert holder.state.runs(holder.slack) == []  # refused before anything ran
        done = CliRunner().invoke(inlet_cli, args, env=holder.secrets)
        assert done.exit_code == 0, done.output
        (run_json,) = json.loads(done.stdout)["runs"]
        assert run_json["outcome"] == "ok" and run_json["upserted"] > 0


def test_a_forwarded_run_that_fails_says_so_on_this_shells_stderr(
    tmp_path: Path, sandbox, text_hash_embedder, caplog: pytest.LogCaptureFixture
) -> None:
    """A direct run logs its failure on stderr (exit 1 or 3, "details on stderr"); forwarded, the
    holder logs it in its own log, so the command logs the failure it got back here too."""
    from click.testing import CliRunner

    from inlet.cli import cli as inlet_cli

    with slack_holder(tmp_path, sandbox, text_hash_embedder) as holder:
        wrong = {**holder.secrets, holder.token_var: "xoxb-not-a-token"}
        args = ["sync", holder.slack, "--config", str(holder.config)]
        refused = CliRunner().invoke(inlet_cli, args, env=wrong)
        assert refused.exit_code == 3, refused.output
        here = [r for r in caplog.records if r.name == "inlet" and r.levelname == "ERROR"]
        assert any(holder.slack in r.getMessage() for r in here), [r.getMessage() for r in caplog.records]


def test_a_source_added_after_the_holder_started_is_said_so_not_denied(tmp_path: Path, text_hash_embedder) -> None:
    """The file the command read configures the source; the holder read it before: the error says
    that and what to do, instead of "no source named" about a file that names it."""
    from click.testing import CliRunner

    from inlet.cli import cli as inlet_cli

    config = make_workdir(tmp_path)
    settings = load_config(config)
    with config.open("a") as f:
        f.write('[[sources]]\nname = "later"\ntype = "files"\npath = "docs"\nevery = "1h"\n')
    with Index(settings.index, embedder=text_hash_embedder) as index:
        state = SqliteState(index.path / "state.db")
        local = start_local_commands(settings, index, state, lambda *a, **k: None)
        assert local is not None
        try:
            for args in (["sync", "later"], ["backfill", "later"], ["search", "lantern", "--source", "later"]):
                result = CliRunner().invoke(inlet_cli, [*args, "--config", str(config)])
                assert result.exit_code == 2, result.output
                assert "'later' is not configured in the process holding the index" in result.output
                assert "restart it" in result.output and "no source named" not in result.output
        finally:
            local.close()
            state.close()


def test_a_forwarded_backfill_draws_the_progress_bar_a_direct_one_draws(
    tmp_path: Path, text_hash_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probe 23a F5: on a terminal, a backfill forwarded to the holder showed nothing until its
    final line. The command now draws the holder's progress of its run while it waits (the run
    goes on only once a frame reached the terminal), and the bar ends where the run did."""
    import fcntl
    import struct
    import sys
    import termios

    from inlet.cli import cli as inlet_cli
    from inlet.connectors.files import FilesConnector
    from inlet.server.local_commands import ProgressBoard
    from inlet.sync.engine import Engine

    config = make_workdir(tmp_path)
    settings = load_config(config)
    drawn = threading.Event()

    class Waiting(FilesConnector):
        """Reads nothing until the command drew the run's first report (0 items) on its terminal."""

        def load(self, checkpoint, *, since=None):
            assert drawn.wait(60), "the command drew nothing while the holder's run went on"
            yield from super().load(checkpoint, since=since)

    class WaitingEngine(Engine):
        def connector(self, name, env=None):
            return Waiting(self.settings.source(name))

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
    shown = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the terminal's other end closed: all was read
                return
            if not chunk:
                return
            shown.extend(chunk)
            if b"notes" in shown and b"0 items" in shown:
                drawn.set()

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    monkeypatch.setenv("COLUMNS", "200")
    board = ProgressBoard()
    with Index(settings.index, embedder=text_hash_embedder) as index:
        state = SqliteState(index.path / "state.db")
        engine = WaitingEngine(settings, index, state, env={}, on_progress=board.update)

        def run(name, kind, since, restart, cancel, env=None):
            return engine.run(name, kind, since=since, restart=restart, cancel=cancel, env=env)

        local = start_local_commands(settings, index, state, run, board)
        assert local is not None
        terminal = open(slave, "w", encoding="utf-8", closefd=False)
        try:
            monkeypatch.setattr(sys, "stderr", terminal)
            inlet_cli.main(["backfill", "notes", "--config", str(config)], standalone_mode=False)
            terminal.flush()
        finally:
            monkeypatch.undo()
            terminal.close()
            os.close(slave)
            local.close()
            state.close()
    reader.join(60)
    os.close(master)
    text = shown.decode("utf-8", "replace")
    assert drawn.is_set() and "3/3 files" in text and "· 3 indexed ·" in text, text[-2000:]  # the last frame
    assert state_outcomes(tmp_path) == ["ok"]


def state_outcomes(tmp_path: Path) -> list[str]:
    state = SqliteState(tmp_path / "index" / "state.db")
    try:
        return [run.outcome for run in state.runs("notes")]
    finally:
        state.close()


def test_inlet_serves_stop_ends_a_forwarded_run_at_its_checkpoint_and_answers_it(
    tmp_path: Path, text_hash_embedder
) -> None:
    """`inlet serve` stops as `inlet daemon` does (probe31e F6): its signal's event reaches the
    forwarded runs at once, and leaving waits for them (up to the daemon's grace), so the command
    gets its `interrupted` run instead of a holder that died under it (SIGABRT, exit 134)."""
    from inlet.compose import local_commands_of_server

    config = make_workdir(tmp_path)
    for n in range(40):
        (tmp_path / "docs" / f"more-{n}.md").write_text(f"Page {n} of the harbour log. " * 50)
    settings = load_config(config)
    stop = threading.Event()  # what `stop_on_signals` gives `inlet serve`
    answers: list[dict] = []
    with Index(settings.index, embedder=text_hash_embedder) as index:
        with local_commands_of_server(settings, index, stop=stop):
            client = LocalClient.find(index.path)
            assert client is not None
            stop.set()  # the signal, before or while the forwarded run goes
            caller = threading.Thread(
                target=lambda: answers.append(client.call("run", {"sources": ["notes"], "kind": "backfill"}))
            )
            caller.start()
            caller.join(60)
    (run,) = answers[0]["runs"]
    assert (run["source"], run["outcome"]) == ("notes", "interrupted")
