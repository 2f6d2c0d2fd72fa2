"""Several `inlet daemon` processes on one PostgreSQL and one Chroma server (real servers, real
processes): each source is synced by one of them, a killed one's source is taken over and finished
with every document exactly once, and a frozen one that wakes after its lease was taken is fenced
out (its commit refused)."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.sync.test_daemon import Proc, wait_for, write_notes

LEASE = 3  # seconds: short, so a takeover happens within the test


def pg_config(tmp_path: Path, database_url: str, chroma_url: str, sources: dict[str, str]) -> str:
    config = tmp_path / "config.toml"
    text = (
        # one backfill pass: these tests freeze and kill daemons mid-backfill (a recent-first pass would
        # index the whole new corpus before the first checkpoint; its kills: tests/sync/test_recent_first.py)
        f'[index]\npath = "index"\ndatabase_url = "{database_url}"\nchroma_url = "{chroma_url}"\nrecent_first = "0"\n'
        f'[daemon]\njitter = "0s"\nlease = "{LEASE}s"\n[server]\nport = 0\n'
    )
    for name, folder in sources.items():
        text += (
            f'[[sources]]\nname = "{name}"\ntype = "files"\npath = "{folder}"\nevery = "1h"\ncheckpoint_every = 10\n'
        )
    config.write_text(text)
    return str(config)


def query(url: str, sql: str, *params: Any) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as db:
        try:
            return db.execute(sql, params).fetchall()  # type: ignore[arg-type]
        except psycopg.errors.UndefinedTable:
            return []  # before the first daemon migrated the schema


def checkpointed(url: str, source: str) -> tuple[str, int]:
    rows = query(url, "SELECT phase, checkpoint FROM sources WHERE name = %s", source)
    if not rows or rows[0][1] is None:
        return ("", 0)
    return rows[0][0], len(json.loads(rows[0][1]).get("files", []))


def holder_pid(url: str, source: str) -> int | None:
    rows = query(url, "SELECT holder FROM leases WHERE source = %s AND expires > now()", source)
    return int(rows[0][0].rsplit(":", 1)[1]) if rows else None


def assert_exactly_once(url: str, chroma_url: str, expected: set[str]) -> None:
    """Every expected document once in the catalog, its chunks once in the catalog and in Chroma."""
    import chromadb

    from inlet.index.vectors import COLLECTION

    docs = dict(query(url, "SELECT doc_id, chunks FROM documents"))
    assert set(docs) == expected
    chunks = [r[0] for r in query(url, "SELECT chunk_id FROM chunks")]
    assert len(chunks) == len(set(chunks)) == sum(docs.values())
    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_url.rsplit(":", 1)[1]))
    assert client.get_collection(COLLECTION).count() == len(chunks)


@pytest.fixture
def chroma_url(chroma_server_url: str) -> str:
    import chromadb

    from inlet.index.vectors import COLLECTION

    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server_url.rsplit(":", 1)[1]))
    if COLLECTION in [c.name for c in client.list_collections()]:
        client.delete_collection(COLLECTION)
    return chroma_server_url


def stop(*procs: Proc) -> None:
    for proc in procs:
        if proc.popen.poll() is None:
            proc.signal(signal.SIGCONT)
            proc.signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(90)


def test_two_daemons_share_the_sources_and_take_over_from_a_killed_one(
    tmp_path: Path, database_url: str, chroma_url: str
) -> None:
    expected = write_notes(tmp_path / "docs", 150) | {
        i.replace("notes:", "more:") for i in write_notes(tmp_path / "more", 40)
    }
    config = pg_config(tmp_path, database_url, chroma_url, {"notes": "docs", "more": "more"})
    one = Proc(tmp_path, "daemon", "--config", config, tag="one")
    two = Proc(tmp_path, "daemon", "--config", config, tag="two")
    try:
        wait_for("a checkpoint of notes", lambda: checkpointed(database_url, "notes")[1] >= 20, one)
        victim_pid = holder_pid(database_url, "notes")
        victim, survivor = (one, two) if victim_pid == one.popen.pid else (two, one)
        assert victim_pid == victim.popen.pid and checkpointed(database_url, "notes")[0] == "backfill"
        victim.signal(signal.SIGKILL)
        victim.wait(30)
        wait_for(
            "the survivor to finish notes",
            lambda: (
                checkpointed(database_url, "notes")[0] == "incremental"
                and checkpointed(database_url, "more")[0] == "incremental"
            ),
            survivor,
            timeout=240,
        )
        assert_exactly_once(database_url, chroma_url, expected)
        for source in ("notes", "more"):  # one complete backfill each; only the killed one's run failed
            ok = query(database_url, "SELECT count(*) FROM runs WHERE source = %s AND outcome = 'ok'", source)
            assert ok == [(1,)], source
        assert "taking over a run a stopped process left unfinished" in survivor.stderr()
    finally:
        stop(one, two)


def test_a_frozen_daemon_is_fenced_out_when_it_wakes(tmp_path: Path, database_url: str, chroma_url: str) -> None:
    expected = write_notes(tmp_path / "docs", 150)
    config = pg_config(tmp_path, database_url, chroma_url, {"notes": "docs"})
    frozen = Proc(tmp_path, "daemon", "--config", config, tag="frozen")
    successor: Proc | None = None
    try:
        wait_for("a checkpoint", lambda: checkpointed(database_url, "notes")[1] >= 20, frozen)
        frozen.signal(signal.SIGSTOP)
        assert checkpointed(database_url, "notes")[0] == "backfill"
        # serving: on this host nothing made the `[index] path` folder, where its local-operator file goes
        successor = Proc(tmp_path, "daemon", "--serve", "--config", config, tag="successor")
        wait_for(
            "the takeover to finish",
            lambda: checkpointed(database_url, "notes")[0] == "incremental",
            successor,
            timeout=240,
        )
        final = query(database_url, "SELECT checkpoint FROM sources WHERE name = 'notes'")
        frozen.signal(signal.SIGCONT)
        # The woken daemon's own log, not the runs table: the successor already closed its run there.
        wait_for("the woken daemon's run to fail", lambda: "source 'notes' is failing" in frozen.stderr(), frozen)
        assert query(database_url, "SELECT checkpoint FROM sources WHERE name = 'notes'") == final
        assert checkpointed(database_url, "notes")[0] == "incremental"  # not moved back to its backfill
        assert_exactly_once(database_url, chroma_url, expected)
        # Frozen outside a transaction, its next commit is refused; frozen inside one, its session was
        # ended: by the server (idle_in_transaction_session_timeout) or, frozen in the middle of a
        # statement, by the successor taking the lease (pg_terminate_backend: "administrator command").
        failure = frozen.stderr().split("source 'notes' is failing", 1)[1]
        assert any(
            sign in failure
            for sign in (
                "commit was refused",
                "server closed the connection",
                "idle-in-transaction timeout",
                "administrator command",
            )
        ), failure
        assert holder_pid(database_url, "notes") in (None, successor.popen.pid)
        api = json.loads((tmp_path / "index" / "daemon-api.json").read_text())
        assert httpx.get(api["api_url"] + "/healthz", timeout=30).status_code == 200
    finally:
        stop(frozen, *([successor] if successor else []))


def one_source(tmp_path: Path, database_url: str, name: str) -> Any:
    """Settings of one hourly `files` source on the test's database (no Chroma is reached)."""
    from inlet.config import parse_config

    (tmp_path / "docs").mkdir()
    raw = {
        "index": {"database_url": database_url, "chroma_url": "http://unused"},
        "daemon": {"jitter": "0s"},
        "sources": [{"name": name, "type": "files", "path": str(tmp_path / "docs"), "every": "1h"}],
    }
    return parse_config(raw, tmp_path / "config.toml")


