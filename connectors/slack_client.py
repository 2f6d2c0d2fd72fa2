"""The one place the `slack` connector talks to Slack: slack_sdk's WebClient, paced and retried by the kit.

Slack limits each Web API method separately ("tiers") per minute, and lets short bursts above the
rate through. Pacing every method to its tier (one kit token bucket per method: a burst of
ten seconds' worth of calls at once, never more than the tier's calls in any minute) keeps a
large backfill from turning into a storm of 429s while a change event's one or two calls go out at
once. Slack counts the calls per method per app per workspace, which its bot token names: the
buckets of a token are shared by every run in the process of every source using it
(`shared_pacing`), so event runs one after another, and two sources of one workspace (split by
`channels`) running at once, stay within the same per-minute budget as one long run; the 429s that
still happen, 5xx, Slack's transient errors answered with HTTP 200 (`internal_error`...), and reset
or stalled connections are retried by the kit's `RetryPolicy` through
its slack-sdk adapter (every Web API method the connector calls only reads), one log line per wait
naming the source, within the policy's attempts and deadline. File downloads go through the kit's
retrying httpx client under the same policy.

The bot token goes only to Slack: a file is downloaded (with the token) only from a Slack host of
the configured API's (`slack_host`: the API's own domain and its subdomains, files.slack.com for
slack.com; the exact host and port for a loopback address), redirects are followed only while they
stay there, and anything else is refused before a request is made. A `missing_scope` for a scope
that only one kind of conversation needs (`KIND_SCOPES`) is a `MissingScope` the connector can skip
that kind for; any other missing scope, like a refused token, is a `CredentialsError`.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from inlet.errors import CredentialsError, ItemError, RetriableError

from .kit import Buckets, RetryPolicy, cursor, pages, retry_after
from .kit.slack import TRANSIENT_ERRORS, SlackRetryHandler, sdk_logger
from .kit.transport import client as http_client

log = logging.getLogger(__name__)

# Published tiers, calls per minute (https://api.slack.com/apis/rate-limits).
TIERS: dict[str, float] = {
    "auth.test": 100,
    "conversations.history": 50,
    "conversations.replies": 50,
    "conversations.list": 20,
    "conversations.members": 100,
    "conversations.info": 50,
    "users.list": 20,
    "users.info": 100,
    "files.info": 100,
}
HEADROOM = 1.03  # pace 3% under the limit: arrival jitter must not push a call over the window
BURST = 1 / 6  # of a method's per-minute calls, this share may go out at once (ten seconds' worth)

CREDENTIAL_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
        "team_access_not_granted",
        "ekm_access_denied",
        "org_login_required",
    }
)


# Scopes only one kind of conversation needs, and that kind (Slack's `types` names).
KIND_SCOPES: dict[str, str] = {
    "groups:read": "private_channel",
    "groups:history": "private_channel",
    "mpim:read": "mpim",
    "mpim:history": "mpim",
    "im:read": "im",
    "im:history": "im",
}
MAX_REDIRECTS = 5


class SlackError(Exception):
    """An `{"ok": false}` answer that is neither about credentials nor transient."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error


class MissingScope(SlackError):
    """`missing_scope` for scopes (`needed`, as Slack lists them) of some kinds of conversation only."""

    def __init__(self, method: str, needed: str) -> None:
        super().__init__(method, "missing_scope")
        self.needed = needed

    @property
    def kinds(self) -> set[str]:
        """The kinds of conversation (`KIND_SCOPES`) the token may not read."""
        return {KIND_SCOPES[s] for s in _scopes(self.needed)}


def _scopes(needed: str) -> list[str]:
    return [s.strip() for s in needed.split(",") if s.strip()]


def slack_host(base_url: str, url: str) -> bool:
    """Whether `url` is on a Slack host of the API at `base_url`: the same scheme and port, and the
    API's domain (its last two labels: slack.com, slack-gov.com) or a subdomain of it; for an IP
    address or a one-label name (a test server), that very host."""
    base, target = httpx.URL(base_url), httpx.URL(url)
    if (target.scheme, target.port) != (base.scheme, base.port) or not target.host:
        return False
    if _is_ip(base.host) or "." not in base.host:
        return target.host == base.host
    domain = ".".join(base.host.split(".")[-2:])
    return target.host == domain or target.host.endswith("." + domain)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def pacing(per_minute: Mapping[str, float], scale: float = 1.0, **clock: Any) -> Buckets:
    """One bucket per method: `per_minute[method]` calls a minute less the headroom on average (0:
    unpaced), a sixth of them (`BURST`) at once, and never more than `per_minute[method]` in any
    minute (stretched by the headroom, each call counted from when it finished: `SlackAPI.call`).
    `scale` speeds the clock up (a minute lasts 60/scale s: time-scaled benchmarks, custom limits);
    `clock`: the buckets' `clock` and `sleep` (tests)."""
    rates = {method: rate * scale / 60.0 / HEADROOM for method, rate in per_minute.items()}
    return Buckets(
        rates,
        bursts={m: rate * BURST for m, rate in per_minute.items()},
        budgets={m: max(1, int(rate)) for m, rate in per_minute.items() if rate > 0},
        window=60.0 * HEADROOM / scale,
        **clock,
    )


_shared: dict[tuple[str, str, float, tuple[tuple[str, float], ...]], Buckets] = {}
_shared_lock = threading.Lock()


