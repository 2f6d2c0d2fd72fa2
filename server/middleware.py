"""Pure ASGI middleware: request id, access log, metrics, and the request body's size and pace.

Each request's work is `impatient` (`inlet.storage`): a database that cannot be reached is a 503
within seconds, not after the connection pool's timeout (which the daemon's runs keep).

Pure ASGI (not BaseHTTPMiddleware) so streamed responses (MCP's server-sent events) pass through
untouched. The access log is one JSON object per request on the `inlet.server.access` logger; it
names the API key (its configured name, never its value) and the acting user. With
`audit_queries = "hash"` its `path` hides what the audit line hides: it is the route's template
(`/v1/documents/{doc_id}`, not the id asked for), or `sha256:` and the path's digest when no route
matched.

The body is read by `BodyLimit`, which sits inside the key check: a request without a valid key
is answered 401 before a byte of its body is read, whatever the size it declares (a token refused
for its scope, whose 403 is audited with what its body asked, is read by one too, under the same
bounds: `app.KeyGuard`). It bounds the
body of every request, whatever its method (a GET may carry a body too) and framing (chunked
bodies declare no length), in size and in time: a body that stalls between two chunks, or takes
over twice that in all, is answered 408 (on the `quick` paths, the webhooks, both refusals are
their own answer: the 404 of a hook nobody registered).
Every response carries `SECURITY_HEADERS` (no content sniffing, no referrer, and `Cache-Control:
no-store`: an answer holds what one key may see, so no browser or proxy cache keeps it) and says it
varies with `Authorization` and `X-Inlet-User` (`VARY`, added to any `Vary` the route set), so a
cache that stores it anyway never serves one caller's answer to another. A HEAD is answered as the
GET it mirrors, without the body (`HeadAsGet`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inlet.storage import impatient

from .audit import sha256_hex
from .errors import error_body
from .metrics import Metrics

access_log = logging.getLogger("inlet.server.access")
BODY_IDLE_TIMEOUT = 30.0  # seconds a request body may stall between two of its chunks
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
VARY = b"Authorization, X-Inlet-User"  # what an answer depends on besides its URL
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def declares_body(scope: Scope) -> bool:
    """Whether the request says a body follows (a Content-Length over 0, or any Transfer-Encoding)."""
    length = _header(scope, b"content-length")
    return bool(length and length.strip() not in ("", "0")) or _header(scope, b"transfer-encoding") is not None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _route(scope: Scope, routes: list[Any]) -> str:
    """The path template of the route that served the request: FastAPI's routes put themselves in
    the scope; plain Starlette routes (/mcp, the OAuth metadata, the hooks) are matched here, and a
    known path asked with another method is labelled by its path too."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return str(path)
    partial = None  # the path matched, not the method (`PUT /healthz`, `HEAD /v1/search`: a 405)
    for candidate in routes:
        try:
            match, _ = candidate.matches(scope)
        except Exception:  # noqa: BLE001 - a label is not worth failing a request for
            continue
        if match == Match.FULL and getattr(candidate, "path", None):
            return str(candidate.path)
        if match == Match.PARTIAL and partial is None and getattr(candidate, "path", None):
            partial = str(candidate.path)
    return partial or "unmatched"


