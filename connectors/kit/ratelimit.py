"""One rate limiter for every connector: a thread-safe token bucket with a burst.

Invariants: over any window of `t` seconds a bucket grants at most `burst + rate * t` calls, across
all threads sharing it; a rate of 0 or less grants every call at once (unlimited). Callers queue in
the order they asked: a call that must wait reserves its slot before sleeping, so threads never
race for the same token. `Buckets` keeps one bucket per key (Slack limits each Web API method
separately), all with the same burst.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping


class TokenBucket:
    """At most `rate` calls a second on average, `burst` at once (0 or less: unlimited)."""

    def __init__(self, rate: float, burst: float = 1.0, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate, self.burst = rate, max(burst, 1.0)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._at = clock()
        self.waited = 0.0   # seconds slept in all, for reports and tests

    def reserve(self) -> float:
        """Take a token now and return how many seconds the caller must wait before using it."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= 1.0   # may go negative: a debt later callers queue behind
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def take(self) -> float:
        """Wait for a token; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
            self.waited += wait
        return wait


class Buckets:
    """One `TokenBucket` per key, `rates[key]` calls a second each; a key without a rate is unlimited."""

    def __init__(self, rates: Mapping[str, float], burst: float = 1.0, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self._buckets = {key: TokenBucket(rate, burst, clock=clock, sleep=sleep) for key, rate in rates.items()}

    def take(self, key: str) -> float:
        bucket = self._buckets.get(key)
        return bucket.take() if bucket is not None else 0.0

    @property
    def waited(self) -> float:
        return sum(bucket.waited for bucket in self._buckets.values())
