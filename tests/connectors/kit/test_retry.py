"""The kit's retry policy and its adapters: Retry-After honoured in full up to a maximum, budgets bounded,
one line per wait."""

from __future__ import annotations

import email.utils
import logging

import httpx
import pytest
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryState

from inlet.connectors.kit import RetryPolicy, RetryTransport, retriable_status, retry_after
from inlet.connectors.kit.slack import SlackRetryHandler, sdk_logger


def policy(sleeps: list[float], **kw: float) -> RetryPolicy:
    return RetryPolicy(jitter=0.0, sleep=sleeps.append, **kw)  # type: ignore[arg-type]


def test_retry_after_reads_seconds_dates_and_header_maps() -> None:
    assert retry_after("2.5") == 2.5
    assert retry_after("-3") == 0.0
    assert retry_after({"Retry-After": "7"}) == 7.0
    assert retry_after({"retry-after": ["4"]}) == 4.0  # slack-sdk keeps header values as lists
    assert retry_after(None) is None and retry_after("soon") is None and retry_after({}) is None
    date = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert retry_after(date, now=lambda: 1_000_000.0) == 30.0
    assert retry_after(date, now=lambda: 2_000_000.0) == 0.0  # a date in the past: no wait


def test_classification() -> None:
    assert all(retriable_status(s) for s in (429, 500, 502, 503, 504, 599))
    assert not any(retriable_status(s) for s in (200, 400, 401, 403, 404, 410, 501))
    assert retriable_status(403, "userRateLimitExceeded") and not retriable_status(403, "forbidden")


