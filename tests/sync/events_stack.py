"""A daemon with change events on, over the sandbox and a real index, for the event tests.

Schedules are hours long, so whatever becomes searchable within seconds got there by an event;
`scheduled_pass()` runs the reconciling pass the schedule would make, explicitly.
"""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inlet.config import Settings, parse_config
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index
from inlet.sandbox.server import Sandbox
from inlet.sync.daemon import Daemon
from inlet.server.daemon_api import ApiPlan
from inlet.sync.engine import Engine, RunResult
from inlet.storage.sqlite.state import SqliteState

WITHIN = 5.0  # seconds: the promise, event to searchable


def wait_for(condition: Callable[[], Any], timeout: float = WITHIN, what: str = "condition") -> Any:
    """Poll `condition` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)


@dataclass
class EventStack:
    sb: Sandbox
    settings: Settings
    index: Index
    state: SqliteState
    engine: Engine
    daemon: Daemon
    source: str

    def texts(self, query: str, user: str | None = None) -> list[str]:
        hits, _ = search(
            self.index, SearchRequest(query=query, k=10, user=user, sources=(self.source,), recency_half_life_days=0)
        )
        return [h.text for h in hits]

    def searchable(self, token: str, user: str | None = None) -> bool:
        return any(token in text for text in self.texts(token, user))

    def runs(self) -> int:
        row = self.state._exec("SELECT COUNT(*) FROM runs WHERE source = ?", (self.source,))
        return int(row[0][0])

    def scheduled_pass(self) -> RunResult | None:
        return self.daemon.sync_job(self.source)

    def quiet(self) -> bool:
        assert self.daemon.events is not None
        return self.daemon.events.quiet(self.source)

    def settled(self, ready: Callable[[], Any], what: str) -> "EventStack":
        """No fault armed, events live and `ready()`, no event sync pending: a clean start for a test."""
        self.sb.faults.clear()
        wait_for(lambda: self.report()["live"] and ready(), what=what)
        wait_for(self.quiet, what="events settled")
        return self

    def report(self) -> dict[str, Any]:
        assert self.daemon.events is not None
        return self.daemon.events.report(self.source)


@contextmanager
def event_stack(
    sb: Sandbox,
    tmp: Path,
    embedder: Any,
    source: str,
    extra: dict[str, Any],
    env: dict[str, str] | None = None,
    hook_key: str | None = None,
) -> Iterator[EventStack]:
    """The sandbox config narrowed to `source`, with `extra` keys and an hours-long schedule; backfilled,
    then the daemon started with its change events. With `hook_key`, the daemon serves its API (as
    `inlet daemon --serve`) and that key of the source is its `/hooks/{type}/{source}` URL."""
    text, secrets = sb.config(tmp / "index")
    raw = tomllib.loads(text)
    raw["sources"] = [{**s, **extra, "every": "6h"} for s in raw["sources"] if s["name"] == source]
    raw.setdefault("daemon", {})["jitter"] = "0s"
    raw["server"] = {"host": "127.0.0.1", "port": 0}
    settings = parse_config(raw, tmp / "config.toml")
    plan = ApiPlan.bind(settings) if hook_key else None
    if plan and hook_key:
        raw["sources"][0][hook_key] = f"{plan.url}/hooks/{raw['sources'][0]['type']}/{source}"
        settings = parse_config(raw, tmp / "config.toml")
    full_env = {**os.environ, **secrets, **(env or {})}
    with Index(settings.index, embedder) as index:
        state = SqliteState(Path(settings.index.path) / "state.db")
        engine = Engine(settings, index, state, env=full_env)
        assert engine.run(source, "sync").outcome == "ok"
        daemon = Daemon(settings, engine, hooks=plan is not None)
        api = plan.start(settings, index, state, daemon) if plan else None
        daemon.start()
        try:
            yield EventStack(sb, settings, index, state, engine, daemon, source)
        finally:
            daemon.shutdown(grace=10)
            if api:
                api.stop()
            state.close()
