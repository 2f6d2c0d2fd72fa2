"""The folder's change-event status: what a running daemon hears per source, for `inlet status` and `/metrics`.

A table of its own in the state database (`daemon_events`), written through its own connection so
the event threads never contend with the runs' writes; rows carry the daemon's pid, and a reader
treats the rows of a dead daemon as "events off". The database's is `postgres/event_status.py`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from inlet.process import alive

from ..dialect import SQLITE
from ..event_status import SqlEventStatus, merge_reports
from ..private import private_files
from .schema import STATE, connect, named_damage


class EventStatusDB(SqlEventStatus):
    """The daemon's writer (one per daemon), through its own connection to `state.db`."""

    dialect = SQLITE
    owner_column = "pid"
    key = "source"

    def __init__(self, path: Path, pid: int | None = None) -> None:
        self.path = path
        self.pid = pid if pid is not None else os.getpid()
        self._lock = threading.Lock()
        with private_files():
            self._db = connect(path, STATE, timeout=30)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock, named_damage(self.path):
            yield self._db

    def _owner(self) -> int:
        return self.pid

    def _clock(self) -> tuple[Any, ...]:
        return (time.time(),)

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
    return merge_reports((name, report) for name, report, pid in rows if alive(pid))
