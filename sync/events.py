"""The daemon's event loop: change events from connectors turned into debounced syncs.

Invariant: a hint is cleared only when a sync that *started after it arrived* has finished, so a
change announced while a run of its source is in flight (which may already have passed that
channel or folder) always gets a run of its own. Hints of one source arriving within `debounce`
seconds of each other make one run (never delayed more than `DEBOUNCE_CAP` times that); runs go
through the daemon's per-source guard, so an event never runs a source twice at once, and a
scheduled run and an event run of one source queue behind each other (a scheduled run due during an
event run is owed to its end: the daemon's `_take`). Hints pending when the loop stops (heard
within the debounce before a SIGTERM, or back from a failed run) are not dropped: they go to
`run_sync` at once, which, the daemon stopping, records them as an interrupted event run that the
next start runs (the service will not send them again; that run is a plain sync of the source,
scheduled or not: what only the events named, such as a reply edited in an old thread, waits for
the source's next re-read of old threads). Hints whose source's service asked for no call
(`Deferred`) stay pending until the pause ends.

This module knows no service: a connector's `events()` (see `connectors/events.py`) says whether
and how it hears changes. A batch of hints that all name a container makes a scoped sync of just
those containers (`Connector.load_scope`: one Slack channel, one mail folder); a hint naming none
(a Drive change) makes an incremental sync of the whole source. A run of hints that failed (a
transient error of the service) leaves them pending: they run again after a back-off (`RERUN_FIRST`
seconds, doubling, never before the service's `Retry-After`), up to `RERUNS` times, then they are
dropped with a warning (a plain sync never reads what only events name: a reply edited in an old
thread). Each source's state (live or not,
the last event, event-to-searchable latency) is written to the state database for `inlet status`
and `/metrics`, with the reason when not live; a source whose `events()` itself failed is written
as down with its error (an exception other than inlet's is a connector bug: its type is named).
A source that hears changes by webhook (`EventSource.hook_key`) is started only by a daemon that
serves the API (`hooks`); elsewhere nothing could hear the service, so nothing is opened and it is
shown down, naming the key and `inlet daemon --serve`.

Each source's event source is started and kept alive (`maintain`) on a thread of its own, every call
within `without_waits` (kit.retry): a throttled or failing subscription call fails at once into the
source's back-off (never before the service's `Retry-After`), so one source's trouble never holds
another's renewals, the daemon's start (which waits at most `START_WAIT` seconds for the first
tries) or its shutdown. `stop()` reaches every source whose start was tried, started or not, so what
a failed start opened is removed too. After every run of a source whose event source `follows`
checkpoints, that source is handed the checkpoint of the finished backfill (`follow`), so it watches
a container a run found new (or stops watching one gone) without a restart. A `maintain()` that
raises is backed off as a start is (`MAINTAIN_BACKOFF`, doubling), and until one succeeds the
source's events show down with the exception (its type named; the first failure logged with its
traceback when it is not inlet's), whatever the event source's own `live` says.
"""

from __future__ import annotations

import functools
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inlet.connectors.events import EventSource, Hint, Retry
from inlet.connectors.kit.retry import waits_end_when, without_waits
from inlet.errors import InletError
from inlet.logs import redact
from inlet.storage import EventStatusWriter


log = logging.getLogger(__name__)

DEBOUNCE = 0.15  # seconds of quiet after a hint before its source syncs (a burst: one run)
DEBOUNCE_CAP = 4  # ... but never more than this many DEBOUNCEs after the first hint
MAINTAIN_EVERY = 1.0  # seconds between maintain() calls (renewals, reconnects)
MAINTAIN_BACKOFF = 1.0  # seconds before calling a maintain() that raised again; doubling, as a start's
STOP_DEADLINE = 8.0  # seconds every event source together gets to remove its subscriptions
KEEPER_GRACE = 2.0  # seconds stop() waits for a start or renewal in flight before removing subscriptions
START_WAIT = 10.0  # seconds start() waits for the sources' first start tries (each goes on in its thread)
RERUN_FIRST = 5.0  # seconds before the hints of a failed run run again (doubling, up to 5 min)
RERUNS = 5  # failed runs in a row after which a source's pending hints are dropped


