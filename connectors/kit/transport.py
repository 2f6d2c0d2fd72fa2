"""The httpx side of the kit: a retrying transport over `RetryPolicy`, and the TLS context.

Invariants: `RetryTransport` retries what the policy calls retriable (429, 5xx, and for idempotent
requests only, reset or stalled connections: a POST that may have been served is never sent twice;
one that never connected is),
honouring `Retry-After`; the last answer, retriable or not, is returned to the caller, who maps it
onto inlet's errors. The body is read inside the retry loop, so a connection cut halfway through an
answer is retried too (httpx would otherwise read it after the transport has returned). Retries are
made below httpx's auth flow: each try re-sends the request with the header it had, so a token that
expires during a wait comes back as a 401, for the auth to renew (`oauth.ClientCredentials`).

An httpx error a connector lets out of its run (a network failure after the retries, or
`raise_for_status()` on an answer it cannot use) becomes inlet's typed error in `http_errors`
(which the engine holds around each run): it names the source and the request's method and URL,
never the URL's query or user info (they may carry a secret).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from inlet.errors import CredentialsError, InletError, RetriableError
from inlet.logs import shown_url

from .retry import RetryPolicy, retriable_status, retry_after

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Never connected: nothing was sent, so any request may be tried again.
CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout)
# A reset connection or a stalled body: the request may or may not have been served.
NETWORK_ERRORS = (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError, *CONNECT_ERRORS)


class RetryTransport(httpx.BaseTransport):
    """Retries an inner transport's retriable answers under `policy`, logging for `source`."""

    def __init__(self, inner: httpx.BaseTransport, policy: RetryPolicy | None = None, *, source: str = "") -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.source = source

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempts = self.policy.start(self.source, f"{request.method} {request.url.path}")
        while True:
            try:
                response = _read(self.inner.handle_request(request))
            except NETWORK_ERRORS as exc:
                resend = request.method in IDEMPOTENT or isinstance(exc, CONNECT_ERRORS)
                if not resend or not attempts.retry(type(exc).__name__):
                    raise
                continue
            status = response.status_code
            if not retriable_status(status) or not attempts.retry(
                f"HTTP {status}", retry_after(response.headers), throttled=status == 429
            ):
                return response

    def close(self) -> None:
        self.inner.close()


def _read(response: httpx.Response) -> httpx.Response:
    """The same answer with its raw (still encoded) body read into memory: a reset or a stall
    while reading raises here, where it can be retried."""
    try:
        raw = b"".join(response.iter_raw())
    except httpx.StreamConsumed:  # already in memory (a mock transport's answer)
        return response
    finally:
        response.close()
    return httpx.Response(
        response.status_code, headers=response.headers, stream=httpx.ByteStream(raw), extensions=response.extensions
    )


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """The system trust store, plus `ca_bundle` when given (a TLS-inspecting proxy, the sandbox)."""
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def client(
    *,
    source: str,
    policy: RetryPolicy | None = None,
    ca_bundle: Path | None = None,
    timeout: float = 60.0,
    user_agent: str = "inlet/0.1",
    max_connections: int = 8,
    transport: httpx.BaseTransport | None = None,
    follow_redirects: bool = False,
) -> httpx.Client:
    """A pooled httpx client whose requests are retried under `policy` (`transport`: a test's inner one)."""
    inner = transport or httpx.HTTPTransport(
        verify=ssl_context(ca_bundle), limits=httpx.Limits(max_connections=max_connections)
    )
    return httpx.Client(
        transport=RetryTransport(inner, policy, source=source),
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        headers={"User-Agent": user_agent},
        follow_redirects=follow_redirects,
    )


@contextmanager
def http_errors(source: str) -> Iterator[None]:
    """httpx's errors leave the block as inlet's (`http_failure`)."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise http_failure(exc, source) from exc


def http_failure(exc: httpx.HTTPError, source: str) -> InletError:
    """The typed error for `exc`, naming `source` and the request: a refused credential (401),
    a transient failure (a network error, 429, 5xx: with the answer's `Retry-After`, for the engine
    to wait out) or another answer the source could not use."""
    try:
        request: httpx.Request | None = exc.request
    except RuntimeError:  # an error raised outside a request
        request = None
    call = f"{request.method} {shown_url(str(request.url))}" if request else "a call"
    if not isinstance(exc, httpx.HTTPStatusError):
        return RetriableError(f"source {source!r}: {call} failed: {type(exc).__name__}: {exc}")
    status = exc.response.status_code
    if status == 401:
        return CredentialsError(source, f"{call} answered HTTP 401")
    if retriable_status(status):
        return RetriableError(
            f"source {source!r}: {call} answered HTTP {status}, after the retries", retry_after(exc.response.headers)
        )
    return InletError(f"source {source!r}: {call} answered HTTP {status}")
