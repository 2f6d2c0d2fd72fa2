"""The daemon's event loop: change events from connectors turned into debounced syncs.

Invariant: a hint is cleared only when a sync that *started after it arrived* has finished, so a
change announced while a run of its source is in flight (which may already have passed that
channel or folder) always gets a run of its own. Hints of one source arriving within `debounce`
seconds of each other make one run (never delayed more than `DEBOUNCE_CAP` times that); runs go
through the daemon's per-source guard, so an event never runs a source twice at once, and a
scheduled run and an event run of one source queue behind each other.

This module knows no service: a connector's `events()` (see `connectors/events.py`) says whether
and how it hears changes. A batch of hints that all name a container makes a scoped sync of just
those containers (`Connector.load_scope`: one Slack channel, one mail folder); a hint naming none
(a Drive change) makes an incremental sync of the whole source. Each source's state (live or not,
the last event, event-to-searchable latency) is written to the state database for `inlet status`
and `/metrics`. After every run of a source whose event source `follows` checkpoints, that source is
handed the checkpoint of the finished backfill (`follow`), so it watches a container a run found
new (or stops watching one gone) without a restart.
"""

from __future__ import annotations

import functools
import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from inlet.connectors.events import EventSource, Hint, Retry
from inlet.storage import EventStatusWriter


log = logging.getLogger(__name__)

