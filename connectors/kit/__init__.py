"""The connector kit: the plumbing every SaaS connector shares, written once.

- `retry`: one `RetryPolicy` (attempts, backoff, cap, jitter, deadline; `Retry-After` honoured and
  capped; 429/5xx/network retriable) and the per-call `Attempts` that logs one line per wait.
  Adapters: `transport.RetryTransport` (httpx), `slack.SlackRetryHandler` (slack-sdk),
  `google.GoogleService.call` (googleapiclient).
- `ratelimit`: a thread-safe `TokenBucket` with a burst; `Buckets`, one per key.
- `paging`: `Pager` / `pages()` for cursors, page tokens and next links; a repeated token is refused.
- `checkpoint`: `CheckpointModel`, a typed, versioned checkpoint stored as a plain dict.
- `retries`: `Retries`, a checkpoint field remembering the items whose read failed, read again by
  every later run until read, gone or given up (then still a failed skip each run); `Outage`, which
  makes a read still answering a server error after its retries its item's failed skip, named,
  unless `OUTAGE_AFTER` reads in a row fail so (the service is down: the run fails).
- `oauth`: `ClientCredentials`, an `httpx.Auth` for OAuth2 client credentials: a token renewed before
  it expires and on a 401 (a retry below the auth flow re-sends the old header; its 401 renews).
- `renewal`: `Renewals`, subscriptions renewed at a third of their lifetime and removed in bounded time,
  a failing one named by its label.
- `refusals`: `Refusals`, the targets a run was refused: a failed skip each, `AccessRefusedError`
  when every one was refused and none read.
- `graph`: `GraphClient` (msal over httpx, token refresh on 401, `GraphError`).
- `graph_batch`: `batch_get`, GETs in `$batch` requests of 20, each answer retried by the policy
  (`per_item`: a part still failing after the retries answers its `GraphError`, for `Outage`).
- `graph_webhooks`: `GraphWebhooks`, Graph subscriptions and their notifications (Outlook, files, Teams).
- `google`: `load_credentials` (and `acting_as`: who they read as, when the file says) and
  `GoogleService` (request execution, `GoogleApiError`).
- `scope`: configured channels, folders, labels or globs that match nothing at the service: a listed
  skip each, and `NothingInScopeError` when none matches (a typo must not empty a source).

The service modules (`graph`, `graph_batch`, `graph_webhooks`, `google`, `slack`) import their
SDKs; import them by module (`from inlet.connectors.kit.graph import GraphClient`), so a connector
loads only its own SDK.
Import `scope` by module too (`from inlet.connectors.kit.scope import check_scope`); everything else is
re-exported here.
"""

from .checkpoint import CheckpointModel
from .oauth import ClientCredentials
from .paging import Pager, StuckTokenError, cursor, next_link, page_token, pages
from .ratelimit import Buckets, TokenBucket
from .refusals import Refusals
from .renewal import RENEW_AT, Backoff, Gone, Renewals, Subscription
from .retries import GIVE_UP_AFTER, OUTAGE_AFTER, Failure, Outage, Retries
from .retry import Attempts, RetryPolicy, retriable_status, retry_after
from .transport import RetryTransport, ssl_context

__all__ = [
    "GIVE_UP_AFTER",
    "OUTAGE_AFTER",
    "RENEW_AT",
    "Attempts",
    "Backoff",
    "Buckets",
    "CheckpointModel",
    "ClientCredentials",
    "Failure",
    "Gone",
    "Outage",
    "Pager",
    "Refusals",
    "Renewals",
    "Retries",
    "RetryPolicy",
    "RetryTransport",
    "StuckTokenError",
    "Subscription",
    "TokenBucket",
    "cursor",
    "next_link",
    "page_token",
    "pages",
    "retriable_status",
    "retry_after",
    "ssl_context",
]
