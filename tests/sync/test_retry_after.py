"""A service's `Retry-After` longer than a call waits out (a 429 asking for 15 minutes): the call gives
up at once, the run fails carrying the wait (`RunResult.retry_after`), and nothing the daemon starts
by itself calls the service again before the wait ends: its retry, its schedule, a catch-up, change
events, a restarted daemon or another daemon on the same state. `inlet status` shows when the
service allows the next call.

The real engine and connector against the sandbox's Slack; the daemon's clock is a test's, and what
is asserted is the time the daemon schedules, never how long anything took.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from inlet.cli import _print_source
from inlet.sandbox.server import Sandbox
from inlet.status import iso, sources_status
from inlet.sync.daemon import RETRY_BASE, Daemon
from inlet.sync.events import Deferred
from tests.sync.test_daemon import Clock, jobs
from tests.sync.test_failed_reads_retried import indexed

SOURCE = "sandbox-slack"
WAIT = 900.0  # seconds: the service's Retry-After, three times longer than a call waits


def test_a_long_retry_after_holds_every_run_the_daemon_starts_until_the_service_allows_it(
    tmp_path: Path, text_hash_embedder: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with Sandbox() as sb, indexed(sb, tmp_path, text_hash_embedder, SOURCE, every="5m", pace_scale=1e6) as ix:
        sb.faults.fail("slack", "*", 429, times=10_000, retry_after=WAIT)
        clock = Clock(float(int(time.time())))  # whole seconds: the scheduler keeps microseconds
        daemon = Daemon(ix.engine.settings, ix.engine, clock=clock)
        result = daemon.sync_job(SOURCE, "catch-up")
        assert result is not None and result.outcome == "failed"
        assert result.retry_after == WAIT  # carried from the connector's RetriableError

        # the retry comes when the service allows it, not after the first backoff step (30 s)
        assert RETRY_BASE < WAIT
        assert jobs(daemon)[f"retry:{SOURCE}"].trigger.run_date.timestamp() == clock.now + WAIT
        recorded = ix.engine.state.last_run(SOURCE)
        assert recorded is not None and recorded.retry_at is not None and recorded.retry_at >= clock.now + WAIT

        # nothing else the daemon starts by itself calls the service meanwhile
        calls = sb.faults.count("slack:*")
        assert daemon.sync_job(SOURCE, "schedule") is None
        assert isinstance(daemon.event_sync(SOURCE), Deferred)  # the events wait: no call made
        # with leases shared by several daemons (PostgreSQL), one that waited for the lease while
        # another's run was told to wait runs nothing either (judged from the shared run record)
        assert daemon._still_due(SOURCE, "retry") is False
        clock.now += WAIT / 2
        assert daemon.sync_job(SOURCE, "catch-up") is None  # ... it comes back once the wait ends
        assert jobs(daemon)[f"catchup:{SOURCE}"].trigger.run_date.timestamp() == pytest.approx(
            recorded.retry_at, abs=1e-5
        )
        assert sb.faults.count("slack:*") == calls

        # a restarted daemon (or another one on the same state) waits for it too
        restarted = Daemon(ix.engine.settings, ix.engine, clock=clock)
        restarted.schedule()
        assert jobs(restarted)[f"catchup:{SOURCE}"].trigger.run_date.timestamp() == pytest.approx(
            recorded.retry_at, abs=1e-5
        )

        # `inlet status` says when the service allows the next call, and no next run before it
        (row,) = sources_status(ix.engine.settings, ix.engine.state)["sources"]
        assert row["retry_not_before"] == iso(recorded.retry_at)
        assert row["next_run"] == iso(recorded.retry_at)  # the schedule alone says 5 min after the failure
        _print_source(row, detail=True)
        assert f"its service asked for no call before {iso(recorded.retry_at)}" in capsys.readouterr().out

        # once the wait is over, the retry runs, and the source recovers
        sb.faults.clear()
        clock.now = recorded.retry_at
        again = daemon.sync_job(SOURCE, "retry")
        assert again is not None and again.outcome == "ok" and again.retry_after is None
        (row,) = sources_status(ix.engine.settings, ix.engine.state)["sources"]
        assert row["retry_not_before"] is None
