"""Fault injection and call accounting shared by the emulated services.

Each service asks `faults.check(service, route, target)` before serving a request and renders the
decision in its own wire format (Slack's `{"ok": false}`, Google's error envelope, Graph's
`{"error": {...}}`). Tests and benchmarks arm faults through the Python API or the admin routes.
The last `LOG_SIZE` calls are kept with their target (a Slack call's channel, a Graph call's path),
so a test can see what a sync read (`targets`).

Network faults are the same for every service (`BrokenAnswer`): a 200 answer whose connection is
reset (TCP RST) halfway through its body, or whose body stops halfway for longer than a client
waits. `with_transports` puts the connection's transport into each request's scope for the reset.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

TRANSPORT = "inlet.sandbox.transport"  # scope key: the asyncio transport of the request's connection


LOG_SIZE = 10_000


@dataclass(frozen=True)
class Fault:
    """What a service must answer instead of the real response."""

    status: int  # 429, 500, 503, 401 ...
    reason: str = ""  # service-specific: "ratelimited", "userRateLimitExceeded", ...
    retry_after: float | None = None
    network: Literal["reset", "stall"] | None = None  # not an error answer: a broken connection
    stall: float = 0.0  # "stall": seconds the body stops for (longer than the client's timeout)

    @classmethod
    def reset(cls) -> "Fault":
        """The connection is reset (RST) halfway through a 200 answer's body."""
        return cls(200, "connection reset", network="reset")

    @classmethod
    def stalled(cls, seconds: float) -> "Fault":
        """A 200 answer's body stops halfway for `seconds`: a client's read timeout fires first."""
        return cls(200, "read timeout", network="stall", stall=seconds)


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
    fault: Fault
    remaining: int


class Faults:
    """Per-(service, route) rate limits, error bursts and call counts. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, time_scale: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.time_scale = time_scale  # 60.0 makes "per minute" limits "per second"
        self.calls: Counter[str] = Counter()
        self.log: deque[tuple[str, str]] = deque(maxlen=LOG_SIZE)  # (service:route, target)
        self.rejected: Counter[str] = Counter()
        self.injected: Counter[Fault] = Counter()  # each fault answered, by kind
        self._limits: dict[str, _RateLimit] = {}
        self._bursts: dict[tuple[str, str], _Burst] = {}  # (route glob, target glob) -> its burst
        self._flaky: dict[str, _Flaky] = {}
        self.expired_tokens: set[str] = set()
        self._event_faults: dict[str, _EventFault] = {}

    # --- arming -------------------------------------------------------------------------------
    def rate_limit(self, service: str, route: str, per_minute: float) -> None:
        """Allow at most `per_minute` calls a (scaled) minute on routes matching the glob."""
        with self._lock:
            self._limits[f"{service}:{route}"] = _RateLimit(per_minute)

    def fail(
        self,
        service: str,
        route: str,
        status: int,
        times: int = 1,
        reason: str = "",
        retry_after: float | None = None,
        target: str = "*",
    ) -> None:
        """The next `times` calls on routes matching the glob, and whose target (a Graph call's
        path: one item's) matches `target`, answer `status`."""
        self.break_next(service, route, Fault(status, reason, retry_after), times, target)

    def break_next(self, service: str, route: str, fault: Fault, times: int = 1, target: str = "*") -> None:
        """The next `times` calls on routes matching the glob, and on targets matching `target`, get
        `fault` (e.g. `Fault.reset()`)."""
        with self._lock:
            self._bursts[(f"{service}:{route}", target)] = _Burst(fault, times)

    def events(self, service: str, *, drop: int = 0, duplicate: int = 0, delay: float = 0.0, delayed: int = 0) -> None:
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
            self.injected.clear()

    # --- checking -----------------------------------------------------------------------------
    def check(self, service: str, route: str, target: str = "") -> Fault | None:
        """Count and log the call; return the fault to answer with, or None to serve normally."""
        key = f"{service}:{route}"
        with self._lock:
            self.calls[key] += 1
            self.log.append((key, target))
            for (pattern, aim), burst in list(self._bursts.items()):
                if burst.remaining > 0 and fnmatch.fnmatchcase(key, pattern) and fnmatch.fnmatchcase(target, aim):
                    burst.remaining -= 1
                    if burst.remaining == 0:
                        del self._bursts[(pattern, aim)]
                    self.rejected[key] += 1
                    self.injected[burst.fault] += 1
                    return burst.fault
            for pattern, limit in self._limits.items():
                if fnmatch.fnmatchcase(key, pattern):
                    fault = self._take(limit)
                    if fault:
                        self.rejected[key] += 1
                        return fault
            for pattern, flaky in self._flaky.items():
                if fnmatch.fnmatchcase(key, pattern) and flaky.rng.random() < flaky.rate:
                    self.rejected[key] += 1
                    fault = flaky.rng.choice(flaky.faults)
                    self.injected[fault] += 1
                    return fault
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


# --- network faults ------------------------------------------------------------------------------
def with_transports(app: ASGIApp) -> ASGIApp:
    """The app, with each HTTP request's connection transport in `scope[TRANSPORT]`: uvicorn's
    `send` is a method of its request cycle, which holds the transport."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[TRANSPORT] = getattr(getattr(send, "__self__", None), "transport", None)
        await app(scope, receive, send)

    return wrapped


class BrokenAnswer(Response):
    """A 200 JSON answer that breaks halfway through its body, as `fault.network` says."""

    def __init__(self, fault: Fault) -> None:
        super().__init__()
        self.fault = fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b'{"ok": true, "padding": "' + b"x" * 4096 + b'"}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        if self.fault.network == "reset":
            reset(scope.get(TRANSPORT))
            await _disconnect(receive)  # the server has seen it go: the answer is over
            return
        try:  # the stall ends when the client gives up (its timeout), or after `stall` seconds
            await asyncio.wait_for(_disconnect(receive), self.fault.stall)
        except TimeoutError:
            await send({"type": "http.response.body", "body": body[len(body) // 2 :]})


async def _disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def reset(transport: Any) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0), not an orderly FIN."""
    if transport is None:
        raise RuntimeError("no transport in scope: serve the app through with_transports()")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
