"""The kit's client-credentials auth: every try of a call carries a current token, retries too."""

from __future__ import annotations

import httpx
import pytest

from inlet.connectors.kit import ClientCredentials, RetryPolicy
from inlet.connectors.kit.transport import client
from inlet.errors import CredentialsError


class Service:
    """A token endpoint and one API path. `expire()` invalidates every token given so far (what
    the passing of `expires_in` does); `throttle` answers that many calls 429 Retry-After: 5."""

    def __init__(self, throttle: int = 0, accept: bool = True) -> None:
        self.valid: set[str] = set()
        self.accept = accept
        self.issued = 0
        self.throttle = throttle
        self.seen: list[str] = []  # the Authorization of each API call

    def expire(self) -> None:
        self.valid.clear()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            form = dict(httpx.QueryParams(request.content.decode()))
            if form.get("client_secret") != "s3cret":
                return httpx.Response(401, json={"error": "invalid_client"})
            self.issued += 1
            token = f"t{self.issued}"
            if self.accept:
                self.valid.add(token)
            return httpx.Response(200, json={"access_token": token, "expires_in": 120})
        self.seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.valid:
            return httpx.Response(401)
        if self.throttle:
            self.throttle -= 1
            return httpx.Response(429, headers={"Retry-After": "5"})
        return httpx.Response(200, json={"ok": True})


def kit_client(service: Service, sleep=lambda seconds: None, **auth) -> httpx.Client:  # type: ignore[no-untyped-def]
    c = client(source="kb", transport=httpx.MockTransport(service), policy=RetryPolicy(jitter=0.0, sleep=sleep))
    c.auth = ClientCredentials(
        "https://quill.test/oauth/token", "quill", auth.pop("secret", "s3cret"), source="kb", **auth
    )
    return c


def test_a_token_that_expires_during_a_retry_after_wait_is_renewed_and_the_call_goes_through() -> None:
    """The retry is sent below the auth flow with the header it had: its 401 brings a new token."""
    service = Service(throttle=1)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the token's lifetime passes during the wait
        waits.append(seconds)
        service.expire()

    with kit_client(service, sleep) as c:
        response = c.get("https://quill.test/api/groups")
    assert response.status_code == 200 and waits == [5.0]
    assert service.seen == ["Bearer t1", "Bearer t1", "Bearer t2"] and service.issued == 2


def test_a_token_is_renewed_before_it_expires_and_reused_until_then() -> None:
    service = Service()
    now = [0.0]
    with kit_client(service, clock=lambda: now[0]) as c:
        c.get("https://quill.test/api/a")
        now[0] = 59.0
        c.get("https://quill.test/api/b")
        now[0] = 61.0  # expires_in 120, renewed 60 s before: no 401 on the way
        c.get("https://quill.test/api/c")
    assert service.seen == ["Bearer t1", "Bearer t1", "Bearer t2"]


def test_refused_client_credentials_are_a_credentials_error_naming_the_source() -> None:
    with kit_client(Service(), secret="wrong") as c, pytest.raises(CredentialsError) as caught:
        c.get("https://quill.test/api/a")
    assert caught.value.source == "kb" and "refused the client credentials: HTTP 401" in str(caught.value)


def test_a_fresh_token_refused_too_leaves_the_401_to_the_caller() -> None:
    service = Service(accept=False)  # tokens are issued, none is accepted
    with kit_client(service) as c:
        response = c.get("https://quill.test/api/a")
    assert response.status_code == 401 and service.issued == 2  # one renewal, not a loop
