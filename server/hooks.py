"""Webhooks for change events: `/hooks/{type}/{source}` (Graph change notifications, Drive push).

These routes take no API key (the services cannot send one): each request is handed, as plain
values, to the event source a running daemon registered for that source, which answers the
validation handshake and checks its own shared secret (Graph `clientState`, Drive channel token).
Without a registered event source (no daemon in this process, events off, or a wrong type) the
answer is 404, so the route reveals nothing. The body is capped: notifications are small.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from inlet.connectors.events import EventSource, WebhookRequest

PREFIX = "/hooks/"
MAX_BODY = 1_000_000
Lookup = Callable[[str, str], EventSource | None]


def _none(_type: str, _source: str) -> EventSource | None:
    return None


def add_hook_routes(app: Any) -> None:
    """Mount `/hooks/{type}/{source}`; `app.state.hooks` (type, source) -> event source is set by the daemon."""
    app.state.hooks = _none

    async def hook(request: Request) -> Response:
        lookup: Lookup = request.app.state.hooks
        receiver = lookup(request.path_params["type"], request.path_params["source"])
        if receiver is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body = await request.body()
        if len(body) > MAX_BODY:
            return Response("too large", status_code=413, media_type="text/plain")
        incoming = WebhookRequest(request.method, dict(request.query_params),
                                  {k.lower(): v for k, v in request.headers.items()}, body)
        answer = await run_in_threadpool(receiver.webhook, incoming)
        return Response(answer.body, status_code=answer.status, media_type=answer.media_type)

    app.add_route(PREFIX + "{type}/{source}", hook, methods=["GET", "POST"], include_in_schema=False)
