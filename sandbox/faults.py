"""Fault injection and call accounting shared by the emulated services.

Each service asks `faults.check(service, route, target)` before serving a request and renders the
decision in its own wire format (Slack's `{"ok": false}`, Google's error envelope, Graph's
`{"error": {...}}`). Tests and benchmarks arm faults through the Python API or the admin routes.
The last `LOG_SIZE` calls are kept with their target (a Slack call's channel, a Graph call's path),
so a test can see what a sync read (`targets`).
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field


LOG_SIZE = 10_000


@dataclass
class Fault:
    """What a service must answer instead of the real response."""

    status: int                  # 429, 500, 503, 401 ...
    reason: str = ""             # service-specific: "ratelimited", "userRateLimitExceeded", ...
    retry_after: float | None = None


@dataclass
class _RateLimit:
    per_minute: float
    window: deque[float] = field(default_factory=deque)


@dataclass
class _EventFault:
    drop: int
    duplicate: int
    delayed: int
    delay: float


@dataclass
class _Flaky:
    rate: float
    faults: list[Fault]
    rng: random.Random


@dataclass
class _Burst:
    status: int
    remaining: int
    reason: str
    retry_after: float | None


class Faults:
    """Per-(service, route) rate limits, error bursts and call counts. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, time_scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.time_scale = time_scale      # 60.0 makes "per minute" limits "per second"
        self.calls: Counter[str] = Counter()
        self.log: deque[tuple[str, str]] = deque(maxlen=LOG_SIZE)   # (service:route, target)
        self.rejected: Counter[str] = Counter()
        self._limits: dict[str, _RateLimit] = {}
        self._bursts: dict[str, _Burst] = {}
        self._flaky: dict[str, _Flaky] = {}
        self.expired_tokens: set[str] = set()
        self._event_faults: dict[str, _EventFault] = {}

    # --- arming -------------------------------------------------------------------------------
    def rate_limit(self, service: str, route: str, per_minute: float) -> None:
        """Allow at most `per_minute` calls a (scaled) minute on routes matching the glob."""
        with self._lock:
            self._limits[f"{service}:{route}"] = _RateLimit(per_minute)

    def fail(self, service: str, route: str, status: int, times: int = 1, reason: str = "",
             retry_after: float | None = None) -> None:
        """The next `times` calls on routes matching the glob answer `status`."""
        with self._lock:
            self._bursts[f"{service}:{route}"] = _Burst(status, times, reason, retry_after)

    def events(self, service: str, *, drop: int = 0, duplicate: int = 0, delay: float = 0.0,
               delayed: int = 0) -> None:
        """The service's next `drop` change events are lost, the next `duplicate` ones sent twice,
        and the next `delayed` ones sent `delay` seconds late (so later ones overtake them)."""
        with self._lock:
            self._event_faults[service] = _EventFault(drop, duplicate, delayed, delay)

    def event_fate(self, service: str) -> tuple[int, float]:
        """How many copies of the service's next change event to send (0: dropped), and how late."""
        with self._lock:
            fault = self._event_faults.get(service)
            if fault is None:
                return 1, 0.0
            if fault.drop:
                fault.drop -= 1
                return 0, 0.0
            copies, delay = 1, 0.0
            if fault.duplicate:
                fault.duplicate -= 1
                copies = 2
            if fault.delayed:
                fault.delayed -= 1
                delay = fault.delay
            return copies, delay

    def flaky(self, service: str, route: str, rate: float, faults: list[Fault], seed: int = 0) -> None:
        """A seeded share `rate` of the calls on routes matching the glob answer one of `faults`
        (picked at random): repeatable noise, for runs that must end as a fault-free one does."""
        with self._lock:
            self._flaky[f"{service}:{route}"] = _Flaky(rate, faults, random.Random(seed))

    def clear(self) -> None:
        with self._lock:
            self._limits.clear()
            self._bursts.clear()
            self._flaky.clear()
            self.expired_tokens.clear()
            self._event_faults.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.log.clear()
            self.rejected.clear()

    # --- checking -----------------------------------------------------------------------------
    def check(self, service: str, route: str, target: str = "") -> Fault | None:
        """Count and log the call; return the fault to answer with, or None to serve normally."""
        key = f"{service}:{route}"
        with self._lock:
            self.calls[key] += 1
            self.log.append((key, target))
            for pattern, burst in list(self._bursts.items()):
                if burst.remaining > 0 and fnmatch.fnmatchcase(key, pattern):
                    burst.remaining -= 1
                    if burst.remaining == 0:
                        del self._bursts[pattern]
                    self.rejected[key] += 1
                    return Fault(burst.status, burst.reason, burst.retry_after)
            for pattern, limit in self._limits.items():
                if fnmatch.fnmatchcase(key, pattern):
                    fault = self._take(limit)
                    if fault:
                        self.rejected[key] += 1
                        return fault
            for pattern, flaky in self._flaky.items():
                if fnmatch.fnmatchcase(key, pattern) and flaky.rng.random() < flaky.rate:
                    self.rejected[key] += 1
                    return flaky.rng.choice(flaky.faults)
        return None

    def _take(self, limit: _RateLimit) -> Fault | None:
        now = self._clock()
        span = 60.0 / self.time_scale
        while limit.window and limit.window[0] <= now - span:
            limit.window.popleft()
        if len(limit.window) < limit.per_minute:
            limit.window.append(now)
            return None
        wait = limit.window[0] + span - now
        return Fault(429, "ratelimited", retry_after=max(wait, 0.001))

    def targets(self, pattern: str = "*") -> list[str]:
        """The targets of the logged calls on routes matching the glob, oldest first."""
        with self._lock:
            return [target for key, target in self.log if fnmatch.fnmatchcase(key, pattern)]

    def count(self, pattern: str = "*") -> int:
        """Calls made on routes matching the glob (`slack:conversations.history`, `drive:*`)."""
        with self._lock:
            return sum(n for key, n in self.calls.items() if fnmatch.fnmatchcase(key, pattern))
