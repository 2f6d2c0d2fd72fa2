"""The daemon's event loop alone: debouncing, a hint during a run, one run at a time, retried starts.

The event source is a minimal in-test implementation of the contract (no service); runs are a
callable that records them, as the daemon's guarded sync is one."""

from __future__ import annotations

import threading
from pathlib import Path
from collections.abc import Iterator

import pytest

from inlet.connectors.events import SEEN_MOST, Emit, EventSource, Hint
from inlet.storage.sqlite.state import SqliteState
from inlet.sync.events import RERUNS, EventLoop

from .events_stack import wait_for


class Manual(EventSource):
    """Emits what the test tells it to; refuses to start `refusals` times."""

    def __init__(self, refusals: int = 0) -> None:
        super().__init__()
        self.refusals = refusals
        self.stopped = False

    def start(self, emit: Emit) -> None:
        if self.refusals:
            self.refusals -= 1
            raise ConnectionError("service unreachable")
        self.emit = emit
        self.live = True

    def stop(self) -> None:
        self.stopped = True


class Runs:
    """A stand-in for the daemon's sync: counts runs, tracks overlap, can be held mid-run."""

    def __init__(self) -> None:
        self.count = 0
        self.scopes: list[frozenset[str] | None] = []
        self.active = 0
        self.overlap = 0
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, name: str, scope: frozenset[str] | None = None) -> object:
        with self._lock:
            self.count += 1
            self.scopes.append(scope)
            self.active += 1
            self.overlap = max(self.overlap, self.active)
        self.entered.set()
        assert self.hold.wait(10)
        with self._lock:
            self.active -= 1
        return type("Result", (), {"outcome": "ok"})()


@pytest.fixture
def loop() -> Iterator[tuple[EventLoop, Manual, Runs]]:
    source, runs = Manual(), Runs()
    event_loop = EventLoop([("s", "test", source)], runs, debounce=0.2)
    event_loop.start()
    yield event_loop, source, runs
    event_loop.stop()


def test_a_burst_of_hints_makes_one_run(loop: tuple[EventLoop, Manual, Runs]) -> None:
    event_loop, source, runs = loop
    for n in range(10):
        source.emit(Hint(f"c{n}"))
    wait_for(lambda: runs.count == 1 and event_loop.quiet("s"), what="one run")
    assert runs.scopes == [frozenset(f"c{n}" for n in range(10))]
    assert event_loop.sources["s"].hints == 10 and event_loop.report("s")["latency_seconds"] is not None


def test_a_hint_during_a_run_gets_a_run_of_its_own(loop: tuple[EventLoop, Manual, Runs]) -> None:
    event_loop, source, runs = loop
    runs.hold.clear()
    source.emit(Hint("a"))
    assert runs.entered.wait(5)
    source.emit(Hint("b"))  # the run in flight may have read "b" already: it must run again
    source.emit(Hint("c"))
    runs.hold.set()
    wait_for(lambda: runs.count == 2 and event_loop.quiet("s"), what="a second run")
    assert runs.overlap == 1
    assert runs.scopes == [frozenset({"a"}), frozenset({"b", "c"})]  # exactly one follow-up, for what came


def test_a_hint_naming_no_container_syncs_the_whole_source(loop: tuple[EventLoop, Manual, Runs]) -> None:
    event_loop, source, runs = loop
    source.emit(Hint("a"))
    source.emit(Hint(None))
    wait_for(lambda: runs.count == 1 and event_loop.quiet("s"), what="one run")
    assert runs.scopes == [None]


def test_a_refused_start_is_retried_and_stop_reaches_the_source() -> None:
    source, runs = Manual(refusals=1), Runs()
    event_loop = EventLoop([("s", "test", source)], runs, debounce=0.05)
    event_loop.start()
    try:
        assert event_loop.report("s")["live"] is False
        wait_for(lambda: event_loop.report("s")["live"], what="started on a later try")
        source.emit(Hint(None))
        wait_for(lambda: runs.count == 1, what="a run after the late start")
    finally:
        event_loop.stop()
    assert source.stopped and event_loop.receiver("test", "s") is None


def test_hints_pending_when_the_loop_stops_are_handed_to_the_run_that_owes_them() -> None:
    """probe33b #3: hints heard in the debounce before a SIGTERM were dropped at the stop; they go to
    `run_sync` (the daemon, stopping, records them as owed to its next start)."""
    source, runs = Manual(), Runs()
    event_loop = EventLoop([("s", "test", source)], runs, debounce=600)  # the debounce never ends by itself
    event_loop.start()
    wait_for(lambda: event_loop.report("s")["live"], what="started")
    source.emit(Hint("a"))
    source.emit(Hint("b"))
    event_loop.stop()
    assert runs.scopes == [frozenset({"a", "b"})]