@dataclass(frozen=True)
class Deferred:
    """What `run_sync` answers for hints it may not run yet (the service asked for no call for
    `retry_after` seconds): they stay pending and run once the wait is over."""

    retry_after: float


RunSync = Callable[[str, "frozenset[str] | None"], Any]
"""The daemon's guarded sync of one source (of the given containers only, unless None); returns
None when it did not run. Once the loop stops it is called once more with each source's pending
hints: the daemon, stopping, records them as an interrupted event run, which its next start runs."""


@dataclass
class _Source:
    """One event-enabled source: its event source, its pending hints, its worker."""

    name: str
    type: str
    events: EventSource
    pending: list[Hint] = field(default_factory=list)
    last_hint: float = 0.0  # monotonic time of the newest pending hint
    last_event_at: float | None = None
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    started: bool = False
    tried: bool = False  # its start was called (stop() must reach what it opened, started or not)
    reason: str = ""  # why its start failed, until it succeeds
    failing: str = ""  # why its maintain() failed (the exception, its type named), until one succeeds
    keeping: Retry = field(default_factory=lambda: Retry(first=MAINTAIN_BACKOFF))  # maintain() after a failure
    first_try: threading.Event = field(default_factory=threading.Event)  # its first start try is over
    shown_live: bool | None = None  # `live` as last published
    shown_reason: str | None = None
    syncing: bool = False  # an event sync of it is in flight
    hints: int = 0  # hints received, for tests and benchmarks
    retry: Retry = field(default_factory=lambda: Retry(first=1.0))  # starting again after a refusal
    rerun: Retry = field(default_factory=Retry)  # running failed hints again (`EventLoop._failed`)
    failures: int = 0  # event runs failed in a row


