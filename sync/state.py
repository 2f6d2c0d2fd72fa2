"""The state database: per-source checkpoints and the record of every run.

SQLite in `[index].path/state.db`, WAL mode, so `inlet status` can read while a sync writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inlet.index.private import private_files, private_folder

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY,
    checkpoint TEXT,             -- JSON, the connector's last committed state
    phase TEXT NOT NULL DEFAULT 'new',   -- new | backfill | incremental
    generation INTEGER NOT NULL DEFAULT 0,
    since TEXT,                  -- the --since of the backfill in progress
    last_prune REAL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,          -- backfill | sync | prune
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT,                -- ok | partial | failed (NULL while running)
    upserted INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    embedded INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX IF NOT EXISTS runs_source ON runs (source, id);
CREATE TABLE IF NOT EXISTS daemon_schedule (   -- written by a running `inlet daemon`, for `inlet status`
    source TEXT PRIMARY KEY,
    next_run REAL,               -- epoch seconds of the next sync the daemon has scheduled
    pid INTEGER NOT NULL,        -- the daemon's pid (rows of a dead daemon are ignored)
    updated REAL NOT NULL
);
"""


@dataclass
class SourceState:
    name: str
    checkpoint: dict[str, Any] | None = None
    phase: str = "new"
    generation: int = 0
    since: str | None = None
    last_prune: float | None = None


@dataclass
class RunRecord:
    source: str
    kind: str
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None
    upserted: int = 0
    deleted: int = 0
    skipped: int = 0
    errors: int = 0
    embedded: int = 0
    error: str | None = None
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StateDB:
    def __init__(self, path: Path) -> None:
        private_folder(path.parent)
        with private_files():   # the -wal and -shm files inherit the database's mode
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def source(self, name: str) -> SourceState:
        rows = self._exec("SELECT checkpoint, phase, generation, since, last_prune FROM sources WHERE name = ?",
                          (name,))
        if not rows:
            return SourceState(name)
        checkpoint, phase, generation, since, last_prune = rows[0]
        return SourceState(name, json.loads(checkpoint) if checkpoint else None, phase, generation, since,
                           last_prune)

    def save_source(self, state: SourceState) -> None:
        self._exec(
            "INSERT INTO sources (name, checkpoint, phase, generation, since, last_prune) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT (name) DO UPDATE SET checkpoint = excluded.checkpoint, phase = excluded.phase, "
            "generation = excluded.generation, since = excluded.since, last_prune = excluded.last_prune",
            (state.name, json.dumps(state.checkpoint) if state.checkpoint is not None else None, state.phase,
             state.generation, state.since, state.last_prune))

    def start_run(self, source: str, kind: str) -> RunRecord:
        run = RunRecord(source=source, kind=kind, started_at=time.time())
        with self._lock:
            run.id = self._db.execute("INSERT INTO runs (source, kind, started_at) VALUES (?,?,?)",
                                      (source, kind, run.started_at)).lastrowid
        return run

    def finish_run(self, run: RunRecord) -> None:
        run.finished_at = time.time()
        self._exec(
            "UPDATE runs SET finished_at = ?, outcome = ?, upserted = ?, deleted = ?, skipped = ?, errors = ?, "
            "embedded = ?, error = ? WHERE id = ?",
            (run.finished_at, run.outcome, run.upserted, run.deleted, run.skipped, run.errors, run.embedded,
             run.error, run.id))

    def last_run(self, source: str, *, successful: bool = False,
                 kinds: tuple[str, ...] | None = None) -> RunRecord | None:
        cond = "AND outcome IN ('ok', 'partial')" if successful else "AND finished_at IS NOT NULL"
        params: tuple[Any, ...] = (source,)
        if kinds:
            cond += f" AND kind IN ({','.join('?' * len(kinds))})"
            params += tuple(kinds)
        rows = self._exec(
            "SELECT id, source, kind, started_at, finished_at, outcome, upserted, deleted, skipped, errors, "
            f"embedded, error FROM runs WHERE source = ? {cond} ORDER BY id DESC LIMIT 1", params)
        if not rows:
            return None
        r = rows[0]
        return RunRecord(id=r[0], source=r[1], kind=r[2], started_at=r[3], finished_at=r[4], outcome=r[5],
                         upserted=r[6], deleted=r[7], skipped=r[8], errors=r[9], embedded=r[10], error=r[11])

    def failure_streak(self, source: str) -> int:
        """Failed runs since the last successful one."""
        rows = self._exec("SELECT outcome FROM runs WHERE source = ? AND finished_at IS NOT NULL "
                          "ORDER BY id DESC LIMIT 100", (source,))
        streak = 0
        for (outcome,) in rows:
            if outcome != "failed":
                break
            streak += 1
        return streak

    # --- the daemon's schedule (what `inlet status` shows as next run while a daemon runs) ----------
    def set_next_runs(self, pid: int, next_runs: dict[str, float | None]) -> None:
        now = time.time()
        with self._lock:
            self._db.executemany(
                "INSERT INTO daemon_schedule (source, next_run, pid, updated) VALUES (?,?,?,?) "
                "ON CONFLICT (source) DO UPDATE SET next_run = excluded.next_run, pid = excluded.pid, "
                "updated = excluded.updated", [(name, ts, pid, now) for name, ts in next_runs.items()])

    def clear_next_runs(self, pid: int) -> None:
        self._exec("DELETE FROM daemon_schedule WHERE pid = ?", (pid,))

    def daemon_next_runs(self) -> dict[str, tuple[float | None, int]]:
        """source -> (next run, daemon pid), as the last daemon to run wrote it."""
        rows = self._exec("SELECT source, next_run, pid FROM daemon_schedule")
        return {name: (ts, pid) for name, ts, pid in rows}

    def close_orphan_runs(self, source: str, error: str) -> int:
        """Mark runs left unfinished by a process that died as failed; call only while holding the
        source's lock (so no live process is running them)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE runs SET finished_at = ?, outcome = 'failed', error = ? "
                "WHERE source = ? AND finished_at IS NULL", (time.time(), error, source))
            return cur.rowcount
