"""One renewal loop for change subscriptions (Graph subscriptions, Drive push channels).

Invariants:
- A subscription is renewed once less than a third of its lifetime is left (the lifetime the
  service granted when shorter than the one asked: Drive caps channels at 7 days), or at once when
  the service asks (`renew_now`), and created when it has none; `maintain()` does both, never blocks
  on a failed one (it is tried again after a back-off of 5 s doubling to 5 min, while the schedule
  covers the gap) and sets `live` only while every subscription is held and unexpired.
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

from inlet.errors import InletError

from ..events import Retry as Backoff

log = logging.getLogger(__name__)

RENEW_AT = 1 / 3  # renew when less than this share of the lifetime is left


@dataclass
class Subscription:
    """One subscription: `key` names what it watches (a folder id, 'changes'); `data` holds what the
    service needs besides the id (a mailbox, a Drive resource id)."""

    key: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = None
    expires: float = 0.0  # epoch seconds
    granted: float = 0.0  # the lifetime the service gave at the last create or renew (seconds)
    renew_now: bool = False
    backoff: Backoff = field(default_factory=Backoff)  # failures: 5 s, doubling up to 5 min


Call = Callable[[Subscription], None]


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
    ) -> None:
        self.source, self.what, self.lifetime = source, what, lifetime
        self.advice = f" ({advice})" if advice else ""  # said with every failure, e.g. what to check
        self._create, self._renew, self._remove = create, renew, remove
        self.clock = clock
        self.remove_timeout = remove_timeout
        self.subs: dict[str, Subscription] = {}
        self.live = False

    def add(self, key: str, **data: Any) -> Subscription:
        sub = self.subs[key] = Subscription(key, data, backoff=Backoff(clock=self.clock))
        return sub

    def drop(self, key: str) -> None:
        """Stop keeping `key`'s subscription (what it watched is gone), removing it if held."""
        sub = self.subs.pop(key, None)
        if sub is not None and sub.id is not None:
            self._remove_quietly(sub)

    def due(self, sub: Subscription) -> bool:
        lifetime = min(self.lifetime, sub.granted) if sub.granted > 0 else self.lifetime
        return sub.id is None or sub.renew_now or sub.expires - self.clock() < lifetime * RENEW_AT

    def maintain(self) -> None:
        for sub in list(self.subs.values()):
            if not sub.backoff.due() or not self.due(sub):
                continue
            try:
                self._refresh(sub)
                sub.backoff.succeeded()
            except InletError as exc:  # tried again later; the schedule covers the gap
                log.warning(
                    "source %r: %s %s: %s%s; next try in %.0fs",
                    self.source,
                    self.what,
                    sub.key[-12:],
                    exc,
                    self.advice,
                    sub.backoff.failed(),
                )
        now = self.clock()
        self.live = bool(self.subs) and all(s.id and s.expires > now for s in self.subs.values())

    def _refresh(self, sub: Subscription) -> None:
        now = self.clock()
        if sub.id is not None and self._renew is not None:
            self._renew(sub)
        elif sub.id is None:
            self._create(sub)
        else:  # not extendable: a new one first, so no change falls between the two
            old = replace(sub, data=dict(sub.data))
            self._create(sub)
            self._remove_quietly(old)
        sub.renew_now, sub.granted = False, sub.expires - now

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
