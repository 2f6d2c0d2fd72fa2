"""`inlet status` (prose) and the console's overview name the daemon holding each source's lease on
PostgreSQL, and when that lease runs out (real server, tests/servers.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.config import IndexConfig, Settings, load_config
from inlet.connectors import SourceConfig
from inlet.index.store import Index
from inlet.storage import Fence, open_backend
from inlet.storage.postgres.leases import PgLeases
from inlet.server.console import overview


def _files_sources(tmp_path: Path, database_url: str, *names: str) -> Path:
    """A config of `files` sources `names` (one empty folder) on the PostgreSQL index."""
    (tmp_path / "docs").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[index]\ndatabase_url = "{database_url}"\nchroma_url = "http://unused"\n'
        + "".join(f'[[sources]]\nname = "{n}"\ntype = "files"\npath = "{tmp_path / "docs"}"\n' for n in names)
    )
    return config


def test_status_and_console_show_the_lease_holder(database_url: str, tmp_path: Path) -> None:
    config = _files_sources(tmp_path, database_url, "notes", "idle")
    settings = load_config(config)
    leases = PgLeases(settings.index, 30.0)
    state = open_backend(settings.index).state()
    try:
        with leases.hold("notes"):
            result = CliRunner().invoke(cli, ["status", "--config", str(config)])
            assert result.exit_code == 0, result.output
            notes, idle = result.output.split("idle (files)")
            assert f"held by {leases.holder} (lease until 20" in notes and "held by" not in idle
            rows = {s["name"]: s for s in overview(settings, state)["sources"]}
            assert rows["notes"]["holder"]["holder"] == leases.holder and rows["idle"]["holder"] is None
        assert "held by" not in CliRunner().invoke(cli, ["status", "--config", str(config)]).output
    finally:
        leases.close()
        state.close()


def test_the_documented_status_json_shape_names_every_key_of_a_source(database_url: str, tmp_path: Path) -> None:
    """docs/reference/cli.md's `inlet status --json` shape holds every key a source has on
    PostgreSQL (`holder` too, and the keys of a lease held)."""
    config = _files_sources(tmp_path, database_url, "notes")
    leases = PgLeases(load_config(config).index, 30.0)
    try:
        with leases.hold("notes"):
            result = CliRunner().invoke(cli, ["status", "--json", "--config", str(config)])
            assert result.exit_code == 0, result.output
        (source,) = json.loads(result.output)["sources"]
    finally:
        leases.close()
    page = (Path(__file__).parent.parent / "docs" / "reference" / "cli.md").read_text()
    shape = page.split("`inlet status --json` →", 1)[1].split('"unconfigured"', 1)[0]
    assert not [key for key in source if f'"{key}"' not in shape], list(source)
    assert not [key for key in source["holder"] if f'"{key}"' not in page], source["holder"]


class StartsARunWhenAsked:
    """The real state store, but a daemon on another host takes the source's lease and starts a
    run just as `running` is first asked: the moment `inlet status` races with a run starting."""

    def __init__(self, state: Any, leases: PgLeases, source: str, held: ExitStack) -> None:
        self.state, self.leases, self.racing, self.held = state, leases, source, held

    def running(self, name: str) -> Any:
        if name == self.racing and not self.held._exit_callbacks:
            self.held.enter_context(self.leases.hold(name))
            self.state.save_progress(self.state.start_run(name, "sync"), 0, None, None, None)
        return self.state.running(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.state, name)


def test_a_run_starting_while_status_reads_is_shown_running_never_failed(database_url: str, tmp_path: Path) -> None:
    from inlet.status import sources_status

    settings = load_config(_files_sources(tmp_path, database_url, "notes"))
    leases = PgLeases(settings.index, 30.0)
    state = open_backend(settings.index).state()
    try:
        with ExitStack() as held:
            racing = StartsARunWhenAsked(state, leases, "notes", held)
            report = sources_status(settings, racing)["sources"][0]  # type: ignore[arg-type]
            assert held._exit_callbacks, "the run was started during the read"
            assert report["running"] is not None and report["running"]["kind"] == "sync"
            assert report["last_run"] is None or report["last_run"]["outcome"] != "failed", report["last_run"]
            assert report["holder"]["holder"] == leases.holder
    finally:
        leases.close()
        state.close()


def test_a_run_of_a_killed_process_of_this_host_is_shown_interrupted_not_running(
    database_url: str, tmp_path: Path
) -> None:
    """Its lease runs on until it lapses, but the process is known gone: as on the folder."""
    import socket
    import subprocess
    import sys

    import psycopg

    from inlet.status import sources_status

    settings = load_config(_files_sources(tmp_path, database_url, "notes"))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = f"{socket.gethostname()}:{ended.stdout.strip()}"
    leases = PgLeases(settings.index, 30.0)  # the schema
    state = open_backend(settings.index).state()
    try:
        state.save_progress(state.start_run("notes", "backfill"), 10, 10, 100, "files")
        with psycopg.connect(database_url, autocommit=True) as db:  # what `inlet backfill` killed by -9 leaves
            db.execute(
                "INSERT INTO leases (source, holder, fence, expires) VALUES ('notes', %s, 3, now() + interval '60 s')",
                (dead,),
            )
        report = sources_status(settings, state)["sources"][0]
        assert report["running"] is None
        assert report["last_run"]["outcome"] == "failed" and "interrupted" in report["last_run"]["error"]
    finally:
        leases.close()
        state.close()


class OnWarning(logging.Handler):
    """Calls `action` at the first warning that contains `words`."""

    def __init__(self, words: str, action: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self.words, self.action, self.seen = words, action, 0

    def emit(self, record: logging.LogRecord) -> None:
        if self.words in record.getMessage() and not self.seen:
            self.seen += 1
            self.action()


def test_a_run_cut_off_from_its_database_records_why_once_it_is_back(
    database_url: str, chroma_server_url: str, text_hash_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends every session of the process while a commit is in flight, and takes no new
    one for a while (a restart, a failover): the run fails, and once the database answers again its
    record says why, with the lease released; nothing shows it running."""
    import psycopg

    from inlet.storage.postgres import catalog
    from inlet.storage.postgres.pool import holder_name, session_name
    from tests.sync.test_engine import Script, ScriptEngine, doc

    server, name = database_url.rsplit("/", 1)
    real_check = catalog.check_fence

    def admin(sql: str) -> None:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as db:
            db.execute(sql.replace("DB", f'"{name}"'), (session_name(holder_name()),) if "%s" in sql else None)

    def cut_off(db: psycopg.Connection, fence: Fence | None) -> None:
        monkeypatch.setattr(catalog, "check_fence", real_check)  # once
        admin("ALTER DATABASE DB ALLOW_CONNECTIONS false")
        admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s")
        real_check(db, fence)  # the server has ended this session: the statement fails

    settings = Settings(
        index=IndexConfig(database_url=database_url, chroma_url=chroma_server_url),
        sources=[SourceConfig(name="one", type="script")],
    )
    Script.plan, Script.calls = [[doc(1), doc(2)]], []
    leases = PgLeases(settings.index, 30.0)
    state = open_backend(settings.index).state()
    state.pool.timeout = 2.0  # type: ignore[attr-defined]  # how long a try waits for a connection
    back = OnWarning("could not record how its run ended", lambda: admin("ALTER DATABASE DB ALLOW_CONNECTIONS true"))
    logging.getLogger("inlet").addHandler(back)
    monkeypatch.setattr(catalog, "check_fence", cut_off)
    try:
        with Index(settings.index, embedder=text_hash_embedder) as index:
            result = ScriptEngine(settings, index, state, leases=leases).run("one")
        assert result.outcome == "failed" and back.seen == 1
        run = state.recent_runs("one", 1)[0]
        assert run.outcome == "failed" and run.error == result.error
        assert f"the index database at 127.0.0.1:{server.rsplit(':', 1)[1]}/{name}" in run.error
        assert "terminating connection due to administrator command" in run.error
        assert state.running("one") is None and "one" not in leases.holders()
    finally:
        logging.getLogger("inlet").removeHandler(back)
        admin("ALTER DATABASE DB ALLOW_CONNECTIONS true")
        leases.close()
        state.close()


