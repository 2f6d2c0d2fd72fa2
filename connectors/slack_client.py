"""The one place the `slack` connector talks to Slack: slack_sdk's WebClient, paced and retried.

Slack limits each Web API method separately ("tiers"). Pacing every method to its tier keeps a
large backfill from turning into a storm of 429s; the 429s that still happen are retried by
slack_sdk's retry handlers after `Retry-After`, and 5xx, reset connections and answers that stall
past the timeout with exponential backoff (every Web API method the connector calls only reads).
"""

from __future__ import annotations

import http.client
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.error import URLError

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import (
    BackoffRetryIntervalCalculator,
    ConnectionErrorRetryHandler,
    HttpRequest,
    HttpResponse,
    Jitter,
    RateLimitErrorRetryHandler,
    RetryState,
)
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler

from inlet.errors import CredentialsError, ItemError, RetriableError

log = logging.getLogger(__name__)

# Published tiers, calls per minute (https://api.slack.com/apis/rate-limits).
TIERS: dict[str, float] = {
    "auth.test": 100, "conversations.history": 50, "conversations.replies": 50,
    "conversations.list": 20, "conversations.members": 100, "conversations.info": 50,
    "users.list": 20, "users.info": 100, "files.info": 100,
}
# Cut or stalled connections slack_sdk's urllib client may raise, before or halfway through an answer.
CONNECTION_ERRORS: list[type[Exception]] = [URLError, ConnectionError, TimeoutError, http.client.HTTPException]
HEADROOM = 1.03   # pace 3% under the limit: arrival jitter must not push a call over the window

CREDENTIAL_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired",
                               "account_inactive", "missing_scope", "no_permission",
                               "team_access_not_granted", "ekm_access_denied", "org_login_required"})


