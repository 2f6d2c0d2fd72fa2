"""Bounds on slow clients: a request's headers must arrive within HEADER_TIMEOUT seconds, and
no more than a fixed number of client connections are open at once.

uvicorn times out an idle keep-alive connection but not one that trickles its request line and
headers a byte at a time, so a handful of slow clients can hold every connection open forever.
`bounded_protocol` wraps uvicorn's HTTP protocol class (httptools or h11, whichever uvicorn
picked) with a deadline armed when a connection opens and again after each response; it is met
when a new request/response cycle begins (the headers are complete). A missed deadline closes the
connection. A connection that arrives while `max_connections` are open is closed at once, so a
flood of idle connections cannot take every file descriptor of the process. Slow bodies are
bounded by `middleware.BodyLimit`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger(__name__)
HEADER_TIMEOUT = 10.0  # seconds from connection (or the previous response) to complete headers


def bounded_protocol(
    base: type[asyncio.Protocol], timeout: float = HEADER_TIMEOUT, max_connections: int | None = None
) -> type[asyncio.Protocol]:
    """`base` (a uvicorn HTTP protocol) with a deadline on the arrival of each request's headers
    and, when `max_connections` is set, a cap on the open connections."""

    class HeaderDeadline(base):  # type: ignore[valid-type, misc]
        _deadline: asyncio.TimerHandle | None = None
        _waiting_cycle: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if max_connections is not None and len(self.connections) > max_connections:
                _refused()
                transport.abort()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._deadline is not None and self.cycle is not self._waiting_cycle:
                self._disarm()  # a new cycle: the headers are in

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            in_flight = self.cycle is not None and not self.cycle.response_complete  # pipelined
            if not in_flight and not self.transport.is_closing():
                self._waiting_cycle = self.cycle
                self._deadline = self.loop.call_later(timeout, self._late)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _late(self) -> None:
            self._deadline = None
            if self.cycle is self._waiting_cycle and not self.transport.is_closing():
                log.info(
                    "closing a connection from %s: no complete request headers within %.0f s",
                    (self.client or ("?",))[0],
                    timeout,
                )
                self.transport.close()

    refused = {"at": 0.0}

    def _refused() -> None:  # one log line a minute, not one per connection
        now = time.monotonic()
        if now - refused["at"] > 60:
            refused["at"] = now
            log.warning("over %d open connections: closing new ones as they arrive", max_connections)

    HeaderDeadline.__name__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline


def uvicorn_protocol(timeout: float = HEADER_TIMEOUT, max_connections: int | None = None) -> type[asyncio.Protocol]:
    """The protocol uvicorn would pick by itself ("auto": httptools when installed), bounded."""
    base: type[asyncio.Protocol]
    try:
        import httptools  # noqa: F401

        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol
    return bounded_protocol(base, timeout, max_connections)
