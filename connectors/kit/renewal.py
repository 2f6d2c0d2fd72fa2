"""One renewal loop for change subscriptions (Graph subscriptions, Drive push channels).

Invariants:
- A subscription is renewed once less than a third of its lifetime is left (the lifetime the
  service granted when shorter than the one asked: Drive caps channels at 7 days), or at once when
  the service asks (`renew_now`), and created when it has none; `maintain()` does both, never blocks
  on a failed one: every call is tried once (`without_waits`: a throttled call is not waited out in
  line), and a failure is tried again after a back-off of 5 s doubling to 5 min, never before the
  service's `Retry-After`, while the schedule covers the gap. `live` is true only while every
  subscription is held, unexpired and not `paused`; `reason` says why it is not (the last failure,
  naming the subscription by its `label`: what it watches to a person, such as a channel's team and
  name or a folder's path; else by its whole key).
- A subscription created where none was held (the first one, one that lapsed, one the service no
  longer has: `renew` raises `Gone`) is followed by `missed(sub)`: the service notifies only changes
  made after it, so what changed meanwhile (while the daemon was down) needs one catch-up sync. A
  replacement made while the old one is still held (what cannot be extended) is no gap. Nor is a
  plain renewal, except of a subscription whose delivery the service may have paused (`paused`,
  set by `challenge`: Graph's `reauthorizationRequired`, or a renewal it refused): the changes of
  the pause are never notified, so the renewal that ends it is followed by `missed(sub)` too, and
  until then the subscription counts as not live, saying why.
- A `ConfigError` (the configuration must change: retrying cannot help) is backed off like any
  failure, then raised for the caller to report, once a try; `refused` keeps it until a try succeeds.
- `stop()` removes every held subscription in parallel and returns within `remove_timeout` seconds
  whatever the service does: a removal still running then is abandoned (the subscription expires by
  itself). Shutdown must finish in bounded time.
- Time comes from the injected `clock` (epoch seconds: services state expiry as a date), so the
  timing is tested without sleeping.

The service-specific calls are three callbacks: `create(sub)` and `renew(sub)` set `sub.id` and
`sub.expires` (`renew` None: create a new one, then remove the old: Drive channels cannot be
extended), `remove(sub)` deletes it. Failures they raise are `InletError`s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from inlet.errors import ConfigError, InletError, RetriableError

from ..events import Retry as Backoff
from .retry import without_waits

log = logging.getLogger(__name__)

RENEW_AT = 1 / 3  # renew when less than this share of the lifetime is left


@dataclass
class Subscription:
    """One subscription: `key` names what it watches (a folder id, 'changes'), `label` says it to a
    person ('Engineering/General', 'a@b.com/Inbox'); `data` holds what the service needs besides the
    id (a mailbox, a Drive resource id)."""

    key: str
    data: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    id: str | None = None
    expires: float = 0.0  # epoch seconds
    granted: float = 0.0  # the lifetime the service gave at the last create or renew (seconds)
    renew_now: bool = False
    paused: str = ""  # why the service may have paused its delivery (until a renewal succeeds); "" if not
    backoff: Backoff = field(default_factory=Backoff)  # failures: 5 s, doubling up to 5 min


Call = Callable[[Subscription], None]


class Gone(InletError):
    """Raised by `renew`: the service no longer has the subscription (expired, removed)."""


class Renewals:
    """The subscriptions of one source, kept alive by `maintain()` and removed by `stop()`."""

    def __init__(
        self,
        *,
        source: str,
        what: str,
        lifetime: float,
        create: Call,
        remove: Call,
        renew: Call | None = None,
        clock: Callable[[], float] = time.time,
        remove_timeout: float = 5.0,
        advice: str = "",
        missed: Call | None = None,
    ) -> None:
        self.source, self.what, self.lifetime = source, what, lifetime
        self.advice = f" ({advice})" if advice else ""  # said with a refusal (not a throttle), what to check
        self._create, self._renew, self._remove = create, renew, remove
        self._missed = missed
        self.clock = clock
        self.remove_timeout = remove_timeout
        self.subs: dict[str, Subscription] = {}
        self.live = False
        self.reason = ""  # why not live: the last failure, until every subscription is held
        self.refused: ConfigError | None = None  # the last configuration refusal, until a try succeeds

    def add(self, key: str, label: str = "", **data: Any) -> Subscription:
        """Keep a subscription for `key` (`label`: how a failure names it, else by `key`); one already
        kept stays (held, with its id), its label and data updated."""
        sub = self.subs.get(key)
        if sub is not None:
            sub.data.update(data)
            sub.label = label or sub.label
            return sub
        sub = self.subs[key] = Subscription(key, data, label, backoff=Backoff(clock=self.clock))
        return sub

    def drop(self, key: str) -> None:
        """Stop keeping `key`'s subscription (what it watched is gone), removing it if held."""
        sub = self.subs.pop(key, None)
        if sub is not None and sub.id is not None:
            self._remove_quietly(sub)

    def challenge(self, sub: Subscription, why: str) -> None:
        """The service may pause `sub`'s delivery until it is renewed (`why`): renew it now; until
        that succeeds it is not live, and the renewal that does is followed by a catch-up."""
        sub.paused = sub.paused or why
        sub.renew_now = True

    def due(self, sub: Subscription) -> bool:
        lifetime = min(self.lifetime, sub.granted) if sub.granted > 0 else self.lifetime
        return sub.id is None or sub.renew_now or sub.expires - self.clock() < lifetime * RENEW_AT

    def maintain(self) -> None:
        refused: ConfigError | None = None
        for sub in list(self.subs.values()):
            if not sub.backoff.due() or not self.due(sub):
                continue
            try:
                with without_waits():
                    self._refresh(sub)
                sub.backoff.succeeded()
                self.refused = None
            except InletError as exc:  # tried again later; the schedule covers the gap
                throttled = isinstance(exc, RetriableError)
                wait = sub.backoff.failed(exc.retry_after if isinstance(exc, RetriableError) else None)
                paused = f"{sub.paused}; renewing it failed: " if sub.paused else ""
                self.reason = f"{self.what} {sub.label or sub.key}: {paused}{exc}"
                if isinstance(exc, ConfigError):
                    refused = self.refused = refused or exc
                    continue
                log.warning(
                    "source %r: %s; next try in %.0fs",
                    self.source,
                    self.reason + ("" if throttled else self.advice),
                    wait,
                )
        now = self.clock()
        self.live = bool(self.subs) and all(s.id and s.expires > now and not s.paused for s in self.subs.values())
        held_back = next((s for s in self.subs.values() if s.paused), None)
        if self.live:
            self.reason = ""
        elif not self.reason and held_back is not None:  # asked, not tried yet
            self.reason = f"{self.what} {held_back.label or held_back.key}: {held_back.paused}"
        elif not self.reason:
            self.reason = f"no {self.what} held" if self.subs else f"nothing to watch with a {self.what}"
        if refused is not None:
            raise refused

    def _refresh(self, sub: Subscription) -> None:
        now = self.clock()
        # nothing was listening, or the service may have held its notifications back: changes may be missed
        gap = sub.id is None or sub.expires <= now or bool(sub.paused)
        if sub.id is not None and self._renew is not None:
            try:
                self._renew(sub)
            except Gone:
                sub.id, gap = None, True
                self._create(sub)
        elif sub.id is None:
            self._create(sub)
        else:  # not extendable: a new one first, so no change falls between the two
            old = replace(sub, data=dict(sub.data))
            self._create(sub)
            self._remove_quietly(old)
        sub.renew_now, sub.paused, sub.granted = False, "", sub.expires - now
        if gap and self._missed is not None:
            self._missed(sub)

    def _remove_quietly(self, sub: Subscription) -> None:
        try:
            self._remove(sub)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, it expires by itself
            log.info("source %r: could not remove %s %s: %s", self.source, self.what, sub.id, exc)

    def stop(self) -> None:
        """Remove every held subscription, all at once, within `remove_timeout` seconds in all."""
        self.live = False
        held = [sub for sub in self.subs.values() if sub.id]
        threads = [
            threading.Thread(target=self._remove_quietly, args=(sub,), daemon=True, name=f"remove-{self.source}")
            for sub in held
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + self.remove_timeout
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        late = sum(thread.is_alive() for thread in threads)
        if late:
            log.warning(
                "source %r: %d %s removal(s) still unanswered after %.0fs; left to expire",
                self.source,
                late,
                self.what,
                self.remove_timeout,
            )
        for sub in held:
            sub.id = None