def test_first_time_deduplicates_event_ids() -> None:
    source = Manual()
    assert source.first_time("Ev1") and not source.first_time("Ev1") and source.first_time("Ev2")


def test_first_time_remembers_a_bounded_number_of_ids_the_newest() -> None:
    """However many ids arrive within the window (a flood of messages), memory stays bounded: the
    oldest are forgotten first, the newest still deduplicated."""
    source = Manual()
    assert all(source.first_time(f"Ev{i}") for i in range(SEEN_MOST + 50))
    assert len(source._seen) == SEEN_MOST
    assert not source.first_time(f"Ev{SEEN_MOST + 49}") and source.first_time("Ev0")


class Held(Manual):
    """Its start, or its maintain, stays in a call (a service that does not answer) until released."""

    def __init__(self, in_start: bool) -> None:
        super().__init__()
        self.release = threading.Event()
        self.in_start = in_start
        self.maintained = 0

    def start(self, emit: Emit) -> None:
        if self.in_start:
            assert self.release.wait(30)
        super().start(emit)

    def maintain(self) -> None:
        self.maintained += 1
        if not self.in_start:
            assert self.release.wait(30)


class Unkept(Manual):
    """Its maintain() raises a plug-in's bug (a field missing in the service's answer) until `mended`."""

    def __init__(self) -> None:
        super().__init__()
        self.maintained = 0
        self.mended = False

    def maintain(self) -> None:
        self.maintained += 1
        if not self.mended:
            raise KeyError("expirationDateTime")


def test_a_maintain_that_raises_is_backed_off_named_and_shows_the_events_down(monkeypatch, caplog) -> None:
    """maintain() raising a KeyError: the first failure is one WARNING naming the source and the
    exception's type, with its traceback; the next tries wait longer each time (logged at debug);
    the events show down with the error while it fails (the event source's own `live` still says
    true), and live again, said once, when a maintain() succeeds."""
    import logging

    from inlet.sync import events

    monkeypatch.setattr(events, "MAINTAIN_EVERY", 0.01)
    monkeypatch.setattr(events, "MAINTAIN_BACKOFF", 0.01)
    caplog.set_level(logging.DEBUG, logger="inlet.sync.events")
    source = Unkept()
    event_loop = EventLoop([("s", "test", source)], Runs())
    event_loop.start()
    try:
        wait_for(lambda: source.maintained >= 3, what="three failed maintain() calls")
        report = event_loop.report("s")
        assert source.live and report["live"] is False
        assert report["reason"] == "keeping change events alive failed: KeyError: 'expirationDateTime'"
        assert event_loop.sources["s"].keeping.wait >= 4 * 0.01  # doubled at each failure: backed off
        failed = [r for r in caplog.records if "keeping change events alive failed" in r.getMessage()]
        warned = [r for r in failed if r.levelno == logging.WARNING]
        assert len(warned) == 1 and len(failed) >= 3 and "source 's'" in warned[0].getMessage()
        assert warned[0].exc_info is not None and warned[0].exc_info[0] is KeyError
        source.mended = True
        wait_for(lambda: event_loop.report("s")["live"], what="live again after a maintain() succeeded")
        assert "keeping change events alive works again" in caplog.text
    finally:
        event_loop.stop()


@pytest.mark.parametrize("held_in", ["start", "maintain"])
def test_one_source_held_in_a_call_does_not_hold_the_others(held_in: str) -> None:
    """A source whose subscription call does not return (its start, or a renewal) holds neither the
    others' start nor their renewals: each source is kept on a thread of its own."""
    held, other = Held(in_start=held_in == "start"), Held(in_start=False)
    other.release.set()
    event_loop = EventLoop([("held", "test", held), ("other", "test", other)], Runs(), debounce=0.05)
    starting = threading.Thread(target=event_loop.start, daemon=True)
    starting.start()
    try:
        wait_for(lambda: event_loop.report("other")["live"], what="the other source live")
        seen = other.maintained
        wait_for(lambda: other.maintained >= seen + 2, what="the other source kept alive meanwhile")
        assert not event_loop.report("held")["live"] or held_in == "maintain"
    finally:
        held.release.set()
        starting.join(30)
        event_loop.stop()


