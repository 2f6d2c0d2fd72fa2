"""One rate limiter for every connector: a thread-safe token bucket with a burst.

Invariants: over any window of `t` seconds a bucket grants at most `burst + rate * t` calls, across
all threads sharing it, and, when given a `budget`, at most `budget` calls in any `window` seconds
(a burst spends the budget early; it never adds to it: a service's per-minute limit holds however
bursty the calls); a rate of 0 or less grants every call at once (unlimited). Callers queue in
the order they asked: a call that must wait reserves its slot before sleeping, so threads never
race for the same token. `Buckets` keeps one bucket per key (Slack limits each Web API method
separately), all with the same burst. A wait ends when the run it serves stops (`retry.pause`): the
call then raises `RetriableError` instead of going ahead early, and the run ends at its checkpoint.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

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
        # When each of the last `budget` calls was granted (in asking order): the next one waits
        # until the oldest of them is `window` seconds old.
        self._granted: deque[float] | None = deque(maxlen=max(1, int(budget))) if budget else None
        self.waited = 0.0  # seconds slept in all, for reports and tests

    def reserve(self) -> float:
        """Take a token now and return how many seconds the caller must wait before using it."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1.0  # may go negative: a debt later callers queue behind
            at = now + (0.0 if self._tokens >= 0 else -self._tokens / self.rate)
            granted = self._granted
            if granted is not None:
                if granted:
                    at = max(at, granted[-1])  # never ahead of an earlier caller
                if len(granted) == granted.maxlen:
                    at = max(at, granted[0] + self.window)
                granted.append(at)
            return at - now

    def take(self) -> float:
        """Wait for a token; returns the seconds waited. Raises `RetriableError` when the run stopped
        during the wait."""
        wait = self.reserve()
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

    @property
    def waited(self) -> float:
        return sum(bucket.waited for bucket in self._buckets.values())
