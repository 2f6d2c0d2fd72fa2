"""DNS-rebinding protection: for /mcp by `Origin` (docs/reference/mcp.md; the MCP specification
requires it), and for keyless routes that reveal something (`/metrics` with `metrics_public`) by
`Host` (`names_this_machine`).

A web page on another site can make a browser send requests to a server on the user's machine
(by rebinding its own host name to 127.0.0.1). Browsers always send `Origin` on such requests, and
a legitimate MCP client either sends none (desktop and server-side clients) or the server's own
origin, or one the operator listed in `[server] cors_origins`. Anything else is refused with 403
before the request reaches the MCP SDK. The server's own origin is taken from the address the
connection arrived on (and `resource_url`), never from the `Host` header: under DNS rebinding the
attacker's name is in both `Host` and `Origin`, so comparing those two would let it through.
A rebound page's own same-origin GET carries no `Origin`, but its `Host` is the attacker's name: a
loopback listener serves a keyless route only to a `Host` naming this machine (`localhost`, a
loopback address) or `[server.oauth] resource_url`'s host; any other `Host` needs a key there.
Every origin compared (configured, own, sent) is read by `inlet.config.normalise_origin`, the same
reading the CORS layer's list went through at configuration load.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from inlet.config import loopback_host, normalise_origin

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
    if loopback_host(host):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    return {_origin(f"{scheme}://{name}:{port}") for name in names}


def _origin(value: str) -> str:
    """`value` as configured origins are read; an `Origin` that is not one (`null`) stays as sent,
    matching none of them."""
    try:
        return normalise_origin(value)
    except ValueError:
        return value


def names_this_machine(scope: Scope, own_hosts: Iterable[str] = ()) -> bool:
    """Whether the request's `Host` names this machine, when it arrived on a loopback socket
    (always true on other sockets: they are reachable under any name anyway)."""
    server = scope.get("server")
    if not server or not loopback_host(str(server[0])):
        return True
    host = _headers(scope).get("host", "").strip().lower()
    name = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    return loopback_host(name) or name in {h.lower() for h in own_hosts}


class OriginGuard:
    """Passes requests without `Origin`, from the server's own origin, or from `allowed`."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str], own: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {_origin(o) for o in (*allowed, *own)}

    def permits(self, scope: Scope) -> bool:
        origin = _headers(scope).get("origin")
        return origin is None or _origin(origin) in self.allowed | _local_origins(scope)

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
