"""Every HTTP listener inlet runs is built here, with one configuration.

`inlet serve`, `inlet daemon --serve` and `inlet demo` all serve through `ServerThread`, so the
same bounds hold on each: a request's headers must arrive within `[server] header_timeout`
seconds of the connection (or of the previous response) and hold at most `MAX_HEADER_BYTES`
(a 431 and the connection closed past it), an idle keep-alive connection is closed
after `[server] idle_timeout`, an answer the client reads none of for `[server] send_timeout`
closes its connection, at most `timeouts.MAX_PIPELINED` requests wait behind the one being
answered, forwarding headers (`X-Forwarded-For`, `X-Forwarded-Proto`) are ignored unless they
come from a peer in `[server] trusted_proxies` (else the client is the socket's peer),
connections past `max_connections()` are closed as they arrive (the process keeps descriptors
for its index, its local channel and its outgoing calls), and the app
itself carries the same middleware (key check, body limits, security headers; `app.create_app`).
A listener other hosts can reach is warned about at start: it speaks plain HTTP (`warn_if_reachable_in_clear`).
"""

from __future__ import annotations

import logging
import resource
import socket
import threading
from typing import Any

from inlet.config import ServerConfig, loopback_host

from .timeouts import MAX_HEADER_BYTES, uvicorn_protocol

log = logging.getLogger(__name__)
GRACEFUL_SHUTDOWN = 10.0  # seconds requests in flight get once the server is told to stop
RESERVED_DESCRIPTORS = 128  # kept for the index, state database, local channel and connectors
MAX_CONNECTIONS = 1000


def local_url(host: str, port: int) -> str:
    """The URL a local client uses for a server listening on host:port (a wildcard is loopback)."""
    local = (
        "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else f"[{host}]" if ":" in host else host
    )
    return f"http://{local}:{port}"


def listening_text(host: str, port: int) -> str:
    """What a start-up line names: the URL a local client uses, and, for a wildcard, that every
    address of the machine listens (`every address (0.0.0.0), e.g. http://127.0.0.1:8484`)."""
    url = local_url(host, port)
    return f"{_everywhere(host)}, e.g. {url}" if _everywhere(host) else url


def _everywhere(host: str) -> str | None:
    """`every address (0.0.0.0)` for a wildcard host, else None."""
    return f"every address ({host or '0.0.0.0'})" if host in ("0.0.0.0", "", "::") else None


def warn_if_reachable_in_clear(host: str, port: int) -> None:
    """A warning when the listener takes connections from other hosts: it speaks plain HTTP, so
    API keys (the console's admin key on every refresh) and answers cross the network readable."""
    if loopback_host(host):
        return
    where = _everywhere(host) or host
    log.warning(
        "the API speaks plain HTTP on %s, port %d: other hosts can reach it, and the keys they send (the "
        "console's admin key on every refresh) and its answers cross the network unencrypted; serve it to "
        "other hosts through a TLS reverse proxy (docs/operations/security.md), or listen on 127.0.0.1",
        where,
        port,
    )


def max_connections(limit: int | None = None) -> int:
    """How many client connections may be open at once: half the descriptors this process may
    open beyond a reserve (at least 16, at most MAX_CONNECTIONS)."""
    soft = limit if limit is not None else resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(
        16, min(MAX_CONNECTIONS, (soft - RESERVED_DESCRIPTORS) // 2 if soft > 2 * RESERVED_DESCRIPTORS else soft // 2)
    )


def uvicorn_config(app: Any, server: ServerConfig) -> Any:
    """The uvicorn configuration of every listener (logging goes through inlet's own loggers)."""
    import uvicorn

    logging.getLogger("inlet.server.access").setLevel(logging.INFO)
    logging.getLogger("inlet.server.app").setLevel(logging.INFO)
    protocol = uvicorn_protocol(server.header_timeout, max_connections(), server.send_timeout)
    return uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        http=protocol,
        timeout_keep_alive=max(1, round(server.idle_timeout)),
        timeout_graceful_shutdown=round(GRACEFUL_SHUTDOWN),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,  # h11's own bound; the protocol's holds for any parser
        server_header=False,
        # X-Forwarded-For/-Proto only from the reverse proxies the operator named: any client can send them
        proxy_headers=bool(server.trusted_proxies),
        forwarded_allow_ips=list(server.trusted_proxies),
    )


class ServerThread:
    """uvicorn serving `app` on an already listening `sock`, in a thread (signals stay with the
    main thread, which calls `stop`)."""

    def __init__(self, app: Any, sock: socket.socket, server: ServerConfig, name: str = "inlet-api") -> None:
        import uvicorn

        self.sock = sock
        bound = sock.getsockname()
        warn_if_reachable_in_clear(str(bound[0]), int(bound[1]))
        self.server = uvicorn.Server(uvicorn_config(app, server))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True, name=name)
        self.thread.start()

    def stop(self, timeout: float = GRACEFUL_SHUTDOWN + 2) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=timeout)
        self.sock.close()
