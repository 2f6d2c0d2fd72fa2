"""DNS-rebinding protection for /mcp (docs/reference/mcp.md; the MCP specification requires it).

A web page on another site can make a browser send requests to a server on the user's machine
(by rebinding its own host name to 127.0.0.1). Browsers always send `Origin` on such requests, and
a legitimate MCP client either sends none (desktop and server-side clients) or the server's own
origin, or one the operator listed in `[server] cors_origins`. Anything else is refused with 403
before the request reaches the MCP SDK. The server's own origin is taken from the address the
connection arrived on (and `resource_url`), never from the `Host` header: under DNS rebinding the
attacker's name is in both `Host` and `Origin`, so comparing those two would let it through.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_body


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _local_origins(scope: Scope) -> set[str]:
    """The origins naming the socket this request arrived on (plus `localhost` for loopback)."""
    server = scope.get("server")
    if not server or server[1] is None:
        return set()
    host, port = str(server[0]), server[1]
    scheme = scope.get("scheme", "http")
    names = {f"[{host}]" if ":" in host else host}
    try:
        if ipaddress.ip_address(host).is_loopback:
            names |= {"localhost", "127.0.0.1", "[::1]"}
    except ValueError:
        pass
    return {f"{scheme}://{name}:{port}".lower() for name in names}


class OriginGuard:
    """Passes requests without `Origin`, from the server's own origin, or from `allowed`."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str], own: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {o.rstrip("/").lower() for o in (*allowed, *own)}

    def permits(self, scope: Scope) -> bool:
        origin = _headers(scope).get("origin")
        return origin is None or origin.rstrip("/").lower() in self.allowed | _local_origins(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.permits(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            error_body(
                "forbidden_origin",
                "requests from this Origin are refused; list it in "
                "[server] cors_origins to allow a browser-based client",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
