"""Where a running daemon records each source's change-event state, for `inlet status` and `/metrics`.

A table of its own in the state database (`daemon_events`), written through its own connection so
the event threads never contend with the runs' writes; rows carry the daemon's pid, and a reader
treats the rows of a dead daemon as "events off". With `[index].database_url` the same reports go
to the index database instead (`pg_event_status.py`): `open_event_status` and `event_status` pick.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from inlet.process import alive

if TYPE_CHECKING:
    from inlet.config import IndexConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS daemon_events (   -- written by a running `inlet daemon` with change events
    source TEXT PRIMARY KEY,
    report TEXT NOT NULL,        -- JSON: live, last_event_at, latency_seconds, latency_p50/p99_seconds
    pid INTEGER NOT NULL,
    updated REAL NOT NULL
)
"""


class EventStatusWriter(Protocol):
    """A daemon's record of its sources' change-event state."""

    def save(self, source: str, report: dict[str, Any]) -> None: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...


def open_event_status(config: IndexConfig, path: Path) -> EventStatusWriter:
    """The daemon's writer: the index database's table, else `path` (the folder's state.db)."""
    if config.database_url:
        from .pg_event_status import PgEventStatus

        return PgEventStatus(config)
    return EventStatusDB(path)


def event_status(config: IndexConfig) -> dict[str, dict[str, Any]]:
    """source -> the change-event report of a live daemon, wherever the index keeps them."""
    if config.database_url:
        from .pg_event_status import read_database_event_status

        return read_database_event_status(config)
    return read_event_status(Path(config.path) / "state.db")


class EventStatusDB:
    """The daemon's writer (one per daemon)."""

    def __init__(self, path: Path, pid: int | None = None) -> None:
        self.pid = pid if pid is not None else os.getpid()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute(SCHEMA)

    def save(self, source: str, report: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO daemon_events (source, report, pid, updated) VALUES (?,?,?,?) "
                "ON CONFLICT (source) DO UPDATE SET report = excluded.report, pid = excluded.pid, "
                "updated = excluded.updated", (source, json.dumps(report), self.pid, time.time()))

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM daemon_events WHERE pid = ?", (self.pid,))

    def close(self) -> None:
        self._db.close()


def read_event_status(path: Path) -> dict[str, dict[str, Any]]:
    """source -> the report a live daemon wrote; sources of no live daemon are absent."""
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT source, report, pid FROM daemon_events").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        db.close()
    return {name: json.loads(report) for name, report, pid in rows if alive(pid)}

