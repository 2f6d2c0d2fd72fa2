"""The state database: per-source checkpoints and the record of every run.

SQLite in `[index].path/state.db`, WAL mode, so `inlet status` can read while a sync writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import asdict, astuple, dataclass, field, fields
from pathlib import Path
from typing import Any

from inlet.index.storage import Fence
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
    kind TEXT NOT NULL,          -- backfill | sync | event (a scoped sync) | prune
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
CREATE TABLE IF NOT EXISTS run_progress (     -- a run in flight, for `inlet status` (kept after it ends)
    run_id INTEGER PRIMARY KEY,
    pid INTEGER NOT NULL,        -- the process running it (a dead pid: the run is not running)
    seen INTEGER NOT NULL,       -- items the connector yielded so far
    done INTEGER,                -- the connector's own count (Progress), when it reports one
    total INTEGER,
    unit TEXT,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS daemon_schedule (   -- written by a running `inlet daemon`, for `inlet status`
    source TEXT PRIMARY KEY,
    next_run REAL,               -- epoch seconds of the next sync the daemon has scheduled
    pid INTEGER NOT NULL,        -- the daemon's pid (rows of a dead daemon are ignored)
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS paused (            -- sources whose schedule an operator paused (console, API)
    source TEXT PRIMARY KEY,
    since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS run_skips (         -- the first SKIPS_KEPT items a run skipped, with reasons
    run_id INTEGER NOT NULL,
    n INTEGER NOT NULL,          -- 1, 2, ... in the order the run met them
    item_id TEXT NOT NULL,
    title TEXT,
    reason TEXT NOT NULL,
    failed INTEGER NOT NULL,     -- 1: could not be read (the run is partial); 0: skipped by policy
    PRIMARY KEY (run_id, n)
);
"""

SKIPS_KEPT = 50
"""Skipped items recorded per run (the counts cover them all)."""


def skip_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """A `run_skips` row (item_id, title, reason, failed) as `inlet status` shows it."""
    item_id, title, reason, failed = row
    return {"id": item_id, "title": title or item_id, "reason": reason, "failed": bool(failed)}



@dataclass
class SourceState:
    name: str
    checkpoint: dict[str, Any] | None = None
    phase: str = "new"
    generation: int = 0
    since: str | None = None
    last_prune: float | None = None
    fence: Fence | None = field(default=None, compare=False)   # the lease a run holds; not stored


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


def _run_of(r: tuple) -> RunRecord:
    return RunRecord(id=r[0], source=r[1], kind=r[2], started_at=r[3], finished_at=r[4], outcome=r[5],
                     upserted=r[6], deleted=r[7], skipped=r[8], errors=r[9], embedded=r[10], error=r[11])
def streak_of(outcomes: list[tuple[Any, ...]]) -> int:
    """Failed runs at the head of `outcomes` (rows of one outcome, newest first)."""
    streak = 0
    for (outcome,) in outcomes:
        if outcome != "failed":
            break
        streak += 1
    return streak


RUN_COLUMNS = ", ".join(f.name for f in fields(RunRecord) if f.name != "id")


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

    def save_progress(self, run: RunRecord, seen: int, done: int | None, total: int | None,
                      unit: str | None) -> None:
        """The counts of a run in flight, where `inlet status` reads them."""
        with self._lock:
            self._db.execute("UPDATE runs SET upserted = ?, deleted = ?, skipped = ?, errors = ?, embedded = ? "
                             "WHERE id = ?", (run.upserted, run.deleted, run.skipped, run.errors, run.embedded,
                                              run.id))
            self._db.execute("INSERT OR REPLACE INTO run_progress (run_id, pid, seen, done, total, unit, updated) "
                             "VALUES (?,?,?,?,?,?,?)", (run.id, os.getpid(), seen, done, total, unit, time.time()))

    def running(self, source: str) -> dict[str, Any] | None:
        """The source's unfinished run and its last saved progress, if it has any."""
        rows = self._exec(
            "SELECT r.kind, r.started_at, r.upserted, r.deleted, r.skipped, r.errors, r.embedded, p.pid, p.seen, "
            "p.done, p.total, p.unit, p.updated FROM runs r JOIN run_progress p ON p.run_id = r.id "
            "WHERE r.source = ? AND r.finished_at IS NULL ORDER BY r.id DESC LIMIT 1", (source,))
        if not rows:
            return None
        keys = ("kind", "started_at", "upserted", "deleted", "skipped", "errors", "embedded", "pid", "seen", "done",
                "total", "unit", "updated")
        return dict(zip(keys, rows[0]))

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
        return _run_of(rows[0]) if rows else None

    def recent_runs(self, source: str, limit: int = 20) -> list[RunRecord]:
        """The last `limit` runs of `source`, newest first (a run in progress has no finished_at)."""
        rows = self._exec(
            "SELECT id, source, kind, started_at, finished_at, outcome, upserted, deleted, skipped, errors, "
            "embedded, error FROM runs WHERE source = ? ORDER BY id DESC LIMIT ?", (source, limit))
        return [_run_of(r) for r in rows]

    def runs(self, source: str) -> list[RunRecord]:
        """Every run of `source`, oldest first (what `inlet migrate` copies)."""
        rows = self._exec(f"SELECT {RUN_COLUMNS} FROM runs WHERE source = ? ORDER BY id", (source,))
        return [RunRecord(*r) for r in rows]

    def add_run(self, run: RunRecord) -> None:
        """Record a finished run as it is (copied from another index)."""
        values = astuple(run)[:-1]
        self._exec(f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({','.join('?' * len(values))})", values)

    def failure_streak(self, source: str) -> int:
        """Failed runs since the last successful one."""
        return streak_of(self._exec("SELECT outcome FROM runs WHERE source = ? AND finished_at IS NOT NULL "
                                    "ORDER BY id DESC LIMIT 100", (source,)))

    def add_skip(self, run_id: int, n: int, item_id: str, title: str | None, reason: str, failed: bool) -> None:
        """The `n`th item run `run_id` skipped (call for n <= SKIPS_KEPT only)."""
        self._exec("INSERT OR REPLACE INTO run_skips (run_id, n, item_id, title, reason, failed) VALUES (?,?,?,?,?,?)",
                   (run_id, n, item_id, title, reason, int(failed)))

    def skipped_items(self, run_id: int) -> list[dict[str, Any]]:
        """What run `run_id` skipped (the first SKIPS_KEPT), in order."""
        return [skip_row(r) for r in self._exec(
            "SELECT item_id, title, reason, failed FROM run_skips WHERE run_id = ? ORDER BY n", (run_id,))]

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

    # --- operator pauses: kept here so that they survive restarts and reach every process --------
    def set_paused(self, source: str, paused: bool) -> None:
        if paused:
            self._exec("INSERT INTO paused (source, since) VALUES (?, ?) ON CONFLICT (source) DO NOTHING",
                       (source, time.time()))
        else:
            self._exec("DELETE FROM paused WHERE source = ?", (source,))

    def paused(self) -> dict[str, float]:
        """source -> since when (epoch seconds) its schedule is paused."""
        return {name: since for name, since in self._exec("SELECT source, since FROM paused")}

    def close_orphan_runs(self, source: str, error: str) -> int:
        """Mark runs left unfinished by a process that died as failed; call only while holding the
        source's lock (so no live process is running them)."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE runs SET finished_at = ?, outcome = 'failed', errors = errors + 1, error = ? "
                "WHERE source = ? AND finished_at IS NULL", (time.time(), error, source))
            return cur.rowcount
