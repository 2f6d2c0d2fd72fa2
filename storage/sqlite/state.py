"""The folder's state database: `state.db` (SQLite, WAL), the shared statements of `storage/state.py`.

One process syncs a source at a time (its `flock` lease dies with it), so nothing is fenced; the
process running a run or a daemon's schedule is named by its pid, which `inlet status` checks.
A file an earlier inlet wrote is read by `inlet status` through `SqliteState.copy`, a migrated
copy in memory: reading never upgrades the file (its next writer does).
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

from ..dialect import SQLITE
from ..private import private_files, private_folder
from ..state import SqlState
from .schema import STATE, connect, named_damage, transaction


class SqliteState(SqlState):
    dialect = SQLITE

    def __init__(self, path: Path, db: sqlite3.Connection | None = None) -> None:
        if db is None:
            private_folder(path.parent)
            with private_files():  # the -wal and -shm files inherit the database's mode
                db = connect(path, STATE)
        self.path = path
        self._db = db
        self._lock = threading.Lock()
        self.clock = time.time

    @classmethod
    def copy(cls, path: Path) -> "SqliteState":
        """The state of the existing file `path` for reading, in memory, migrated there: the file is
        read (as a backup reads it) and never written. Its writes go to the copy alone."""
        db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        source = sqlite3.connect(path, timeout=10)
        try:
            with named_damage(path):
                source.execute("PRAGMA query_only = ON")
                source.backup(db)
        finally:
            source.close()
        with transaction(db, "BEGIN IMMEDIATE"):
            STATE.apply(db, "?", f"the index file {path}")
        return cls(path, db)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A deferred transaction: reads take no write lock, and no statement here reads before it writes."""
        with self._lock, named_damage(self.path), transaction(self._db) as db:
            yield db

    def _progress_owner(self) -> tuple[str, Any]:
        return "pid", os.getpid()

    def set_next_runs(self, pid: int, next_runs: dict[str, float | None]) -> None:
        now = self.clock()
        with self._connection() as db:
            db.executemany(
                SQLITE.upsert("daemon_schedule", ["source", "next_run", "pid", "updated"], ["source"]),
                [(name, ts, pid, now) for name, ts in next_runs.items()],
            )

    def clear_next_runs(self, pid: int) -> None:
        self._exec("DELETE FROM daemon_schedule WHERE pid = ?", (pid,))
