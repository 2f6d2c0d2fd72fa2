"""slack-sdk's side of the kit: one `RetryHandler` running the kit's `RetryPolicy`, and a quiet SDK log.

Invariants: every retry of a Slack Web API call (429 with `Retry-After`, any 5xx, a refused, reset
or stalled connection, and an HTTP 200 answer naming one of Slack's transient errors,
`TRANSIENT_ERRORS`, which Slack's method pages describe as a passing trouble on its side; every
method the connectors call only reads) is decided and logged by the
kit's `Attempts`, one line per wait naming the source and the method, and bounded by the policy's
attempts and deadline. slack-sdk's own lines about the same retries ("Failed to send a request to
Slack API server", "Going to retry ...") are dropped from the logger handed to `WebClient`, so an
outage reads as one line per wait, not three.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryHandler, RetryState

from .retry import NETWORK_ERRORS, RetryPolicy, retriable_status, retry_after

# Slack's `{"ok": false}` errors, answered with HTTP 200, that its method pages call transient: tried again as a 5xx is
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
_SDK_RETRY_LINES = ("Failed to send a request to Slack API server", "Going to retry", "A retry handler found")


class _DropRetryLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_SDK_RETRY_LINES)


def sdk_logger() -> logging.Logger:
    """The logger to hand `WebClient(logger=...)`: slack-sdk's, without its retry lines."""
    logger = logging.getLogger("slack_sdk.web.inlet")
    if not any(isinstance(f, _DropRetryLines) for f in logger.filters):
        logger.addFilter(_DropRetryLines())
    return logger


class SlackRetryHandler(RetryHandler):
    """Retries what the policy calls retriable; the per-call budget lives in the SDK's `RetryState`."""

    def __init__(self, policy: RetryPolicy, source: str) -> None:
        super().__init__(max_retry_count=policy.attempts - 1)
        self.policy, self.source = policy, source

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        why, after, throttled = _classify(response, error)
        if why is None:
            return False
        values: dict[str, Any] = state.custom_values if state.custom_values is not None else {}
        state.custom_values = values
        attempts = values.get("attempts")
        if attempts is None:
            attempts = values["attempts"] = self.policy.start(self.source, request.url.rsplit("/", 1)[-1])
        values["wait"] = attempts.plan(why, after, throttled=throttled)
        return values["wait"] is not None

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        self.policy.sleep(float((state.custom_values or {}).get("wait") or 0.0))
        state.increment_current_attempt()


def _classify(response: HttpResponse | None, error: Exception | None) -> tuple[str | None, float | None, bool]:
    """(why, Retry-After, throttled) of a retriable failure; why None: not retriable."""
    if response is not None:
        status = response.status_code
        if retriable_status(status):
            return f"HTTP {status}", retry_after(response.headers), status == 429
        body = response.body if isinstance(response.body, dict) else {}
        if status == 200 and body.get("ok") is False and body.get("error") in TRANSIENT_ERRORS:
            return str(body["error"]), None, False
        return None, None, False
    if isinstance(error, NETWORK_ERRORS):
        return type(error).__name__, None, False
    return None, None, False
