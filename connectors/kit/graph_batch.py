"""Graph JSON batching: many GETs in one `POST /$batch` call, 20 at a time (Graph's limit).

Invariants: every path asked for gets an answer, a body (all its pages: a sub-answer's
`@odata.nextLink` is followed with ordinary GETs) or a `GraphError` (a non-retriable status);
a sub-request Graph throttles inside the batch (429/503 with its own `Retry-After`) is sent again in
the next batch after the wait the kit's `RetryPolicy` allows, and one still throttled when the
budget is spent makes the call a `RetriableError`, like any other throttled call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from inlet.errors import RetriableError

from .graph import GraphClient, GraphError
from .retry import RetryPolicy, retriable_status, retry_after

MAX_BATCH = 20


def batch_get(
    client: GraphClient, policy: RetryPolicy, paths: Iterable[str], headers: dict[str, str] | None = None
) -> dict[str, dict[str, Any] | GraphError]:
    """The answer to `GET path` for each path (relative to the Graph version root, e.g. `/organization`)."""
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
            again, wait = [], 0.0
            for sub in answer.get("responses", []):
                path, status = todo[int(sub["id"])], int(sub.get("status", 500))
                body = sub.get("body") or {}
                if retriable_status(status):
                    again.append(path)
                    wait = max(wait, retry_after(sub.get("headers") or {}) or 0.0)
                elif status >= 400:
                    error = body.get("error") or {}
                    out[path] = GraphError(
                        status, str(error.get("code", "")), str(error.get("message", "")), f"GET {path.split('?')[0]}"
                    )
                else:
                    out[path] = _all_pages(client, body)
            if again and not attempts.retry(
                f"{len(again)} of {len(todo)} batched requests throttled", wait or None, throttled=True
            ):
                raise RetriableError(
                    f"source {client.source!r}: Graph kept throttling batched requests ({again[0]} ...)", wait or None
                )
            todo = again
    return out


def _all_pages(client: GraphClient, body: dict[str, Any]) -> dict[str, Any]:
    link = body.get("@odata.nextLink")
    if not link:
        return body
    values = list(body.get("value", []))
    for page in client.pages(link):
        values += page.get("value", [])
    return {**body, "value": values, "@odata.nextLink": None}
