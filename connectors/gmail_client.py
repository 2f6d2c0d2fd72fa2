"""One Gmail mailbox through google-api-python-client: the calls the gmail connector makes, paced to
the per-user quota, and messages read many at a time through the batch endpoint.

Invariants:
- Every call runs through the kit's `GoogleService.call` (retries with Retry-After, token refresh,
  errors mapped onto inlet's); the batch too, as one request, and its parts that answer a
  retriable error (429 `rateLimitExceeded`, 5xx) are sent again in a smaller batch under the same
  retry policy.
- Quota: Gmail allows a user 250 units in any second, each method costing its documented units, and
  a batch of 50 reads would be 250 units at once. `UnitWindow` keeps the units of the last second, each
  stamped when its answer came back (never earlier than Gmail counted it), and waits before a call
  until the call fits: a token bucket cannot pace lumps as large as the limit itself without halving
  the throughput. A wait ends when the run stops, and the call then raises `RetriableError`.
  `units` and `calls` count what was spent, for benchmarks.
- The credentials act as the mailbox (domain-wide delegation, `subject`); a mailbox the delegation
  does not cover is `MailboxRefused`, distinct from credentials the token endpoint refuses outright.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from inlet.errors import CredentialsError, InletError, RetriableError

from .kit.google import GoogleApiError, GoogleService, error_of
from .kit.retry import RetryPolicy, retriable_status, retry_after, stopping

log = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/gmail.readonly"]
DEFAULT_ENDPOINT = "https://gmail.googleapis.com/"
UNITS = {
    "users.getProfile": 1,
    "labels.list": 1,
    "messages.list": 5,
    "messages.get": 5,
    "messages.attachments.get": 5,
    "history.list": 2,
}
# What Google's token endpoint answers for a subject the delegation does not cover (or that is no user)
_DELEGATION_REFUSALS = ("unauthorized_client", "Invalid email or User ID")


class MailboxRefused(InletError):
    """The domain-wide delegation does not cover this mailbox (or it is no user of the domain)."""

    def __init__(self, mailbox: str, detail: str) -> None:
        super().__init__(
            f"mailbox {mailbox}: the domain-wide delegation does not cover it ({detail}); add the "
            f"service account's client ID with scope {SCOPES[0]} in the Admin console, or remove "
            f"the mailbox from the source"
        )
        self.mailbox = mailbox


def delegation_refused(exc: CredentialsError) -> str | None:
    """The token endpoint's words when `exc` is a refusal of the delegated subject, else None."""
    cause = exc.__cause__
    text = " ".join(str(a) for a in getattr(cause, "args", ()))
    return next((text for marker in _DELEGATION_REFUSALS if marker in text), None)