class SlackError(Exception):
    """An `{"ok": false}` answer that is neither about credentials nor transient."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error


class Pacer:
    """Spaces calls of each method at least 60/per_minute seconds apart (0 or absent: unpaced)."""

    def __init__(self, per_minute: Mapping[str, float], sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = dict(per_minute)
        self._sleep = sleep
        self._clock = clock
        self._next: dict[str, float] = {}
        self.waited = 0.0

    def wait(self, method: str) -> None:
        rate = self.per_minute.get(method, 0)
        if rate <= 0:
            return
        now = self._clock()
        at = self._next.get(method, now)
        if at > now:
            self._sleep(at - now)
            self.waited += at - now
            now = at
        self._next[method] = now + 60.0 / rate * HEADROOM


class _SmallJitter(Jitter):
    """Up to 10% on top of the backoff (the stock jitter adds up to a whole second)."""

    def recalculate(self, duration: float) -> float:
        return duration * (1 + random.random() * 0.1)


class _RetryAfter(RateLimitErrorRetryHandler):
    """Sleep exactly `Retry-After` (+ up to 10%, at least 10 ms); the stock handler adds up to 1 s."""

    def prepare_for_next_attempt(self, *, state: RetryState, request: HttpRequest,
                                 response: HttpResponse | None = None,
                                 error: Exception | None = None) -> None:
        if response is None:
            raise error  # type: ignore[misc]
        header = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        raw = header[0] if isinstance(header, list) else header
        try:
            wait = float(raw) if raw is not None else 1.0
        except ValueError:
            wait = 1.0
        state.next_attempt_requested = True
        log.info("slack rate limited on %s: retrying after %.1fs", request.url, wait)
        time.sleep(max(wait, 0.01) * (1 + random.random() * 0.1))
        state.increment_current_attempt()


class _ServerErrors(ServerErrorRetryHandler):
    """Every 5xx is worth a retry (the stock handler retries only 500 and 503)."""

    def _can_retry(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                   error: Exception | None = None) -> bool:
        return response is not None and response.status_code >= 500


class SlackAPI:
    """Paced, retried Web API calls that raise inlet's errors; `calls` counts calls per method."""

    def __init__(self, source: str, token: str, base_url: str, *, pace: Mapping[str, float],
                 retries: int = 6, backoff: float = 0.5, timeout: float = 30.0) -> None:
        self.source = source
        self.token = token
        self.pacer = Pacer(pace)
        self.calls: dict[str, int] = {}
        self.retries = retries
        self.backoff = backoff
        backoff_calculator = BackoffRetryIntervalCalculator(backoff_factor=backoff, jitter=_SmallJitter())
        self.client = WebClient(token=token, base_url=base_url, timeout=int(max(timeout, 1)),
                                retry_handlers=[
                                    ConnectionErrorRetryHandler(max_retry_count=retries,
                                                                interval_calculator=backoff_calculator,
                                                                error_types=CONNECTION_ERRORS),
                                    _RetryAfter(max_retry_count=retries),
                                    _ServerErrors(max_retry_count=retries, interval_calculator=backoff_calculator),
                                ])
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.pacer.wait(method)
        self.calls[method] = self.calls.get(method, 0) + 1
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            response = self.client.api_call(method, params=clean)
        except SlackApiError as exc:
            raise self._translate(method, exc) from exc
        except (OSError, http.client.HTTPException) as exc:   # refused, reset or cut after the retries
            raise RetriableError(f"source {self.source!r}: {method}: {exc}") from exc
        return dict(response.data) if isinstance(response.data, dict) else {}

    def pages(self, method: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every page of a cursor-paginated method; refuses a repeated cursor (no endless loops)."""
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            page = self.call(method, cursor=cursor, **params)
            yield page
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return
            if cursor in seen:
                raise RetriableError(f"source {self.source!r}: {method} repeated cursor {cursor!r}")
            seen.add(cursor)

    def _translate(self, method: str, exc: SlackApiError) -> Exception:
        response = exc.response
        status = getattr(response, "status_code", 200)
        data = response.data if isinstance(getattr(response, "data", None), dict) else {}
        error = str(data.get("error") or f"http_{status}")
        if status == 429:
            after = (response.headers or {}).get("Retry-After") or (response.headers or {}).get("retry-after")
            return RetriableError(f"source {self.source!r}: {method} still rate limited after "
                                  f"{self.retries} retries", retry_after=float(after) if after else None)
        if status >= 500:
            return RetriableError(f"source {self.source!r}: {method} failed with HTTP {status} ({error})")
        if error in CREDENTIAL_ERRORS:
            needed = data.get("needed")
            return CredentialsError(self.source, f"Slack answered {error!r} to {method}"
                                    + (f" (scope needed: {needed})" if needed else ""))
        if error in ("ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"):
            return RetriableError(f"source {self.source!r}: {method}: {error}")
        return SlackError(method, error)

    def download(self, url: str, limit: int, mimetype: str = "") -> bytes:
        """A private file's bytes (Bearer token), at most `limit`; `ItemError` when unreadable."""
        for attempt in range(self.retries + 1):
            try:
                response = self._http.get(url, headers={"Authorization": f"Bearer {self.token}"})
            except httpx.TransportError as exc:   # reset, cut or stalled: a GET is safe to repeat
                if attempt == self.retries:
                    raise ItemError(f"{url}: {type(exc).__name__}: {exc}") from exc
                time.sleep(self.backoff * 2 ** attempt)
                continue
            except httpx.HTTPError as exc:
                raise ItemError(f"{url}: {type(exc).__name__}: {exc}") from exc
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == self.retries:
                    break
                after = response.headers.get("retry-after")
                time.sleep(float(after) if after else self.backoff * 2 ** attempt)
                continue
            if response.status_code != 200:
                raise ItemError(f"{url}: HTTP {response.status_code}")
            kind = response.headers.get("content-type", "")
            if kind.startswith("text/html") and "html" not in mimetype:
                # Slack answers a refused token with its sign-in page, status 200.
                raise ItemError(f"{url}: got a sign-in page instead of the file (token lacks files:read?)")
            if len(response.content) > limit:
                raise ItemError(f"{url}: larger than {limit} bytes")
            return response.content
        raise ItemError(f"{url}: still failing after {self.retries} retries (HTTP {response.status_code})")