def shared_pacing(token: str, base_url: str, per_minute: Mapping[str, float], scale: float = 1.0) -> Buckets:
    """The process's one `pacing` of a bot token (one app in one workspace, as Slack counts calls) and
    its tiers: every run of every source using the token draws on it."""
    key = (hashlib.sha256(token.encode()).hexdigest(), base_url, scale, tuple(sorted(per_minute.items())))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = pacing(per_minute, scale)
        return _shared[key]


class SlackAPI:
    """Paced, retried Web API calls that raise inlet's errors; `calls` counts calls per method."""

    def __init__(
        self,
        source: str,
        token: str,
        base_url: str,
        *,
        pace: Mapping[str, float],
        policy: RetryPolicy,
        timeout: float = 30.0,
        pace_scale: float = 1.0,
    ) -> None:
        self.source = source
        self.token = token
        self.base_url = base_url
        self.policy = policy
        self.pacer = shared_pacing(token, base_url, pace, pace_scale)
        self.calls: dict[str, int] = {}
        self.client = WebClient(
            token=token,
            base_url=base_url,
            timeout=int(max(timeout, 1)),
            logger=sdk_logger(),
            retry_handlers=[SlackRetryHandler(policy, source)],
        )
        self._http = http_client(source=source, policy=policy, timeout=timeout, user_agent="inlet-slack/0.1")

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.calls[method] = self.calls.get(method, 0) + 1
        clean = {k: v for k, v in params.items() if v is not None}
        try:
            with self.pacer.paced(method):
                response = self.client.api_call(method, params=clean)
        except SlackApiError as exc:
            raise self._translate(method, exc) from exc
        except (OSError, http.client.HTTPException) as exc:  # refused, reset or cut after the retries
            raise RetriableError(f"source {self.source!r}: {method}: {exc}") from exc
        return dict(response.data) if isinstance(response.data, dict) else {}

    def pages(self, method: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every page of a cursor-paginated method; a repeated cursor is refused (kit pager)."""
        return pages(lambda token: self.call(method, cursor=token, **params), cursor, source=self.source, what=method)

    def _translate(self, method: str, exc: SlackApiError) -> Exception:
        response = exc.response
        status = getattr(response, "status_code", 200)
        data = response.data if isinstance(getattr(response, "data", None), dict) else {}
        error = str(data.get("error") or f"http_{status}")
        if status == 429:
            wait = retry_after(response.headers or {})
            if wait is not None and wait > self.policy.max_retry_after:  # not waited out: the next run waits
                return RetriableError(f"source {self.source!r}: {method} rate limited for {wait:.0f}s", wait)
            return RetriableError(
                f"source {self.source!r}: {method} still rate limited after {self.policy.attempts} attempts", wait
            )
        if status >= 500:
            return RetriableError(f"source {self.source!r}: {method} failed with HTTP {status} ({error})")
        needed = str(data.get("needed") or "")
        if error == "missing_scope" and _scopes(needed) and all(s in KIND_SCOPES for s in _scopes(needed)):
            return MissingScope(method, needed)
        if error in CREDENTIAL_ERRORS:
            return CredentialsError(
                self.source, f"Slack answered {error!r} to {method}" + (f" (scope needed: {needed})" if needed else "")
            )
        if error == "ratelimited" or error in TRANSIENT_ERRORS:  # still failing after the kit's retries
            return RetriableError(f"source {self.source!r}: {method}: {error}")
        return SlackError(method, error)

    def download(self, url: str, limit: int, mimetype: str = "") -> bytes:
        """A private file's bytes (Bearer token), at most `limit`; `ItemError` when unreadable or
        when it (or a redirect) is not on a Slack host (`slack_host`): the token is never sent there;
        `RetriableError` (naming the call) when it still answers a server error or a throttle, or its
        connection still breaks, after the retries: the connector's `kit.retries.Outage` weighs it."""
        response = self._get(url)
        for _ in range(MAX_REDIRECTS):
            if not response.has_redirect_location:
                break
            response = self._get(str(response.url.join(response.headers["location"])))
        if response.status_code == 429 or response.status_code >= 500:
            raise RetriableError(
                f"source {self.source!r}: GET {url}: still failing after {self.policy.attempts} attempts "
                f"(HTTP {response.status_code})",
                retry_after(response.headers),
            )
        if response.status_code != 200:
            raise ItemError(f"{url}: HTTP {response.status_code}")
        kind = response.headers.get("content-type", "")
        if kind.startswith("text/html") and "html" not in mimetype:
            # Slack answers a refused token with its sign-in page, status 200.
            raise ItemError(f"{url}: got a sign-in page instead of the file (token lacks files:read?)")
        if len(response.content) > limit:
            raise ItemError(f"{url}: larger than {limit} bytes")
        return response.content

    def _get(self, url: str) -> httpx.Response:
        """One GET with the token, never redirected by httpx; refused off Slack's hosts."""
        if not slack_host(self.base_url, url):
            host = httpx.URL(url).host or url
            raise ItemError(f"{url}: {host} is not a Slack host of {self.base_url}: not downloaded with the token")
        try:
            return self._http.get(url, headers={"Authorization": f"Bearer {self.token}"}, follow_redirects=False)
        except httpx.HTTPError as exc:  # reset, cut or stalled after the retries
            raise RetriableError(f"source {self.source!r}: GET {url}: {type(exc).__name__}: {exc}") from exc
