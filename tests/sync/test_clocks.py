"""Hosts whose clocks disagree share one schedule: on PostgreSQL the state keeps its times in the
database's clock (as the leases do) and gives them to each host in its own clock, so a host whose
clock is wrong moves no other host's schedule; a run recorded in a host's future (another clock's
time) is flagged by `inlet status` and counted from now by the schedule.

A skewed host is simulated in-process by the clocks the code takes (`Daemon(clock=...)`, the state's
and the leases' `clock`); the database's clock is the real one, as on a real skewed host."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from inlet.cli import cli
from inlet.config import parse_config
from inlet.status import sources_status
from inlet.storage import RunRecord, SourceState
from inlet.sync.daemon import Daemon
from tests.sync.test_daemon import Clock, FakeEngine, jobs, make_daemon

HOUR = 3600.0


def pg_settings(tmp_path: Path, database_url: str) -> Any:
    (tmp_path / "docs").mkdir(exist_ok=True)
    raw = {
        "index": {"path": str(tmp_path / "index"), "database_url": database_url, "chroma_url": "http://unused"},
        "daemon": {"jitter": "0s"},
        "sources": [{"name": "notes", "type": "files", "path": str(tmp_path / "docs"), "every": "1h"}],
    }
    return parse_config(raw, tmp_path / "config.toml")


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def first_sync(daemon: Daemon, now: float) -> float:
    """When the scheduled sync of `notes` first fires after `now` (APScheduler's arithmetic)."""
    job = jobs(daemon)["sync:notes"]
    fire = job.trigger.get_next_fire_time(None, datetime.fromtimestamp(now, timezone.utc))
    return float(fire.timestamp())


@pytest.mark.parametrize("writer_skew, reader_skew", [(HOUR, 0.0), (0.0, -HOUR)], ids=["writer-ahead", "reader-behind"])
def test_a_run_synced_by_one_host_is_scheduled_from_its_end_by_another_whatever_their_clocks(
    tmp_path: Path, database_url: str, writer_skew: float, reader_skew: float
) -> None:
    """probe31b F3: a host whose clock ran an hour ahead of another's pushed that host's schedule of
    the sources it synced an hour into the future; each host now counts `every` from the run's end
    in its own clock."""
    from inlet.storage.postgres.state import PgState

    settings = pg_settings(tmp_path, database_url)
    writer, reader = PgState(settings.index), PgState(settings.index)
    writer.clock = lambda: time.time() + writer_skew
    clock = Clock(time.time() + reader_skew)
    reader.clock = clock
    try:
        run = writer.start_run("notes", "sync")
        run.outcome = "ok"
        writer.finish_run(run)
        writer.save_source(SourceState("notes", {"n": 1}, "incremental", 1, None, writer.clock()))

        last = reader.last_run("notes")
        assert last is not None and last.finished_at == pytest.approx(clock.now, abs=5)  # in the reader's clock
        assert reader.source("notes").last_prune == pytest.approx(clock.now, abs=5)
        daemon = Daemon(settings, FakeEngine(reader, tmp_path / "index"), clock=clock)  # type: ignore[arg-type]
        daemon.schedule()
        assert "catchup:notes" not in jobs(daemon)  # it just ran: nothing was missed
        assert first_sync(daemon, clock.now) == pytest.approx(clock.now + HOUR, abs=5)
        assert not daemon._still_due("notes", "schedule")  # another daemon ran it a moment ago
        clock.now += HOUR
        assert daemon._still_due("notes", "schedule")  # an hour later, in the reader's clock, it is due
    finally:
        writer.close()
        reader.close()


def test_every_time_the_state_keeps_reads_in_each_hosts_own_clock(tmp_path: Path, database_url: str) -> None:
    """Progress, pauses, prunes, a service's Retry-After and the daemon's plans, written by a host an
    hour behind, read in the clock of a host on time (and `inlet status` shows them so)."""
    from inlet.storage import open_backend
    from inlet.storage.postgres.state import PgState

    settings = pg_settings(tmp_path, database_url)
    behind, on_time = PgState(settings.index), PgState(settings.index)
    behind.clock = lambda: time.time() - HOUR
    try:
        now = time.time()
        run = behind.start_run("notes", "sync")
        behind.save_progress(run, 3, 1, 10, "files")
        flight = on_time.running("notes")
        assert flight is not None
        assert flight["started_at"] == pytest.approx(now, abs=5) and flight["updated"] == pytest.approx(now, abs=5)
        run.outcome, run.retry_at = "failed", behind.clock() + 600  # its service asked for 10 minutes
        behind.finish_run(run)
        failed = on_time.last_run("notes")
        assert failed is not None and failed.retry_at == pytest.approx(now + 600, abs=5)
        assert failed.waits_until(now) == failed.retry_at
        behind.set_paused("notes", True)
        assert on_time.paused()["notes"] == pytest.approx(now, abs=5)
        behind.set_paused("notes", False)
        behind.set_next_runs(1, {"notes": behind.clock() + 60})
        assert on_time.daemon_next_runs()["notes"][0] == pytest.approx(now + 60, abs=5)
        assert open_backend(settings).overview(on_time).planned["notes"] == pytest.approx(now + 60, abs=5)
        (row,) = sources_status(settings, on_time)["sources"]
        assert epoch(row["retry_not_before"]) == pytest.approx(now + 600, abs=5)
        assert row["recorded_ahead_seconds"] is None
        mine = behind.last_run("notes")  # and the writer reads them back in its own clock
        assert mine is not None and mine.retry_at == pytest.approx(behind.clock() + 600, abs=5)
    finally:
        behind.close()
        on_time.close()


def test_a_lease_held_elsewhere_ends_in_this_hosts_clock(tmp_path: Path, database_url: str) -> None:
    """A daemon an hour behind that finds a source busy asks again when the lease has run out, not
    an hour later (the lease's end as the database's clock has it)."""
    from inlet.storage.postgres.leases import PgLeases
    from inlet.storage.postgres.state import PgState

    settings = pg_settings(tmp_path, database_url)
    holder = PgLeases(settings.index, 30.0)
    clock = Clock(time.time() - HOUR)
    asking = PgLeases(settings.index, 30.0)
    asking.clock = clock
    state = PgState(settings.index)
    state.clock = clock
    try:
        with holder.hold("notes"):
            expires = asking.holders()["notes"]["expires"]
            assert clock.now < expires <= clock.now + 31
            engine = FakeEngine(state, tmp_path / "index")
            engine.leases = asking  # type: ignore[assignment]
            daemon = Daemon(settings, engine, clock=clock)  # type: ignore[arg-type]
            daemon._watch_lease("notes")
            when = jobs(daemon)["takeover:notes"].trigger.run_date.timestamp()
            assert when == pytest.approx(expires + 0.05, abs=0.01)
    finally:
        holder.close()
        asking.close()
        state.close()


def test_a_run_recorded_in_this_hosts_future_is_flagged_and_scheduled_from_now(tmp_path: Path, state: Any) -> None:
    """Left by an inlet that kept each host's own clock (or this host's clock was set back): the
    schedule counts from now instead of waiting for that time, and `inlet status` says so."""
    now = time.time()
    state.save_source(SourceState("docs", {"n": 1}, "incremental", 1, None, now + HOUR))  # a prune then too
    state.add_run(RunRecord("docs", "sync", now + HOUR - 5, now + HOUR, "ok"))
    daemon, engine = make_daemon(
        tmp_path, state, {"name": "docs", "every": "30m", "prune_every": "1h"}, clock=Clock(now)
    )
    daemon.schedule()
    at = datetime.fromtimestamp(now, timezone.utc)
    fire = jobs(daemon)["sync:docs"].trigger.get_next_fire_time(None, at)
    assert fire.timestamp() == pytest.approx(now + 1800, abs=1)  # not an hour and a half away
    assert jobs(daemon)["prune:docs"].trigger.get_next_fire_time(None, at).timestamp() == pytest.approx(
        now + HOUR, abs=1
    )  # not two hours away
    assert daemon._still_due("docs", "schedule")  # when it really ended is unknown: not taken as recent
    (row,) = sources_status(daemon.settings, state)["sources"]
    assert row["recorded_ahead_seconds"] == pytest.approx(HOUR, abs=5)
    assert epoch(row["next_run"]) == pytest.approx(now + 1800, abs=5)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[index]\npath = "{tmp_path / "index"}"\n'
        f'[[sources]]\nname = "docs"\ntype = "files"\npath = "{tmp_path / "docs"}"\nevery = "30m"\n'
    )
    prose = CliRunner().invoke(cli, ["status", "--config", str(config)])
    assert prose.exit_code == 0, prose.output
    assert "clock: its last run is recorded" in prose.output and "in this host's future" in prose.output
    daemon.prune_job("docs")  # as the prune fires: not skipped as if one had just run
    assert ("docs", "prune") in engine.calls


@pytest.fixture
def state(tmp_path: Path) -> Any:
    from inlet.storage.sqlite.state import SqliteState

    db = SqliteState(tmp_path / "index" / "state.db")
    yield db
    db.close()
