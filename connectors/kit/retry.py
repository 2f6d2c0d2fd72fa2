"""One retry policy for every SaaS connector: which failures are worth another try, and how long to wait.

Invariants:
- A call is tried at most `attempts` times and spends at most `deadline` seconds (10 minutes: two
  of the longest `Retry-After` waits) waiting between tries, whatever the service answers; after
  that the caller raises a `RetriableError` and the engine decides (the next scheduled run, or its
  own back-off; never before the `RetriableError`'s `retry_after`, which the run's result carries
  to the daemon's schedule).
- A wait honours the service's `Retry-After` (delta-seconds or an HTTP date) in full, up to
  `max_retry_after` (5 minutes): retrying before it ends only meets the throttle again. A longer
  `Retry-After` ends the retries at once (logged); the caller's `RetriableError` carries it.
  Without one a wait backs off exponentially from `backoff`, capped at `cap`; `jitter` adds up to
  that share at random so parallel workers do not retry in step. A wait ends early when the run
  it serves stops (`waits_end_when`, which the engine holds around each run): the call then gives
  up as if its tries were spent, and the run ends at its last checkpoint, resuming from there.
  Within `without_waits` a call is tried once: a retriable failure gives up at once, unlogged, and
  the caller's `RetriableError` carries the `Retry-After` to a back-off of its own (change-event
  subscriptions: a throttled one must not hold the thread that keeps the others alive).
- Throttling (429), server errors (5xx but 501) and network failures (reset, refused, stalled) are
  retriable; Google's 403 with a rate-limit reason is throttling too. Anything else is not.
- Each wait is one log line, written here, naming the source, the call and the reason: at WARNING
  (visible at the CLI's level) for a failure, and for a throttle whose wait is `NOTICEABLE_WAIT`
  (5 s) or more; a shorter throttle at INFO (expected, and frequent, during a large backfill).

The adapters (`kit.http.RetryTransport` for httpx, `kit.slack.SlackRetryHandler` for slack-sdk,
`kit.google.GoogleService.call` for googleapiclient) all run their waits through `Attempts`.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

THROTTLED = 429
NOTICEABLE_WAIT = 5.0  # seconds: a throttle's wait this long is a WARNING, seen on a terminal
RATE_LIMIT_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})  # Google's 403 throttles
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)  # URLError is an OSError
STOP_POLL = 0.2  # seconds between two looks, during a wait, at whether the run stops
_stopping: ContextVar[Callable[[], bool] | None] = ContextVar("inlet_run_stopping", default=None)
_no_waits: ContextVar[bool] = ContextVar("inlet_no_waits", default=False)


@contextmanager
def waits_end_when(stopping: Callable[[], bool]) -> Iterator[None]:
    """Within this block (this thread's context), every wait of `pause` ends as soon as
    `stopping()` is true, and the call it was for gives up."""
    token = _stopping.set(stopping)
    try:
        yield
    finally:
        _stopping.reset(token)


@contextmanager
def without_waits() -> Iterator[None]:
    """Within this block (this thread's context), a call is not retried: its first retriable failure
    ends it, and the caller backs off by itself (honouring the failure's `Retry-After`)."""
    token = _no_waits.set(True)
    try:
        yield
    finally:
        _no_waits.reset(token)


def stopping() -> bool:
    """Whether the run this code serves is stopping (`waits_end_when`)."""
    check = _stopping.get()
    return check is not None and check()


def pause(seconds: float) -> None:
    """Sleep `seconds`, or less once the run stops (`RetryPolicy`'s default `sleep`)."""
    end = time.monotonic() + seconds
    while not stopping():
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, STOP_POLL))


def retriable_status(status: int, reason: str = "") -> bool:
    """429, a 5xx other than 501 (Not Implemented), or a 403 whose reason is a rate limit."""
    return (
        status == THROTTLED
        or (500 <= status <= 599 and status != 501)
        or (status == 403 and reason in RATE_LIMIT_REASONS)
    )


def retry_after(value: str | Mapping[str, Any] | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a `Retry-After` value (or a headers mapping holding one): delta-seconds,
    fractional allowed, or an HTTP date; None when absent or unreadable."""
    if value is not None and not isinstance(value, str):
        value = next((v for k, v in value.items() if k.lower() == "retry-after"), None)
        if isinstance(value, list):  # slack-sdk keeps each header as a list
            value = value[0] if value else None
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now(), 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one call may be retried (see the module docstring)."""

    attempts: int = 5  # tries in all, the first included
    backoff: float = 0.5  # the first wait without Retry-After, doubled each time
    cap: float = 30.0  # the longest backoff wait (one without Retry-After)
    max_retry_after: float = 300.0  # the longest Retry-After waited out; a longer one ends the retries
    jitter: float = 0.1  # up to this share added to a wait at random
    deadline: float = 600.0  # seconds of waiting one call may spend in all
    sleep: Callable[[float], None] = field(default=pause, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """The wait after the `failures`-th failure (1-based): Retry-After in full (see `plan` for one
        over `max_retry_after`), or backoff capped at `cap`; jittered."""
        base = retry_after if retry_after is not None else min(self.backoff * 2 ** max(failures - 1, 0), self.cap)
        return base * (1 + random.random() * self.jitter)

    def start(self, source: str, what: str) -> Attempts:
        """The retry budget of one call of `what` (a method name or a URL path) for `source`."""
        return Attempts(self, source, what)


class Attempts:
    """One call's budget: `retry(why)` after each retriable failure, which sleeps and returns True
    while another try is allowed, or returns False (without sleeping) once the budget is spent."""

    def __init__(self, policy: RetryPolicy, source: str, what: str) -> None:
        self.policy, self.source, self.what = policy, source, what
        self.failures = 0
        self.waited = 0.0

    @property
    def last(self) -> bool:
        """True when the next failure will not be retried (the attempts are used up)."""
        return self.failures + 1 >= self.policy.attempts

    def plan(self, why: str, retry_after: float | None = None, *, throttled: bool = False) -> float | None:
        """Note a retriable failure: the seconds to wait before the next try (logged), or None when
        the budget is spent. For adapters whose library sleeps in a later step; others use `retry`."""
        self.failures += 1
        if self.failures >= self.policy.attempts or stopping() or _no_waits.get():
            return None
        if retry_after is not None and retry_after > self.policy.max_retry_after:
            log.warning(
                "source %r: %s: %s; Retry-After %.0fs is longer than a call waits (%.0fs): left to a later run",
                self.source,
                self.what,
                why,
                retry_after,
                self.policy.max_retry_after,
            )
            return None
        wait = self.policy.delay(self.failures, retry_after)
        if self.waited + wait > self.policy.deadline:
            return None
        log.log(
            logging.INFO if throttled and wait < NOTICEABLE_WAIT else logging.WARNING,
            "source %r: %s: %s; retry %d of %d in %.2fs",
            self.source,
            self.what,
            why,
            self.failures,
            self.policy.attempts - 1,
            wait,
        )
        self.waited += wait
        return wait

    def retry(self, why: str, retry_after: float | None = None, *, throttled: bool = False) -> bool:
        """Note a retriable failure; sleep and return True if another try is allowed, else False."""
        wait = self.plan(why, retry_after, throttled=throttled)
        if wait is None:
            return False
        self.policy.sleep(wait)
        return not stopping()
