"""The scheduled sync daemon: schedules, catch-up, backoff, overlap, parallelism, and a real process
killed and stopped mid-sync.

Scheduling is tested with a controllable clock and a fake engine (the engine is not under test
here); the process tests run `python -m inlet daemon` on a `files` source with the real engine.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from inlet.config import parse_config
from inlet.errors import SourceBusyError
from inlet.storage.lock import FileLock
from inlet.status import SourcesCollector, sources_status
from inlet.sync.daemon import RETRY_BASE, Daemon, backoff, due_at_start
from inlet.sync.engine import ORPHANED, Engine, RunResult
from inlet.storage.sqlite.leases import FolderLeases
from inlet.storage import RunRecord, SourceState
from inlet.storage.sqlite.state import SqliteState

NOON = datetime(2024, 3, 1, 12, 5, tzinfo=timezone.utc).timestamp()  # a Friday, 12:05 UTC


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeEngine:
    """Records runs in a real SqliteState like the engine does; outcomes are scripted per source."""

    def __init__(self, state: SqliteState, path: Path) -> None:
        self.state = state
        self.stop = threading.Event()
        self.index = SimpleNamespace(path=path)
        self.leases = FolderLeases(path / "locks")
        self.outcomes: dict[str, list[str]] = {}
        self.calls: list[tuple[str, str]] = []
        self.hold: threading.Event | None = None  # runs wait on it when set
        self.entered = threading.Semaphore(0)
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def _record(self, name: str, kind: str, outcome: str) -> RunResult:
        with self._lock:
            self.calls.append((name, kind))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        self.entered.release()
        try:
            if self.hold is not None:
                assert self.hold.wait(20), "test never released the run"
            run = self.state.start_run(name, kind)
            run.outcome = outcome
            run.error = "boom" if outcome == "failed" else None
            self.state.finish_run(run)
            if outcome != "failed":
                self.state.save_source(SourceState(name, {"n": 1}, "incremental", 1, None, time.time()))
            return RunResult(name, outcome, 1, 0, 0, 0, 0.01, run.error)
        finally:
            with self._lock:
                self.running -= 1

    def run(self, name: str, kind: str = "sync", scope: frozenset[str] | None = None, **_: Any) -> RunResult:
        script = self.outcomes.get(name)
        kind = "event" if scope is not None else kind  # a scoped run is recorded so, as the engine does
        return self._record(name, kind, script.pop(0) if script else "ok")

    def prune(self, name: str) -> RunResult:
        return self._record(name, "prune", "ok")


def settings_for(tmp_path: Path, *sources: dict[str, Any], **daemon: Any) -> Any:
    (tmp_path / "docs").mkdir(exist_ok=True)
    raw = {
        "index": {"path": str(tmp_path / "index")},
        "daemon": {"jitter": "0s", "retry_max": "5m", **daemon},
        "sources": [{"type": "files", "path": str(tmp_path / "docs"), **s} for s in sources],
    }
    return parse_config(raw, tmp_path / "config.toml")


@pytest.fixture
def state(tmp_path: Path) -> Any:
    db = SqliteState(tmp_path / "index" / "state.db")
    yield db
    db.close()


def make_daemon(
    tmp_path: Path, state: SqliteState, *sources: dict[str, Any], clock: Clock | None = None, **daemon: Any
) -> tuple[Daemon, FakeEngine]:
    engine = FakeEngine(state, tmp_path / "index")
    settings = settings_for(tmp_path, *sources, **daemon)
    return Daemon(settings, engine, clock=clock or Clock()), engine  # type: ignore[arg-type]


def past_run(
    state: SqliteState, name: str, started: float, finished: float, outcome: str = "ok", kind: str = "sync"
) -> None:
    if kind != "event":  # a scoped event run moves no source-wide checkpoint
        state.save_source(SourceState(name, {"n": 1}, "incremental", 1, None, finished))
    run = state.start_run(name, kind)
    state._exec(
        "UPDATE runs SET started_at = ?, finished_at = ?, outcome = ? WHERE id = ?",
        (started, finished, outcome, run.id),
    )


def jobs(daemon: Daemon) -> dict[str, Any]:
    return {job.id: job for job in daemon.scheduler.get_jobs()}


def fire_times(job: Any, start: float, count: int) -> list[float]:
    """The next `count` fire times of a job's trigger after `start`, by APScheduler's own arithmetic."""
    out: list[float] = []
    previous = None
    now = datetime.fromtimestamp(start, timezone.utc)
    for _ in range(count):
        nxt = job.trigger.get_next_fire_time(previous, now)
        out.append(nxt.timestamp())
        previous = now = nxt
    return out


# --- schedules --------------------------------------------------------------------------------------
def test_cron_and_interval_schedules_fire_on_time(tmp_path: Path, state: SqliteState) -> None:
    past_run(state, "cron", NOON - 60, NOON - 30)  # ran at 12:04: no catch-up
    past_run(state, "tick", NOON - 600, NOON - 300)  # finished 12:00, every 20m: next at 12:20
    daemon, _ = make_daemon(
        tmp_path,
        state,
        {"name": "cron", "schedule": "*/15 * * * *"},
        {"name": "tick", "every": "20m"},
        {"name": "manual"},
    )
    daemon.schedule()
    found = jobs(daemon)
    assert set(found) == {"sync:cron", "sync:tick", "prune:cron", "prune:tick"}  # manual: on demand only
    assert fire_times(found["sync:cron"], NOON, 3) == [NOON + 600, NOON + 1500, NOON + 2400]
    assert fire_times(found["sync:tick"], NOON, 3) == [NOON + 900, NOON + 2100, NOON + 3300]
    for job in found.values():  # set explicitly: APScheduler's default drops runs over 1 s late
        assert job.coalesce is True and job.misfire_grace_time is None and job.max_instances == 1


def test_a_run_missed_while_down_runs_once_at_start(tmp_path: Path, state: SqliteState) -> None:
    past_run(state, "late-cron", NOON - 1800, NOON - 1700)  # 11:35; the 11:45 and 12:00 runs were missed
    past_run(state, "late-tick", NOON - 7300, NOON - 7200)  # every 1h, last finished 2 h ago
    past_run(state, "fresh", NOON - 120, NOON - 60)
    past_run(state, "stopped", NOON - 120, NOON - 60, outcome="interrupted")  # SIGTERM mid-sync
    past_run(state, "paused", NOON - 7300, NOON - 7200)
    state.set_paused("paused", True)
    state.save_source(SourceState("halfway", {"n": 1}, "backfill", 1))
    daemon, _ = make_daemon(
        tmp_path,
        state,
        {"name": "late-cron", "schedule": "*/15 * * * *"},
        {"name": "late-tick", "every": "1h"},
        {"name": "fresh", "every": "1h"},
        {"name": "stopped", "every": "1h"},
        {"name": "paused", "every": "1h"},
        {"name": "never", "every": "1h"},
        {"name": "halfway", "every": "1h"},
    )
    daemon.schedule()
    catchups = {j.split(":", 1)[1] for j in jobs(daemon) if j.startswith("catchup:")}
    assert catchups == {"late-cron", "late-tick", "never", "halfway", "stopped"}  # once each; a paused one waits
    assert fire_times(jobs(daemon)["catchup:late-tick"], NOON - 1, 1) == [NOON]


def test_an_event_run_cut_short_while_down_runs_again_at_start(tmp_path: Path, state: SqliteState) -> None:
    """A change event's scoped run killed (or stopped past the grace) consumed the service's only
    notification of that change: the restarted daemon catches the source up at once, as after an
    interrupted scheduled run, instead of waiting for the schedule."""
    for name in ("killed", "stopped", "finished", "older"):
        past_run(state, name, NOON - 600, NOON - 590)  # a recent scheduled sync: nothing missed by it
    past_run(state, "killed", NOON - 120, NOON - 60, outcome="failed", kind="event")
    state._exec("UPDATE runs SET error = ? WHERE source = 'killed' AND kind = 'event'", (ORPHANED,))  # kill -9
    past_run(state, "stopped", NOON - 120, NOON - 60, outcome="interrupted", kind="event")
    past_run(state, "finished", NOON - 120, NOON - 60, kind="event")
    past_run(state, "older", NOON - 900, NOON - 890, outcome="interrupted", kind="event")  # the sync came after
    daemon, _ = make_daemon(
        tmp_path, state, *({"name": n, "every": "1h"} for n in ("killed", "stopped", "finished", "older"))
    )
    daemon.schedule()
    assert {j.split(":", 1)[1] for j in jobs(daemon) if j.startswith("catchup:")} == {"killed", "stopped"}


def test_change_events_heard_as_the_daemon_stops_are_run_by_its_next_start(tmp_path: Path, state: SqliteState) -> None:
    """probe33b #3: the debounced sync of change events heard just before SIGTERM could not start and
    left no trace: the service will not notify them again, and the restarted daemon ran nothing."""
    settings = settings_for(tmp_path, {"name": "mail", "every": "1h"})
    past_run(state, "mail", NOON - 600, NOON - 590)  # a recent scheduled sync: nothing missed by it
    index: Any = SimpleNamespace(path=tmp_path / "index")
    engine = Engine(settings, index, state)
    daemon = Daemon(settings, engine, clock=Clock())
    engine.stop.set()  # SIGTERM
    assert daemon.event_sync("mail", frozenset({"inbox"})) is None  # nothing runs while stopping ...
    owed = state.last_run("mail", kinds=("event",))
    assert owed is not None and owed.outcome == "interrupted" and "inbox" in (owed.error or "")  # ... it is owed
    restarted = Daemon(settings, Engine(settings, index, state), clock=Clock())
    restarted.schedule()
    assert "catchup:mail" in jobs(restarted)


def test_change_events_owed_by_a_source_without_a_schedule_are_run_by_the_next_start(
    tmp_path: Path, state: SqliteState
) -> None:
    """review33 #4: a source with neither `schedule` nor `every` (it runs only when asked) still hears
    change events; those owed at a stop were recorded and never run."""
    settings = settings_for(tmp_path, {"name": "mail"})
    past_run(state, "mail", NOON - 600, NOON - 590)
    index: Any = SimpleNamespace(path=tmp_path / "index")
    engine = Engine(settings, index, state)
    engine.stop.set()
    Daemon(settings, engine, clock=Clock()).event_sync("mail", frozenset({"inbox"}))
    restarted = Daemon(settings, Engine(settings, index, state), clock=Clock())
    restarted.schedule()
    assert "catchup:mail" in jobs(restarted) and "sync:mail" not in jobs(restarted)


def test_change_events_of_a_throttled_source_are_deferred_not_dropped(tmp_path: Path, state: SqliteState) -> None:
    """review33 #6: while the service asked for no call, an event sync answered None and its
    events were dropped; it answers `Deferred` with the wait, which keeps them pending."""
    from inlet.sync.events import Deferred

    settings = settings_for(tmp_path, {"name": "mail", "every": "1h"})
    past_run(state, "mail", NOON - 600, NOON - 590)
    daemon = Daemon(settings, Engine(settings, SimpleNamespace(path=tmp_path / "index"), state), clock=Clock())
    past_run(state, "mail", NOON - 30, NOON - 20, outcome="failed")
    state._exec("UPDATE runs SET retry_at = ? WHERE outcome = 'failed'", (NOON + 120,))  # a 429's Retry-After
    deferred = daemon.event_sync("mail", frozenset({"inbox"}))
    assert isinstance(deferred, Deferred) and 0 < deferred.retry_after <= 120


def test_due_at_start_is_judged_from_the_last_run() -> None:
    cron = SimpleNamespace(schedule="0 * * * *", every=None)
    ok = SourceState("s", {}, "incremental")
    at = datetime(2024, 3, 1, 11, 0, 0, tzinfo=timezone.utc).timestamp()
    run = RunRecord("s", "sync", started_at=at, finished_at=at + 30)
    assert due_at_start(cron, ok, run, at + 3599) is None  # 11:59:59: 12:00 not yet due
    assert due_at_start(cron, ok, run, at + 3600) is not None  # 12:00 passed while down
    assert due_at_start(cron, SourceState("s"), None, at) == "never synced"
    assert due_at_start(SimpleNamespace(schedule=None, every=None), ok, None, at) is None


# --- failures ----------------------------------------------------------------------------------------
def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 300) for n in (1, 2, 3, 4, 5, 6)] == [30, 60, 120, 240, 300, 300]
    assert backoff(10_000, 1800) == 1800


def test_failed_run_is_retried_with_backoff_and_logged_once_per_streak(
    tmp_path: Path, state: SqliteState, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    daemon, engine = make_daemon(tmp_path, state, {"name": "flaky", "every": "1m"}, clock=clock)
    engine.outcomes["flaky"] = ["failed", "failed", "failed", "ok", "failed"]
    caplog.set_level(logging.DEBUG, logger="inlet.sync.daemon")
    expected_delays = [RETRY_BASE, 2 * RETRY_BASE, 4 * RETRY_BASE]
    for delay in expected_delays:
        daemon.sync_job("flaky", "retry")
        retry = jobs(daemon)["retry:flaky"]
        assert retry.trigger.run_date.timestamp() == clock.now + delay
        # the regular schedule waits out the backoff ...
        assert daemon.sync_job("flaky", "schedule") is None
        clock.now += delay
    calls_before = len(engine.calls)
    assert calls_before == 3
    assert daemon.sync_job("flaky", "retry").outcome == "ok"  # ... and the retry recovers
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "failing" in errors[0].getMessage()  # one line for a 3-failure streak
    assert any("recovered after 3" in r.getMessage() for r in caplog.records)
    assert daemon.sync_job("flaky", "schedule").outcome == "failed"  # a new streak ...
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2  # ... is logged again
    assert jobs(daemon)["retry:flaky"].trigger.run_date.timestamp() == clock.now + RETRY_BASE


def test_backoff_is_capped_by_retry_max(tmp_path: Path, state: SqliteState) -> None:
    clock = Clock()
    daemon, engine = make_daemon(tmp_path, state, {"name": "down", "every": "1m"}, clock=clock, retry_max="2m")
    engine.outcomes["down"] = ["failed"] * 6
    for _ in range(6):
        daemon.sync_job("down", "retry")
    assert jobs(daemon)["retry:down"].trigger.run_date.timestamp() == clock.now + 120


# --- overlap and parallelism -------------------------------------------------------------------------
def test_overlapping_runs_of_a_source_are_refused(tmp_path: Path, state: SqliteState) -> None:
    daemon, engine = make_daemon(tmp_path, state, {"name": "slow", "every": "1m"})
    engine.hold = threading.Event()
    first = threading.Thread(target=daemon.sync_job, args=("slow",))
    first.start()
    assert engine.entered.acquire(timeout=10)
    try:
        assert daemon.sync_job("slow") is None  # in this process: refused, not queued
        assert daemon.prune_job("slow") is None  # a prune waits for its turn ...
        assert "prune-retry:slow" in jobs(daemon)  # ... as a retry shortly after
    finally:
        engine.hold.set()
        first.join(10)
    assert engine.calls == [("slow", "sync")]
    owed = jobs(daemon)["queued:slow"]  # owed to the run's end, then queued ...
    assert owed.func(*owed.args) is None and engine.calls == [("slow", "sync")]  # ... which did its work


def _fire(daemon: Daemon, job_id: str) -> Any:
    """Run a pending one-shot job as the scheduler would, and drop it."""
    job = jobs(daemon)[job_id]
    job.remove()
    return job.func(*job.args)


def test_a_sync_due_during_an_event_run_runs_right_after_it_once(tmp_path: Path, state: SqliteState) -> None:
    """An event run is scoped (one folder): a reconcile that falls due meanwhile is owed, not
    dropped, and queued once, however often it fell due, when the event run ends (probe31f F3)."""
    daemon, engine = make_daemon(tmp_path, state, {"name": "mail", "every": "1m"})
    past_run(state, "mail", NOON - 120, NOON - 60)
    engine.hold = threading.Event()
    event = threading.Thread(target=daemon.event_sync, args=("mail", frozenset({"inbox"})))
    event.start()
    assert engine.entered.acquire(timeout=10)
    try:
        assert daemon.sync_job("mail") is None and daemon.sync_job("mail") is None
        assert not [j for j in jobs(daemon) if j.startswith("queued:")]  # not beside the event run
    finally:
        engine.hold.set()
        event.join(10)
    assert [j for j in jobs(daemon) if j.startswith("queued:")] == ["queued:mail"]
    result = _fire(daemon, "queued:mail")
    assert result is not None and result.outcome == "ok"
    assert engine.calls == [("mail", "event"), ("mail", "sync")]
    assert not [j for j in jobs(daemon) if j.startswith("queued:")]


def test_a_run_held_by_another_process_is_skipped(tmp_path: Path, state: SqliteState) -> None:
    """The real engine's per-source file lock (flock: per open file, so also across processes)."""
    settings = settings_for(tmp_path, {"name": "docs", "every": "1h"})
    engine = Engine(settings, SimpleNamespace(path=tmp_path / "index"), state)  # type: ignore[arg-type]
    daemon = Daemon(settings, engine, clock=Clock())
    other = FileLock(tmp_path / "index" / "locks" / "docs.lock")
    assert other.acquire(source="docs")
    try:
        with pytest.raises(SourceBusyError, match="already being synced"):
            engine.run("docs")
        assert daemon.sync_job("docs") is None
        assert state.last_run("docs") is None and state.failure_streak("docs") == 0
    finally:
        other.release()