class EventLoop:
    """Starts every connector's event source and syncs the sources their hints name."""

    def __init__(
        self,
        sources: Iterable[tuple[str, str, EventSource]],
        run_sync: RunSync,
        *,
        status: EventStatusWriter | None = None,
        debounce: float = DEBOUNCE,
        clock: Callable[[], float] = time.time,
        off: Mapping[str, str] | None = None,
        rerun_first: float = RERUN_FIRST,
    ) -> None:
        self.sources = {name: _Source(name, type_, ev, rerun=Retry(first=rerun_first)) for name, type_, ev in sources}
        self.off = dict(off or {})  # sources whose `events()` failed -> why: shown down, never started
        self.run_sync = run_sync
        self.status = status
        self.debounce = debounce
        self.clock = clock
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._keepers: list[threading.Thread] = []  # one a source: starts its event source, keeps it alive
        self.abandoned: list[str] = []  # sources still removing their subscriptions when stop() gave up

    def receiver(self, type_: str, name: str) -> EventSource | None:
        """The event source behind `/hooks/{type}/{name}`, or None (the hook is then 404)."""
        source = self.sources.get(name)  # served from start() on: Graph validates while we subscribe
        return source.events if source and source.type == type_ and not self._stop.is_set() else None

    # --- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start every source's event source, each on its own thread; wait at most `START_WAIT`
        seconds in all for the first tries (a source still starting then goes on in its thread).
        A source whose `events()` failed is recorded as down, with why, for `inlet status`."""
        for name, why in self.off.items():
            self._save(name, {"live": False, "reason": why, "last_event_at": None, "latency_seconds": None})
        for source in self.sources.values():
            for target, role in ((self._work, "events"), (self._keep, "keep")):
                thread = threading.Thread(
                    target=target, args=(source,), daemon=True, name=f"inlet-{role}-{source.name}"
                )
                thread.start()
                (self._keepers if role == "keep" else self._threads).append(thread)
        ends = time.monotonic() + START_WAIT
        for source in self.sources.values():
            source.first_try.wait(max(0.0, ends - time.monotonic()))

    def _keep(self, source: _Source) -> None:
        """Start `source`'s event source (again after a refusal, once its back-off ends), then keep it
        alive; no call waits in line, and every wait ends when the loop stops."""
        self._publish(source)  # `inlet status`: down, "starting", while the first try runs
        with waits_end_when(self._stop.is_set), without_waits():
            self._start_source(source)
            source.first_try.set()
            while not self._stop.wait(MAINTAIN_EVERY):
                if not source.started:
                    if source.retry.due():
                        self._start_source(source)
                    continue
                if source.keeping.due():
                    self._maintain(source)
                now = self.report(source.name)
                if now["live"] != source.shown_live:
                    log.info("source %r: change events %s", source.name, "live" if now["live"] else "down")
                if (now["live"], now["reason"]) != (source.shown_live, source.shown_reason):
                    self._publish(source)

    def _maintain(self, source: _Source) -> None:
        """One `maintain()` call. One that raises is tried again after a back-off (doubling, never
        before the service's `Retry-After`); the source's events show down with the error meanwhile
        (the schedule still syncs it). The first failure of a streak is a WARNING, with the traceback
        when the exception is not inlet's (a connector bug, its type named), the others DEBUG."""
        try:
            source.events.maintain()
        except Exception as exc:
            bug = not isinstance(exc, InletError)
            why = f"{type(exc).__name__}: {exc}" if bug else str(exc)
            wait = source.keeping.failed(getattr(exc, "retry_after", None))
            first, source.failing = not source.failing, f"keeping change events alive failed: {why}"
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "source %r: %s; the schedule still syncs it; next try in %.0fs%s",
                source.name,
                source.failing,
                wait,
                " (logged once until it recovers)" if first else "",
                exc_info=bug and first,
            )
            return
        if source.failing:
            log.info("source %r: keeping change events alive works again", source.name)
        source.failing = ""
        source.keeping.succeeded()

    def _start_source(self, source: _Source) -> None:
        if self._stop.is_set():
            return
        source.tried = True
        try:
            source.events.start(functools.partial(self.hint, source.name))
            source.started, source.reason = True, ""
            source.retry.succeeded()
            if source.events.live:
                log.info("source %r: change events on", source.name)
            else:  # e.g. a throttled subscription: tried again after its back-off, logged there
                log.info("source %r: change events started, not live yet: %s", source.name, source.events.reason)
        except Exception as exc:  # the schedule still syncs it; tried again after a back-off
            source.reason = str(exc)
            log.warning(
                "source %r: change events could not start (%s); the schedule still syncs it; next try in %.0fs",
                source.name,
                exc,
                source.retry.failed(getattr(exc, "retry_after", None)),
            )
        self._publish(source)

    def stop(self, deadline: float = STOP_DEADLINE) -> None:
        """Stop the workers and every event source (removing subscriptions and channels), all at
        once and within `deadline` seconds whatever the services do: a source still removing its
        subscriptions then is left to it, on a daemon thread; what it leaves behind expires by itself.
        Only the first call does anything."""
        with self._cond:
            if self._stop.is_set():
                return
            self._stop.set()
            self._cond.notify_all()
        ends = time.monotonic() + deadline
        kept = time.monotonic() + min(KEEPER_GRACE, deadline / 2)
        for keeper in self._keepers:  # a start or renewal in flight ends first: what it opens is stopped too
            keeper.join(max(0.0, kept - time.monotonic()))
        stopping = [
            (
                source,
                threading.Thread(
                    target=self._stop_source, args=(source,), daemon=True, name=f"inlet-events-stop-{source.name}"
                ),
            )
            for source in self.sources.values()
            if source.tried
        ]
        for source, thread in stopping:
            source.started = source.tried = False
            thread.start()
        for source, thread in stopping:
            thread.join(max(0.0, ends - time.monotonic()))
            if thread.is_alive():
                self.abandoned.append(source.name)
                log.warning(
                    "source %r: removing its subscriptions took over %.0f s; left to expire by themselves",
                    source.name,
                    deadline,
                )
        for thread in self._threads:
            thread.join(timeout=max(0.0, min(5.0, ends - time.monotonic())))
        if self.status:
            self.status.clear()
            self.status.close()

    @staticmethod
    def _stop_source(source: _Source) -> None:
        try:
            source.events.stop()
        except Exception as exc:  # shutting down: note it, go on with the others
            log.warning("source %r: stopping change events failed: %s", source.name, exc)

    # --- hints ------------------------------------------------------------------------------------
    def hint(self, name: str, hint: Hint) -> None:
        """Called by event sources (any thread): `name` should sync soon."""
        source = self.sources.get(name)
        if source is None or self._stop.is_set():
            return
        log.debug("source %r: change in %s", name, hint.container or "(anywhere)")
        with self._cond:
            source.pending.append(hint)
            source.hints += 1
            source.last_hint = time.monotonic()
            source.last_event_at = self.clock()
            self._cond.notify_all()
        self._publish(source)

    def _work(self, source: _Source) -> None:
        while True:
            batch = self._next_batch(source)
            if not batch:
                if self._stop.is_set():
                    return
                continue
            oldest = min(h.at for h in batch)
            scope = scope_of(batch)
            containers = sorted(scope) if scope is not None else ["(whole source)"]
            log.info(
                "source %r: %s %d change event(s) in %s",
                source.name,
                "stopping: owing a sync to" if self._stop.is_set() else "syncing after",
                len(batch),
                ", ".join(containers[:5]) + (" ..." if len(containers) > 5 else ""),
            )
            try:  # quiet (`quiet`) only once the run's latency is recorded, or its hints are pending again
                wait = self._ran(source, batch, scope, oldest)
            finally:
                source.syncing = False
            if wait is not None:
                self._stop.wait(wait)  # the back-off: new hints gather meanwhile, one run takes them all

    def _ran(self, source: _Source, batch: list[Hint], scope: frozenset[str] | None, oldest: float) -> float | None:
        """Run `batch` (of `scope`); the seconds to wait when its hints are pending again, else None."""
        try:
            result = self.run_sync(source.name, scope)
        except Exception:  # a bug must not end the worker: the schedule would be all that is left
            log.exception("source %r: event sync failed", source.name)
            return self._failed(source, batch, None)
        if isinstance(result, Deferred):  # not run yet: pending again, no failure
            self._requeue(source, batch)
            return result.retry_after
        if result is None:  # did not run: owed to the next start, or following another host's run
            return None
        if getattr(result, "outcome", "failed") == "failed":
            return self._failed(source, batch, getattr(result, "retry_after", None))
        source.failures = 0
        source.rerun.succeeded()
        source.latencies.append(max(0.0, self.clock() - oldest))
        self._publish(source)
        return None

    def _requeue(self, source: _Source, batch: list[Hint]) -> None:
        with self._cond:
            source.pending[:0] = batch

    def _failed(self, source: _Source, batch: list[Hint], retry_after: float | None) -> float | None:
        """A run of `batch` failed: its hints are pending again, to run after the returned seconds;
        after `RERUNS` failures in a row they are dropped instead (None)."""
        source.failures += 1
        if source.failures > RERUNS:
            log.warning(
                "source %r: %d change event(s) dropped after %d failed runs; the next sync reads what it can",
                source.name,
                len(batch),
                RERUNS,
            )
            source.failures = 0
            source.rerun.succeeded()
            return None
        wait = source.rerun.failed(retry_after)
        self._requeue(source, batch)
        log.info("source %r: its %d change event(s) run again in %.0f s", source.name, len(batch), wait)
        return wait

    def _next_batch(self, source: _Source) -> list[Hint]:
        """Wait for hints, then for `debounce` s of quiet (capped); take them all. Once the loop
        stops, what is pending is taken at once: `run_sync` owes it to the next start."""
        with self._cond:
            while not source.pending and not self._stop.is_set():
                self._cond.wait(1.0)
            first = time.monotonic()
            while not self._stop.is_set():
                quiet = source.last_hint + self.debounce - time.monotonic()
                cap = first + self.debounce * DEBOUNCE_CAP - time.monotonic()
                if quiet <= 0 or cap <= 0:
                    break
                self._cond.wait(min(quiet, cap))
            batch, source.pending = source.pending, []
            source.syncing = bool(batch)
            return batch

    def follow(self, name: str, checkpoint: Callable[[], dict[str, Any] | None]) -> None:
        """A run of `name` ended: its event source, when it follows checkpoints, gets what
        `checkpoint()` reads (None: nothing to follow, e.g. a backfill still under way)."""
        source = self.sources.get(name)
        if source is None or not source.events.follows or self._stop.is_set():
            return
        try:
            saved = checkpoint()
            if saved is not None:
                source.events.follow(saved)
        except Exception as exc:  # the subscriptions held stay; the next run tries again
            log.warning("source %r: change events could not follow its last run: %s", name, exc)

    def quiet(self, name: str) -> bool:
        """No hint of `name` waits and no event sync of it runs."""
        source = self.sources[name]
        with self._cond:
            return not source.pending and not source.syncing

    # --- visibility -------------------------------------------------------------------------------
    def report(self, name: str) -> dict[str, Any]:
        """live (and when not, the reason), last event time, and event-to-searchable latency (last,
        p50, p99) of one source."""
        source = self.sources[name]
        lat = sorted(source.latencies)
        live = bool(source.started and source.events.live and not source.failing)
        reason = (
            source.failing or source.events.reason
            if source.started
            else source.reason or ("" if source.tried else "starting")
        )
        return {
            "live": live,
            "reason": None if live else reason or None,
            "last_event_at": source.last_event_at,
            "latency_seconds": source.latencies[-1] if lat else None,
            "latency_p50_seconds": statistics.median(lat) if lat else None,
            "latency_p99_seconds": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
        }

    def _publish(self, source: _Source) -> None:
        report = self.report(source.name)
        source.shown_live, source.shown_reason = report["live"], report["reason"]
        self._save(source.name, report)

    def _save(self, name: str, report: dict[str, Any]) -> None:
        if self.status is None:
            return
        if report.get("reason"):  # an error's text, shown as the log shows it
            report = {**report, "reason": redact(report["reason"])}
        try:
            self.status.save(name, report)
        except Exception:  # visibility must never stop syncing
            log.debug("could not record event status of %r", name, exc_info=True)


