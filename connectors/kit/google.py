"""Google API plumbing shared by the Drive and Gmail connectors: credentials and request execution.

Invariants:
- Credentials come from one JSON file: a service account (optionally delegated to `subject`, the
  user it acts as) or an authorized user; `scopes` are the connector's. A file that cannot be read,
  is neither kind, or is an authorized user asked to act as someone is a `ConfigError` naming the
  source and the key; reading it needs no network, so connectors check it in `check_local`.
  `acting_as` names who they read as when the file says (the subject, or the service account); an
  authorized user's file does not, and only the API can name that user.
- Every request runs through `GoogleService.call`: one token bucket shared by all threads keeps
  them within quota, and retries follow the kit's `RetryPolicy` (429, 5xx, 403 with a rate-limit
  reason, reset or stalled connections) honouring `Retry-After`. The `RetriableError` of a call
  whose retries ran out carries the `Retry-After` the service sent, and None when it sent none (a
  5xx usually): the engine's own back-off then decides, and nothing reports a wait Google never
  asked for. A token refresh the token endpoint refuses (400 invalid_grant, 401
  unauthorized_client) is a `CredentialsError`; one it failed in a way google-auth calls retryable
  (5xx, 503 temporarily_unavailable) is retried, and past the retries is a `RetriableError` (an
  outage, not the credentials, and no Retry-After). A 401 refreshes the token once
  (inside `AuthorizedHttp`), after which it is a `CredentialsError`, unless its reason is about
  something else than the token (`NOT_THE_TOKEN`: a push channel's unverified webhook address); any
  other error answer is a `GoogleApiError` carrying status and reason, for the caller to decide
  (404, 403 fileNotDownloadable).
- httplib2 objects are not thread-safe, so every thread executes requests on its own
  `AuthorizedHttp` (sharing one credentials object).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from inlet.errors import ConfigError, CredentialsError, InletError, RetriableError

from .paging import page_token, pages
from .ratelimit import TokenBucket
from .retry import NETWORK_ERRORS, RetryPolicy, retriable_status, retry_after

log = logging.getLogger(__name__)

WEBHOOK_NOT_VERIFIED = "push.webhookUrlUnauthorized"  # a push channel's address: its domain is not verified
NOT_THE_TOKEN = frozenset({WEBHOOK_NOT_VERIFIED})  # reasons of a 401 that says nothing about the credentials


class GoogleApiError(InletError):
    """A non-retriable answer from a Google API (404, 403 fileNotDownloadable, 400 ...): the caller
    decides; one that escapes the connector fails the run with this message."""

    def __init__(self, status: int, reason: str, message: str, location: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message
        self.location = location  # the parameter the answer is about (`pageToken`), when Google names one

    @property
    def retriable(self) -> bool:
        """A server error or a throttle (only a batch part still failing after the retries is one: a
        single call raises `RetriableError` instead)."""
        return retriable_status(self.status, self.reason)


def load_credentials(
    path: Path, subject: str | None, source: str, scopes: Sequence[str], *, subject_key: str | None = "subject"
) -> Any:
    """Service-account (optionally delegated to `subject`) or authorized-user credentials. Local:
    it reads the file and touches no network, so a connector's `check_local` calls it too, and a
    file that cannot serve is a `ConfigError` before any run starts. `subject_key` is the config
    key that set `subject`, named when an authorized-user file cannot act as it; None when the
    connector always delegates (Gmail, as each mailbox), and the file is then what is wrong."""
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    try:
        info = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"source {source!r}: key 'credentials_file': cannot read {path}: {exc}") from exc
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            creds = service_account.Credentials.from_service_account_info(info, scopes=list(scopes))
            return creds.with_subject(subject) if subject else creds
        if kind == "authorized_user":
            if subject and subject_key:
                raise ConfigError(
                    f"source {source!r}: key {subject_key!r} needs service-account credentials, and "
                    f"{path} is an authorized_user file: remove {subject_key!r}, or use a service-account key"
                )
            if subject:
                raise ConfigError(
                    f"source {source!r}: key 'credentials_file': {path} is an authorized_user file; "
                    "this source needs a service-account key with domain-wide delegation"
                )
            creds = user_credentials.Credentials.from_authorized_user_info(info)  # scopes: those granted
            # google-auth always sets Google's token endpoint here; the file's token_uri wins
            return creds.with_token_uri(info["token_uri"]) if info.get("token_uri") else creds
    except ValueError as exc:
        raise ConfigError(f"source {source!r}: key 'credentials_file': {path}: {exc}") from exc
    raise ConfigError(
        f"source {source!r}: key 'credentials_file': {path} is neither a service_account "
        f"nor an authorized_user credentials file (type {kind!r})"
    )


def acting_as(credentials: Any, subject: str | None) -> str | None:
    """The address the credentials of `load_credentials(..., subject, ...)` read as, when the file
    names it: the delegated `subject`, or the service account itself. None for an authorized user:
    the file holds a refresh token, not who granted it; only the API can tell (Drive's `about.get`)."""
    email = getattr(credentials, "service_account_email", None)
    return None if email is None else str(subject or email)


def location_of(err: Any) -> str:
    """The parameter Google's error envelope blames (`errors[0].location`), or ""."""
    try:
        return str((json.loads(err.content.decode("utf-8"))["error"].get("errors") or [{}])[0].get("location", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


def error_of(err: Any) -> tuple[str, str]:
    """(reason, message) out of Google's error envelope."""
    try:
        error = json.loads(err.content.decode("utf-8"))["error"]
        details = error.get("errors") or [{}]
        return details[0].get("reason", "") or error.get("status", ""), error.get("message", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", str(err)


class GoogleService:
    """One discovery-built API (`api`, `version`: 'drive', 'v3') for one source, its calls executed
    by `call` under the kit's retry policy and rate limit (`per_second`, 0: unlimited)."""

    def __init__(
        self,
        api: str,
        version: str,
        *,
        source: str,
        credentials: Any,
        api_endpoint: str | None,
        policy: RetryPolicy | None = None,
        per_second: float = 0.0,
        burst: float = 1.0,
        timeout: float = 60.0,
        label: str | None = None,
    ) -> None:
        from google.api_core.client_options import ClientOptions
        from googleapiclient.discovery import build

        self.source, self.timeout = source, timeout
        self.label = label or api.capitalize()
        self.policy = policy or RetryPolicy()
        self._credentials = credentials
        options = ClientOptions(api_endpoint=api_endpoint) if api_endpoint else None
        self.service = build(api, version, credentials=credentials, static_discovery=True, client_options=options)
        self._local = threading.local()
        self.limiter = TokenBucket(per_second, burst)

    def _http(self) -> Any:
        http = getattr(self._local, "http", None)
        if http is None:
            import google_auth_httplib2
            import httplib2

            http = google_auth_httplib2.AuthorizedHttp(
                self._credentials, http=httplib2.Http(timeout=self.timeout), max_refresh_attempts=1
            )
            self._local.http = http
        return http

    def listed(self, make: Callable[[Any, str | None], Any], key: str, what: str) -> list[dict[str, Any]]:
        """Every entry under `key` of every page of a listing not checkpointed page by page:
        `make(service, page_token)` builds one page's request, run by `call`; pages through the
        kit's pager (`nextPageToken`), which refuses a repeated token."""
        listing = pages(
            lambda token: dict(self.call(lambda s: make(s, token))), page_token, source=self.source, what=what
        )
        return [entry for page in listing for entry in page.get(key, [])]

    def call(self, make: Callable[[Any], Any], what: str = "") -> Any:
        """Execute the request `make(service)` builds, retried; failures mapped onto inlet's errors."""
        from google.auth.exceptions import RefreshError, TransportError
        from googleapiclient.errors import HttpError

        unreachable: tuple[type[BaseException], ...] = (TransportError, *NETWORK_ERRORS)
        request = make(self.service)
        attempts = self.policy.start(self.source, what or getattr(request, "methodId", "") or self.label)
        while True:
            self.limiter.take()
            try:
                return request.execute(http=self._http())
            except RefreshError as exc:
                if not getattr(exc, "retryable", False):  # 400 invalid_grant, 401 unauthorized_client...
                    raise CredentialsError(self.source, f"token refresh refused: {exc}") from exc
                if attempts.retry("token refresh failed"):
                    continue
                raise RetriableError(
                    f"source {self.source!r}: the token endpoint kept failing (an outage there, "
                    f"not a refusal of the credentials): {exc}"
                ) from exc
            except unreachable as exc:  # reset, cut or stalled
                if attempts.retry(type(exc).__name__):
                    continue
                raise RetriableError(f"source {self.source!r}: {self.label} unreachable: {exc}") from exc
            except HttpError as exc:
                status = exc.resp.status
                reason, message = error_of(exc)
                if status == 401 and reason not in NOT_THE_TOKEN:
                    raise CredentialsError(
                        self.source, f"{self.label} refused the access token after a refresh: {message}"
                    ) from exc
                if not retriable_status(status, reason):
                    raise GoogleApiError(status, reason, message, location_of(exc)) from exc
                after = retry_after(exc.resp.get("retry-after"))
                if attempts.retry(f"HTTP {status} {reason}".strip(), after, throttled=status in (403, 429)):
                    continue
                raise RetriableError(
                    f"source {self.source!r}: {self.label} kept answering {status} {reason}",
                    retry_after=after,
                ) from exc