def test_sources_run_in_parallel_up_to_max_parallel(tmp_path: Path, state: SqliteState) -> None:
    sources = [{"name": f"s{n}", "every": "1h"} for n in range(3)]
    daemon, engine = make_daemon(tmp_path, state, *sources, max_parallel=2)
    engine.hold = threading.Event()
    daemon.start()  # three new sources: three catch-up runs now
    try:
        assert engine.entered.acquire(timeout=20) and engine.entered.acquire(timeout=20)
        assert len(engine.calls) == 2  # the third waits for a worker
        engine.hold.set()
        assert engine.entered.acquire(timeout=20)
    finally:
        engine.hold.set()
        assert daemon.shutdown(grace=20)
    assert sorted(engine.calls) == [("s0", "sync"), ("s1", "sync"), ("s2", "sync")]
    assert engine.max_running == 2


# --- reconciliation and visibility -------------------------------------------------------------------
def test_prune_runs_on_its_own_schedule(tmp_path: Path, state: SqliteState) -> None:
    clock = Clock()
    past_run(state, "old", NOON - 60, NOON - 30)
    state.save_source(SourceState("old", {"n": 1}, "incremental", 1, None, NOON - 2 * 86400))
    past_run(state, "recent", NOON - 60, NOON - 30)  # pruned 30 s ago (past_run sets last_prune)
    daemon, engine = make_daemon(
        tmp_path,
        state,
        {"name": "old", "every": "1h"},
        {"name": "recent", "every": "1h", "prune_every": "6h"},
        clock=clock,
    )
    daemon.schedule()
    found = jobs(daemon)
    assert "prune-now:old" in found and "prune-now:recent" not in found
    assert fire_times(found["prune:recent"], NOON, 2) == [NOON - 30 + 6 * 3600, NOON - 30 + 12 * 3600]
    assert fire_times(found["prune:old"], NOON, 1) == [NOON + 86400]
    assert daemon.prune_job("old").outcome == "ok"
    assert daemon.prune_job("recent") is None  # a full pass reconciled it moments ago
    assert engine.calls == [("old", "prune")]


