"""The Drive v3 client of the google_drive connector: credentials, retries, quota, thread safety.

Built on google-api-python-client (static discovery document, `api_endpoint` from config) and
google-auth. httplib2 objects are not thread-safe, so every thread executes requests on its own
`AuthorizedHttp` (sharing one credentials object); one token bucket keeps all threads within quota.
Retries follow googleapiclient's own rule (429, 5xx, 403 with a rate-limit reason) but are done here
so `Retry-After` is honoured and the backoff is configurable; a 401 refreshes the token once (inside
`AuthorizedHttp`), after which it is a `CredentialsError`.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inlet.errors import ConfigError, CredentialsError, InletError, RetriableError

log = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/drive.readonly"]
RATE_LIMIT_REASONS = {"userRateLimitExceeded", "rateLimitExceeded"}


class DriveApiError(InletError):
    """A non-retriable answer from Drive (404, 403 fileNotDownloadable, 400 ...): the caller decides;
    one that escapes the connector fails the run with this message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message


def load_credentials(path: Path, subject: str | None, source: str) -> Any:
    """Service-account (optionally delegated to `subject`) or authorized-user credentials."""
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    try:
        info = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"source {source!r}: key 'credentials_file': cannot read {path}: {exc}") from exc
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            creds = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
            return creds.with_subject(subject) if subject else creds
        if kind == "authorized_user":
            if subject:
                raise ConfigError(f"source {source!r}: key 'subject' needs service-account credentials")
            creds = user_credentials.Credentials.from_authorized_user_info(info)
            # google-auth always sets Google's token endpoint here; the file's token_uri wins
            return creds.with_token_uri(info["token_uri"]) if info.get("token_uri") else creds
    except ValueError as exc:
        raise ConfigError(f"source {source!r}: key 'credentials_file': {path}: {exc}") from exc
    raise ConfigError(f"source {source!r}: key 'credentials_file': {path} is neither a service_account "
                      f"nor an authorized_user credentials file (type {kind!r})")


