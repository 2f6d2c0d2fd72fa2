"""Rate limits per key name and per OAuth user: a token bucket each, `[server] rate_limit` and
`rate_burst`, with a per-key `rate_limit` and `rate_burst` override in `[[server.api_keys]]` (a
key with its own rate has its own burst: `rate_burst`, else twice its own per-second rate).

Invariant: every request a key or token names spends one token, whatever its answer (a body too
large or stalled, refused by `BodyLimit` before any route reads it, and a token refused its scope
by the key check too: `refused_unread`, `RateLimit` with `every_path`); a request over
its bucket is answered 429 with `Retry-After` (an MCP tool call gets a
tool error saying so) and never reaches the index; a bucket is one key name or one OAuth user (as
the ACL compares users: case-folded, so one person has one bucket whatever the spelling of their
token's claim), so one runaway client never spends another's. The buckets live in this process (`LocalBuckets`) unless
the storage backend offers shared ones (PostgreSQL: `Buckets` of the storage package), which hold
across `inlet serve` replicas. While the database of shared buckets cannot be reached, a request is
answered 503 `index_unavailable` with `Retry-After`, as the index itself would answer it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from inlet.config import ApiKey, ServerConfig, Settings, parse_rate
from inlet.connectors.model import normal_user
from inlet.errors import IndexUnavailable

from .audit import name_refused
from .auth import Caller, KeyEntry, key_label
from .errors import ApiError, error_body, unavailable
from .middleware import send_error


class Buckets(Protocol):
    """Token buckets by name: `take` spends one token and answers 0, or the seconds until one is there."""

    def take(self, name: str, rate: float, burst: float) -> float: ...
    def close(self) -> None: ...


class LocalBuckets:
    """Buckets in this process's memory (the default: each replica limits on its own).

    A bucket that has refilled is the same as none, so such buckets are dropped whenever the table
    has doubled since the last sweep: memory follows the callers active lately, not all ever seen."""

    SWEEP_FROM = 1024  # buckets held before the first sweep

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float, float]] = {}  # name -> (tokens, time, full again at)
        self._sweep_at = self.SWEEP_FROM

    def take(self, name: str, rate: float, burst: float) -> float:
        now = self._clock()
        with self._lock:
            tokens, then, _ = self._buckets.get(name, (burst, now, now))
            tokens = min(burst, tokens + (now - then) * rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
            tokens -= 1.0 if tokens >= 1.0 else 0.0
            self._buckets[name] = (tokens, now, now + (burst - tokens) / rate)
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            return wait

    def _sweep(self, now: float) -> None:
        self._buckets = {name: b for name, b in self._buckets.items() if b[2] > now}
        self._sweep_at = max(self.SWEEP_FROM, 2 * len(self._buckets))

    def __len__(self) -> int:
        return len(self._buckets)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: float


class RateLimiter:
    """Which bucket a caller spends and how fast it refills."""

    def __init__(self, default: Limit | None, per_key: dict[str, Limit], buckets: Buckets | None = None) -> None:
        self.default = default
        self.per_key = per_key
        self.buckets: Buckets = buckets or LocalBuckets()

    @classmethod
    def from_settings(cls, settings: Settings, backend: Any = None) -> "RateLimiter":
        server = settings.server
        default = _limit(server.rate_limit, server.rate_burst, "[server] rate_limit")
        per_key = {k.name: lim for k in server.api_keys if (lim := _key_limit(k, server)) is not None}
        shared = backend.rate_buckets() if backend is not None and (default or per_key) else None
        return cls(default, per_key, shared)

    @property
    def enabled(self) -> bool:
        return self.default is not None or bool(self.per_key)

    def check(self, key_name: str, user: str | None = None, oauth: bool = False) -> float:
        """0 when the request may go on, else the seconds to wait."""
        limit = self.per_key.get(key_name, self.default)
        if limit is None:
            return 0.0
        bucket = f"user:{normal_user(user)}" if oauth and user else f"key:{key_name}"  # the user as the ACL has it
        return self.buckets.take(bucket, limit.rate, limit.burst)

    async def check_caller(self, caller: Caller) -> float:
        return await self._check(caller.key_name, caller.user, caller.subject is not None)

    async def check_entry(self, entry: KeyEntry) -> float:
        return await self._check(entry.name, entry.user, entry.subject is not None)

    async def _check(self, key_name: str, user: str | None, oauth: bool) -> float:
        """As `check`; shared buckets out of reach raise the 503 `ApiError` (`errors.unavailable`)."""
        if isinstance(self.buckets, LocalBuckets):  # memory only: no reason to leave the event loop
            return self.check(key_name, user, oauth)
        try:
            return await anyio.to_thread.run_sync(self.check, key_name, user, oauth)
        except IndexUnavailable as exc:
            raise unavailable(exc, f"the rate limit of {key_name!r}") from exc

    def close(self) -> None:
        if not isinstance(self.buckets, LocalBuckets):
            self.buckets.close()


def _key_limit(key: ApiKey, server: ServerConfig) -> Limit | None:
    """A key's own limit: its rate with its burst (default: twice its per-second rate); the server's
    rate with the key's burst when it sets a burst alone; None when it sets neither."""
    if key.rate_limit is not None:
        return _limit(key.rate_limit, key.rate_burst, key.name)
    if key.rate_burst is not None:
        return _limit(server.rate_limit, key.rate_burst, key.name)
    return None