def test_status_and_metrics_show_the_daemons_next_run_lag_and_streak(tmp_path: Path, state: SqliteState) -> None:
    now = time.time()
    past_run(state, "docs", now - 100, now - 90)
    past_run(state, "docs", now - 50, now - 40, outcome="failed")
    daemon, _ = make_daemon(tmp_path, state, {"name": "docs", "every": "1h"}, clock=time.time)
    daemon.start()
    try:
        planned = state.daemon_next_runs()["docs"][0]
        assert planned == pytest.approx(now - 40 + 3600, abs=1)
        (row,) = sources_status(daemon.settings, state)["sources"]
        assert row["next_run"] == datetime.fromtimestamp(planned, timezone.utc).isoformat(
            timespec="milliseconds"
        ).replace("+00:00", "Z")  # times in answers: cut to milliseconds
        assert row["lag_seconds"] == pytest.approx(90, abs=5) and row["failure_streak"] == 1
        assert row["last_run"]["outcome"] == "failed"
        metrics = {m.name: m.samples[0].value for m in SourcesCollector(daemon.settings, state).collect() if m.samples}
        assert metrics["inlet_source_failure_streak"] == 1
        assert metrics["inlet_source_last_run_ok"] == 0
        assert metrics["inlet_source_next_run_timestamp_seconds"] == pytest.approx(planned, abs=1)
    finally:
        assert daemon.shutdown(grace=5)
    assert state.daemon_next_runs() == {}
    # no daemon schedules it now (as under a plain `inlet serve`): no next-run series, the rest stays
    metrics = {m.name: m.samples for m in SourcesCollector(daemon.settings, state).collect() if m.samples}
    assert "inlet_source_next_run_timestamp_seconds" not in metrics
    assert metrics["inlet_source_failure_streak"][0].value == 1