def test_inlet_sync_beside_a_daemon_holding_one_source_syncs_and_reports_the_others(
    database_url: str, chroma_server_url: str, tmp_path: Path
) -> None:
    """`inlet sync` (all sources) from a host while another process holds one source's lease: that
    source's entry is failed naming the holder, every other source is synced and reported (in
    `--json` too), exit 1."""
    import json

    config = _files_sources(tmp_path, database_url, "first", "busy", "last")
    config.write_text(config.read_text().replace("http://unused", chroma_server_url))
    settings = load_config(config)
    leases = PgLeases(settings.index, 30.0)
    state = open_backend(settings.index).state()
    try:
        with leases.hold("busy"):
            result = CliRunner().invoke(cli, ["sync", "--json", "--config", str(config)])
        assert result.exit_code == 1, result.output
        runs = {r["source"]: r for r in json.loads(result.stdout)["runs"]}
        assert list(runs) == ["first", "busy", "last"]
        assert runs["first"]["outcome"] == runs["last"]["outcome"] == "ok"
        assert [r.outcome for r in state.recent_runs("last", 5)] == ["ok"]
        assert runs["busy"]["outcome"] == "failed"
        assert f"source 'busy' is already being synced (by {leases.holder}, lease until" in runs["busy"]["error"]
        assert [r.kind for r in state.recent_runs("busy", 5)] == []  # nothing was run, nor recorded
    finally:
        leases.close()
        state.close()
