"""One rate limiter for every connector: a thread-safe token bucket with a burst.

Invariants: over any window of `t` seconds a bucket grants at most `burst + rate * t` calls, across
all threads sharing it, and, when given a `budget`, at most `budget` calls in any `window` seconds
(a burst spends the budget early; it never adds to it: a service's per-minute limit holds however
bursty the calls); a rate of 0 or less grants every call at once (unlimited). A call made through
`paced` counts in the budget's window from when it finished, not when it was granted: the service
counts a call when it arrives, somewhere between the two, so a call granted a `window` after an
earlier one finished can never reach the service inside that one's window, however late the earlier
call left (a busy machine wakes a paced thread late) or however long it travelled. Callers queue in
the order they asked: a call that must wait reserves its slot before sleeping, so threads never
race for the same token. `Buckets` keeps one bucket per key (Slack limits each Web API method
separately), all with the same burst. A wait ends when the run it serves stops (`retry.pause`): the
call then raises `RetriableError` instead of going ahead early, and the run ends at its checkpoint.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from inlet.errors import RetriableError

from .retry import pause, stopping


class TokenBucket:
    """At most `rate` calls a second on average, `burst` at once (0 or less: unlimited), and at most
    `budget` calls in any `window` seconds when `budget` is given."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        budget: int | None = None,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = pause,
    ) -> None:
        self.rate, self.burst = rate, max(burst, 1.0)
        self.window = window
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._at = clock()
        # The last `budget` calls in asking order, each [when it was granted, or finished when known]:
        # the next one waits until the oldest of them is `window` seconds old.
        self._granted: deque[list[float]] | None = deque(maxlen=max(1, int(budget))) if budget else None
        self._last = float("-inf")  # when the latest call was granted: none goes ahead of it
        self.waited = 0.0  # seconds slept in all, for reports and tests

    def reserve(self) -> float:
        """Take a token now and return how many seconds the caller must wait before using it."""
        return self._reserve()[0]

    def _reserve(self) -> tuple[float, list[float]]:
        slot = [0.0]
        if self.rate <= 0:
            return 0.0, slot
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1.0  # may go negative: a debt later callers queue behind
            at = now + (0.0 if self._tokens >= 0 else -self._tokens / self.rate)
            granted = self._granted
            if granted is not None:
                at = max(at, self._last)  # never ahead of an earlier caller
                if len(granted) == granted.maxlen:
                    at = max(at, granted[0][0] + self.window)
                slot[0] = self._last = at
                granted.append(slot)
            return at - now, slot

    def take(self) -> float:
        """Wait for a token; returns the seconds waited. Raises `RetriableError` when the run stopped
        during the wait."""
        return self._wait(self._reserve())

    @contextmanager
    def paced(self) -> Iterator[float]:
        """Wait for a token (as `take`, yielding the seconds waited), make the call inside; the
        budget's window counts the call from when the block ended."""
        reserved = self._reserve()
        try:
            yield self._wait(reserved)
        finally:  # a call that failed reached the service too, most likely
            with self._lock:
                slot = reserved[1]
                slot[0] = max(slot[0], self._clock())

    def _wait(self, reserved: tuple[float, list[float]]) -> float:
        wait = reserved[0]
        if wait > 0:
            self._sleep(wait)
            self.waited += wait
            if stopping():
                raise RetriableError("the run stopped while pacing its calls")
        return wait


class Buckets:
    """One `TokenBucket` per key, `rates[key]` calls a second each; a key without a rate is unlimited.
    `bursts[key]` and `budgets[key]` (calls per `window` s) override `burst` and no budget per key."""

    def __init__(
        self,
        rates: Mapping[str, float],
        burst: float = 1.0,
        *,
        bursts: Mapping[str, float] | None = None,
        budgets: Mapping[str, int] | None = None,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = pause,
    ) -> None:
        bursts, budgets = bursts or {}, budgets or {}
        self._buckets = {
            key: TokenBucket(
                rate, bursts.get(key, burst), budget=budgets.get(key), window=window, clock=clock, sleep=sleep
            )
            for key, rate in rates.items()
        }

    def take(self, key: str) -> float:
        bucket = self._buckets.get(key)
        return bucket.take() if bucket is not None else 0.0

    @contextmanager
    def paced(self, key: str) -> Iterator[float]:
        """`TokenBucket.paced` of `key`'s bucket (an unlimited key waits for nothing)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            yield 0.0
            return
        with bucket.paced() as waited:
            yield waited

    @property
    def waited(self) -> float:
        return sum(bucket.waited for bucket in self._buckets.values())
