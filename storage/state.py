"""The state: per-source checkpoints, the record of every run, the daemon's schedule, operators' pauses.

The run history is bounded: a run's end is recorded (and its progress row deleted) in its own
transaction; after it commits, a separate, bounded step deletes at most `TRIM_STEP` of the runs of
its source and kind beyond the newest `RUNS_KEPT` (not the newest successful one), more than
anything reads of it (`_trim_runs`), so a history longer than that (the first run after an upgrade)
converges over later runs, and a trim that fails is logged and never touches the run's record.

Written once over a `Dialect` (`SqlState`); each backend gives it a connection and overrides only
what really differs: the folder (`sqlite/state.py`, SQLite `state.db`, WAL, so `inlet status`
reads while a sync writes) names a run's process by pid and needs no fence (its leases are
`flock`s); the database (`postgres/state.py`) saves a checkpoint only while the saving run's lease
fence is current, checked in the save's own transaction, and names processes by host and pid.

Times (a run's start, end and `retry_at`, progress, a prune, a pause, the daemon's plans) are
epoch seconds of this host's clock (`clock`) to every caller, so a daemon compares them with its
own clock and its scheduler's. Where several hosts share the state (the database), they are kept in
the database's clock, as its leases are: each process adds `clock_offset` (how far the database's
clock runs ahead of its own) when it writes one and subtracts it when it reads one, so a host whose
clock is wrong moves no other host's schedule. The folder is one host: its offset is 0.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from .dialect import Dialect
from .types import RUN_COLUMNS, RUNS_KEPT, SYNC_KINDS, Fence, RunRecord, SourceState, skip_row, streak_of

log = logging.getLogger(__name__)

RUN_FIELDS = f"{RUN_COLUMNS}, id"
TRIM_STEP = 1000  # the most old runs one run's end deletes (`SqlState._trim_runs`)
SOURCE_COLUMNS = ("name", "checkpoint", "phase", "generation", "since", "last_prune", "recent", "scope", "covered")


def _ending(run: RunRecord) -> tuple[Any, ...]:
    """How `run` ended, in the order of `RUN_COLUMNS` after its source, kind and start."""
    return (
        run.finished_at,
        run.outcome,
        run.upserted,
        run.deleted,
        run.skipped,
        run.errors,
        run.embedded,
        run.error,
        run.retry_at,
    )


class SqlState:
    """The shared statements; subclasses give `_connection` (a connection inside a transaction)."""

    dialect: Dialect
    clock: Callable[[], float]  # this host's clock (epoch seconds), set by each backend's constructor

    def clock_offset(self) -> float:
        """Seconds the clock the state keeps its times in runs ahead of this host's `clock`: 0 for
        the folder (one host); the database's, measured (`postgres/state.py`)."""
        return 0.0

    def _connection(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _check_fence(self, db: Any, fence: Fence | None) -> None:
        """Refuse a commit whose lease was taken over (nothing to check where leases are `flock`s)."""

    def close(self) -> None:
        raise NotImplementedError

    def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._connection() as db:
            cur = db.execute(self.dialect.sql(sql), params)
            return cur.fetchall() if cur.description else []

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[RunRecord]:
        """Runs, their times in this host's clock."""
        rows = self._exec(sql, params)
        back = -self.clock_offset() if rows else 0.0
        return (RunRecord(*r).moved(back) for r in rows)

    # --- checkpoints --------------------------------------------------------------------------
    def source(self, name: str) -> SourceState:
        offset = self.clock_offset()
        rows = self._exec(f"SELECT {', '.join(SOURCE_COLUMNS[1:])} FROM sources WHERE name = ?", (name,))
        if not rows:
            return SourceState(name)
        checkpoint, phase, generation, since, last_prune, recent, scope, covered = rows[0]
        return SourceState(
            name,
            json.loads(checkpoint) if checkpoint else None,
            phase,
            generation,
            since,
            None if last_prune is None else last_prune - offset,
            recent=recent,
            scope=json.loads(scope) if scope else None,
            covered=covered,
        )

    def save_source(self, state: SourceState) -> None:
        offset = self.clock_offset()  # measured before the transaction's connection is taken
        with self._connection() as db:
            self._check_fence(db, state.fence)
            db.execute(
                self.dialect.sql(self.dialect.upsert("sources", SOURCE_COLUMNS, ["name"])),
                (
                    state.name,
                    json.dumps(state.checkpoint) if state.checkpoint is not None else None,
                    state.phase,
                    state.generation,
                    state.since,
                    None if state.last_prune is None else state.last_prune + offset,
                    state.recent,
                    json.dumps(state.scope, sort_keys=True) if state.scope is not None else None,
                    state.covered,
                ),
            )

    # --- runs ---------------------------------------------------------------------------------
    def start_run(self, source: str, kind: str) -> RunRecord:
        run = RunRecord(source=source, kind=kind, started_at=self.clock())
        run.id = self._exec(
            "INSERT INTO runs (source, kind, started_at) VALUES (?,?,?) RETURNING id",
            (source, kind, run.started_at + self.clock_offset()),
        )[0][0]
        return run

    def finish_run(self, run: RunRecord) -> None:
        """Record how the run ended (at its `finished_at`, now when unset), unless it is closed
        already: a process that lost its lease (a frozen daemon that wakes) must not rewrite how its
        successor closed the run. In the same transaction its progress row goes; after it commits,
        the runs of its source and kind older than the newest `runs_kept` are trimmed in a bounded
        step of their own (`_trim_runs`), whose failure is logged and leaves this record as it is."""
        run.finished_at = run.finished_at if run.finished_at is not None else self.clock()
        stored = run.moved(self.clock_offset())
        with self._connection() as db:
            db.execute(
                self.dialect.sql(
                    "UPDATE runs SET finished_at = ?, outcome = ?, upserted = ?, deleted = ?, skipped = ?, "
                    "errors = ?, embedded = ?, error = ?, retry_at = ? WHERE id = ? AND finished_at IS NULL"
                ),
                (*_ending(stored), run.id),
            )
            db.execute(self.dialect.sql("DELETE FROM run_progress WHERE run_id = ?"), (run.id,))
        try:
            with self._connection() as db:
                self._trim_runs(db, run.source, run.kind)
        except Exception as e:  # noqa: BLE001 - any backend's error; the history is trimmed again at the next run's end
            log.warning(
                "could not trim the run history of %r (%s runs): %s; the run's end is recorded, and the "
                "next run's end tries again",
                run.source,
                run.kind,
                e,
            )

    runs_kept = RUNS_KEPT  # finished runs of each kind kept per source
    trim_step = TRIM_STEP  # the most old runs one run's end deletes

    def _trim_runs(self, db: Any, source: str, kind: str) -> int:
        """Delete the oldest `trim_step` of the finished runs of `source` and `kind` (with their
        progress and skipped items) older than its newest `runs_kept`, except its newest successful
        one, on `db` (a connection in the caller's transaction); how many went. Called as each run
        ends, it deletes the one run that fell out of the window; a longer history (the first time)
        shrinks by `trim_step` a run until it fits."""
        sql = self.dialect.sql
        row = db.execute(
            sql("SELECT id FROM runs WHERE source = ? AND kind = ? ORDER BY id DESC LIMIT 1 OFFSET ?"),
            (source, kind, self.runs_kept),
        ).fetchone()
        if row is None:
            return 0
        ok = db.execute(
            sql("SELECT max(id) FROM runs WHERE source = ? AND kind = ? AND outcome IN ('ok', 'partial')"),
            (source, kind),
        ).fetchone()
        old = (
            "SELECT id FROM runs WHERE source = ? AND kind = ? AND id <= ? AND id <> ? AND finished_at IS NOT NULL "
            "ORDER BY id LIMIT ?"
        )
        params = (source, kind, row[0], ok[0] if ok[0] is not None else -1, self.trim_step)
        db.execute(sql(f"DELETE FROM run_skips WHERE run_id IN ({old})"), params)
        db.execute(sql(f"DELETE FROM run_progress WHERE run_id IN ({old})"), params)
        return int(db.execute(sql(f"DELETE FROM runs WHERE id IN ({old})"), params).rowcount)

    def save_progress(self, run: RunRecord, seen: int, done: int | None, total: int | None, unit: str | None) -> None:
        """The counts of a run in flight, where `inlet status` reads them."""
        owner, who = self._progress_owner()
        updated = self.clock() + self.clock_offset()
        with self._connection() as db:
            db.execute(
                self.dialect.sql(
                    "UPDATE runs SET upserted = ?, deleted = ?, skipped = ?, errors = ?, embedded = ? WHERE id = ?"
                ),
                (run.upserted, run.deleted, run.skipped, run.errors, run.embedded, run.id),
            )
            db.execute(
                self.dialect.sql(
                    self.dialect.upsert(
                        "run_progress", ["run_id", owner, "seen", "done", "total", "unit", "updated"], ["run_id"]
                    )
                ),
                (run.id, who, seen, done, total, unit, updated),
            )

    def _progress_owner(self) -> tuple[str, Any]:
        """The run_progress column naming the process running a run, and this process's value."""
        raise NotImplementedError

    def running(self, source: str) -> dict[str, Any] | None:
        """The source's unfinished run and its last saved progress; `pid` is None when the process
        may be on another host (whether it lives is then its lease's business)."""
        owner, _ = self._progress_owner()
        rows = self._exec(
            "SELECT r.kind, r.started_at, r.upserted, r.deleted, r.skipped, r.errors, r.embedded, "
            f"p.{owner}, p.seen, p.done, p.total, p.unit, p.updated FROM runs r JOIN run_progress p "
            "ON p.run_id = r.id WHERE r.source = ? AND r.finished_at IS NULL ORDER BY r.id DESC LIMIT 1",
            (source,),
        )
        if not rows:
            return None
        keys = (
            "kind",
            "started_at",
            "upserted",
            "deleted",
            "skipped",
            "errors",
            "embedded",
            "pid",
            "seen",
            "done",
            "total",
            "unit",
            "updated",
        )
        out = dict(zip(keys, rows[0]))
        offset = self.clock_offset()
        if offset:
            out["started_at"] -= offset
            out["updated"] -= offset
        if owner != "pid":
            out["pid"] = None
        return out

    def last_run(
        self, source: str, *, successful: bool = False, kinds: tuple[str, ...] | None = None
    ) -> RunRecord | None:
        cond = "AND outcome IN ('ok', 'partial')" if successful else "AND finished_at IS NOT NULL"
        params: tuple[Any, ...] = (source,)
        if kinds:
            where, values = self.dialect.in_list("kind", kinds)
            cond += f" AND {where}"
            params += tuple(values)
        return next(
            self._rows(f"SELECT {RUN_FIELDS} FROM runs WHERE source = ? {cond} ORDER BY id DESC LIMIT 1", params), None
        )

    def recent_runs(self, source: str, limit: int = 20) -> list[RunRecord]:
        """The last `limit` runs of `source`, newest first (a run in progress has no finished_at)."""
        return list(
            self._rows(f"SELECT {RUN_FIELDS} FROM runs WHERE source = ? ORDER BY id DESC LIMIT ?", (source, limit))
        )

    def runs(self, source: str) -> list[RunRecord]:
        """Every run of `source`, oldest first (what `inlet migrate` copies)."""
        return list(self._rows(f"SELECT {RUN_FIELDS} FROM runs WHERE source = ? ORDER BY id", (source,)))

    def add_run(self, run: RunRecord) -> None:
        """Record a finished run as it is (copied from another index; its times of this host's clock)."""
        run = run.moved(self.clock_offset())
        values = (run.source, run.kind, run.started_at, *_ending(run))
        self._exec(f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({','.join('?' * len(values))})", values)

    def failure_streak(self, source: str) -> int:
        """Failed syncs (`SYNC_KINDS`) since the last successful one: a prune, whatever its outcome,
        neither ends nor lengthens it."""
        where, values = self.dialect.in_list("kind", SYNC_KINDS)
        return streak_of(
            self._exec(
                f"SELECT outcome FROM runs WHERE source = ? AND {where} AND finished_at IS NOT NULL "
                "ORDER BY id DESC LIMIT 100",
                (source, *values),
            )
        )

    def close_orphan_runs(self, source: str, error: str) -> int:
        """Mark runs left unfinished by a process that died as failed; call only while holding the
        source's lease (so no live process is running them)."""
        now = self.clock() + self.clock_offset()
        with self._connection() as db:
            db.execute(
                self.dialect.sql(
                    "DELETE FROM run_progress WHERE run_id IN "
                    "(SELECT id FROM runs WHERE source = ? AND finished_at IS NULL)"
                ),
                (source,),
            )
            return db.execute(
                self.dialect.sql(
                    "UPDATE runs SET finished_at = ?, outcome = 'failed', "
                    "errors = errors + 1, error = ? "
                    "WHERE source = ? AND finished_at IS NULL"
                ),
                (now, error, source),
            ).rowcount

    def sources_with_unfinished_runs(self) -> list[str]:
        """The sources with a run recorded as started and never finished."""
        return [r[0] for r in self._exec("SELECT DISTINCT source FROM runs WHERE finished_at IS NULL ORDER BY source")]

    # --- what each run skipped -------------------------------------------------------------------
    def add_skip(self, run_id: int, n: int, item_id: str, title: str | None, reason: str, failed: bool) -> None:
        """The `n`th item run `run_id` skipped (call for n <= SKIPS_KEPT only)."""
        self._exec(
            self.dialect.upsert("run_skips", ["run_id", "n", "item_id", "title", "reason", "failed"], ["run_id", "n"]),
            (run_id, n, item_id, title, reason, failed),
        )

    def drop_skip(self, run_id: int, n: int) -> None:
        """Forget the `n`th item run `run_id` skipped (read after all in the same run)."""
        self._exec("DELETE FROM run_skips WHERE run_id = ? AND n = ?", (run_id, n))

    def skipped_items(self, run_id: int) -> list[dict[str, Any]]:
        """What run `run_id` skipped (the first SKIPS_KEPT), in order."""
        return [
            skip_row(r)
            for r in self._exec(
                "SELECT item_id, title, reason, failed FROM run_skips WHERE run_id = ? ORDER BY n", (run_id,)
            )
        ]

    # --- forgetting a source that left the configuration ------------------------------------------
    def drop_checkpoint(self, source: str) -> bool:
        """Delete the checkpoint of `source` (its `sources` row) alone, whether there was one: the
        first step of `inlet forget`, so that once its documents start going nothing claims they are
        indexed (a source configured again after an interrupted forget starts from a first
        backfill), while its runs stay to show the forget unfinished (`known_sources`). The caller
        holds its lease."""
        with self._connection() as db:
            return db.execute(self.dialect.sql("DELETE FROM sources WHERE name = ?"), (source,)).rowcount > 0

    def known_sources(self) -> list[str]:
        """The sources with sync state (a checkpoint or runs), sorted: with the catalog's, what
        `inlet status` compares with the configuration."""
        rows = self._exec("SELECT name FROM sources UNION SELECT DISTINCT source FROM runs")
        return sorted(r[0] for r in rows)

    def forget(self, source: str) -> bool:
        """Delete everything kept of `source`: its checkpoint, runs (their progress and skipped
        items), pause, schedule and change-event rows, in one transaction; whether there was any.
        The caller holds its lease (no run of it is under way) and has deleted its documents (after
        `drop_checkpoint`)."""
        runs = "SELECT id FROM runs WHERE source = ?"
        with self._connection() as db:
            found = 0
            for sql in (
                f"DELETE FROM run_skips WHERE run_id IN ({runs})",
                f"DELETE FROM run_progress WHERE run_id IN ({runs})",
                "DELETE FROM runs WHERE source = ?",
                "DELETE FROM sources WHERE name = ?",
                "DELETE FROM paused WHERE source = ?",
                "DELETE FROM daemon_schedule WHERE source = ?",
                "DELETE FROM daemon_events WHERE source = ?",
            ):
                found += db.execute(self.dialect.sql(sql), (source,)).rowcount
            return found > 0

    # --- the daemon's schedule (what `inlet status` shows as next run while a daemon runs) ----------
    def set_next_runs(self, pid: int, next_runs: dict[str, float | None]) -> None:
        raise NotImplementedError

    def clear_next_runs(self, pid: int) -> None:
        raise NotImplementedError

    def daemon_next_runs(self) -> dict[str, tuple[float | None, int]]:
        """source -> (next run, daemon pid), as the last daemon to run wrote it."""
        rows = self._exec("SELECT source, next_run, pid FROM daemon_schedule")
        offset = self.clock_offset() if rows else 0.0
        return {name: (None if ts is None else ts - offset, pid) for name, ts, pid in rows}

    # --- operator pauses: kept here so that they survive restarts and reach every process --------
    def set_paused(self, source: str, paused: bool) -> None:
        if paused:
            self._exec(
                self.dialect.upsert("paused", ["source", "since"], ["source"], keep=True),
                (source, self.clock() + self.clock_offset()),
            )
        else:
            self._exec("DELETE FROM paused WHERE source = ?", (source,))

    def paused(self) -> dict[str, float]:
        """source -> since when (epoch seconds) its schedule is paused."""
        rows = self._exec("SELECT source, since FROM paused")
        offset = self.clock_offset() if rows else 0.0
        return {name: since - offset for name, since in rows}