def _limit(rate_text: str | None, burst: int | None, key: str) -> Limit | None:
    if rate_text is None:
        return None
    rate = parse_rate(rate_text, key)
    return Limit(rate, float(burst) if burst is not None else max(1.0, 2 * rate))


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def limited_message(name: str, seconds: float) -> str:
    return f"rate limit of {name!r} exceeded: try again in {retry_after(seconds)} s"


Spend = Callable[[Scope, Send], Awaitable[bool]]


def refused_unread(limiter: RateLimiter, metrics: Any) -> Spend:
    """What spends the token of a request refused before anything read its body (`BodyLimit`: too
    large, stalled), for which no route or MCP message spends one: it answers True when the request
    was over its limit and it answered it (429, or 503 when shared buckets are out of reach, the
    connection then closed), else False (the refusal goes on)."""

    async def spend(scope: Scope, send: Send) -> bool:
        entry = scope.get("state", {}).get("key")
        if entry is None or not limiter.enabled:
            return False
        try:
            wait = await limiter.check_entry(entry)
        except ApiError as exc:
            await send_error(send, exc.status, exc.code, exc.message, {**exc.headers, "connection": "close"})
            return True
        if wait <= 0:
            return False
        metrics.rate_limited.labels(key_label(entry.name)).inc()
        headers = {"Retry-After": retry_after(wait), "connection": "close"}
        await send_error(send, 429, "rate_limited", limited_message(entry.name, wait), headers)
        return True

    return spend


class RateLimit:
    """ASGI: spends the token of the key (or OAuth user) the key check put in the scope. /mcp is
    limited per message in mcp.py instead, so that an MCP tool call over the limit is a tool error,
    unless `every_path` (a request the key check refuses: it never reaches mcp.py). A refused request
    is audited with the user and query it named."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, metrics: Any, every_path: bool = False) -> None:
        self.app = app
        self.limiter = limiter
        self.metrics = metrics
        self.every_path = every_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = scope.get("state", {}).get("key") if scope["type"] == "http" else None
        if entry is None or not self.limiter.enabled or (scope.get("path") == "/mcp" and not self.every_path):
            await self.app(scope, receive, send)
            return
        try:
            wait = await self.limiter.check_entry(entry)
        except ApiError as exc:
            await JSONResponse(error_body(exc.code, exc.message), exc.status, headers=exc.headers)(scope, receive, send)
            return
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        self.metrics.rate_limited.labels(key_label(entry.name)).inc()
        await name_refused(scope, receive, entry)
        response = JSONResponse(
            error_body("rate_limited", limited_message(entry.name, wait)),
            429,
            headers={"Retry-After": retry_after(wait)},
        )
        await response(scope, receive, send)