def scope_of(hints: Iterable[Hint]) -> frozenset[str] | None:
    """The containers a batch of hints names, or None when one of them names none (sync it all)."""
    containers = [h.container for h in hints]
    return None if any(c is None for c in containers) else frozenset(c for c in containers if c is not None)


def event_loop_for(
    settings: Any,
    connector_for: Callable[[str], Any],
    run_sync: RunSync,
    status: Callable[[], EventStatusWriter] | None = None,
    sole: bool = True,
    hooks: bool = False,
) -> EventLoop:
    """An `EventLoop` over every configured source whose connector offers change events; `status`
    opens where it records their state (`Backend.event_writer`), when there are any. `sole`: this
    daemon is the index's only one (not several hosts on one database). `hooks`: this process
    serves the API, so its `/hooks/` can hear webhooks; without it, an event source that listens by
    webhook (`hook_key`) is not started (no subscription or channel is opened that nothing here
    could hear) and is shown down, saying so."""
    found = []
    off: dict[str, str] = {}  # `inlet status` shows them down, with why
    for source in settings.sources:
        try:
            events = connector_for(source.name).events()
        except InletError as exc:  # e.g. a missing app token: named once; the schedule still runs
            log.error("source %r: change events are off: %s", source.name, exc)
            off[source.name] = str(exc)
            continue
        except Exception as exc:  # a connector bug: its type and message; the traceback with -vv
            off[source.name] = f"connector bug in events(): {type(exc).__name__}: {exc}"
            log.error(
                "source %r: change events are off: %s; the schedule still syncs it", source.name, off[source.name]
            )
            log.debug("events() of source %r failed", source.name, exc_info=True)
            continue
        if events is not None and events.hook_key and not hooks:
            off[source.name] = (
                f"{events.hook_key} needs `inlet daemon --serve`: no process here serves "
                f"/hooks/{source.type}/{source.name}"
            )
            log.warning(
                "source %r: change events are off: %s; the schedule still syncs it", source.name, off[source.name]
            )
            continue
        if events is not None:
            events.sole = sole
            found.append((source.name, source.type, events))
    return EventLoop(found, run_sync, status=status() if (found or off) and status else None, off=off)
