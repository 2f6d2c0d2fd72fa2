"""The state in PostgreSQL: checkpoints, runs and the daemons' schedule, shared by every daemon.

Same contract as `state.StateDB`. A checkpoint is saved only while the saving run's lease fence is
still current, checked in the save's own transaction (`leases.check_fence`): a daemon that lost
its lease cannot move a source's checkpoint past (or back behind) its successor's.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from inlet.index.pg_catalog import connect, disconnect

from .leases import check_fence, holder_name
from .state import RUN_COLUMNS, RunRecord, SourceState, skip_row, streak_of

if TYPE_CHECKING:
    from inlet.config import IndexConfig, Settings


class PgState:
    def __init__(self, config: IndexConfig) -> None:
        self.pool = connect(config)

    def close(self) -> None:
        disconnect(self.pool)

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.pool.connection() as db:
            cur = db.execute(sql, params)   # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def source(self, name: str) -> SourceState:
        rows = self._exec("SELECT checkpoint, phase, generation, since, last_prune FROM sources WHERE name = %s",
                          (name,))
        if not rows:
            return SourceState(name)
        checkpoint, phase, generation, since, last_prune = rows[0]
        return SourceState(name, json.loads(checkpoint) if checkpoint else None, phase, generation, since,
                           last_prune)

    def save_source(self, state: SourceState) -> None:
        with self.pool.connection() as db, db.transaction():
            check_fence(db, state.fence)
            db.execute(
                "INSERT INTO sources (name, checkpoint, phase, generation, since, last_prune) "
                "VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (name) DO UPDATE SET checkpoint = excluded.checkpoint, "
                "phase = excluded.phase, generation = excluded.generation, since = excluded.since, "
                "last_prune = excluded.last_prune",
                (state.name, json.dumps(state.checkpoint) if state.checkpoint is not None else None, state.phase,
                 state.generation, state.since, state.last_prune))

    def start_run(self, source: str, kind: str) -> RunRecord:
        run = RunRecord(source=source, kind=kind, started_at=time.time())
        run.id = self._exec("INSERT INTO runs (source, kind, started_at) VALUES (%s,%s,%s) RETURNING id",
                            (source, kind, run.started_at))[0][0]
        return run

    def finish_run(self, run: RunRecord) -> None:
        run.finished_at = time.time()
        self._exec(
            "UPDATE runs SET finished_at = %s, outcome = %s, upserted = %s, deleted = %s, skipped = %s, "
            "errors = %s, embedded = %s, error = %s WHERE id = %s",
            (run.finished_at, run.outcome, run.upserted, run.deleted, run.skipped, run.errors, run.embedded,
             run.error, run.id))

    def last_run(self, source: str, *, successful: bool = False,
                 kinds: tuple[str, ...] | None = None) -> RunRecord | None:
        cond = "AND outcome IN ('ok', 'partial')" if successful else "AND finished_at IS NOT NULL"
        params: tuple[Any, ...] = (source,)
        if kinds:
            cond += " AND kind = ANY(%s)"
            params += (list(kinds),)
        rows = self._exec(f"SELECT {RUN_COLUMNS}, id FROM runs WHERE source = %s {cond} ORDER BY id DESC LIMIT 1",
                          params)
        return RunRecord(*rows[0]) if rows else None

    def runs(self, source: str) -> list[RunRecord]:
        return [RunRecord(*r) for r in self._exec(f"SELECT {RUN_COLUMNS}, id FROM runs WHERE source = %s "
                                                  "ORDER BY id", (source,))]

    def save_progress(self, run: RunRecord, seen: int, done: int | None, total: int | None,
                      unit: str | None) -> None:
        with self.pool.connection() as db, db.transaction():
            db.execute("UPDATE runs SET upserted = %s, deleted = %s, skipped = %s, errors = %s, embedded = %s "
                       "WHERE id = %s", (run.upserted, run.deleted, run.skipped, run.errors, run.embedded, run.id))
            db.execute("INSERT INTO run_progress (run_id, holder, seen, done, total, unit, updated) "
                       "VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (run_id) DO UPDATE SET holder = excluded.holder, "
                       "seen = excluded.seen, done = excluded.done, total = excluded.total, unit = excluded.unit, "
                       "updated = excluded.updated", (run.id, holder_name(), seen, done, total, unit, time.time()))

    def running(self, source: str) -> dict[str, Any] | None:
        """The source's unfinished run and its last saved progress; `pid` is None (the holder may be on
        another host: whether it lives is the lease's business, shown as `holder`)."""
        rows = self._exec(
            "SELECT r.kind, r.started_at, r.upserted, r.deleted, r.skipped, r.errors, r.embedded, p.seen, "
            "p.done, p.total, p.unit, p.updated FROM runs r JOIN run_progress p ON p.run_id = r.id "
            "WHERE r.source = %s AND r.finished_at IS NULL ORDER BY r.id DESC LIMIT 1", (source,))
        if not rows:
            return None
        keys = ("kind", "started_at", "upserted", "deleted", "skipped", "errors", "embedded", "seen", "done",
                "total", "unit", "updated")
        return {**dict(zip(keys, rows[0])), "pid": None}

    def recent_runs(self, source: str, limit: int = 20) -> list[RunRecord]:
        return [RunRecord(*r) for r in self._exec(f"SELECT {RUN_COLUMNS}, id FROM runs WHERE source = %s "
                                                  "ORDER BY id DESC LIMIT %s", (source, limit))]

    def set_paused(self, source: str, paused: bool) -> None:
        if paused:
            self._exec("INSERT INTO paused (source, since) VALUES (%s, %s) ON CONFLICT (source) DO NOTHING",
                       (source, time.time()))
        else:
            self._exec("DELETE FROM paused WHERE source = %s", (source,))

    def paused(self) -> dict[str, float]:
        return {name: since for name, since in self._exec("SELECT source, since FROM paused")}

    def add_run(self, run: RunRecord) -> None:
        values = (run.source, run.kind, run.started_at, run.finished_at, run.outcome, run.upserted, run.deleted,
                  run.skipped, run.errors, run.embedded, run.error)
        self._exec(f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({','.join(['%s'] * len(values))})", values)

    def failure_streak(self, source: str) -> int:
        return streak_of(self._exec("SELECT outcome FROM runs WHERE source = %s AND finished_at IS NOT NULL "
                                    "ORDER BY id DESC LIMIT 100", (source,)))

    def set_next_runs(self, pid: int, next_runs: dict[str, float | None]) -> None:
        """Every daemon plans every source; the row shows the earliest plan of a live daemon."""
        # One statement, not `executemany`: a pipeline's rows stay locked until its end, and a process
        # frozen in the middle of one would hold them past any timeout of the server's.
        self._exec(
            "INSERT INTO daemon_schedule (source, next_run, pid, holder, updated) "
            "SELECT s, n, %s, %s, %s FROM unnest(%s::text[], %s::float8[]) AS u(s, n) "
            "ON CONFLICT (source) DO UPDATE SET next_run = excluded.next_run, pid = excluded.pid, "
            "holder = excluded.holder, updated = excluded.updated",
            (pid, holder_name(), time.time(), list(next_runs), list(next_runs.values())))

    def clear_next_runs(self, pid: int) -> None:
        self._exec("DELETE FROM daemon_schedule WHERE holder = %s", (holder_name(),))

    def daemon_next_runs(self) -> dict[str, tuple[float | None, int]]:
        return {name: (ts, pid) for name, ts, pid in self._exec("SELECT source, next_run, pid FROM daemon_schedule")}

    def close_orphan_runs(self, source: str, error: str) -> int:
        """Mark unfinished runs of `source` failed; call only while holding its lease."""
        with self.pool.connection() as db:
            return db.execute("UPDATE runs SET finished_at = %s, outcome = 'failed', errors = errors + 1, error = %s "
                              "WHERE source = %s AND finished_at IS NULL", (time.time(), error, source)).rowcount

    def add_skip(self, run_id: int, n: int, item_id: str, title: str | None, reason: str, failed: bool) -> None:
        self._exec("INSERT INTO run_skips (run_id, n, item_id, title, reason, failed) VALUES (%s,%s,%s,%s,%s,%s) "
                   "ON CONFLICT (run_id, n) DO NOTHING", (run_id, n, item_id, title, reason, failed))

    def skipped_items(self, run_id: int) -> list[dict[str, Any]]:
        return [skip_row(r) for r in self._exec(
            "SELECT item_id, title, reason, failed FROM run_skips WHERE run_id = %s ORDER BY n", (run_id,))]


def database_status(settings: Settings) -> tuple[dict[str, tuple[int, int]], dict[str, float | None],
                                                 dict[str, dict[str, Any] | None]]:
    """For `inlet status` on a database: (documents, chunks) per source, the daemons' next runs, and
    who holds each source's lease ({holder: host:pid, lease_expires}), read in one connection."""
    from datetime import datetime, timezone

    pool = connect(settings.index)
    try:
        with pool.connection() as db:
            counts = {r[0]: (int(r[1]), int(r[2])) for r in db.execute(
                "SELECT source, count(*), COALESCE(sum(chunks), 0) FROM documents GROUP BY source")}
            planned: dict[str, float | None] = dict(
                db.execute("SELECT source, next_run FROM daemon_schedule").fetchall())
            holders: dict[str, dict[str, Any] | None] = {r[0]: {
                "holder": r[1], "lease_expires": datetime.fromtimestamp(float(r[2]), timezone.utc).isoformat()}
                for r in db.execute("SELECT source, holder, extract(epoch FROM expires) FROM leases "
                                    "WHERE expires > now()")}
    finally:
        disconnect(pool)
    return counts, planned, holders