def test_a_sync_due_while_the_database_refuses_is_one_failure_line_and_a_retry(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The job cannot even read whether its source is paused: logged once naming the source and
    `database_url` (no traceback), and retried with the backoff of a failed run."""
    import logging

    from inlet.storage.postgres.state import PgState
    from inlet.sync.daemon import RETRY_BASE, Daemon
    from tests.index.test_pg_storage import accepting
    from tests.sync.test_daemon import Clock, FakeEngine, jobs

    settings = one_source(tmp_path, database_url, "notes")
    state = PgState(settings.index)
    state.pool.timeout = 1.0  # type: ignore[attr-defined]  # a run's wait for a connection, short here
    clock = Clock()
    daemon = Daemon(settings, FakeEngine(state, tmp_path / "index"), clock=clock)  # type: ignore[arg-type]
    accepting(database_url, False)
    try:
        with caplog.at_level(logging.DEBUG, logger="inlet"):
            daemon._tracked(daemon.sync_job, "notes")  # as the scheduler fires it
            daemon._tracked(daemon.sync_job, "notes", "retry")  # still down: counted, not logged again
    finally:
        accepting(database_url, True)
        state.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None, [r.getMessage() for r in errors]
    assert "'notes' is failing" in errors[0].getMessage() and "database_url" in errors[0].getMessage()
    assert "retry:notes" in jobs(daemon)
    assert daemon._backoff_until["notes"] == clock.now + 2 * RETRY_BASE  # the second failure in a row


def test_an_event_heard_while_another_daemon_runs_the_source_follows_that_run(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another host holds the source's lease: the change event's sync is no failure (no ERROR, no
    streak, no backoff); it runs again when that lease ends, once for every event meanwhile, their
    containers merged (probe31b F2)."""
    import logging
    from datetime import timezone

    from inlet.storage.postgres.leases import PgLeases
    from inlet.storage.postgres.state import PgState
    from inlet.sync.daemon import Daemon
    from tests.sync.test_daemon import Clock, FakeEngine, jobs

    class LeasedEngine(FakeEngine):
        """Runs only while holding the source's lease, as the engine does."""

        def run(self, name: str, kind: str = "sync", scope: frozenset[str] | None = None, **_: Any) -> Any:
            with self.leases.hold(name):
                self.scopes.append(scope)
                return super().run(name, kind, scope=scope)

    settings = one_source(tmp_path, database_url, "mail")
    state = PgState(settings.index)
    engine = LeasedEngine(state, tmp_path / "index")
    engine.leases, engine.scopes = PgLeases(settings.index, 30), []  # type: ignore[assignment,attr-defined]
    other = PgLeases(settings.index, 30)  # another host's daemon
    daemon = Daemon(settings, engine, clock=Clock())  # type: ignore[arg-type]
    try:
        fence = other.acquire("mail")
        expires = other.holders()["mail"]["expires"]
        with caplog.at_level(logging.INFO, logger="inlet"):
            assert daemon.event_sync("mail", frozenset({"inbox"})) is None
            assert daemon.event_sync("mail", frozenset({"sent"})) is None  # another event meanwhile
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        assert "follows the run of it in progress elsewhere" in caplog.text
        assert state.failure_streak("mail") == 0 and not daemon._backoff_until and not daemon._failing
        follow = [j for j in jobs(daemon) if j.startswith("event-after:")]
        assert follow == ["event-after:mail"] and "retry:mail" not in jobs(daemon)
        when = jobs(daemon)["event-after:mail"].trigger.run_date.astimezone(timezone.utc).timestamp()
        assert expires <= when < expires + 1  # when the other daemon's lease ends
        other.release(fence)
        job = jobs(daemon)["event-after:mail"]
        job.remove()
        result = job.func(*job.args)
        assert result is not None and result.outcome == "ok"
        assert engine.scopes == [frozenset({"inbox", "sent"})]  # type: ignore[attr-defined]
        assert engine.calls == [("mail", "event")]
    finally:
        other.close()
        engine.leases.close()  # type: ignore[attr-defined]
        state.close()