def test_delay_backs_off_up_to_the_cap_and_honours_retry_after_in_full() -> None:
    p = RetryPolicy(backoff=0.5, cap=10.0, jitter=0.0)
    assert [p.delay(n) for n in (1, 2, 3, 4, 5, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert p.delay(1, retry_after=3.0) == 3.0
    assert p.delay(1, retry_after=120.0) == 120.0  # the cap bounds backoff only
    jittered = RetryPolicy(backoff=1.0, jitter=0.1)
    assert all(1.0 <= jittered.delay(1) <= 1.1 for _ in range(50))


def test_attempts_are_bounded_by_count_and_by_total_wait(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []
    attempts = policy(sleeps, attempts=4, backoff=1.0).start("crm", "contacts.list")
    with caplog.at_level(logging.INFO, logger="inlet.connectors.kit.retry"):
        assert [attempts.retry("HTTP 503") for _ in range(4)] == [True, True, True, False]
    assert sleeps == [1.0, 2.0, 4.0]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"source 'crm': contacts.list: HTTP 503; retry {n} of 3 in {w:.2f}s" for n, w in ((1, 1.0), (2, 2.0), (3, 4.0))
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_deadline_refuses_a_wait_that_would_pass_it() -> None:
    sleeps: list[float] = []
    attempts = policy(sleeps, attempts=10, backoff=4.0, deadline=10.0).start("crm", "x")
    results = [attempts.retry("HTTP 500") for _ in range(3)]
    assert results == [True, False, False] and sleeps == [4.0]  # 4 + 8 would pass 10 s
    assert attempts.waited == 4.0


def test_a_short_throttle_logs_at_info_a_long_one_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A wait a user would notice on a terminal is shown there (the CLI logs WARNING and up)."""
    with caplog.at_level(logging.INFO, logger="inlet.connectors.kit.retry"):
        assert policy([]).start("s", "m").retry("HTTP 429", 1.0, throttled=True)
        assert policy([]).start("s", "m").retry("HTTP 429", 40.0, throttled=True)
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.WARNING]
    assert "source 's': m: HTTP 429; retry 1 of" in caplog.records[1].getMessage()


def test_a_retry_after_longer_than_the_cap_is_waited_out_in_full() -> None:
    """Graph answers Retry-After of minutes: retrying sooner only meets the throttle again."""
    answers = iter([httpx.Response(429, headers={"Retry-After": "120"}), httpx.Response(200, json={"ok": True})])
    sleeps: list[float] = []
    transport = RetryTransport(httpx.MockTransport(lambda request: next(answers)), policy(sleeps), source="s")
    with httpx.Client(transport=transport) as client:
        assert client.get("https://graph.test/x").json() == {"ok": True}
    assert sleeps == [120.0]


def test_a_retry_after_past_the_maximum_ends_the_retries_at_once(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []
    attempts = policy(sleeps, max_retry_after=300.0).start("s", "GET /x")
    with caplog.at_level(logging.INFO, logger="inlet.connectors.kit.retry"):
        assert attempts.retry("HTTP 429", 301.0, throttled=True) is False
    assert sleeps == [] and "Retry-After 301s is longer than a call waits (300s)" in caplog.text
    assert policy(sleeps).start("s", "GET /x").retry("HTTP 429", 300.0, throttled=True) and sleeps == [300.0]


def test_transport_honours_retry_after_then_returns_the_last_answer() -> None:
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(503), httpx.Response(200, json={"ok": True})]
    )
    sleeps: list[float] = []
    transport = RetryTransport(httpx.MockTransport(lambda request: next(answers)), policy(sleeps), source="s")
    with httpx.Client(transport=transport) as client:
        assert client.get("https://graph.test/x").json() == {"ok": True}
    assert sleeps == [3.0, 1.0]  # Retry-After, then exponential backoff (0.5 * 2)
    throttled = RetryTransport(
        httpx.MockTransport(lambda r: httpx.Response(429, headers={"Retry-After": "999"})),
        policy(sleeps, attempts=2),
        source="s",
    )
    with httpx.Client(transport=throttled) as client:
        assert client.get("https://graph.test/x").status_code == 429
    assert sleeps == [3.0, 1.0]  # 999 s is past max_retry_after: returned at once, not retried early


def test_transport_resends_resets_of_idempotent_requests_only() -> None:
    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset by peer", request=request)

    answers = iter(
        [
            httpx.Response(500),
            httpx.Response(502, headers={"Retry-After": "0.25"}),
            reset,
            httpx.Response(200, json={"ok": True}),
        ]
    )

    def serve(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        return answer(request) if callable(answer) else answer

    sleeps: list[float] = []
    with httpx.Client(transport=RetryTransport(httpx.MockTransport(serve), policy(sleeps))) as client:
        assert client.get("https://graph.test/x").json() == {"ok": True}
    assert sleeps == [0.5, 0.25, 2.0]  # backoff, Retry-After, backoff (0.5 * 2 ** 2)
    sent: list[str] = []

    def refuse(kind: type[httpx.TransportError]) -> RetryTransport:
        def answer(request: httpx.Request) -> httpx.Response:
            sent.append(request.method)
            raise kind("no", request=request)

        return RetryTransport(httpx.MockTransport(answer), policy(sleeps, attempts=3))

    with httpx.Client(transport=refuse(httpx.ReadError)) as client:
        with pytest.raises(httpx.ReadError):  # a POST may have been served: it is not sent twice
            client.post("https://graph.test/subscriptions", json={})
    assert sent == ["POST"]
    with httpx.Client(transport=refuse(httpx.ConnectError)) as client:
        with pytest.raises(httpx.ConnectError):  # never connected: safe to send again, up to the budget
            client.post("https://graph.test/subscriptions", json={})
    assert sent == ["POST"] * 4


def test_slack_handler_runs_the_policy_inside_the_sdk_retry_state() -> None:
    sleeps: list[float] = []
    handler = SlackRetryHandler(policy(sleeps, attempts=3), "team")
    request = HttpRequest(method="POST", url="https://slack.test/api/conversations.history", headers={})
    state = RetryState()
    throttled = HttpResponse(status_code=429, headers={"retry-after": ["2"]})
    assert handler.can_retry(state=state, request=request, response=throttled)
    handler.prepare_for_next_attempt(state=state, request=request, response=throttled)
    assert state.next_attempt_requested and sleeps == [2.0]
    refused = ConnectionRefusedError("refused")
    assert handler.can_retry(state=state, request=request, error=refused)
    handler.prepare_for_next_attempt(state=state, request=request, error=refused)
    assert sleeps == [2.0, 1.0]
    assert not handler.can_retry(state=state, request=request, error=refused)  # 3 attempts used
    assert not handler.can_retry(
        state=RetryState(), request=request, response=HttpResponse(status_code=404, headers={})
    )


def test_sdk_logger_drops_the_sdks_own_retry_lines(caplog: pytest.LogCaptureFixture) -> None:
    logger = sdk_logger()
    with caplog.at_level(logging.INFO):
        logger.error("Failed to send a request to Slack API server: <urlopen error refused>")
        logger.info("Going to retry the same request: POST https://slack.test/api/auth.test")
        logger.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


def test_an_httpx_error_becomes_inlet_s_typed_error_naming_the_request_but_not_its_query() -> None:
    from inlet.connectors.kit.transport import http_failure
    from inlet.errors import CredentialsError, InletError, RetriableError

    request = httpx.Request("POST", "https://me:pw@svc.test/api/items?key=s3cret")

    def answered(status: int) -> InletError:
        response = httpx.Response(status, request=request)
        return http_failure(httpx.HTTPStatusError("bad", request=request, response=response), "crm")

    refused, missing, busy = answered(401), answered(404), answered(429)
    assert isinstance(refused, CredentialsError) and str(refused) == (
        "source 'crm' refused its credentials: POST https://svc.test/api/items answered HTTP 401"
    )
    assert (
        type(missing) is InletError
        and str(missing) == "source 'crm': POST https://svc.test/api/items answered HTTP 404"
    )
    assert isinstance(busy, RetriableError) and "s3cret" not in str(busy) and "pw" not in str(busy)
    assert (
        str(http_failure(httpx.ReadTimeout("timed out"), "crm"))
        == "source 'crm': a call failed: ReadTimeout: timed out"
    )
