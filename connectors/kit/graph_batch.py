"""Graph JSON batching: many GETs in one `POST /$batch` call, 20 at a time (Graph's limit).

Invariants: every path asked for gets an answer, a body (all its pages: a sub-answer's
`@odata.nextLink` is followed with ordinary GETs) or a `GraphError` (a non-retriable status);
a sub-request Graph throttles or fails inside the batch (429, or a 5xx, with its own `Retry-After`)
is sent again in the next batch after the wait the kit's `RetryPolicy` allows. One still failing
when the budget is spent makes the call a `RetriableError` naming the source, the sub-request
(`GET /teams/t/channels/c/messages/m/replies`) and Graph's answer, a throttle called a throttle and
a server error a server error; with `per_item` (the caller reads one item per path, and
`kit.retries.Outage` decides whether its failure is the item's) it is that path's `GraphError`
instead (`retriable`, carrying the status, code and Retry-After).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from inlet.errors import RetriableError

from .graph import GraphClient, GraphError
from .retry import THROTTLED, RetryPolicy, retriable_status, retry_after

MAX_BATCH = 20


def batch_get(
    client: GraphClient,
    policy: RetryPolicy,
    paths: Iterable[str],
    headers: dict[str, str] | None = None,
    *,
    per_item: bool = False,
) -> dict[str, dict[str, Any] | GraphError]:
    """The answer to `GET path` for each path (relative to the Graph version root, e.g. `/organization`);
    `per_item`: a path still throttled or failing after the retries answers its `GraphError`."""
    wanted = list(dict.fromkeys(paths))
    out: dict[str, dict[str, Any] | GraphError] = {}
    for start in range(0, len(wanted), MAX_BATCH):
        todo = wanted[start : start + MAX_BATCH]
        attempts = policy.start(client.source, "POST /$batch")
        while todo:
            answer = client.request(
                "POST",
                "/$batch",
                body={
                    "requests": [
                        {"id": str(n), "method": "GET", "url": path, **({"headers": headers} if headers else {})}
                        for n, path in enumerate(todo)
                    ]
                },
            )
            again: dict[str, GraphError] = {}
            for sub in answer.get("responses", []):
                path, status = todo[int(sub["id"])], int(sub.get("status", 500))
                body = sub.get("body") or {}
                if status >= 400:
                    error = body.get("error") or {}
                    out[path] = failed = GraphError(
                        status,
                        str(error.get("code", "")),
                        str(error.get("message", "")),
                        f"GET {path.split('?')[0]}",
                        retry_after(sub.get("headers") or {}),
                    )
                    if retriable_status(status):
                        again[path] = failed
                else:
                    out[path] = _all_pages(client, body)
            if not again:
                break
            wait = max((e.retry_after or 0.0 for e in again.values()), default=0.0) or None
            throttled = all(e.status == THROTTLED for e in again.values())
            why = f"{len(again)} of {len(todo)} batched requests {'throttled' if throttled else 'failed'}"
            if not attempts.retry(f"{why} ({next(iter(again.values()))})", wait, throttled=throttled):
                if per_item:
                    break  # each still failing path answers its GraphError
                first = next(iter(again.values()))
                kind = "kept throttling" if throttled else "kept answering server errors to"
                more = f" and {len(again) - 1} more" if len(again) > 1 else ""
                raise RetriableError(
                    f"source {client.source!r}: Graph {kind} batched requests ({first}{more})", first.retry_after
                )
            todo = list(again)
    return out


def _all_pages(client: GraphClient, body: dict[str, Any]) -> dict[str, Any]:
    link = body.get("@odata.nextLink")
    if not link:
        return body
    values = list(body.get("value", []))
    for page in client.pages(link):
        values += page.get("value", [])
    return {**body, "value": values, "@odata.nextLink": None}
