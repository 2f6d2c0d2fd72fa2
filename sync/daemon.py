"""`inlet daemon`: every source on its schedule, in parallel up to `[daemon].max_parallel`.

All runs go through the process's one `Engine`, so the engine's per-source file lock keeps a source
from running twice (in this process or another), and its `stop` event turns SIGINT/SIGTERM into
"finish the batch in hand, save the checkpoint, return". APScheduler 3 fires the jobs with:
- `coalesce=True`: several missed fire times of one job make one run;
- `misfire_grace_time=None`: a late run (every worker busy, a suspended laptop) still runs, because
  a late sync beats a dropped one (APScheduler's default drops a run that is more than 1 s late);
- `max_instances=1`, plus a per-source guard shared by a source's sync, retry and prune jobs.
A sync the daemon starts by itself (scheduled, catch-up, retry, takeover) that finds that guard
held (a change event's run, a prune, an operator's run) is not dropped: it is owed, once however
many fall due meanwhile, and queued the moment the guard is released; it then runs unless a sync or
backfill of the source started since it was owed (that run did its work).
A failed run is retried after a capped exponential backoff (30 s, 1 min, 2 min, ... up to
`[daemon].retry_max`); the regular schedule waits out the backoff too, and the failure is logged
once per streak, not once per attempt. A sync that cannot even start because the index database
cannot be reached counts as such a failure (one line naming the source and `database_url`). At
start-up a source whose run fell due while no daemon was running (judged from its last run in the
state DB) runs at once, once; an interval counts from the end of the last run, whichever daemon ran
it, and never from a time in this host's future (`schedule.counted_from`: a run or prune recorded
ahead was timed by another clock); an interrupted backfill resumes from its checkpoint, and so does a
source whose last event run (a scoped sync a change event asked for) was cut short by a crash or by
shutdown, or could not start because the daemon was stopping (change events heard just before
SIGTERM: `event_sync` records them as an interrupted event run): the service will not notify that
change again.

A run that failed because its service asked for a longer wait than a call waits out (a 429 with
`Retry-After: 900`: `RunResult.retry_after`) is retried no earlier than that, whatever the backoff.
The wait is recorded with the run (`RunRecord.retry_at`), so no run a daemon starts by itself
(scheduled, catch-up, retry, takeover, change events) calls the service before it ends: not in a
restarted daemon, nor in any daemon sharing the database. Runs an operator asks for (`inlet sync`,
the console's "run now") are not held back.

Change events (`events.py`: Slack Socket Mode, Graph subscriptions, Drive push channels) add
debounced incremental syncs between scheduled ones, through the same per-source guard; the schedule
stays the reconciling pass. An event sync that finds the source's lease held by another daemon (a
shared database) is no failure: it runs again when that lease ends (that run may have read past the
change before it happened), one for all the events heard meanwhile. A service notifies only changes
made after a subscription exists, so each subscription made where none was held (at start: after a
restart or a crash) is followed by one incremental catch-up sync of what it watches, whatever
`due_at_start` says. After every run, its source's change events follow the checkpoint it saved (a
folder a run found gets its subscription).

The process around it (index, state, API, local channel, signals) is assembled by
`inlet.compose.run_daemon`; this module knows no server. `--serve` runs the API in that process
(uvicorn in a thread) on the same open Index: searches read without the engine's write lock, and
see a batch only once its catalog transaction commits.
With or without `--serve`, `inlet search`, `sync`, `backfill`, `status` and `mcp` run by the same
user are forwarded to the daemon over its local channel (`inlet.server.local_commands`); a forwarded
run of a source that is already running is refused as a direct one would be (`run_for_client`).

Shutdown is bounded: after SIGINT/SIGTERM the daemon waits up to `SHUTDOWN_GRACE` seconds for runs
in flight to reach their next checkpoint, then exits 0 regardless (nothing is lost: a run resumes
from its last saved checkpoint); a second signal ends the process at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from datetime import datetime, timezone
from typing import Any

from inlet.config import Settings
from inlet.connectors.base import SourceConfig, parse_duration
from inlet.errors import IndexUnavailable, InletError, SourceBusyError, StorageError
from inlet.index.disk import storage_error
from inlet.process import overdue

from .engine import ORPHANED, STOP_GRACE, Engine, RunResult, synced_unless_busy
from .events import STOP_DEADLINE, Deferred, EventLoop, event_loop_for
from .schedule import ahead, counted_from, trigger
from inlet.storage import RunRecord, SourceState, open_backend

log = logging.getLogger(__name__)

RETRY_BASE = 30.0  # seconds before the first retry of a failed run
BUSY_RETRY = 60.0  # a prune that found its source busy tries again this much later
# a job held back by its service's Retry-After comes back as the same job once the wait ends
_REQUEUED = {"catch-up": "catchup", "retry": "retry", "takeover": "takeover"}
SHUTDOWN_GRACE = STOP_GRACE  # longest wait for runs in flight to reach their next checkpoint (and
#                                for event sources to remove their subscriptions, at the same time)
SHUTDOWN_DEADLINE = 20.0  # from SIGTERM to exit, whatever the services and connectors do
WATCHDOG_MARGIN = 2.0  # the watchdog exits this much before the deadline (logging, interpreter exit)
Clock = Callable[[], float]
Mark = tuple[int | None, float | None] | None  # a source's last sync or backfill: (id, finished_at)


def backoff(streak: int, cap: float, base: float = RETRY_BASE) -> float:
    """Seconds to wait after the `streak`-th failure in a row: base, 2x, 4x, ... never above `cap`."""
    return min(cap, base * 2 ** max(0, min(streak, 32) - 1))


def _interrupted(run: RunRecord | None) -> bool:
    """Stopped (SIGTERM past the grace) or killed: the run did not finish what it read."""
    return run is not None and (run.outcome == "interrupted" or (run.outcome == "failed" and run.error == ORPHANED))


def _event_owed(last: RunRecord | None, event: RunRecord | None) -> bool:
    """Whether the last event run was cut short (or never started) after the last sync began."""
    return event is not None and _interrupted(event) and (last is None or event.started_at >= last.started_at)


def due_at_start(
    source: SourceConfig, state: SourceState, last: RunRecord | None, now: float, event: RunRecord | None = None
) -> str | None:
    """Why a source must run as soon as the daemon starts, or None to wait for its schedule. `last` is
    its last sync or backfill; `event`, its last event run (a scoped sync a change event asked for)."""
    if not (source.schedule or source.every):  # runs only when asked, but for change events it owes
        return "its last event sync was interrupted" if _event_owed(last, event) else None
    if state.phase == "new" or last is None:
        return "never synced"
    if state.phase == "backfill":
        return "its backfill was interrupted"
    if _interrupted(last):
        return "its last sync was interrupted"  # stopped (SIGTERM) or killed: it resumes from its checkpoint
    if _event_owed(last, event):
        return "its last event sync was interrupted"  # the service will not notify that change again
    if source.schedule:
        after = datetime.fromtimestamp(last.started_at + 1, timezone.utc)
        cron = trigger(source)
        assert cron is not None  # source.schedule is set
        due = cron.get_next_fire_time(None, after)
        return "a scheduled run was missed" if due and due.timestamp() <= now else None
    finished = last.finished_at or last.started_at
    return "a scheduled run was missed" if finished + parse_duration(source.every or "0s") <= now else None


class Daemon:
    """Schedules the sources of `settings` on `engine`; `clock` (epoch seconds) is replaceable in tests."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        clock: Clock = time.time,
        scheduler: Any = None,
        hooks: bool = False,
    ) -> None:
        """`hooks`: this process serves the API (`--serve`), so webhook change events can be heard."""
        self.settings = settings
        self.hooks = hooks
        self.engine = engine
        self.state = engine.state
        self.stop = engine.stop
        self.clock = clock
        self.jitter = parse_duration(settings.daemon.jitter) or None
        self.retry_cap = parse_duration(settings.daemon.retry_max)
        self.scheduler = scheduler or _scheduler(settings.daemon.max_parallel)
        self.sources = [s for s in settings.sources if s.schedule or s.every]
        self._guards = {s.name: threading.Lock() for s in settings.sources}
        self._owed: dict[str, tuple[str, Mark]] = {}  # source -> why, last sync when owed (`_take`)
        self._owed_lock = threading.Lock()  # a guard's release and a sync owed to it, one at a time
        self._after_lease: dict[str, frozenset[str] | None] = {}  # event syncs waiting for another host
        self._failing: dict[str, int] = {}  # source -> failure streak, while failing
        self._backoff_until: dict[str, float] = {}
        self._manual = 0  # operator requests so far (each its own job)
        self._active = 0
        self._idle = threading.Condition()
        self.events: EventLoop | None = None  # change events (sync/events.py), from start()

    # --- scheduling ---------------------------------------------------------------------------
    def schedule(self) -> None:
        """Add every source's jobs: its sync, its prune, and a catch-up run if one was missed."""
        now = self.clock()
        scheduled = {s.name for s in self.sources}
        for source in [s for s in self.settings.sources if s.name not in scheduled]:  # owed event syncs only
            last = self.state.last_run(source.name, kinds=("sync", "backfill"))
            why = due_at_start(
                source, self.state.source(source.name), last, now, self.state.last_run(source.name, kinds=("event",))
            )
            if why and source.name not in self.state.paused():
                log.info("source %r runs now: %s", source.name, why)
                self._once(
                    f"catchup:{source.name}",
                    self.sync_job,
                    max(now, self._throttled_until(source.name) or now),
                    source.name,
                    "catch-up",
                )
        for source in self.sources:
            self._close_orphans(source.name)
            state = self.state.source(source.name)
            last = self.state.last_run(source.name, kinds=("sync", "backfill"))
            why = due_at_start(source, state, last, now, self.state.last_run(source.name, kinds=("event",)))
            throttled = self._throttled_until(source.name)
            if throttled is not None:
                self._backoff_until[source.name] = throttled
            start = None
            if why and source.name in self.state.paused():
                log.info("source %r would run now (%s) but is paused", source.name, why)
            elif why and throttled is not None:
                log.info(
                    "source %r runs at %s (%s): its service asked for no call before then",
                    source.name,
                    _utc(throttled).isoformat(timespec="seconds"),
                    why,
                )
                self._once(f"catchup:{source.name}", self.sync_job, throttled, source.name, "catch-up")
            elif why:
                log.info("source %r runs now: %s", source.name, why)
                self._once(f"catchup:{source.name}", self.sync_job, now, source.name, "catch-up")
            elif source.every and last:
                ended = counted_from(last.finished_at or last.started_at, now)
                start = _utc(ended + parse_duration(source.every))
            self._add(f"sync:{source.name}", self.sync_job, trigger(source, self.jitter, start), source.name)
            self._schedule_prune(source, state, now)

    def _schedule_prune(self, source: SourceConfig, state: SourceState, now: float) -> None:
        from apscheduler.triggers.interval import IntervalTrigger

        every = parse_duration(source.prune_every)
        first = now + every
        if state.phase == "incremental":
            if state.last_prune is None or state.last_prune + every <= now:
                self._once(f"prune-now:{source.name}", self.prune_job, now, source.name)
            else:
                first = counted_from(state.last_prune, now) + every
        self._add(
            f"prune:{source.name}",
            self.prune_job,
            IntervalTrigger(seconds=every, start_date=_utc(first), timezone=timezone.utc, jitter=self.jitter),
            source.name,
        )

    def _add(self, job_id: str, func: Callable[..., Any], trig: Any, *args: Any) -> None:
        if self.stop.is_set():
            return
        self.scheduler.add_job(
            self._tracked,
            trig,
            args=(func, *args),
            id=job_id,
            name=job_id,
            replace_existing=True,
            coalesce=True,
            misfire_grace_time=None,
            max_instances=1,
        )

    def _once(self, job_id: str, func: Callable[..., Any], when: float, *args: Any) -> None:
        from apscheduler.triggers.date import DateTrigger

        self._add(job_id, func, DateTrigger(run_date=_utc(when), timezone=timezone.utc), *args)

    def start(self, events: bool = True) -> None:
        self.schedule()
        self.scheduler.start()
        self.publish()
        if events:
            self.start_events()

    def start_events(self) -> None:
        """Hear the sources' change events: a new `EventLoop`, each source's subscriptions made
        anew (and, as the services notify only later changes, each followed by a catch-up sync)."""
        env = getattr(self.engine, "env", None)
        backend = open_backend(self.settings)
        self.events = event_loop_for(
            self.settings,
            lambda name: self.settings.connector(name, env),
            self.event_sync,
            backend.event_writer,
            sole=not backend.shared,
            hooks=self.hooks,
        )
        self.events.start()

    def event_sync(self, name: str, scope: frozenset[str] | None = None) -> RunResult | Deferred | None:
        """A sync asked for by change events (of the containers in `scope` only, unless None): after
        any run of the source in flight, never beside it; while its service asked for no call,
        `Deferred` (the events wait for the end of the pause). While another daemon holds the
        source's lease, it follows that daemon's run (`_follow_lease`): not a failure."""
        if self.stop.is_set():  # heard before the stop: owed to the next start, the service will not send it again
            self._owe_event(name, scope)
            return None
        throttled = self._throttled_until(name)
        if throttled is not None:  # the events wait for the service's pause to end (`EventLoop`)
            log.debug("event sync of %r deferred: its service asked for no call before %s", name, _utc(throttled))
            return Deferred(max(0.0, throttled - self.clock()))
        try:
            return self._run_held(name, scope)
        except SourceBusyError as exc:
            self._follow_lease(name, scope, exc)
            return None
        finally:
            self.publish()

    def _owe_event(self, name: str, scope: frozenset[str] | None) -> None:
        """Change events heard but not run when the daemon stops: recorded as an interrupted event run,
        so the next start runs the source at once (`due_at_start`), as after an event run cut short."""
        where = ", ".join(sorted(scope)) if scope is not None else "the whole source"
        try:
            why = f"interrupted: the daemon stopped before the sync of change events in {where} could start"
            self.engine.record_unrun(name, "event", why + "; the next start syncs the source")
        except Exception as exc:  # stopping: the schedule reads what it can
            log.warning("source %r: could not record the change events owed to the next start: %s", name, exc)

    def _follow_lease(self, name: str, scope: frozenset[str] | None, exc: SourceBusyError) -> None:
        """Another daemon runs the source, and may have read past the change before it happened:
        the event sync runs again once that daemon's lease ends (as `_watch_lease` does for a
        scheduled one), one for every event meanwhile (their containers merged)."""
        with self._owed_lock:
            waiting = name in self._after_lease
            held = self._after_lease.get(name)
            self._after_lease[name] = scope if not waiting else None if held is None or scope is None else held | scope
        if waiting or self.stop.is_set():
            return
        when = self._lease_ends(name)
        log.info(
            "change event sync of %r follows the run of it in progress elsewhere (%s): "
            "it runs when that lease ends, at %s",
            name,
            exc,
            _utc(when).isoformat(timespec="seconds"),
        )
        self._once(f"event-after:{name}", self._event_after_lease, when, name)

    def _event_after_lease(self, name: str) -> RunResult | None:
        with self._owed_lock:
            if name not in self._after_lease:
                return None
            scope = self._after_lease.pop(name)
        result = self.event_sync(name, scope)
        if isinstance(result, Deferred):  # its service asked for a pause: the events run after it
            with self._owed_lock:
                held = self._after_lease.get(name, scope)
                self._after_lease[name] = None if held is None or scope is None else held | scope
            self._once(f"event-after:{name}", self._event_after_lease, self.clock() + result.retry_after, name)
            return None
        return result

    def shutdown(self, grace: float = SHUTDOWN_GRACE) -> bool:
        """Stop firing, let runs in flight stop at their next checkpoint while event sources remove
        their subscriptions (both bounded by `grace`); False if runs outlast it."""
        self.stop.set()
        deadline = time.monotonic() + grace
        if self.scheduler.running:
            # APScheduler 3 marks itself stopped before taking its job-store lock, so a one-shot
            # job fired at that moment fails to remove itself in the scheduler's thread: pause and
            # empty the store first (both wait for that lock), then stop.
            self.scheduler.pause()
            self.scheduler.remove_all_jobs()
            self.scheduler.shutdown(wait=False)
        events = self.events
        stopping = None
        if events:
            stopping = threading.Thread(
                target=events.stop, args=(min(grace, STOP_DEADLINE),), daemon=True, name="inlet-events-stop"
            )
            stopping.start()
        with self._idle:
            while self._active and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
            finished = self._active == 0
        if stopping:
            stopping.join(max(0.0, deadline - time.monotonic()))
        self.state.clear_next_runs(os.getpid())
        return finished

    # --- jobs ---------------------------------------------------------------------------------
    @contextmanager
    def _counted(self) -> Iterator[None]:
        """Count a run in flight, so shutdown can wait for it to reach its checkpoint."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def _tracked(self, func: Callable[..., Any], *args: Any) -> Any:
        if self.stop.is_set():
            return None
        try:
            with self._counted():
                return func(*args)
        except Exception as exc:  # a bug here must not kill the worker thread silently
            full = storage_error(exc, self.engine.index.path)
            if full is not None:  # a full or read-only index folder: its name and cause, no traceback
                log.error("daemon job %s%r failed: %s", func.__name__, args, full)
            else:
                log.exception("daemon job %s%r failed", func.__name__, args)
            return None
        finally:
            self.publish()

    def sync_job(self, name: str, why: str = "schedule") -> RunResult | None:
        """One scheduled sync; skipped while the source is paused, runs elsewhere or backs off after
        a failure; owed while a run of it is in flight here (`_take`). An index database that cannot
        be reached before the run could start (to read the pauses, take the lease), or an index
        folder too full to record its start, fails it as a run that started would: one line, then
        the backoff (no run is recorded: the database holds the records)."""
        return self._guarded_sync_job(name, why, None)

    def _owed_job(self, name: str, why: str, mark: Mark) -> RunResult | None:
        """A sync owed while a run of its source was in flight, queued once that run ended: skipped
        when a sync or backfill started since it was owed (or was the run in flight), which did its work."""
        if mark is None or mark[1] is not None:  # none was in flight when it was owed
            if self._last_sync(name) == mark:
                return self._guarded_sync_job(name, why, mark)
        log.info("sync of %r that waited for the run in progress skipped: a sync of it ran meanwhile", name)
        return None

    def _guarded_sync_job(self, name: str, why: str, mark: Mark) -> RunResult | None:
        try:
            return self._sync_job(name, why, mark)
        except (IndexUnavailable, StorageError) as exc:  # out of reach, or a full or read-only index folder
            result = RunResult(name, "failed", 0, 0, 0, 1, 0.0, str(exc))
            self._after(name, result)
            return result

    def _sync_job(self, name: str, why: str, mark: Mark = None) -> RunResult | None:
        if name in self.state.paused():
            log.debug("sync of %r skipped: its schedule is paused", name)
            return None
        until = self._backoff_until.get(name)
        if why == "schedule" and until is not None and self.clock() < until:
            log.debug("sync of %r skipped: backing off until %s", name, _utc(until).isoformat())
            return None
        throttled = self._throttled_until(name)
        if throttled is not None:
            log.debug("sync of %r skipped: its service asked for no call before %s", name, _utc(throttled).isoformat())
            self._backoff_until[name] = max(throttled, until or 0.0)
            if why in _REQUEUED:  # due once the wait ends (a scheduled one: at the schedule's next time)
                self._once(f"{_REQUEUED[why]}:{name}", self.sync_job, throttled, name, why)
            return None
        if not self._take(name, why, mark):
            return None
        try:
            if self.engine.leases.shared:
                shared = self.engine.run_if(name, lambda: self._still_due(name, why))
                if shared is None:
                    log.info("sync of %r skipped: another daemon ran it (or was told to wait) a moment ago", name)
                    return None
                result = shared
            else:
                result = self.engine.run(name, "sync")
        except SourceBusyError as exc:
            log.info("sync of %r skipped: %s", name, exc)
            self._watch_lease(name)
            return None
        finally:
            self._release(name)
        self._after(name, result)
        return result

    def _last_sync(self, name: str) -> Mark:
        last = self.state.last_run(name, kinds=("sync", "backfill"))
        return (last.id, last.finished_at) if last is not None else None

    def _take(self, name: str, why: str, mark: Mark = None) -> bool:
        """Take the source's guard for a sync the daemon started by itself, or, while a run of the
        source holds it, owe the sync to that run's end (`_release`; `mark`: the source's last sync
        when it was first owed)."""
        guard = self._guards[name]
        if guard.acquire(blocking=False):
            return True
        mark = mark if mark is not None else self._last_sync(name)  # read before taking the lock
        with self._owed_lock:
            if guard.acquire(blocking=False):  # the run ended meanwhile
                return True
            owed = name in self._owed
            if not owed:
                self._owed[name] = (why, mark)
        if not owed:
            log.info("sync of %r (%s) waits for the run of it in progress: it runs right after", name, why)
        return False

    def _release(self, name: str) -> None:
        """Release the source's guard; a sync owed meanwhile is queued now."""
        with self._owed_lock:
            self._guards[name].release()
            owed = self._owed.pop(name, None)
        if owed is not None and not self.stop.is_set():
            self._once(f"queued:{name}", self._owed_job, self.clock(), name, *owed)

    @contextmanager
    def _holding(self, name: str) -> Iterator[None]:
        """The source's guard, waited for (runs an operator or a change event asked for)."""
        self._guards[name].acquire()
        try:
            yield
        finally:
            self._release(name)

    def _watch_lease(self, name: str) -> None:
        """With shared leases, ask again when the holder's lease would expire: if the holder died,
        this daemon takes the source over then (and resumes its checkpoint); if it lives, it renewed."""
        if not self.engine.leases.shared or self.stop.is_set():
            return
        self._once(f"takeover:{name}", self.sync_job, self._lease_ends(name), name, "takeover")

    def _lease_ends(self, name: str) -> float:
        """When the source's lease held elsewhere ends (`BUSY_RETRY` from now if that is unknown)."""
        expires = self.engine.leases.holders().get(name, {}).get("expires") if self.engine.leases.shared else None
        return max(self.clock(), float(expires) + 0.05) if expires is not None else self.clock() + BUSY_RETRY

    def _still_due(self, name: str, why: str) -> bool:
        """With leases shared by several daemons, whether a sync is still wanted once this one holds
        the lease: not when another daemon finished one since this run was planned (read from the
        shared state, so every daemon agrees)."""
        if self._throttled_until(name) is not None:  # another daemon's run was told to wait meanwhile
            return False
        state = self.state.source(name)
        last = self.state.last_run(name, kinds=("sync", "backfill"))
        if why == "retry" or state.phase != "incremental" or last is None or last.finished_at is None:
            return True
        event = self.state.last_run(name, kinds=("event",))
        if _interrupted(event) and event is not None and event.started_at >= last.started_at:
            return True  # an event run a crash ended: its change is not notified again
        source = self.settings.source(name)
        if ahead(last.finished_at, self.clock()) is not None:
            return True  # timed by another clock: when it really ended is unknown
        if source.every:
            return self.clock() - last.finished_at >= parse_duration(source.every) / 2
        return due_at_start(source, state, last, self.clock()) is not None

    def prune_job(self, name: str) -> RunResult | None:
        """Reconcile deletions, unless a full pass did it recently; retried soon if the source is
        busy, at its next time if the index database cannot be reached (one line)."""
        try:
            return self._prune_job(name)
        except IndexUnavailable as exc:
            log.warning("prune of %r failed: %s (next try in %s)", name, exc, self.settings.source(name).prune_every)
            return None

    def _prune_job(self, name: str) -> RunResult | None:
        if name in self.state.paused():
            return None
        every = parse_duration(self.settings.source(name).prune_every)
        last = self.state.source(name).last_prune
        if last is not None and ahead(last, self.clock()) is None and self.clock() - last < 0.9 * every:
            return None
        if not self._guards[name].acquire(blocking=False):
            self._once(f"prune-retry:{name}", self.prune_job, self.clock() + BUSY_RETRY, name)
            return None
        try:
            result = self.engine.prune(name)
        except SourceBusyError:
            self._once(f"prune-retry:{name}", self.prune_job, self.clock() + BUSY_RETRY, name)
            return None
        finally:
            self._release(name)
        if result.outcome == "failed":
            log.warning(
                "prune of %r failed: %s (next try in %s)", name, result.error, self.settings.source(name).prune_every
            )
        return result

    def run_now(self, names: list[str]) -> list[RunResult]:
        """Sync `names` now (the admin route behind `inlet sync`), after any run of them in flight
        here; one another process runs is not synced (a failed result says so to the caller, but it
        is no failure of the source: no failure streak, no backoff)."""
        results = []
        for name in names:
            if self.stop.is_set():
                break
            results.append(synced_unless_busy(name, partial(self._run_held, name, None)))
        self.publish()
        return results

    def _run_held(self, name: str, scope: frozenset[str] | None) -> RunResult:
        """A sync after any run of the source in flight here (of the containers in `scope` only,
        unless None); SourceBusyError while another process holds the source's lease."""
        with self._holding(name), self._counted():
            result = self.engine.run(name, "sync", scope=scope)
        self._after(name, result)
        return result

    def start_now(self, name: str, restart_backfill: bool = False) -> None:
        """Queue a run of `name` at once, in the scheduler's pool (the console's "run now" and "restart
        backfill"); a paused source runs too, since an operator asked for it."""
        self._manual += 1  # a job id of its own: a second request while the first runs is queued, not lost
        self._once(f"manual:{name}:{self._manual}", self._manual_job, self.clock(), name, restart_backfill)

    def _manual_job(self, name: str, restart_backfill: bool) -> RunResult | None:
        with self._holding(name):
            try:
                if restart_backfill:
                    result = self.engine.run(name, "backfill", restart=True)
                else:
                    result = self.engine.run(name, "sync")
            except SourceBusyError as exc:
                log.info("run of %r requested by an operator skipped: %s", name, exc)
                return None
        self._after(name, result)
        return result

    def run_for_client(
        self,
        name: str,
        kind: str,
        since: datetime | None = None,
        restart: bool = False,
        cancel: threading.Event | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunResult:
        """A sync or backfill a local command forwarded here (`local_commands.py`): refused with the
        SourceBusyError a direct run gets while the source runs, instead of queueing behind it;
        `cancel` (the command's Ctrl-C) ends it at its next checkpoint; `env`, the secrets the
        command brought, come before the daemon's own."""
        if self.stop.is_set():
            raise InletError(f"the daemon (pid {os.getpid()}) is stopping; run the command again once it has")
        guard = self._guards[name]
        if not guard.acquire(blocking=False):
            raise SourceBusyError(f"source {name!r} is already being synced (pid {os.getpid()})")
        try:
            with self._counted():
                result = self.engine.run(name, kind, since=since, restart=restart, cancel=cancel, env=env)
        finally:
            self._release(name)
        self._after(name, result)
        self.publish()
        return result

    def _after(self, name: str, result: RunResult) -> None:
        """Let change events follow the run; track failure streaks: log once per streak, retry with
        backoff (never before the service's `retry_after`), note the recovery."""
        if self.events is not None:
            self.events.follow(name, lambda: self._backfilled_checkpoint(name))
        if result.outcome != "failed":
            streak = self._failing.pop(name, 0)
            self._backoff_until.pop(name, None)
            if streak and not self.stop.is_set():
                log.info("source %r recovered after %d failed run(s)", name, streak)
            return
        try:
            streak = self.state.failure_streak(name) or 1
        except IndexUnavailable:  # its runs are out of reach (the failure may be that): counted here
            streak = self._failing.get(name, 0) + 1
        # never before the service's Retry-After ends (retry_max caps the backoff only)
        asked = result.retry_after or 0.0
        delay = max(backoff(streak, self.retry_cap), asked)
        retry_at = self.clock() + delay
        self._backoff_until[name] = retry_at
        if name not in self._failing:
            log.error(
                "source %r is failing: %s; retrying with backoff, next try in %.0fs%s "
                "(logged once until it recovers; see `inlet status`)",
                name,
                result.error,
                delay,
                " (its service asked for no call before then)" if asked >= delay else "",
            )
        else:
            log.debug("source %r failed again (%d in a row): %s", name, streak, result.error)
        self._failing[name] = streak
        if not self.stop.is_set():
            self._once(f"retry:{name}", self.sync_job, retry_at, name, "retry")

    def _throttled_until(self, name: str) -> float | None:
        """When the service that failed the source's newest run allows the next call, if that is
        later than now (`RunRecord.waits_until`), else None. Read from the state: a restarted
        daemon, and every daemon sharing the database, wait for it too. Unknown (None) while the
        index database cannot be reached: a run then fails on that, as it would have."""
        try:
            last = self.state.last_run(name)
        except IndexUnavailable:
            return None
        return last.waits_until(self.clock()) if last is not None else None

    def _backfilled_checkpoint(self, name: str) -> dict[str, Any] | None:
        """The source's saved checkpoint once its backfill is done (before, it names only part of it)."""
        state = self.state.source(name)
        return state.checkpoint if state.phase == "incremental" else None

    def _close_orphans(self, name: str) -> None:
        """Runs left unfinished by a killed process are marked failed (only when nobody runs the source)."""
        try:
            with self.engine.leases.hold(name):
                if self.state.close_orphan_runs(name, ORPHANED):
                    log.info("source %r: a run interrupted by a crash resumes from its last checkpoint", name)
        except SourceBusyError:
            pass

    # --- visibility ---------------------------------------------------------------------------
    def next_runs(self) -> dict[str, float | None]:
        """The next sync each source will really make (catch-up, retry or schedule past any backoff)."""
        times: dict[str, list[float]] = {s.name: [] for s in self.sources}
        for job in self.scheduler.get_jobs():
            kind, _, name = job.id.partition(":")
            when = getattr(job, "next_run_time", None)
            if name in times and kind in ("sync", "catchup", "retry", "queued") and when is not None:
                until = self._backoff_until.get(name)
                if kind == "sync" and until is not None and when.timestamp() < until:
                    continue
                times[name].append(when.timestamp())
        return {name: min(ts) if ts else None for name, ts in times.items()}

    def publish(self) -> None:
        """Write the next runs where `inlet status` (SQLite only) reads them."""
        if self.scheduler.running:
            try:
                self.state.set_next_runs(os.getpid(), self.next_runs())
            except Exception:  # visibility must never stop syncing
                log.debug("could not record next runs", exc_info=True)


def _scheduler(max_parallel: int) -> Any:
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    return BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_parallel)},
        job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        timezone=timezone.utc,
    )


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


__all__ = ["Daemon", "backoff", "due_at_start", "overdue", "RETRY_BASE", "SHUTDOWN_DEADLINE", "WATCHDOG_MARGIN"]
