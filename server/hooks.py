"""Webhooks for change events: `/hooks/{type}/{source}` (Graph change notifications, Drive push).

These routes take no API key (the services cannot send one): each request is handed, as plain
values, to the event source a running daemon registered for that source, which answers the
validation handshake and checks its own shared secret (Graph `clientState`, Drive channel token).

Invariant: a request that fails its source's secret gets exactly the answer of a hook nobody
registered (no daemon here, events off, a wrong type or name): `404 not found`, so the hooks do
not reveal which sources listen for events. The one exception is the documented validation
handshake (Graph echoes a `validationToken` to the URL it subscribes). Every hook answer is
`text/plain` with `nosniff`; a body that makes an event source fail is a 404 too, never a 500
(logged with the exception's type and message, and its traceback the first time a source's
webhook raises that type).
The body was bounded before routing (`middleware.BodyLimit`, within `HOOK_BODY_SECONDS`: the
services send a small body at once); a body over the limit or too slow is refused with the same
404 (`refuse`), never a 413 or 408 that only a live hook would give. A hook nobody registered
is answered before its body is read (`KeyGuard` asks `registered`), so an unauthenticated
trickle to a made-up hook holds no connection (the answer is the same; only its timing tells
that a live hook read the body first). A refused request is one log line, however many
notifications it held, and one count in `inlet_webhook_refused_total`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from inlet.connectors.events import NOT_FOUND, EventSource, WebhookRequest, WebhookResponse

log = logging.getLogger(__name__)
PREFIX = "/hooks/"
HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
HOOK_BODY_SECONDS = 5.0  # a hook's body must arrive within this between two parts (twice in all)
Lookup = Callable[[str, str], EventSource | None]


def registered(app: Any, path: str) -> bool:
    """Whether `path` is the hook of a source whose events a daemon here listens to."""
    parts = path[len(PREFIX) :].split("/")
    lookup: Lookup = getattr(getattr(app, "state", None), "hooks", _none)
    return len(parts) == 2 and lookup(parts[0], parts[1]) is not None


def not_found() -> Response:
    """What any hook that is not (or refuses) a live event source answers."""
    return _answer(NOT_FOUND)


async def refuse(scope: Any, receive: Any, send: Any, why: str) -> None:
    """What `middleware.BodyLimit` answers a hook's body that is too large or stalls (`why`): the
    answer of a hook nobody registered, logged and counted as every refusal is (only the hooks of
    live event sources reach the body limit, so their names tell an onlooker nothing)."""
    name = scope["path"][len(PREFIX) :].partition("/")[2]
    log.warning("source %r: webhook %s refused: %s", name, scope.get("method"), why)
    metrics = getattr(getattr(scope.get("app"), "state", None), "metrics", None)
    if metrics is not None:
        metrics.webhook_refused.labels(name).inc()
    await not_found()(scope, receive, send)


def _none(_type: str, _source: str) -> EventSource | None:
    return None


def _answer(answer: WebhookResponse) -> Response:
    closing = {"Connection": "close"} if answer.status == 404 else {}  # a refusal may leave its body unread
    return Response(answer.body, status_code=answer.status, media_type="text/plain", headers=HEADERS | closing)


async def _receive(receiver: EventSource, request: Request) -> tuple[WebhookResponse, Exception | None]:
    """The event source's answer, and the exception it raised if it did: whatever went wrong inside
    it is a refusal naming the exception's type and message, not a 500."""
    incoming = WebhookRequest(
        request.method,
        dict(request.query_params),
        {k.lower(): v for k, v in request.headers.items()},
        await request.body(),
    )
    try:
        return await run_in_threadpool(receiver.webhook, incoming), None
    except Exception as exc:  # noqa: BLE001 - a hostile body must not make a 500
        why = f"the event source failed on it: {type(exc).__name__}: {exc}"
        return WebhookResponse(404, NOT_FOUND.body, refused=why), exc


def _first(app: Any, name: str, exc: Exception | None) -> Exception | None:
    """`exc` the first time its source's webhook raised its type (its traceback is logged then, once:
    a sender repeating a body that fails cannot fill the log with tracebacks), else None."""
    if exc is None:
        return None
    seen: set[tuple[str, str]] = app.state.hook_bugs
    key = (name, type(exc).__qualname__)
    if key in seen:
        return None
    seen.add(key)
    return exc


def add_hook_routes(app: Any) -> None:
    """Mount `/hooks/{type}/{source}`; `app.state.hooks` (type, source) -> event source is set by the daemon."""
    app.state.hooks = _none
    app.state.hook_bugs = set()  # (source, exception type) whose traceback was logged

    async def hook(request: Request) -> Response:
        lookup: Lookup = request.app.state.hooks
        name = request.path_params["source"]
        receiver = lookup(request.path_params["type"], name)
        if receiver is None:
            return _answer(NOT_FOUND)
        answer, exc = await _receive(receiver, request)
        if answer.refused:
            log.warning(
                "source %r: webhook %s refused: %s",
                name,
                request.method,
                answer.refused[:200],
                exc_info=_first(request.app, name, exc),
            )
            metrics = getattr(request.app.state, "metrics", None)
            if metrics is not None:
                metrics.webhook_refused.labels(name).inc()
        if 400 <= answer.status < 500:
            return _answer(NOT_FOUND)  # the same as a hook nobody registered
        return _answer(answer)

    app.add_route(PREFIX + "{type}/{source}", hook, methods=["GET", "POST"], include_in_schema=False)
