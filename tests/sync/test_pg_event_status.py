"""Change-event status in the index database (real PostgreSQL, tests/servers.py): what a daemon on one
host writes is what `inlet status` and `/metrics` read on any other; two daemons hearing one
source merge; a daemon that stops refreshing its rows (killed) reads as events off."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from inlet.config import Settings, parse_config
from inlet.status import SourcesCollector, sources_status
from inlet.storage import open_backend
from inlet.storage.postgres.event_status import STALE_AFTER, PgEventStatus, read_database_event_status


def settings_for(database_url: str, tmp_path: Path) -> Settings:
    (tmp_path / "docs").mkdir(exist_ok=True)
    return parse_config(
        {
            "index": {"database_url": database_url, "chroma_url": "http://unused"},
            "sources": [
                {"name": "chat", "type": "files", "path": str(tmp_path / "docs")},
                {"name": "quiet", "type": "files", "path": str(tmp_path / "docs")},
            ],
        }
    )


def report(live: bool, at: float, latency: float) -> dict[str, Any]:
    return {
        "live": live,
        "last_event_at": at,
        "latency_seconds": latency,
        "latency_p50_seconds": latency,
        "latency_p99_seconds": latency,
    }


def wait_until(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_status_and_metrics_on_any_host_read_the_daemons_event_status(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    writer = open_backend(settings.index).event_writer()
    assert isinstance(writer, PgEventStatus) and not (tmp_path / "unused-state.db").exists()
    try:
        writer.save("chat", report(True, 1_700_000_000.0, 1.25))
        rows = {r["name"]: r for r in sources_status(settings)["sources"]}  # no local state: the database's
        assert rows["chat"]["events"]["live"] and rows["chat"]["events"]["latency_seconds"] == 1.25
        assert rows["quiet"]["events"] is None
        collected = SourcesCollector(settings).collect()
        metrics = {m.name: {s.labels["source"]: s.value for s in m.samples} for m in collected}
        assert metrics["inlet_source_events_live"] == {"chat": 1.0}
        assert metrics["inlet_source_event_latency_seconds"] == {"chat": 1.25}
        writer.clear()  # a daemon stopping cleanly
        assert open_backend(settings.index).event_status() == {}
    finally:
        writer.close()


def test_two_daemons_on_one_source_merge_and_a_silent_one_goes_stale(database_url: str, tmp_path: Path) -> None:
    settings = settings_for(database_url, tmp_path)
    one = PgEventStatus(settings.index, heartbeat=0.2, holder="host-a:1")
    two = PgEventStatus(settings.index, heartbeat=0.2, holder="host-b:2")
    try:
        one.save("chat", report(True, 100.0, 1.0))
        two.save("chat", report(False, 200.0, 2.0))  # heard the later event, its socket down since
        merged = read_database_event_status(settings.index, heartbeat=0.2)["chat"]
        assert merged["live"] and merged["last_event_at"] == 200.0 and merged["latency_seconds"] == 2.0

        def updated() -> dict[str, Any]:
            with psycopg.connect(database_url) as db:
                return dict(db.execute("SELECT holder, updated FROM daemon_events").fetchall())

        first = updated()
        wait_until(lambda: updated()["host-a:1"] > first["host-a:1"])  # a live daemon keeps its rows fresh
        one.close()  # stops refreshing without clearing: a daemon killed with SIGKILL
        wait_until(
            lambda: read_database_event_status(settings.index, heartbeat=0.2)["chat"]["live"] is False,
            timeout=0.2 * STALE_AFTER + 20,
        )
        assert read_database_event_status(settings.index, heartbeat=0.2)["chat"]["last_event_at"] == 200.0
    finally:
        one.close()
        two.close()
