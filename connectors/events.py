"""Change events: the optional second half of the connector contract.

Events are hints, never the record. A connector that can hear about changes as they happen
returns an `EventSource` from `Connector.events()`; the daemon starts it and, for every `Hint` it
emits, runs an incremental sync of the source soon (debounced), while the schedule keeps
reconciling whatever an event missed. So an event source may drop, repeat or reorder hints at no
cost but freshness, and nothing it does touches the index.

An event source that listens by webhook (Graph change notifications, Drive push channels) is also
handed the HTTP requests the API receives at `/hooks/{type}/{source}` (`webhook`), as plain values,
so it needs no web framework; one that opens its own connection (Slack Socket Mode) never gets any.
It names the configuration key of its hook's public address (`hook_key`): a daemon that serves no
API (`inlet daemon` without `--serve`) never starts it, since nothing there could hear the service.

An event source that watches containers one by one (a Graph subscription per mail folder) may
`follow` the source's checkpoint: after each run past the backfill the daemon hands it the checkpoint
saved, and it watches what that says the source syncs now (a container a run found new, or lost).

A service redelivers what it thinks was not received, and a captured request can be replayed: an
event source drops an event whose id (`Hint.key`) it has seen (`first_time`, in bounded memory),
so a copy runs nothing. A time the service may have changed things without telling it (nothing was
listening: before a subscription or connection existed, while the service paused delivery) is a
gap: it emits one catch-up hint for what went unheard (`missed`), whose incremental sync reads it.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Hint:
    """Something changed in `container` (a channel, folder or drive id, or finer, in the terms the
    connector's `load_scope` reads, e.g. Slack's `channel/event_id`; None: anywhere in the source)."""

    container: str | None
    at: float = field(default_factory=time.time)  # when the change happened (epoch s), for latency
    acl: bool = False  # a membership change: permissions, not content
    key: str = ""  # the service's event id: the event source drops a copy (`EventSource.first_time`)


@dataclass(frozen=True)
class WebhookRequest:
    """One HTTP request to `/hooks/{type}/{source}`, as plain values."""

    method: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes


@dataclass(frozen=True)
class WebhookResponse:
    """The answer to a webhook request. `refused` says why the request, or some of the
    notifications it held, failed the source's secret: the server logs it once per request. Any
    4xx is answered exactly as a hook nobody registered (404), so a refusal reveals nothing."""

    status: int
    body: str = ""
    media_type: str = "text/plain"
    refused: str = ""


NOT_FOUND = WebhookResponse(404, "not found")


def refused(why: str) -> WebhookResponse:
    """A request that failed the source's secret (answered like an unknown hook; `why` is logged)."""
    return WebhookResponse(404, NOT_FOUND.body, refused=why)


class Retry:
    """When to try a failed subscription (or connection) again: 5 s, then doubling up to 5 min, so
    an unreachable hook URL costs a request and a log line every few minutes, not every second.
    `clock`: monotonic seconds by default (the kit's renewal loop passes its own)."""

    def __init__(self, first: float = 5.0, cap: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.first, self.cap, self._clock = first, cap, clock
        self.wait = 0.0
        self.at = 0.0

    def due(self) -> bool:
        return self._clock() >= self.at

    def failed(self, at_least: float | None = None) -> float:
        """Note a failure; returns the seconds until the next try: never fewer than `at_least` (the
        service's `Retry-After`: trying before it ends only meets the throttle again)."""
        self.wait = min(self.cap, self.wait * 2 or self.first)
        wait = max(self.wait, at_least or 0.0)
        self.at = self._clock() + wait
        return wait

    def succeeded(self) -> None:
        self.wait, self.at = 0.0, 0.0


Emit = Callable[[Hint], None]
SEEN_MOST = 10_000  # event ids `first_time` remembers per event source


class EventSource(ABC):
    """Pushes `Hint`s to `emit` between `start` and `stop`; `live` says whether it hears changes now,
    and `reason`, when it does not, why (the last failure, for `inlet status`).

    `maintain` is called every few seconds by the daemon, from a thread of the source's own: renew
    what expires, reconnect what dropped. It must not block for long: the daemon calls `start` and
    `maintain` within `without_waits` (kit.retry), so a throttled call fails at once, into a
    back-off of the event source's own.
    """

    follows = False  # whether `follow` does anything (else the daemon reads no checkpoint for it)
    # The configuration key of the public address of its `/hooks/{type}/{source}` ('push_url'), for
    # one that listens by webhook; "" for one that opens its own connection (Slack Socket Mode).
    hook_key = ""
    # Whether this process is the index's only daemon (the folder setup): then a subscription on the
    # source's hook that it does not hold was left by an earlier one. The daemon sets it before `start`.
    sole = True

    def __init__(self) -> None:
        self.live = False
        self.reason = ""
        self.emit: Emit = lambda hint: None
        self._seen: dict[str, float] = {}  # event id -> when first seen (monotonic), oldest first
        self._seen_lock = threading.Lock()

    @abstractmethod
    def start(self, emit: Emit) -> None:
        """Connect or subscribe; hints go to `emit` (any thread). Raise an `InletError` if refused."""

    @abstractmethod
    def stop(self) -> None:
        """Disconnect or unsubscribe; called once on shutdown."""

    def maintain(self) -> None:
        """Renew subscriptions before they expire; reconnect after a loss."""
        return None

    def follow(self, checkpoint: dict[str, Any]) -> None:
        """A run of the source, past its backfill, saved `checkpoint`: watch the containers it says the
        source syncs now (any thread; applied by the next `maintain`). Optional: see `follows`."""
        return None

    def webhook(self, request: WebhookRequest) -> WebhookResponse:
        """Answer a request to this source's hook URL (validation handshakes, notifications)."""
        return NOT_FOUND

    def first_time(self, key: str, keep: float = 600.0) -> bool:
        """True the first time `key` (an event id) is seen within `keep` seconds: services redeliver,
        and a captured request can be replayed. At most `SEEN_MOST` ids are remembered (the oldest
        forgotten first), however many arrive."""
        now = time.monotonic()
        with self._seen_lock:
            seen = self._seen.pop(key, None)
            if seen is not None and now - seen < keep:
                self._seen[key] = seen
                return False
            self._seen[key] = now  # the newest last
            while len(self._seen) > SEEN_MOST:
                del self._seen[next(iter(self._seen))]
            return True

    def missed(self, container: str | None = None) -> None:
        """A gap: the service may have changed `container` (None: anything in the source) while
        nothing was listening, and will not tell. One catch-up hint: its sync reads what was missed."""
        self.emit(Hint(container))
