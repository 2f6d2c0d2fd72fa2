"""The Microsoft Graph client of the Outlook connector: msal for tokens, one pooled httpx client.

- `RetryTransport` retries 429 and 5xx answers at the transport level, honouring `Retry-After`,
  and idempotent requests whose connection was reset or whose answer stalled past the timeout.
- msal runs over the same httpx client (through its documented `http_client` hook), so the
  extra CA of `ca_bundle` is trusted by identity and Graph calls alike, added to the system ones.
- A 401 from Graph drops msal's cached app token and retries once with a fresh one; a token the
  identity platform refuses is a `CredentialsError` carrying msal's error text.
"""

from __future__ import annotations

import email.utils
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from inlet.errors import CredentialsError, RetriableError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# A reset connection or a stalled body: the request may or may not have been served, so only an
# idempotent one is sent again.
NETWORK_ERRORS = (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError,
                  httpx.ConnectError, httpx.ConnectTimeout)


class RetryTransport(httpx.BaseTransport):
    """Retries throttled, failing and unavailable answers (429, 500, 502, 503, 504) and, for
    idempotent requests, reset or stalled connections: waits `Retry-After` (capped) or backs off
    exponentially, `attempts` times in all. Graph's transient 500s are documented as retriable.

    The body is read here, inside the retry loop, so a connection reset halfway through an answer
    is retried too (httpx would otherwise read it after the transport has returned)."""

    def __init__(self, inner: httpx.BaseTransport, attempts: int = 5, max_wait: float = 60.0,
                 backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> None:
        self.inner = inner
        self.attempts = attempts
        self.max_wait = max_wait
        self.backoff = backoff
        self.sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            try:
                response = _read(self.inner.handle_request(request))
            except NETWORK_ERRORS as exc:
                if last or request.method not in IDEMPOTENT:
                    raise
                wait = min(self.backoff * 2 ** (attempt - 1), self.max_wait)
                log.info("graph %s %s: %s, retrying in %.2fs", request.method, request.url.path,
                         type(exc).__name__, wait)
                self.sleep(wait)
                continue
            if response.status_code not in RETRY_STATUSES or last:
                return response
            wait = retry_after(response.headers)
            wait = min(wait if wait is not None else self.backoff * 2 ** (attempt - 1), self.max_wait)
            log.info("graph %s %s: %d, retrying in %.2fs", request.method, request.url.path,
                     response.status_code, wait)
            self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.inner.close()


def _read(response: httpx.Response) -> httpx.Response:
    """The same answer with its raw (still encoded) body read into memory: a reset or a stall
    while reading raises here, where it can be retried."""
    try:
        raw = b"".join(response.iter_raw())
    except httpx.StreamConsumed:   # already in memory (a mock transport's answer)
        return response
    finally:
        response.close()
    return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(raw),
                          extensions=response.extensions)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds, fractional allowed, or an HTTP date)."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(when.timestamp() - time.time(), 0.0) if when else None


class _MsalHttp:
    """msal's `http_client` contract (get/post returning status_code/text/headers) over httpx."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any) -> httpx.Response:
        return self._client.post(url, params=params, data=data, headers=headers)

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> httpx.Response:
        return self._client.get(url, params=params, headers=headers)

    def close(self) -> None:  # the connector owns the client
        pass


class GraphError(Exception):
    """A Graph answer the caller decides about (404 mailbox/folder, 410 sync state, ...)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """The system trust store, plus `ca_bundle` when given (a TLS-inspecting proxy, the sandbox)."""
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


class GraphClient:
    """GETs on Graph with an app token; pages and errors are the caller's business."""

    def __init__(self, *, source: str, tenant_id: str, client_id: str, client_secret: str,
                 graph_url: str, authority_url: str, ca_bundle: Path | None, scope: str,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.source = source
        self.graph_url = graph_url.rstrip("/")
        self.scope = scope
        inner = transport or httpx.HTTPTransport(verify=ssl_context(ca_bundle), retries=2,
                                                 limits=httpx.Limits(max_connections=8))
        self.http = httpx.Client(transport=RetryTransport(inner, sleep=sleep),
                                 timeout=httpx.Timeout(timeout, connect=15.0),
                                 headers={"User-Agent": "inlet-outlook/0.1"})
        self._authority = f"{authority_url.rstrip('/')}/{tenant_id}"
        self._client_id = client_id
        self._secret = client_secret
        self._app: Any = None
        self.calls = 0

    def close(self) -> None:
        self.http.close()

    # --- tokens -------------------------------------------------------------------------------
    def _msal(self) -> Any:
        if self._app is None:
            import msal

            try:
                self._app = msal.ConfidentialClientApplication(
                    self._client_id, client_credential=self._secret, authority=self._authority,
                    http_client=_MsalHttp(self.http),
                    instance_discovery=False)  # the authority is the operator's config, not a guess
            except ValueError as exc:  # OIDC discovery refused: unknown tenant
                raise CredentialsError(self.source, str(exc)) from exc
            except httpx.TransportError as exc:
                raise RetriableError(f"source {self.source!r}: identity platform unreachable: {exc}") from exc
        return self._app

    def token(self, fresh: bool = False) -> str:
        app = self._msal()
        if fresh:
            app.remove_tokens_for_client()
        try:
            result = app.acquire_token_for_client(scopes=[self.scope])
        except httpx.TransportError as exc:
            raise RetriableError(f"source {self.source!r}: identity platform unreachable: {exc}") from exc
        if "access_token" not in result:
            detail = f"{result.get('error', 'error')}: {result.get('error_description', '')}".strip()
            if result.get("error") in {"temporarily_unavailable", "server_error"}:
                raise RetriableError(f"source {self.source!r}: {detail}")
            raise CredentialsError(self.source, detail)
        return str(result["access_token"])

    # --- Graph --------------------------------------------------------------------------------
    def get(self, path_or_url: str, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self.request("GET", path_or_url, params=params, headers=headers)

    def request(self, method: str, path_or_url: str, *, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, body: Any = None) -> dict[str, Any]:
        """One Graph call (`body` sent as JSON); {} for an empty answer (204)."""
        url = path_or_url if path_or_url.startswith(("http://", "https://")) else self.graph_url + path_or_url
        response = self._send(method, url, params, headers, self.token(), body)
        if response.status_code == 401:
            log.info("source %s: access token refused by Graph, acquiring a new one", self.source)
            response = self._send(method, url, params, headers, self.token(fresh=True), body)
            if response.status_code == 401:
                raise CredentialsError(self.source, f"Graph refused a fresh token: {_error(response)[1]}")
        if response.status_code in RETRY_STATUSES or response.status_code >= 500:
            raise RetriableError(f"source {self.source!r}: Graph answered {response.status_code} "
                                 f"{_error(response)[0]}", retry_after(response.headers))
        if response.status_code >= 400:
            code, message = _error(response)
            raise GraphError(response.status_code, code, message)
        return response.json() if response.content else {}  # type: ignore[no-any-return]

    def _send(self, method: str, url: str, params: Mapping[str, Any] | None, headers: Mapping[str, str] | None,
              token: str, body: Any = None) -> httpx.Response:
        self.calls += 1
        try:
            return self.http.request(method, url, params=params, json=body,
                                     headers={**(headers or {}), "Authorization": f"Bearer {token}"})
        except httpx.TransportError as exc:
            raise RetriableError(f"source {self.source!r}: Graph unreachable: {exc}") from exc


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "")), str(error.get("message", ""))
    except ValueError:
        return "", response.text[:200]