DEBOUNCE = 0.15  # seconds of quiet after a hint before its source syncs (a burst: one run)
DEBOUNCE_CAP = 4  # ... but never more than this many DEBOUNCEs after the first hint
MAINTAIN_EVERY = 1.0  # seconds between maintain() calls (renewals, reconnects)
STOP_DEADLINE = 8.0  # seconds every event source together gets to remove its subscriptions
RunSync = Callable[[str, "frozenset[str] | None"], Any]
"""The daemon's guarded sync of one source (of the given containers only, unless None); returns
None when it did not run."""


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
    shown_live: bool | None = None  # `live` as last published
    syncing: bool = False  # an event sync of it is in flight
    hints: int = 0  # hints received, for tests and benchmarks
    retry: Retry = field(default_factory=lambda: Retry(first=1.0))  # starting again after a refusal


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
    ) -> None:
        self.sources = {name: _Source(name, type_, ev) for name, type_, ev in sources}
        self.run_sync = run_sync
        self.status = status
        self.debounce = debounce
        self.clock = clock
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.abandoned: list[str] = []  # sources still removing their subscriptions when stop() gave up

    def receiver(self, type_: str, name: str) -> EventSource | None:
        """The event source behind `/hooks/{type}/{name}`, or None (the hook is then 404)."""
        source = self.sources.get(name)  # served from start() on: Graph validates while we subscribe
        return source.events if source and source.type == type_ and not self._stop.is_set() else None

    # --- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        for source in self.sources.values():
            self._start_source(source)
            thread = threading.Thread(
                target=self._work, args=(source,), daemon=True, name=f"inlet-events-{source.name}"
            )
            thread.start()
            self._threads.append(thread)
        if self.sources:
            maintainer = threading.Thread(target=self._maintain, daemon=True, name="inlet-events-maintain")
            maintainer.start()
            self._threads.append(maintainer)

    def _start_source(self, source: _Source) -> None:
        try:
            source.events.start(functools.partial(self.hint, source.name))
            source.started = True
            source.retry.succeeded()
            log.info("source %r: change events on", source.name)
        except Exception as exc:  # the schedule still syncs it; maintain() tries again
            log.warning(
                "source %r: change events could not start (%s); the schedule still syncs it; next try in %.0fs",
                source.name,
                exc,
                source.retry.failed(),
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
        stopping = [
            (
                source,
                threading.Thread(
                    target=self._stop_source, args=(source,), daemon=True, name=f"inlet-events-stop-{source.name}"
                ),
            )
            for source in self.sources.values()
            if source.started
        ]
        for source, thread in stopping:
            source.started = False
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
        while not self._stop.is_set():
            batch = self._next_batch(source)
            if not batch:
                continue
            oldest = min(h.at for h in batch)
            scope = scope_of(batch)
            containers = sorted(scope) if scope is not None else ["(whole source)"]
            log.info(
                "source %r: syncing after %d change event(s) in %s",
                source.name,
                len(batch),
                ", ".join(containers[:5]) + (" ..." if len(containers) > 5 else ""),
            )
            try:  # quiet (`quiet`) only once the run's latency is recorded too
                try:
                    result = self.run_sync(source.name, scope)
                except Exception:  # a bug must not end the worker: the schedule would be all that is left
                    log.exception("source %r: event sync failed", source.name)
                    continue
                if result is not None and getattr(result, "outcome", "failed") != "failed":
                    source.latencies.append(max(0.0, self.clock() - oldest))
                    self._publish(source)
            finally:
                source.syncing = False

    def _next_batch(self, source: _Source) -> list[Hint]:
        """Wait for hints, then for `debounce` s of quiet (capped); take them all."""
        with self._cond:
            while not source.pending and not self._stop.is_set():
                self._cond.wait(1.0)
            if self._stop.is_set():
                return []
            first = time.monotonic()
            while not self._stop.is_set():
                quiet = source.last_hint + self.debounce - time.monotonic()
                cap = first + self.debounce * DEBOUNCE_CAP - time.monotonic()
                if quiet <= 0 or cap <= 0:
                    break
                self._cond.wait(min(quiet, cap))
            batch, source.pending = source.pending, []
            source.syncing = True
            return batch

    def _maintain(self) -> None:
        while not self._stop.wait(MAINTAIN_EVERY):
            for source in self.sources.values():
                if self._stop.is_set():
                    return
                if not source.started:
                    if source.retry.due():
                        self._start_source(source)
                    continue
                try:
                    source.events.maintain()
                except Exception as exc:  # retried at the next tick; the schedule covers the gap
                    log.warning("source %r: keeping change events alive failed: %s", source.name, exc)
                if source.events.live != source.shown_live:
                    log.info("source %r: change events %s", source.name, "live" if source.events.live else "down")
                    self._publish(source)

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
        """live, last event time, and event-to-searchable latency (last, p50, p99) of one source."""
        source = self.sources[name]
        lat = sorted(source.latencies)
        return {
            "live": bool(source.started and source.events.live),
            "last_event_at": source.last_event_at,
            "latency_seconds": source.latencies[-1] if lat else None,
            "latency_p50_seconds": statistics.median(lat) if lat else None,
            "latency_p99_seconds": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
        }

    def _publish(self, source: _Source) -> None:
        report = self.report(source.name)
        source.shown_live = report["live"]
        if self.status is None:
            return
        try:
            self.status.save(source.name, report)
        except Exception:  # visibility must never stop syncing
            log.debug("could not record event status of %r", source.name, exc_info=True)


def scope_of(hints: Iterable[Hint]) -> frozenset[str] | None:
    """The containers a batch of hints names, or None when one of them names none (sync it all)."""
    containers = [h.container for h in hints]
    return None if any(c is None for c in containers) else frozenset(c for c in containers if c is not None)


def event_loop_for(
    settings: Any,
    connector_for: Callable[[str], Any],
    run_sync: RunSync,
    status: Callable[[], EventStatusWriter] | None = None,
) -> EventLoop:
    """An `EventLoop` over every configured source whose connector offers change events; `status`
    opens where it records their state (`Backend.event_writer`), when there are any."""
    found = []
    for source in settings.sources:
        try:
            events = connector_for(source.name).events()
        except Exception as exc:  # e.g. a missing app token: named once; the schedule still runs
            log.error("source %r: change events are off: %s", source.name, exc)
            continue
        if events is not None:
            found.append((source.name, source.type, events))
    return EventLoop(found, run_sync, status=status() if found and status else None)