# --- a real daemon process on a `files` source (loads the embedding model: three launches in all) ---
N_FILES = 150
WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega harbour lantern meadow".split()


def write_notes(folder: Path, count: int = N_FILES) -> set[str]:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        words = " ".join(WORDS[(n * 7 + i * 3) % len(WORDS)] for i in range(50))
        (folder / f"note-{n:04d}.md").write_text(f"# Note {n}\n\n{words} marker{n}\n")
    return {f"notes:note-{n:04d}.md" for n in range(count)}


def process_config(tmp_path: Path, extra: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        '[index]\npath = "index"\n[daemon]\njitter = "0s"\n[server]\nport = 0\n'
        '[[sources]]\nname = "notes"\ntype = "files"\npath = "docs"\nevery = "1h"\n'
        "checkpoint_every = 10\n" + extra
    )
    return config


class Proc:
    """`python -m inlet ...` with its output in files (no pipe to fill up)."""

    def __init__(self, tmp_path: Path, *args: str, tag: str, stdin: int | None = None) -> None:
        import os
        import subprocess
        import sys

        self.err_path = tmp_path / f"{tag}.err"
        self.out_path = tmp_path / f"{tag}.out"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("INLET_CONFIG", None)
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "inlet", *args], cwd=tmp_path, env=env, stdin=stdin, stdout=out, stderr=err
            )

    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait(self, timeout: float = 60) -> int:
        return self.popen.wait(timeout)

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)


