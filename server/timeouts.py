"""Bounds on slow and greedy clients: a request's headers must arrive within HEADER_TIMEOUT
seconds and hold at most MAX_HEADER_BYTES (a chunked body's trailer section too), a response the
client reads none of for SEND_TIMEOUT seconds closes its connection, a connection has at most
MAX_PIPELINED requests queued behind the one being answered, and no more than a fixed number of
client connections are open at once.

uvicorn times out an idle keep-alive connection but not one that trickles its request line and
headers a byte at a time, so a handful of slow clients can hold every connection open forever.
`bounded_protocol` wraps uvicorn's HTTP protocol class (httptools or h11, whichever uvicorn
picked) with a deadline armed when a connection opens and again after each response; it is met
when a new request/response cycle begins (the headers are complete). A missed deadline closes the
connection. The same wrapper counts the bytes a connection sends while its headers are awaited
(request line included, up to the empty line that ends them, however the reads split them): past
MAX_HEADER_BYTES it is answered 431 and closed before the parser sees them, whichever parser
uvicorn uses (httptools has no limit of its own and keeps every header byte in memory; h11's
`h11_max_incomplete_event_size` binds h11 only). httptools also parses the next request while an
answer is still on its way (a pipelining client): its header bytes are counted from the end of the
request before it and bounded alike, under the same deadline once its first bytes arrive; past
either, the connection reads nothing more (its transport stops reading: the client's sends stall
once the kernel's buffers are full, no byte is read and dropped) and closes after the answer in
flight (a 431 written then would cut into that answer), or at `send_timeout` if the client does not
read that answer. Its close then lingers (`_linger`): a close with unread bytes would reset the
connection and drop the end of the answer the kernel still holds, so the sending side is shut and
what the client sent is dropped until it closes too, at most `_DISCARD_AT_CLOSE` bytes or `_LINGER`
seconds. A connection that arrives while `max_connections` are open is closed at once, so a
flood of idle connections cannot take every file descriptor of the process. Slow bodies are
bounded by `middleware.BodyLimit`.

A chunked body may end with a trailer section (header lines after its last chunk), which
httptools parses into fields and uvicorn would add to the headers of the request already being
answered, holding every byte until the body deadline. Trailer fields are dropped as they are parsed
(inlet reads none), and the reads that go wholly to a trailer section (after a chunk's size line:
no chunk data, no new chunk, the request not ended) are counted: past MAX_HEADER_BYTES the
connection reads nothing more, is answered 431 if its answer has not started (else closes after
it) and closes, as for headers. The read holding the last chunk's size line is not counted, so at
most one read more is held. (h11 buffers trailers under `h11_max_incomplete_event_size`.)

The other direction is bounded too. A client that stops reading its answers fills the socket's
buffers; the transport then pauses writing (`pause_writing`) and the response waits for the client.
A deadline is armed there (and whenever a response ends, or the connection is closed, with bytes
still waiting): if the client has taken none of the waiting bytes (the transport's buffer and the
kernel's send queue) after `send_timeout` seconds, the connection is aborted, which frees its slot
and whatever it buffered; each time it has taken some, the deadline starts again.

A client that pipelines requests without waiting for the answers would make httptools parse every
request of each read into a queue without limit (uvicorn's `pipeline`: thousands of requests a
read, ~50 bytes held per byte sent): past MAX_PIPELINED queued requests they are dropped, nothing
more is read (as above) or served, and the connection is closed once the request being answered
is (RFC 9112 §9.3.2: a client that pipelines retries what was not answered). h11 parses no request before the
previous one is answered (it keeps the unparsed bytes instead, a read at most per answer), so only
httptools queues parsed requests.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import socket
import struct
import termios
import time
from typing import Any

from .errors import error_body

log = logging.getLogger(__name__)
HEADER_TIMEOUT = 10.0  # seconds from connection (or the previous response) to complete headers
MAX_HEADER_BYTES = 64 * 1024  # request line and headers of one request
SEND_TIMEOUT = 30.0  # seconds a response may wait for the client to read any of it
MAX_PIPELINED = 16  # requests a connection may have queued behind the one being answered
_DISCARD_AT_CLOSE = 16 * 2**20  # bytes a connection that stopped reading may still send, dropped at its close
_LINGER = 2.0  # seconds such a connection is read (and dropped) after its answer, for the client to close


def _too_large_response(max_header_bytes: int, what: str = "the request line and headers") -> bytes:
    body = json.dumps(error_body("headers_too_large", f"{what} are over {max_header_bytes} bytes")).encode()
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _kernel_unsent(transport: Any) -> int:
    """Bytes in the socket's send queue not yet acknowledged by the peer (Linux `SIOCOUTQ`); 0
    where the system does not say."""
    sock = transport.get_extra_info("socket")
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0])
    except (AttributeError, OSError, ValueError):
        return 0


_lingering: set[asyncio.Task[None]] = set()


def _linger(loop: asyncio.AbstractEventLoop, transport: Any) -> None:
    """Close a connection that stopped reading without resetting its answer: closing a TCP socket
    with unread bytes sends a reset, and the kernel drops what of the answer it still holds. So its
    sending side is shut (the client gets the end of the answer, then the end of the stream) and
    what the client sent is read and dropped until it closes too, at most `_DISCARD_AT_CLOSE` bytes
    or `_LINGER` seconds; on a duplicate of the socket, as the transport closes its own now."""
    try:
        own = socket.socket(fileno=os.dup(transport.get_extra_info("socket").fileno()))
    except (AttributeError, OSError, ValueError):
        return
    try:
        own.setblocking(False)
        own.shutdown(socket.SHUT_WR)
    except OSError:
        own.close()
        return

    async def drain() -> None:
        scratch, dropped = bytearray(65536), 0
        try:
            async with asyncio.timeout(_LINGER):
                while dropped < _DISCARD_AT_CLOSE and (n := await loop.sock_recv_into(own, scratch)):
                    dropped += n
        except (OSError, TimeoutError):
            pass  # reset by the client, or it sent on: the close below may reset what is left
        finally:
            own.close()

    task = loop.create_task(drain())
    _lingering.add(task)
    task.add_done_callback(_lingering.discard)


def bounded_protocol(
    base: type[asyncio.Protocol],
    timeout: float = HEADER_TIMEOUT,
    max_connections: int | None = None,
    max_header_bytes: int = MAX_HEADER_BYTES,
    send_timeout: float = SEND_TIMEOUT,
    max_pipelined: int = MAX_PIPELINED,
) -> type[asyncio.Protocol]:
    """`base` (a uvicorn HTTP protocol) with a deadline on the arrival of each request's headers,
    a bound on their size, a deadline on a response the client does not read, a bound on the
    requests queued behind the one being answered and, when `max_connections` is set, a cap on the
    open connections."""
    too_large = _too_large_response(max_header_bytes)
    trailers_too_large = _too_large_response(max_header_bytes, "the trailer fields after the last chunk of the body")

    class HeaderDeadline(base):  # type: ignore[valid-type, misc]
        _deadline: asyncio.TimerHandle | None = None
        _waiting_cycle: Any = None
        _header_bytes = 0  # received while the current request's headers are awaited
        _tail = b""  # the last bytes of the previous read: an empty line split across two reads
        _send_deadline: asyncio.TimerHandle | None = None
        _unsent = 0  # bytes waiting for the client when the send deadline was armed (`_waiting`)
        _drained = False  # writing resumed since then (the buffer fell below its low mark)
        _answering: Any = None  # httptools: the cycle being answered (uvicorn's `cycle` is the last parsed)
        _overflowed = False  # over `max_pipelined` or a header bound: nothing more is read or served
        _aborted = False  # by the send deadline: no answer is left to protect
        _awaiting = False  # httptools: the next request's headers are awaited while an answer is in flight
        _in_body = False  # httptools: the current request's headers are in, its end is not
        _chunk_open = False  # httptools: a chunk's size line was parsed and none of its data since
        _chunks = 0  # httptools: chunk size lines parsed in the current request
        _trailer_bytes = 0  # read wholly inside the current request's trailer section

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if max_connections is not None and len(self.connections) > max_connections:
                _refused()
                transport.abort()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._overflowed:
                self.transport.pause_reading()  # uvicorn resumed it (an answer ended, a body was read)
                return  # closing once the request being answered is: what follows is not served
            if (self._deadline is not None or self._awaiting) and self._headers_over(data):
                if not self.transport.is_closing():
                    self._refuse_headers()
                return
            trailing, chunks = self._chunk_open, self._chunks
            super().data_received(data)
            if self._deadline is not None and self.cycle is not self._waiting_cycle:
                self._disarm()  # a new cycle: the headers are in
            if trailing and self._chunk_open and self._chunks == chunks and self._in_body:
                self._trailers_read(len(data))

        def _headers_over(self, data: bytes) -> bool:
            """Whether, with `data`, the awaited request line and headers exceed the bound; the bytes
            after the empty line that ends them (a body, a next request) do not count."""
            seen, joined = self._header_bytes, self._tail + data
            ends = [i for i in (joined.find(b"\r\n\r\n"), joined.find(b"\n\n")) if i >= 0]
            self._header_bytes += len(data)
            self._tail = data[-3:]
            if ends:
                return seen - (len(joined) - len(data)) + min(ends) + 2 > max_header_bytes
            return self._header_bytes > max_header_bytes

        def on_message_begin(self) -> None:
            """httptools' callback for the first bytes of a request, also those in the same read as the
            request before: one pipelined behind an answer in flight has a deadline from here on."""
            super().on_message_begin()
            self._in_body = self._chunk_open = False
            if self._awaiting and self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # the deadline of the request before, if its read is still being parsed
                self._waiting_cycle = self.cycle
                self._deadline = self.loop.call_later(timeout, self._late)

        def on_message_complete(self) -> None:
            """httptools' callback for the end of a request (its body included): what follows is
            the next request, its headers first, counted even while this one's answer is in flight."""
            self._in_body = self._chunk_open = False
            super().on_message_complete()
            self._awaiting, self._header_bytes, self._tail = True, 0, b""

        def on_header(self, name: bytes, value: bytes) -> None:
            """httptools' callback for each header field, and for each trailer field after a chunked
            body's last chunk: uvicorn would add those to the headers of a request already being
            answered; they are dropped (inlet reads none)."""
            if not self._in_body:
                super().on_header(name, value)

        def on_chunk_header(self) -> None:
            """httptools' callback for each chunk's size line (the last chunk's too: what follows it
            is the trailer section, until the empty line that ends the request)."""
            self._chunk_open, self._chunks = True, self._chunks + 1

        def on_body(self, body: bytes) -> None:
            self._chunk_open = False
            super().on_body(body)

        def _trailers_read(self, size: int) -> None:
            """A read went wholly to the trailer section (after a chunk's size line, no chunk data,
            no new chunk, the request not complete): past `max_header_bytes` in all, 431 and close."""
            self._trailer_bytes += size
            if self._trailer_bytes <= max_header_bytes or self._overflowed:
                return
            log.info(
                "closing a connection from %s: trailer fields after a chunked body over %d bytes",
                (self.client or ("?",))[0],
                max_header_bytes,
            )
            self._stop_reading()  # its close lingers: the 431 is not lost to a reset
            cycle = self.cycle
            if cycle.response_started and not cycle.response_complete:
                cycle.keep_alive = False  # uvicorn closes after it; a close now cuts it off
                return
            if not cycle.response_started:
                self.transport.write(trailers_too_large)  # the app waiting for the body gets a disconnect
            self.transport.close()
            self._watch_send()

        def on_response_complete(self) -> None:
            if getattr(self, "pipeline", None):
                self._answering = self.pipeline[-1][0]  # the request uvicorn starts next
            super().on_response_complete()
            self._watch_send()  # an answer the kernel could not take yet: closing waits for it
            self._arm()

        def on_headers_complete(self) -> None:
            """httptools' callback for each parsed request (h11 has none: it parses no request
            before the previous one is answered). Past `max_pipelined` queued ones, the queue is
            dropped and the connection closes once the request being answered is."""
            if self._overflowed:
                return  # the rest of the read that overflowed: not served
            self._awaiting, self._in_body, self._chunk_open, self._chunks, self._trailer_bytes = (
                False,
                True,
                False,
                0,
                0,
            )
            super().on_headers_complete()
            if not self.pipeline:
                self._answering = self.cycle  # started at once
            elif len(self.pipeline) > max_pipelined:
                log.info(
                    "closing a connection from %s: over %d pipelined requests waiting for an answer",
                    (self.client or ("?",))[0],
                    max_pipelined,
                )
                self._stop_reading()
                self.pipeline.clear()
                answering = self._answering
                if answering is not None and not answering.response_complete:
                    answering.keep_alive = False  # uvicorn closes after it; a close now cuts it off
                else:
                    self.transport.close()
                    self._watch_send()

        def pause_writing(self) -> None:
            super().pause_writing()
            self._watch_send()

        def resume_writing(self) -> None:
            self._drained = True  # the client took some: progress, however much is written after
            super().resume_writing()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._overflowed and exc is None and not self._aborted:
                _linger(self.loop, self.transport)  # the socket closes next: its answer must not be reset
            self._disarm()
            if self._send_deadline is not None:
                self._send_deadline.cancel()
                self._send_deadline = None
            super().connection_lost(exc)

        def _watch_send(self) -> None:
            """Arm the send deadline if bytes wait for the client and it is not armed yet."""
            if self._send_deadline is None and self.transport.get_write_buffer_size():
                self._unsent, self._drained = self._waiting(), False
                self._send_deadline = self.loop.call_later(send_timeout, self._send_late)

        def _waiting(self) -> int:
            """Bytes of answers the client has not taken: the transport's buffer and the kernel's
            send queue (which alone moves while a slow client reads a large buffer down)."""
            return self.transport.get_write_buffer_size() + _kernel_unsent(self.transport)

        def _send_late(self) -> None:
            """`send_timeout` seconds since the deadline was armed: nothing waits any more, done;
            the client took some (less waits, or writing resumed meanwhile), wait again; it took
            none, abort (a close waits for the buffer to drain, for ever if the client never reads)."""
            self._send_deadline = None
            if self._drained or self._waiting() < self._unsent:
                self._watch_send()
                return
            log.info(
                "closing a connection from %s: the client read none of its answer within %g s",
                (self.client or ("?",))[0],
                send_timeout,
            )
            self._aborted = True
            self.transport.abort()

        def _arm(self) -> None:
            self._disarm()
            self._header_bytes, self._tail = 0, b""
            in_flight = self.cycle is not None and not self.cycle.response_complete  # pipelined
            if not in_flight and not self.transport.is_closing():
                self._waiting_cycle = self.cycle
                self._deadline = self.loop.call_later(timeout, self._late)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _refuse_headers(self) -> None:
            """431 and close: a client sending more header bytes than any real one does is not read on."""
            self._disarm()
            log.info(
                "closing a connection from %s: request headers over %d bytes",
                (self.client or ("?",))[0],
                max_header_bytes,
            )
            if self._finish_answer():
                return
            self.transport.write(too_large)
            self.transport.close()
            self._watch_send()

        def _finish_answer(self) -> bool:
            """With an answer in flight: read nothing more and close once it is sent (True); else False."""
            if self.cycle is None or self.cycle.response_complete:
                return False
            self._stop_reading()
            self.cycle.keep_alive = False  # uvicorn closes after it; a close now cuts it off
            return True

        def _stop_reading(self) -> None:
            """Read nothing more from this connection: what the client sends waits in the kernel's
            buffers (then its sends stall) until the close discards it (`connection_lost`)."""
            self._overflowed = True
            self.transport.pause_reading()

        def _late(self) -> None:
            self._deadline = None
            if self.cycle is self._waiting_cycle and not self.transport.is_closing():
                log.info(
                    "closing a connection from %s: no complete request headers within %g s",
                    (self.client or ("?",))[0],
                    timeout,
                )
                if self._finish_answer():
                    return
                self.transport.close()
                self._watch_send()

    refused = {"at": 0.0}

    def _refused() -> None:  # one log line a minute, not one per connection
        now = time.monotonic()
        if now - refused["at"] > 60:
            refused["at"] = now
            log.warning("over %d open connections: closing new ones as they arrive", max_connections)

    HeaderDeadline.__name__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline


def uvicorn_protocol(
    timeout: float = HEADER_TIMEOUT, max_connections: int | None = None, send_timeout: float = SEND_TIMEOUT
) -> type[asyncio.Protocol]:
    """The protocol uvicorn would pick by itself ("auto": httptools when installed), bounded (its
    headers' size, unread answers and pipelined requests included: `bounded_protocol`)."""
    base: type[asyncio.Protocol]
    try:
        import httptools  # noqa: F401

        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol
    return bounded_protocol(base, timeout, max_connections, send_timeout=send_timeout)