class HeadAsGet:
    """HEAD answered as GET without its body (RFC 9110 §9.3.2: every general-purpose server takes
    GET and HEAD; FastAPI's GET routes take no HEAD). It sits inside every check, which sees the
    HEAD as it came (a HEAD without a key is a 401), and just outside the routes, which see a GET;
    the status and headers, `Content-Length` included, are the GET's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body"):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)  # `state` stays shared


async def send_error(send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
    """Answer with the API's error shape straight from ASGI middleware (before any routing)."""
    body = json.dumps(error_body(code, message)).encode()
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ObserveMiddleware:
    """Assigns or echoes X-Request-ID, logs each request, records metrics; the request's storage
    calls are `impatient`. `hash_paths` (`audit_queries = "hash"`): no path in clear in the log."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, routes: list[Any] | None = None, hash_paths: bool = False
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes if routes is not None else []
        self.hash_paths = hash_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                present = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in SECURITY_HEADERS if k not in present)
                headers = [(k, v + b", " + VARY if k.lower() == b"vary" else v) for k, v in headers]
                if b"vary" not in present:
                    headers.append((b"vary", VARY))
                message = {**message, "headers": headers}
            await send(message)

        try:
            with impatient():
                await self.app(scope, receive, send_wrapped)
        finally:
            self._record(scope, status["code"], time.perf_counter() - started, request_id)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route = _route(scope, self.routes)
        method = scope.get("method", "")
        self.metrics.observe(route, method, status, seconds)
        state: dict[str, Any] = scope.get("state", {})
        caller = state.get("caller")
        path = scope.get("path")
        if self.hash_paths:  # the template names no document; a path no route took is hashed whole
            path = route if route != "unmatched" else f"sha256:{sha256_hex(str(path))}"
        access_log.info(
            json.dumps(
                {
                    "request_id": request_id,
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "ms": round(seconds * 1000, 1),
                    "key": getattr(caller, "key_name", None),
                    "user": getattr(caller, "user", None),
                    "client": (scope.get("client") or [None])[0],
                }
            )
        )


Refusal = Callable[[Scope, Receive, Send, str], Awaitable[None]]  # a path's own answer to a body it refuses, and why


class BodyLimit:
    """Reads the body of every request (chunked uploads have no Content-Length) up to the size
    limit, each chunk within `idle_timeout` seconds and the whole within twice that (paths under
    `quick`'s prefix within its own, shorter, timeout), and replays it to the app; a declared
    Content-Length over the limit is refused without reading anything. Placed inside the key
    check, so a request without a valid key is a 401 whatever its body. Before it refuses a body
    (413, 408), `counted` spends the caller's rate-limit token: when that answered (over the limit:
    429), nothing more is said."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        idle_timeout: float = BODY_IDLE_TIMEOUT,
        quick: tuple[str, float, Refusal] | None = None,
        counted: Callable[[Scope, Send], Awaitable[bool]] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.idle_timeout = idle_timeout
        self.quick = quick
        self.counted = counted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timeout = self.idle_timeout
        refusal: Refusal | None = None
        if self.quick is not None and scope["path"].startswith(self.quick[0]):
            _, timeout, refusal = self.quick
        why = f"its body is over {self.max_body_bytes} bytes"
        try:
            replay = None if self._declared_too_large(scope) else await self._read_body(receive, timeout)
        except TimeoutError:
            replay, why = (
                None,
                f"its body stalled (over {timeout:.0f} s between two parts, or {2 * timeout:.0f} s in all)",
            )
            if refusal is None:
                if not (self.counted is not None and await self.counted(scope, send)):
                    await self._stalled(send, timeout)
                return
        if replay is None and refusal is not None:
            await refusal(scope, receive, send, why)  # their own answer: it tells nothing of what the path is
            return
        if replay is None and self.counted is not None and await self.counted(scope, send):
            return
        if replay is None:
            await send_error(
                send,
                413,
                "payload_too_large",
                f"request body over {self.max_body_bytes} bytes",
                {"connection": "close"},
            )
            return
        await self.app(scope, replay, send)

    @staticmethod
    async def _stalled(send: Send, timeout: float) -> None:
        await send_error(
            send,
            408,
            "request_timeout",
            f"the request body stalled (over {timeout:.0f} s between two parts, or over {2 * timeout:.0f} s in all)",
            {"connection": "close"},
        )

    def _declared_too_large(self, scope: Scope) -> bool:
        length = _header(scope, b"content-length")
        return bool(length and length.isdigit() and int(length) > self.max_body_bytes)

    async def _read_body(self, receive: Receive, timeout: float) -> Receive | None:
        """The whole body and a `receive` that replays it; None when it is over the limit."""
        chunks: list[bytes] = []
        total = 0
        pending: list[Message] = []
        deadline = time.monotonic() + 2 * timeout
        while True:
            wait = min(timeout, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError
            message = await asyncio.wait_for(receive(), wait)
            if message["type"] != "http.request":
                pending.append(message)  # the client went away: let the app see it
                break
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                break
        pending.insert(0, {"type": "http.request", "body": b"".join(chunks), "more_body": False})

        async def replay() -> Message:
            return pending.pop(0) if pending else await receive()

        return replay