class UnitWindow:
    """At most `limit` units in any second (0: unlimited): `wait_for(units)` before a call, `spent(units)`
    once its answer is in."""

    def __init__(
        self, limit: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.limit, self._clock, self._sleep = limit, clock, sleep
        self._spent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self.waited = 0.0

    def wait_for(self, units: int) -> None:
        if self.limit <= 0:
            return
        while True:
            with self._lock:
                now = self._clock()
                while self._spent and self._spent[0][0] <= now - 1.0:
                    self._spent.popleft()
                used = sum(u for _, u in self._spent)
                if used + units <= self.limit or not self._spent:
                    return
                wait, freed = 0.0, used
                for stamp, amount in self._spent:  # the oldest entries leave first
                    freed -= amount
                    wait = stamp + 1.0 - now
                    if freed + units <= self.limit:
                        break
            self.waited += wait + 0.001
            self._sleep(wait + 0.001)
            if stopping():
                raise RetriableError("the run stopped while pacing its calls")

    def spent(self, units: int) -> None:
        with self._lock:
            self._spent.append((self._clock(), units))


_WINDOWS: dict[tuple[str, str], UnitWindow] = {}
_WINDOWS_LOCK = threading.Lock()


def _window(key: tuple[str, str], limit: float, sleep: Callable[[float], None]) -> UnitWindow:
    """The quota is the user's, not a client's: one window per mailbox in this process."""
    with _WINDOWS_LOCK:
        window = _WINDOWS.get(key)
        if window is None or window.limit != limit:
            window = _WINDOWS[key] = UnitWindow(limit, sleep=sleep)
        return window


class MailboxClient:
    """The Gmail API acting as one mailbox (`userId="me"`)."""

    def __init__(
        self,
        source: str,
        mailbox: str,
        credentials: Any,
        api_endpoint: str | None,
        *,
        policy: RetryPolicy,
        units_per_second: float,
        timeout: float,
    ) -> None:
        self.source, self.mailbox = source, mailbox
        self.google = GoogleService(
            "gmail",
            "v1",
            source=source,
            credentials=credentials,
            api_endpoint=api_endpoint,
            policy=policy,
            timeout=timeout,
            label="Gmail",
        )
        self.batch_uri = urljoin(api_endpoint or DEFAULT_ENDPOINT, "batch/gmail/v1")
        self.quota = _window((api_endpoint or DEFAULT_ENDPOINT, mailbox), units_per_second, policy.sleep)
        self.units = 0
        self.calls = 0

    def _execute(self, units: int, what: str, make: Callable[[Any], Any]) -> Any:
        """One request (retried by the kit) within the quota window; delegation refusals named."""
        self.quota.wait_for(units)
        self.units += units
        self.calls += 1
        try:
            return self.google.call(make, what)
        except CredentialsError as exc:
            refused = delegation_refused(exc)
            if refused:
                raise MailboxRefused(self.mailbox, refused) from exc
            raise
        finally:
            self.quota.spent(units)

    def _call(self, method: str, make: Callable[[Any], Any]) -> dict[str, Any]:
        return dict(self._execute(UNITS[method], f"Gmail {method} of {self.mailbox}", lambda s: make(s.users())))

    # --- the calls -------------------------------------------------------------------------------
    def profile(self) -> dict[str, Any]:
        return self._call("users.getProfile", lambda u: u.getProfile(userId="me"))

    def labels(self) -> list[dict[str, Any]]:
        return list(self._call("labels.list", lambda u: u.labels().list(userId="me")).get("labels", []))

    def list_messages(self, label_id: str | None, q: str | None, token: str | None, size: int) -> dict[str, Any]:
        return self._call(
            "messages.list",
            lambda u: u.messages().list(
                userId="me", labelIds=[label_id] if label_id else None, q=q or None, pageToken=token, maxResults=size
            ),
        )

    def history(self, start: str, token: str | None, size: int) -> dict[str, Any]:
        """One page of history after `start`; `GoogleApiError` 404 when `start` is too old."""
        return self._call(
            "history.list",
            lambda u: u.history().list(userId="me", startHistoryId=start, pageToken=token, maxResults=size),
        )

    def get(self, message_id: str, fmt: str = "raw") -> dict[str, Any]:
        return self._call("messages.get", lambda u: u.messages().get(userId="me", id=message_id, format=fmt))

    def attachment(self, message_id: str, attachment_id: str) -> dict[str, Any]:
        return self._call(
            "messages.attachments.get",
            lambda u: u.messages().attachments().get(userId="me", messageId=message_id, id=attachment_id),
        )

    def get_many(
        self, ids: list[str], fmt: str = "raw", *, per_item: bool = False
    ) -> dict[str, dict[str, Any] | GoogleApiError]:
        """The messages (batch requests); a message gone since it was listed maps to a 404 error.
        Parts still throttled or failing (5xx) when the retries are spent make the call a
        `RetriableError`; with `per_item` each maps to its `GoogleApiError` instead (`retriable`),
        for `kit.retries.Outage` to weigh."""
        out: dict[str, dict[str, Any] | GoogleApiError] = {}
        pending = list(ids)
        attempts = self.google.policy.start(self.source, f"Gmail batch of {self.mailbox}")
        while pending:
            failing = self._batch_round(pending, fmt, out)
            if not failing:
                break
            wait = max(after for _, after in failing.values()) or None
            first = next(iter(failing.values()))[0]
            throttled = all(error.status < 500 for error, _ in failing.values())  # 429, a rate-limit 403
            why = f"{len(failing)} of {len(pending)} messages {'throttled' if throttled else 'failed'} ({first})"
            if not attempts.retry(why, wait, throttled=throttled):
                if per_item:
                    out.update({mid: error for mid, (error, _) in failing.items()})
                    break
                raise RetriableError(
                    f"source {self.source!r}: Gmail kept {'refusing' if throttled else 'failing'} {len(failing)} "
                    f"messages of {self.mailbox} (GET messages/{next(iter(failing))}: {first})",
                    retry_after=wait,  # the parts' Retry-After, if any
                )
            pending = list(failing)
        return out

    def _batch_round(
        self, ids: list[str], fmt: str, out: dict[str, dict[str, Any] | GoogleApiError]
    ) -> dict[str, tuple[GoogleApiError, float]]:
        """One batch request: answers into `out`; returns the ids to send again, with their error and
        Retry-After."""
        from googleapiclient.http import BatchHttpRequest

        failing: dict[str, tuple[GoogleApiError, float]] = {}

        def answered(request_id: str, response: Any, exc: Any) -> None:
            if exc is None:
                out[request_id] = response
                return
            reason, message = error_of(exc)
            error = GoogleApiError(exc.resp.status, reason, message)
            if retriable_status(exc.resp.status, reason):
                failing[request_id] = (error, retry_after(exc.resp.get("retry-after")) or 0.0)
            else:
                out[request_id] = error

        batch = BatchHttpRequest(callback=answered, batch_uri=self.batch_uri)
        for mid in ids:
            batch.add(self.google.service.users().messages().get(userId="me", id=mid, format=fmt), request_id=mid)
        self._execute(UNITS["messages.get"] * len(ids), f"Gmail batch of {self.mailbox}", lambda _s: batch)
        return failing