def test_stop_reaches_a_source_whose_start_failed_and_status_says_why() -> None:
    """A start that failed halfway may have opened something (a channel): stop() reaches it too; and
    while events are down the report says why."""
    source = Manual(refusals=100)
    event_loop = EventLoop([("s", "test", source)], Runs())
    event_loop.start()
    report = event_loop.report("s")
    event_loop.stop()
    assert source.stopped
    assert report["live"] is False and report["reason"] == "service unreachable"


def test_a_connector_whose_events_raise_is_named_with_the_error_s_type_and_shown_down(tmp_path, caplog) -> None:
    """`events()` raising a plug-in's bug (a KeyError) is logged with the exception's type, its
    traceback at debug, and `inlet status` shows the source's change events down with that error;
    inlet's own errors (a missing token) are one line, shown the same way. The others still start."""
    import logging

    from click.testing import CliRunner

    from inlet.cli import cli
    from inlet.config import parse_config
    from inlet.errors import ConfigError
    from inlet.storage.backend import open_backend
    from inlet.sync.events import event_loop_for

    (tmp_path / "docs").mkdir()
    config = tmp_path / "inlet.toml"
    config.write_text(
        f'[index]\npath = "{tmp_path / "idx"}"\n'
        + "".join(
            f'[[sources]]\nname = "{n}"\ntype = "files"\npath = "{tmp_path / "docs"}"\n' for n in ("kb", "b", "c")
        )
    )
    settings = parse_config(__import__("tomllib").loads(config.read_text()), config)
    (tmp_path / "idx").mkdir()
    SqliteState(tmp_path / "idx" / "state.db").close()  # the index a daemon has made by then
    source = Manual()

    class Connector:
        def __init__(self, name: str) -> None:
            self.name = name

        def events(self) -> EventSource | None:
            if self.name == "kb":
                raise KeyError("hook")
            if self.name == "b":
                raise ConfigError("source 'b': environment variable 'HOOK' (named by key 'hook_secret_env') is not set")
            return source

    caplog.set_level(logging.DEBUG, logger="inlet.sync.events")
    loop = event_loop_for(settings, Connector, Runs(), open_backend(settings).event_writer)
    try:
        loop.start()
        assert list(loop.sources) == ["c"] and source.live
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage() for r in errors] == [
            "source 'kb': change events are off: connector bug in events(): KeyError: 'hook'; "
            "the schedule still syncs it",
            "source 'b': change events are off: source 'b': environment variable 'HOOK' "
            "(named by key 'hook_secret_env') is not set",
        ]
        assert not any(r.exc_info for r in errors)
        assert any(r.levelno == logging.DEBUG and r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
        status = open_backend(settings).event_status()
        assert status["kb"]["live"] is False and "KeyError: 'hook'" in status["kb"]["reason"]
        shown = CliRunner().invoke(cli, ["status", "--config", str(config)]).output
        assert "change events: down (connector bug in events(): KeyError: 'hook')" in shown, shown
        assert "change events: down (source 'b': environment variable 'HOOK'" in shown
    finally:
        loop.stop()


def test_webhook_events_are_not_opened_by_a_daemon_that_serves_no_hooks(tmp_path: Path) -> None:
    """`inlet daemon` without `--serve`: nothing serves `/hooks/`, so no Drive channel or Graph
    subscription is opened (it would read live while deaf) and `inlet status` says what is missing
    (probe31f F2). Socket Mode needs no hook: a Slack source's events start as ever."""
    import os
    import tomllib

    from click.testing import CliRunner

    from inlet.cli import cli
    from inlet.config import parse_config
    from inlet.sandbox.drive_channels import channels
    from inlet.sandbox.server import Sandbox
    from inlet.storage.backend import open_backend
    from inlet.sync.events import event_loop_for

    with Sandbox() as sb:
        text, secrets = sb.config(tmp_path / "idx")
        raw = tomllib.loads(text)
        urls = {"sandbox-drive": "push_url", "sandbox-mail": "notifications_url"}
        raw["sources"] = [
            {**s, urls[s["name"]]: f"http://127.0.0.1:9/hooks/{s['type']}/{s['name']}"}
            for s in raw["sources"]
            if s["name"] in urls
        ]
        config = tmp_path / "inlet.toml"
        settings = parse_config(raw, config)
        config.write_text(text)
        (tmp_path / "idx").mkdir()
        SqliteState(tmp_path / "idx" / "state.db").close()
        env = {**os.environ, **secrets}
        loop = event_loop_for(
            settings, lambda name: settings.connector(name, env), Runs(), open_backend(settings).event_writer
        )
        try:
            loop.start()
            assert not loop.sources and not channels(sb.ctx).open
            status = open_backend(settings).event_status()
            assert status["sandbox-drive"]["live"] is False
            assert status["sandbox-drive"]["reason"] == (
                "push_url needs `inlet daemon --serve`: no process here serves /hooks/google_drive/sandbox-drive"
            )
            assert status["sandbox-mail"]["reason"].startswith("notifications_url needs `inlet daemon --serve`")
            shown = CliRunner().invoke(cli, ["status", "--config", str(config)]).output
            assert "change events: down (push_url needs `inlet daemon --serve`" in shown, shown
        finally:
            loop.stop()


class FailingRuns(Runs):
    """Runs whose first `failures` runs fail (as a transient service error fails one)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def __call__(self, name: str, scope: frozenset[str] | None = None) -> object:
        super().__call__(name, scope)
        outcome = "failed" if self.count <= self.failures else "ok"
        return type("Result", (), {"outcome": outcome, "retry_after": None})()


def test_the_hints_of_a_failed_run_run_again_not_dropped() -> None:
    """probe33b #1: a run of change events that failed once (Slack's `internal_error`) dropped them;
    the daemon's retry is a plain sync, which never reads a reply edited in an old thread."""
    source, runs = Manual(), FailingRuns(failures=2)
    event_loop = EventLoop([("s", "test", source)], runs, debounce=0.05, rerun_first=0.05)
    event_loop.start()
    try:
        source.emit(Hint("old-thread"))
        wait_for(lambda: runs.count == 3 and event_loop.quiet("s"), what="two failed runs, then one ok")
    finally:
        event_loop.stop()
    assert runs.scopes == [frozenset({"old-thread"})] * 3
    assert event_loop.report("s")["latency_seconds"] is not None


def test_hints_failing_every_run_are_dropped_after_the_reruns() -> None:
    source, runs = Manual(), FailingRuns(failures=10**6)
    event_loop = EventLoop([("s", "test", source)], runs, debounce=0.01, rerun_first=0.01)
    event_loop.start()
    try:
        source.emit(Hint("c"))
        wait_for(lambda: runs.count == 1 + RERUNS and event_loop.quiet("s"), what="the reruns, then nothing pending")
    finally:
        event_loop.stop()
    assert runs.count == 1 + RERUNS


def test_hints_deferred_by_the_daemon_wait_and_run_without_counting_as_failures() -> None:
    """review33 #6: hints a throttled source could not run yet were dropped."""
    from inlet.sync.events import Deferred

    class Throttled(Runs):
        def __call__(self, name: str, scope: frozenset[str] | None = None) -> object:
            super().__call__(name, scope)
            return Deferred(0.05) if self.count <= RERUNS + 1 else type("Result", (), {"outcome": "ok"})()

    source, runs = Manual(), Throttled()
    event_loop = EventLoop([("s", "test", source)], runs, debounce=0.01, rerun_first=0.01)
    event_loop.start()
    try:
        source.emit(Hint("c"))
        wait_for(lambda: runs.count == RERUNS + 2 and event_loop.quiet("s"), what="deferred, then run")
    finally:
        event_loop.stop()
    assert runs.scopes == [frozenset({"c"})] * (RERUNS + 2)  # more deferrals than RERUNS: none dropped


def test_why_change_events_are_down_is_recorded_without_a_secret_it_holds(tmp_path: Path) -> None:
    """probe35b F2: the reason `inlet status` shows for events that are down is redacted as the
    log is: a secret the connector read (`Connector.secret`) never shows in it."""
    from inlet import logs
    from inlet.config import parse_config
    from inlet.storage.backend import open_backend
    from inlet.sync.events import event_loop_for

    secret = logs.secret("events-SECRET-77xyz")
    (tmp_path / "docs").mkdir()
    table = {"name": "kb", "type": "files", "path": str(tmp_path / "docs")}
    settings = parse_config({"index": {"path": str(tmp_path / "idx")}, "sources": [table]})
    (tmp_path / "idx").mkdir()
    SqliteState(tmp_path / "idx" / "state.db").close()

    class Connector:
        def __init__(self, name: str) -> None:
            self.name = name

        def events(self) -> EventSource | None:
            raise RuntimeError(f"subscribe refused for {secret}")

    loop = event_loop_for(settings, Connector, Runs(), open_backend(settings).event_writer)
    try:
        loop.start()
        reason = open_backend(settings).event_status()["kb"]["reason"]
        assert reason == "connector bug in events(): RuntimeError: subscribe refused for [redacted]"
    finally:
        loop.stop()