class RateLimiter:
    """A token bucket shared by all threads: at most `per_second` calls a second (0: unlimited)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second, self._clock = per_second, clock
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        if self.per_second <= 0:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + 1.0 / self.per_second
        if start > now:
            time.sleep(start - now)


def _reason(err: Any) -> tuple[str, str]:
    """(reason, message) out of Google's error envelope."""
    try:
        error = json.loads(err.content.decode("utf-8"))["error"]
        details = error.get("errors") or [{}]
        return details[0].get("reason", "") or error.get("status", ""), error.get("message", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", str(err)


class DriveClient:
    def __init__(self, source: str, credentials: Any, api_endpoint: str | None, *, retries: int = 5,
                 backoff: float = 1.0, per_second: float = 0.0, timeout: float = 60.0) -> None:
        from google.api_core.client_options import ClientOptions
        from googleapiclient.discovery import build

        self.source, self.retries, self.backoff, self.timeout = source, retries, backoff, timeout
        self._credentials = credentials
        options = ClientOptions(api_endpoint=api_endpoint) if api_endpoint else None
        self.service = build("drive", "v3", credentials=credentials, static_discovery=True,
                             client_options=options)
        self._local = threading.local()
        self.limiter = RateLimiter(per_second)

    def _http(self) -> Any:
        http = getattr(self._local, "http", None)
        if http is None:
            import google_auth_httplib2
            import httplib2

            http = google_auth_httplib2.AuthorizedHttp(self._credentials, http=httplib2.Http(
                timeout=self.timeout), max_refresh_attempts=1)
            self._local.http = http
        return http

    def call(self, make: Callable[[Any], Any]) -> Any:
        """Execute `make(service)` with retries; map failures onto inlet's error tree."""
        from google.auth.exceptions import RefreshError, TransportError
        from googleapiclient.errors import HttpError

        request = make(self.service)
        for attempt in range(self.retries + 1):
            self.limiter.wait()
            try:
                return request.execute(http=self._http())
            except RefreshError as exc:
                if getattr(exc, "retryable", False) and attempt < self.retries:
                    self._sleep(attempt, None, "token refresh")
                    continue
                raise CredentialsError(self.source, f"token refresh refused: {exc}") from exc
            except (TransportError, OSError, http.client.HTTPException) as exc:   # reset, cut or stalled
                if attempt < self.retries:
                    self._sleep(attempt, None, type(exc).__name__)
                    continue
                raise RetriableError(f"source {self.source!r}: Drive unreachable: {exc}") from exc
            except HttpError as exc:
                status = exc.resp.status
                reason, message = _reason(exc)
                if status == 401:
                    raise CredentialsError(self.source, f"Drive refused the access token after a "
                                           f"refresh: {message}") from exc
                if status == 429 or status >= 500 or (status == 403 and reason in RATE_LIMIT_REASONS):
                    if attempt < self.retries:
                        self._sleep(attempt, exc.resp.get("retry-after"), f"{status} {reason}")
                        continue
                    raise RetriableError(f"source {self.source!r}: Drive kept answering {status} {reason}",
                                         retry_after=self.backoff * 2 ** self.retries) from exc
                raise DriveApiError(status, reason, message) from exc
        raise AssertionError("unreachable")

    def _sleep(self, attempt: int, retry_after: str | None, why: str) -> None:
        delay = min(self.backoff * 2 ** attempt, 60.0) * (0.5 + random.random() / 2)
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), 120.0))
            except ValueError:
                pass
        log.info("source %r: Drive answered %s; retrying in %.2fs", self.source, why, delay)
        time.sleep(delay)

    # --- the calls the connector makes ----------------------------------------------------
    def start_page_token(self) -> str:
        return str(self.call(lambda s: s.changes().getStartPageToken(
            supportsAllDrives=True, fields="startPageToken"))["startPageToken"])

    def list_files(self, q: str, page_token: str | None, page_size: int, fields: str,
                   all_drives: bool) -> dict[str, Any]:
        return dict(self.call(lambda s: s.files().list(
            q=q, pageToken=page_token, pageSize=page_size, fields=f"nextPageToken,files({fields})",
            corpora="allDrives" if all_drives else "user", supportsAllDrives=True,
            includeItemsFromAllDrives=all_drives)))

    def list_changes(self, page_token: str, page_size: int, fields: str, all_drives: bool) -> dict[str, Any]:
        return dict(self.call(lambda s: s.changes().list(
            pageToken=page_token, pageSize=page_size, includeRemoved=True, supportsAllDrives=True,
            includeItemsFromAllDrives=all_drives,
            fields=f"nextPageToken,newStartPageToken,changes(fileId,removed,time,file({fields}))")))

    def watch_changes(self, page_token: str, channel: dict[str, Any], all_drives: bool) -> dict[str, Any]:
        """Open a push channel (`changes.watch`): `channel` has id, type, address, token, expiration."""
        return dict(self.call(lambda s: s.changes().watch(
            pageToken=page_token, body=channel, supportsAllDrives=True, includeItemsFromAllDrives=all_drives)))

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        self.call(lambda s: s.channels().stop(body={"id": channel_id, "resourceId": resource_id}))

    def get_file(self, file_id: str, fields: str) -> dict[str, Any]:
        return dict(self.call(lambda s: s.files().get(fileId=file_id, fields=fields, supportsAllDrives=True)))

    def permissions(self, file_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._permissions_page(file_id, token)
            out += page.get("permissions", [])
            if not page.get("nextPageToken") or page["nextPageToken"] == token:
                return out
            token = page["nextPageToken"]

    def _permissions_page(self, file_id: str, token: str | None) -> dict[str, Any]:
        return dict(self.call(lambda s: s.permissions().list(
            fileId=file_id, supportsAllDrives=True, pageToken=token,
            fields="nextPageToken,permissions(type,role,emailAddress,domain)")))

    def drives(self) -> dict[str, str]:
        out: dict[str, str] = {}
        token: str | None = None
        while True:
            page = self._drives_page(token)
            out.update({d["id"]: d["name"] for d in page.get("drives", [])})
            if not page.get("nextPageToken") or page["nextPageToken"] == token:
                return out
            token = page["nextPageToken"]

    def _drives_page(self, token: str | None) -> dict[str, Any]:
        return dict(self.call(lambda s: s.drives().list(pageSize=100, pageToken=token,
                                                        fields="nextPageToken,drives(id,name)")))

    def download(self, file_id: str) -> bytes:
        return bytes(self.call(lambda s: s.files().get_media(fileId=file_id, supportsAllDrives=True)))

    def export(self, file_id: str, mime_type: str) -> bytes:
        return bytes(self.call(lambda s: s.files().export(fileId=file_id, mimeType=mime_type)))