def cli(tmp_path: Path, *args: str, tag: str) -> tuple[int, str, str]:
    proc = Proc(tmp_path, *args, tag=tag)
    code = proc.wait(120)
    return code, proc.out_path.read_text(), proc.stderr()


def wait_for(what: str, check: Any, proc: Proc, timeout: float = 90) -> Any:
    """Poll `check()` until it returns something truthy; fail early if the daemon died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.popen.poll() is not None:
            pytest.fail(f"daemon exited ({proc.popen.returncode}) before {what}:\n{proc.stderr()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}:\n{proc.stderr()[-3000:]}")


def source_row(index: Path) -> tuple[str, int] | None:
    """(phase, files in the saved checkpoint) of the `notes` source, read as `inlet status` does."""
    import json
    import sqlite3

    if not (index / "state.db").exists():
        return None
    db = sqlite3.connect(f"file:{index / 'state.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT phase, checkpoint FROM sources WHERE name = 'notes'").fetchall()
    except sqlite3.OperationalError:
        return None
    finally:
        db.close()
    if not rows or rows[0][1] is None:
        return None
    return rows[0][0], len(json.loads(rows[0][1])["files"])


def catalog(index: Path) -> dict[str, int]:
    """doc id -> chunk count, from the catalog."""
    import sqlite3

    db = sqlite3.connect(f"file:{index / 'catalog.db'}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT doc_id, chunks FROM documents").fetchall())
    finally:
        db.close()


def runs(index: Path) -> list[tuple[str, str | None, str | None]]:
    import sqlite3

    db = sqlite3.connect(f"file:{index / 'state.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT kind, outcome, error FROM runs WHERE source = 'notes' ORDER BY id").fetchall()
    finally:
        db.close()


def test_sigterm_mid_sync_saves_the_checkpoint_and_exits_0(tmp_path: Path) -> None:
    import signal

    write_notes(tmp_path / "docs")
    # one pass (no recent pass first: every note is new), so what is committed is what the checkpoint covers
    config = process_config(tmp_path, 'recent_first = "0"\n')
    daemon = Proc(tmp_path, "daemon", "--config", str(config), tag="daemon")
    index = tmp_path / "index"
    wait_for("the first checkpoint", lambda: (source_row(index) or ("", 0))[1] >= 10, daemon)
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(60) == 0, daemon.stderr()[-3000:]
    phase, checkpointed = source_row(index)  # type: ignore[misc]
    assert phase == "backfill" and 10 <= checkpointed < N_FILES  # stopped mid-backfill ...
    assert len(catalog(index)) == checkpointed  # ... after committing the batch in hand
    assert runs(index)[-1][:2] == ("backfill", "interrupted") and "resumes" in runs(index)[-1][2]


def test_killed_daemon_restarts_without_losing_or_duplicating(tmp_path: Path) -> None:
    import json
    import signal

    expected = write_notes(tmp_path / "docs")
    # one pass, killed mid-way (a kill inside a recent pass: tests/sync/test_recent_first.py)
    config = str(process_config(tmp_path, 'recent_first = "0"\n'))
    index = tmp_path / "index"
    first = Proc(tmp_path, "daemon", "--config", config, tag="first")
    try:
        wait_for("two checkpoints", lambda: (source_row(index) or ("", 0))[1] >= 20, first)
    finally:  # killed either way: a timed-out wait must not leave the daemon running
        first.signal(signal.SIGKILL)  # no chance to flush or clean up
        first.wait(30)
    assert source_row(index)[0] == "backfill"  # type: ignore[index]

    second = Proc(tmp_path, "daemon", "--serve", "--config", config, tag="second")
    try:
        wait_for("the resumed backfill to finish", lambda: (source_row(index) or ("",))[0] == "incremental", second)
        wait_for("the run to be recorded", lambda: runs(index)[-1][1] == "ok", second)
        assert runs(index)[0][1] == "failed" and "interrupted" in runs(index)[0][2]  # the killed run
        assert set(catalog(index)) == expected

        # while the daemon holds the index: status reads SQLite, search and sync go through its API
        code, out, err = cli(tmp_path, "status", "--json", "--config", config, tag="status")
        assert code == 0, err
        (row,) = json.loads(out)["sources"]
        assert row["documents"] == N_FILES and row["next_run"] and row["lag_seconds"] is not None
        code, out, err = cli(tmp_path, "search", "marker17", "--json", "--config", config, tag="search")
        assert code == 0, err
        assert json.loads(out)["results"][0]["doc_id"] == "notes:note-0017.md"
        code, out, err = cli(
            tmp_path,
            "search",
            "marker18",
            "--user",
            "alice@example.com",
            "--json",
            "--config",
            config,
            tag="search-user",
        )  # through the on_behalf_of key
        assert code == 0, err
        assert json.loads(out)["results"][0]["doc_id"] == "notes:note-0018.md"
        api = json.loads((index / "daemon-api.json").read_text())
        assert (index / "daemon-api.json").stat().st_mode & 0o777 == 0o600
        import httpx

        metrics = httpx.get(
            api["api_url"] + "/metrics", timeout=30, headers={"Authorization": f"Bearer {api['operator_key']}"}
        )
        assert metrics.status_code == 200 and 'inlet_source_lag_seconds{source="notes"}' in metrics.text
        (tmp_path / "docs" / "note-0003.md").unlink()
        code, out, err = cli(tmp_path, "sync", "notes", "--json", "--config", config, tag="sync")
        assert code == 0, err
        (run,) = json.loads(out)["runs"]
        assert (run["outcome"], run["deleted"]) == ("ok", 1)
    finally:
        second.signal(signal.SIGTERM)
        assert second.wait(60) == 0, second.stderr()[-3000:]
    assert not (index / "daemon-api.json").exists()

    from inlet.storage import chunk_id
    from inlet.index.vectors import connect, disconnect, open_collection

    docs = catalog(index)
    assert set(docs) == expected - {"notes:note-0003.md"}
    client = connect(index)
    try:
        stored = set(open_collection(client).get(include=[])["ids"])
    finally:
        disconnect(client)
    assert stored == {chunk_id(d, n) for d, chunks in docs.items() for n in range(chunks)}  # no strays


# --- local commands while a daemon holds the index ---------------------------------------------------
def test_commands_beside_a_holder_without_a_local_channel_name_its_pid(tmp_path: Path) -> None:
    import os

    from click.testing import CliRunner

    from inlet.cli import cli

    settings_for(tmp_path, {"name": "docs", "every": "1h"})
    config = tmp_path / "config.toml"
    config.write_text(
        f'[index]\npath = "index"\n[[sources]]\nname = "docs"\ntype = "files"\n'
        f'path = "{(tmp_path / "docs").as_posix()}"\nevery = "1h"\n'
    )
    held = FileLock(tmp_path / "index" / "index.lock")
    assert held.acquire(role="backfill")  # as a direct `inlet backfill` holds it: nothing to ask
    try:
        result = CliRunner().invoke(cli, ["sync", "--config", str(config)])
        assert result.exit_code == 1 and f"in use by pid {os.getpid()}" in result.output
        result = CliRunner().invoke(cli, ["search", "anything", "--config", str(config)])
        assert result.exit_code == 1 and f"in use by pid {os.getpid()}" in result.output
    finally:
        held.release()


def test_admin_sync_route_needs_an_admin_key(tmp_path: Path, state: SqliteState) -> None:
    from starlette.testclient import TestClient

    from inlet.config import ApiKey
    from inlet.server.app import create_app

    daemon, engine = make_daemon(tmp_path, state, {"name": "docs", "every": "1h"}, {"name": "wiki", "every": "1h"})
    keys = [ApiKey(name="op", key_env="OP_KEY", admin=True), ApiKey(name="alice", key_env="ALICE_KEY", user="a@x")]
    server = daemon.settings.server.model_copy(update={"api_keys": keys})
    settings = daemon.settings.model_copy(update={"server": server})
    app = create_app(settings, index=object(), state=state, env={"OP_KEY": "op-key", "ALICE_KEY": "alice-key"})
    client = TestClient(app)
    admin = {"Authorization": "Bearer op-key"}
    idle = client.post("/v1/admin/sync", json={}, headers=admin)  # `inlet serve`: no daemon, nothing to run
    assert idle.status_code == 409 and idle.json()["error"]["code"] == "no_daemon"
    app.state.daemon = daemon
    assert client.post("/v1/admin/sync", json={}).status_code == 401
    assert client.post("/v1/admin/sync", json={}, headers={"Authorization": "Bearer nope"}).status_code == 401
    denied = client.post("/v1/admin/sync", json={}, headers={"Authorization": "Bearer alice-key"})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    bad = client.post("/v1/admin/sync", json={"sources": ["nope"]}, headers=admin)
    assert bad.status_code == 400 and engine.calls == []
    json_type = {**admin, "Content-Type": "application/json"}
    for body, status in (("[", 400), ("not json", 400), ('"wiki"', 422), ('{"source": ["wiki"]}', 422)):
        malformed = client.post("/v1/admin/sync", content=body, headers=json_type)
        assert malformed.status_code == status, body  # never "run every source"
    assert engine.calls == []
    ok = client.post("/v1/admin/sync", json={"sources": ["wiki"]}, headers=admin)
    assert ok.status_code == 200 and [r["source"] for r in ok.json()["runs"]] == ["wiki"]
    assert engine.calls == [("wiki", "sync")]


def test_shutdown_waits_for_runs_in_flight_but_not_forever(tmp_path: Path, state: SqliteState) -> None:
    daemon, engine = make_daemon(tmp_path, state, {"name": "slow", "every": "1h"})
    engine.hold = threading.Event()
    worker = threading.Thread(target=daemon._tracked, args=(daemon.sync_job, "slow"))
    worker.start()
    assert engine.entered.acquire(timeout=10)
    try:
        assert daemon.shutdown(grace=0.2) is False  # bounded: the caller exits anyway
        assert engine.stop.is_set()  # the engine stops at its next checkpoint
        # a job the scheduler had queued returns at once, without running
        assert daemon._tracked(daemon.sync_job, "slow") is None and engine.calls == [("slow", "sync")]
    finally:
        engine.hold.set()
        worker.join(10)
    assert daemon.shutdown(grace=5) is True


def test_a_stop_while_a_one_shot_job_fires_raises_nothing_in_the_scheduler(tmp_path: Path, state: SqliteState) -> None:
    # APScheduler removes a one-shot job right after submitting it, under its job-store lock; a stop
    # arriving in between must not break the scheduler's thread (pytest fails a test on any exception
    # raised in another thread). The job store below holds the lock until the stop has begun.
    from apscheduler.events import EVENT_SCHEDULER_PAUSED
    from apscheduler.jobstores.memory import MemoryJobStore

    daemon, engine = make_daemon(tmp_path, state, {"name": "notes", "every": "1h"})
    firing, stopping = threading.Event(), threading.Event()

    class HeldWhileStopping(MemoryJobStore):
        def get_due_jobs(self, now: datetime) -> list[Any]:
            due = super().get_due_jobs(now)
            if due:
                firing.set()
                stopping.wait(5)  # bounded: a stop that never pauses first proceeds after it
            return due

    daemon.scheduler.add_jobstore(HeldWhileStopping(), "default")
    daemon.scheduler.add_listener(lambda _: stopping.set(), EVENT_SCHEDULER_PAUSED)
    daemon.start_now("notes")
    daemon.start_now("notes", restart_backfill=True)  # asked while the first waits: queued too, not lost
    assert len([j for j in jobs(daemon) if j.startswith("manual:notes")]) == 2
    daemon.scheduler.start()
    assert firing.wait(10)
    assert daemon.shutdown(grace=10) is True
    daemon.start_now("notes")  # asked after the stop: nothing is queued
    assert daemon.scheduler.get_jobs() == []
