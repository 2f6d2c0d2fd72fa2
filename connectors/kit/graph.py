"""Microsoft Graph plumbing shared by the Outlook, OneDrive/SharePoint and Teams connectors.

Invariants:
- Every request goes through one pooled httpx client whose transport retries under the kit's
  `RetryPolicy` (429 and 5xx honouring `Retry-After`, reset idempotent requests).
- msal runs over that same client (through its documented `http_client` hook), so the extra CA of
  `ca_bundle` is trusted by identity and Graph calls alike, added to the system ones.
- A 401 from Graph drops msal's cached app token and retries once with a fresh one; a token the
  identity platform refuses is a `CredentialsError` naming the source and carrying msal's text.
- An answer still retriable after the retries is a `RetriableError` (with its Retry-After) naming
  the source, the call (`GET /users/u/messages/m/attachments`) and Graph's answer; any other 4xx is
  a `GraphError` carrying status, code and call, for the caller to decide (404, 410 ...).
- A link Graph gave (`@odata.nextLink`, `@odata.deltaLink`, kept in checkpoints) is followed on
  `graph_url`'s scheme and host: a saved link keeps the host of when it was given, and `graph_url`
  may have moved since (a proxy, a national cloud, a restarted emulator); the token never goes to
  a host the configuration no longer names.
- The tenant's id (a GUID) is known even where `tenant_id` names one of its domains: `tenant()`
  reads it from the app token's `tid` claim (an Entra access token is a JWT), as Graph itself
  names tenants (`tenantId` of a member); None when the token does not say.
- Graph's timestamps are compared as instants (`graph_time`, `before`), never as strings: they come
  with or without fractional seconds (up to seven digits) and with `Z` or an offset.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from inlet.errors import CredentialsError, InletError, RetriableError

from .transport import client as http_client
from .paging import next_link, pages
from .retry import RetryPolicy, retriable_status, retry_after

log = logging.getLogger(__name__)

SCOPE = "https://graph.microsoft.com/.default"


class GraphError(InletError):
    """A Graph answer the caller decides about (404 mailbox/folder, 410 sync state, ...), naming the
    call Graph answered (`GET /teams`) when known; a refusal (401, 403) that escapes the connector
    becomes an `AccessRefusedError` (`GraphConnector.with_client`), any other fails the run with
    this message."""

    def __init__(self, status: int, code: str, message: str, call: str = "", retry_after: float | None = None) -> None:
        super().__init__(f"{call + ': ' if call else ''}{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.call = call  # "GET /teams/t1/channels" (no query), or ""
        self.retry_after = retry_after  # a server error's or throttle's Retry-After, when Graph gave one

    @property
    def retriable(self) -> bool:
        """A server error or a throttle (only a `$batch` answer still failing after the retries is
        one: a single call raises `RetriableError` instead)."""
        return retriable_status(self.status)

    @property
    def refused(self) -> bool:
        """Graph says the app may not make this call (a permission or its consent missing)."""
        return self.status in (401, 403)


def refusal(what: str, error: GraphError, permission: str = "", cannot: str = "the app may not read it") -> str:
    """How a Graph refusal reads, in a skip's reason or a run's error: what was refused (`cannot`
    says how), the call and Graph's answer, and, for a refusal (401, 403), the application permission
    that grants it (the connector's page lists them)."""
    need = f"; the app needs the application permission {permission}, with admin consent"
    return f"{what}: {cannot} ({error}){need if permission and error.refused else ''}"


class _MsalHttp:
    """msal's `http_client` contract (get/post returning status_code/text/headers) over httpx."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any) -> httpx.Response:
        return self._client.post(url, params=params, data=data, headers=headers)

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> httpx.Response:
        return self._client.get(url, params=params, headers=headers)

    def close(self) -> None:  # the GraphClient owns the client
        pass


_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_guid(text: str) -> bool:
    """Whether `text` is a GUID (a tenant's id), not a name such as one of its domains."""
    return bool(_GUID.match(text))


class GraphClient:
    """Graph calls with an app token (client credentials); `calls` counts the requests sent."""

    def __init__(
        self,
        *,
        source: str,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        graph_url: str,
        authority_url: str,
        ca_bundle: Path | None,
        scope: str = SCOPE,
        timeout: float = 60.0,
        policy: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = "inlet/0.1",
    ) -> None:
        self.source = source
        self.graph_url = graph_url.rstrip("/")
        self.scope = scope
        self.http = http_client(
            source=source,
            policy=policy,
            ca_bundle=ca_bundle,
            timeout=timeout,
            user_agent=user_agent,
            transport=transport,
        )
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
                    self._client_id,
                    client_credential=self._secret,
                    authority=self._authority,
                    http_client=_MsalHttp(self.http),
                    instance_discovery=False,
                )  # the authority is the operator's config, not a guess
            except ValueError as exc:  # OIDC discovery refused: unknown tenant
                raise CredentialsError(self.source, str(exc)) from exc
            except httpx.TransportError as exc:
                raise RetriableError(f"source {self.source!r}: identity platform unreachable: {exc}") from exc
        return self._app

    def tenant(self) -> str | None:
        """The id of the tenant the app's token is for (its `tid` claim, lower case), whatever form
        `tenant_id` has; None when the token is no JWT naming one (it is not checked: it is the
        identity platform's answer to this client)."""
        try:
            payload = self.token().split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
            return None
        tid = claims.get("tid") if isinstance(claims, dict) else None
        return tid.lower() if isinstance(tid, str) and is_guid(tid) else None

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
    def get(
        self, path_or_url: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return self.request("GET", path_or_url, params=params, headers=headers)

    def pages(
        self, path: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every page of a collection, following `@odata.nextLink` (which carries the query itself);
        a repeated link is refused. The last page may carry an `@odata.deltaLink`."""
        return pages(
            lambda link: self.get(link or path, None if link else params, headers),
            next_link,
            source=self.source,
            what=f"GET {path.split('?')[0]}",
        )

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> dict[str, Any]:
        """One Graph call (`body` sent as JSON); {} for an empty answer (204)."""
        url = self.url(path_or_url)
        response = self._send(method, url, params, headers, self.token(), body)
        if response.status_code == 401:
            log.info("source %s: access token refused by Graph, acquiring a new one", self.source)
            response = self._send(method, url, params, headers, self.token(fresh=True), body)
            if response.status_code == 401:
                raise CredentialsError(self.source, f"Graph refused a fresh token: {error_of(response)[1]}")
        if retriable_status(response.status_code) or response.status_code >= 500:
            code, message = error_of(response)
            raise RetriableError(
                f"source {self.source!r}: {self.call(method, url)}: Graph answered {response.status_code} {code}"
                f"{': ' + message if message else ''}",
                retry_after(response.headers),
            )
        if response.status_code >= 400:
            code, message = error_of(response)
            raise GraphError(response.status_code, code, message, self.call(method, url))
        return response.json() if response.content else {}  # type: ignore[no-any-return]

    def call(self, method: str, url: str) -> str:
        """`GET /teams/t1/channels`: a call as an error names it (its path under `graph_url`, no query)."""
        path, base = httpx.URL(url).path, httpx.URL(self.graph_url).path.rstrip("/")
        return f"{method} {path.removeprefix(base) if base and path.startswith(base + '/') else path}"

    def url(self, path_or_url: str) -> str:
        """A path under `graph_url`, or a link Graph gave moved onto `graph_url`'s scheme and host."""
        if not path_or_url.startswith(("http://", "https://")):
            return self.graph_url + path_or_url
        link, base = httpx.URL(path_or_url), httpx.URL(self.graph_url)
        if (link.scheme, link.host, link.port) == (base.scheme, base.host, base.port):
            return path_or_url
        return str(link.copy_with(scheme=base.scheme, host=base.host, port=base.port))

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        token: str,
        body: Any = None,
    ) -> httpx.Response:
        self.calls += 1
        try:
            return self.http.request(
                method, url, params=params, json=body, headers={**(headers or {}), "Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as exc:
            where = httpx.URL(url)
            raise RetriableError(
                f"source {self.source!r}: {self.call(method, url)}: Graph unreachable at "
                f"{where.scheme}://{where.netloc.decode()}: {exc}"
            ) from exc


def error_of(response: httpx.Response) -> tuple[str, str]:
    """(code, message) out of Graph's error envelope (or the start of the body)."""
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "")), str(error.get("message", ""))
    except ValueError:
        return "", response.text[:200]


def graph_time(value: object) -> dt.datetime | None:
    """A Graph timestamp (`2024-05-01T09:00:00Z`, `...00.1234567+00:00`) as an aware datetime (a
    naive one read as UTC); None when absent or unreadable."""
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def before(value: object, since: str | None) -> bool:
    """True when the Graph timestamp `value` is earlier than `since`; False when either is unknown."""
    when, start = graph_time(value), graph_time(since)
    return when is not None and start is not None and when < start
