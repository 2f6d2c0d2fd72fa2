"""Slow or hostile clients are bounded: headers have a deadline, a stalled body is a 408, a body
is never read before the key is checked, an answer nobody reads has a deadline, pipelined requests
queue only so far, forwarding headers name no client, and GET /mcp opens no never-ending event
stream."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from inlet.config import ServerConfig, Settings
from inlet.index.store import Index
from inlet.server.app import create_app
from inlet.server.listener import ServerThread
from inlet.server.middleware import BodyLimit
from inlet.server.timeouts import MAX_PIPELINED, uvicorn_protocol

from .conftest import ALICE, KEYS, serve

DEADLINE = 0.5
SEND_TIMEOUT = 0.5
SLACK = 5.0  # seconds beyond a deadline, for a loaded two-core machine
BIG = 16 * 2**20  # an answer larger than any socket buffer: the writer must wait for the reader
LIMIT = 8 * 2**20  # bytes a hostile connection may make the server allocate


@pytest.fixture(scope="module")
def served(settings: Settings, index: Index) -> Iterator[str]:
    """The API on a real uvicorn with the bounded protocol and a short header deadline."""
    yield from serve(create_app(settings, index=index, env=KEYS), http=uvicorn_protocol(DEADLINE))


def flood(conn: socket.socket, piece: bytes, timeout: float = 0.2, stalls: int = 10) -> tuple[int, int, bool]:
    """Send `piece` again and again until 64 MiB are sent, this process (the server's too) has
    allocated LIMIT, `stalls` sends in a row found no room within `timeout` seconds (the server reads
    no more), or the server closed the connection: (bytes sent, peak bytes allocated, closed)."""
    sent, stalled, closed = 0, 0, False
    conn.settimeout(timeout)
    tracemalloc.start()
    try:
        while sent < 64 * 2**20 and tracemalloc.get_traced_memory()[1] < LIMIT and stalled < stalls:
            try:
                sent += conn.send(piece)
                stalled = 0
            except TimeoutError:
                stalled += 1  # the server reads no more, for now at least
            except OSError:
                closed = True  # by the server
                break
        return sent, tracemalloc.get_traced_memory()[1], closed
    finally:
        tracemalloc.stop()


def closed_after(address: str, payload: bytes) -> tuple[bytes, float]:
    """Send `payload`, then nothing; what the server sent and when it closed the connection."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        started = time.monotonic()
        conn.sendall(payload)
        received = b""
        while chunk := conn.recv(4096):
            received += chunk
        return received, time.monotonic() - started


def test_headers_that_never_finish_are_cut_off(served: str) -> None:
    received, seconds = closed_after(served, b"POST /v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bea")
    assert received == b"" and seconds < 15


def test_an_idle_connection_is_cut_off_and_a_normal_request_still_works(served: str) -> None:
    received, seconds = closed_after(served, b"")
    assert received == b"" and seconds < 15
    response = httpx.post(f"http://{served}/v1/search", json={"query": "deploy"}, headers=ALICE, timeout=30)
    assert response.status_code == 200 and response.json()["results"]


def test_oversized_headers_are_refused_and_the_connection_closed_before_all_is_read(served: str) -> None:
    """64 MiB of header lines (any parser: httptools keeps no limit of its own) are answered 431 and
    the connection closed after the first MAX_HEADER_BYTES or so, not read to the end."""
    host, port = served.split(":")
    line = b"X-Big: " + b"a" * (1 << 20) + b"\r\n"
    sent, received = 0, b""
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        try:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            for _ in range(64):
                conn.sendall(line)
                sent += 1
            conn.sendall(b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: what the test wants
        try:
            while chunk := conn.recv(4096):
                received += chunk
        except ConnectionResetError:
            pass
    assert sent < 64, "the server read 64 MiB of headers"
    assert received.startswith(b"HTTP/1.1 431 ") and b'"headers_too_large"' in received, received[:200]
    response = httpx.get(f"http://{served}/healthz", headers={"X-Fine": "a" * 8000}, timeout=30)
    assert response.status_code == 200  # headers of a normal size are fine


def chunked_search(trailers: bytes) -> bytes:
    """A POST /v1/search as alice with a chunked body: one chunk, the last chunk, then `trailers`."""
    body = b'{"query": "deploy"}'
    return (
        b"POST /v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: " + ALICE["Authorization"].encode()
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n" + trailers
    )  # fmt: skip


@pytest.mark.parametrize("piece", [b"X-T: " + b"a" * 1024 + b"\r\n", b"a" * 1024], ids=["fields", "one-field"])
def test_a_trailer_flood_is_refused_like_a_header_flood(served: str, piece: bytes) -> None:
    """probe35a F1: the trailer section of a chunked body (header lines after its last chunk) was
    kept in memory without bound until the body deadline (1.1 GB in 30 s, never given back). It is
    bounded like headers (many fields, or one that never ends): past the bound the server reads no
    more, answers 431 and closes; a body with a few trailer fields is served."""
    host, port = served.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(chunked_search(b"X-T: "))
        sent, peak, closed = flood(conn, piece * 64)
        conn.settimeout(30)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError:
            closed = True
    assert peak < LIMIT, f"over {peak / 2**20:.1f} MiB allocated after {sent / 2**20:.1f} MiB were sent"
    assert sent < 32 * 2**20, f"the server read on: {sent / 2**20:.1f} MiB of trailers taken"
    assert received.startswith(b"HTTP/1.1 431 ") and b'"headers_too_large"' in received, (closed, received[:200])
    answer = exchange(served, chunked_search(b"X-Checksum: abc\r\nConnection: close\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"results"' in answer, answer[:300]


def exchange(served: str, request: bytes) -> bytes:
    """Send `request` in one write (its last request says `Connection: close`); what the server
    answers until it closes the connection."""
    host, port = served.split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(request)
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


def test_the_header_bound_counts_the_headers_alone_however_they_arrive(served: str) -> None:
    """70 KiB of headers arriving whole in one read are over the bound too (431); requests whose
    headers are small are served, also pipelined in one write with more than the bound in all."""
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n"
    assert exchange(served, big).startswith(b"HTTP/1.1 431 ")
    fine = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fine: " + b"a" * (40 * 1024) + b"\r\n\r\n"
    last = fine.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    answers = exchange(served, fine + last)
    assert answers.count(b"HTTP/1.1 200 ") == 2, answers[:300]


def test_get_mcp_offers_no_event_stream(served: str) -> None:
    stream = httpx.get(f"http://{served}/mcp", headers={**ALICE, "Accept": "text/event-stream"}, timeout=30)
    assert stream.status_code == 405 and stream.headers["allow"] == "POST"
    assert stream.json()["error"]["code"] == "method_not_allowed"
    assert httpx.get(f"http://{served}/mcp", headers={"Accept": "text/event-stream"}, timeout=30).status_code == 401


# --- the listener's other bounds, on a bare app ----------------------------------------------------
async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """`/big`: BIG bytes; anything else: the client and scheme the server took the request from."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    big = scope["path"] == "/big"
    body = b"" if big else json.dumps({"client": scope["client"][0], "scheme": scope["scheme"]}).encode()
    length = BIG if big else len(body)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(length).encode())]})
    if big:
        for _ in range(BIG // 65536):
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def bare() -> Iterator[ServerThread]:
    """`bare_app` behind inlet's listener configuration (`ServerThread`), with a short send deadline."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    thread = ServerThread(bare_app, sock, ServerConfig(send_timeout=SEND_TIMEOUT))
    yield thread
    thread.stop(timeout=30)


@pytest.fixture
def listener(bare: ServerThread) -> tuple[str, int]:
    return "127.0.0.1", int(bare.sock.getsockname()[1])


def test_an_answer_the_client_never_reads_closes_its_connection(
    bare: ServerThread, listener: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    """probe31a #1: clients that sent a request and never read the answer held their connection (and
    its slot) for ever; now the connection is dropped once the client took nothing for send_timeout."""
    connections = bare.server.server_state.connections  # the slots `max_connections` counts
    with socket.socket() as conn, caplog.at_level("INFO", logger="inlet.server.timeouts"):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect(listener)
        conn.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + SEND_TIMEOUT + SLACK
        while not any("read none of its answer" in r.getMessage() for r in caplog.records) or connections:
            assert time.monotonic() < deadline, "the server still holds a connection nobody reads"
            time.sleep(0.05)
        received = b""
        while chunk := conn.recv(2**20):  # what the kernel still had, then the end: cut short
            received += chunk
    assert len(received) < BIG
    answer = httpx.get(f"http://{listener[0]}:{listener[1]}/who", timeout=30)
    assert answer.status_code == 200  # the listener serves on


def test_pipelined_requests_queue_only_so_far(listener: tuple[str, int]) -> None:
    """probe31a #2: one connection pipelining tiny requests made httptools queue every one it parsed
    (~50 bytes held per byte sent, never given back). Past MAX_PIPELINED waiting, the connection is
    closed after the answer in progress, whether the client reads its answers or not."""
    one = b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(listener, timeout=30) as conn:
        conn.sendall(one * 200)
        received = b""
        try:
            while chunk := conn.recv(65536):  # until the server closes
                received += chunk
        except ConnectionResetError:
            pass
    assert 1 <= received.count(b"HTTP/1.1 200 ") <= 1 + MAX_PIPELINED, received.count(b"HTTP/1.1 200 ")

    with socket.socket() as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect(listener)
        sent, peak, closed = flood(conn, one * 2048, timeout=1, stalls=30)  # never reading an answer
    assert peak < LIMIT, f"over {peak / 2**20:.1f} MiB allocated after {sent / 2**20:.1f} MiB were sent"
    assert closed, f"the server read {sent / 2**20:.1f} MiB of pipelined requests"


@pytest.mark.parametrize("past", ["bound", "deadline"])
def test_the_header_bound_holds_while_an_answer_is_in_flight(past: str, caplog: pytest.LogCaptureFixture) -> None:
    """probe33h #1: while an answer waited for its client, the next request's header bytes went to
    the parser uncounted (1.5 GB held, never given back). They are bounded like any request's: past
    the bound they are dropped unparsed, the answer in flight still arrives whole, then the
    connection closes. probe34a N2: past the bound (or the header deadline) the server read on and
    dropped every byte until the send deadline (38 GB in 30 s); now it reads nothing more, so the
    client's sends stall once the kernel's buffers are full."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    config = ServerConfig(header_timeout=DEADLINE)  # the default send deadline: the answer waits
    thread = ServerThread(bare_app, sock, config)
    line = b"X-Pad: " + b"a" * 1024 + b"\r\n"
    try:
        with socket.socket() as conn, caplog.at_level("INFO", logger="inlet.server.timeouts"):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn.connect(sock.getsockname())
            conn.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            conn.sendall(b"GET /who HTTP/1.1\r\nHost: x\r\n")  # headers that never end
            if past == "deadline":  # a few bytes now, the flood once the deadline has passed
                conn.sendall(line)
                deadline = time.monotonic() + DEADLINE + SLACK
                while not any("no complete request headers" in r.getMessage() for r in caplog.records):
                    assert time.monotonic() < deadline, "the header deadline did not pass"
                    time.sleep(0.05)
            sent, peak, _ = flood(conn, line * 64)
            conn.settimeout(30)
            received = b""
            while chunk := conn.recv(2**20):
                received += chunk
    finally:
        thread.stop(timeout=30)
    assert peak < LIMIT, f"over {peak / 2**20:.1f} MiB allocated after {sent / 2**20:.1f} MiB were sent"
    assert sent < 32 * 2**20, f"the server read on: {sent / 2**20:.1f} MiB of header taken"
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"x" * BIG, (head[:200], len(body))


def test_forwarding_headers_name_no_client(listener: tuple[str, int]) -> None:
    """probe31a #3: uvicorn's default trusted X-Forwarded-For/-Proto from 127.0.0.1, i.e. from every
    local client, so any of them chose the address the access log names. Now only a peer listed in
    `[server] trusted_proxies` is a proxy."""
    forged = {"X-Forwarded-For": "203.0.113.66", "X-Forwarded-Proto": "https", "Forwarded": "for=203.0.113.66"}
    answer = httpx.get(f"http://{listener[0]}:{listener[1]}/who", headers=forged, timeout=30)
    assert answer.json() == {"client": "127.0.0.1", "scheme": "http"}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    behind_proxy = ServerThread(bare_app, sock, ServerConfig(trusted_proxies=["127.0.0.0/8"]))
    try:
        answer = httpx.get(f"http://127.0.0.1:{sock.getsockname()[1]}/who", headers=forged, timeout=30)
    finally:
        behind_proxy.stop(timeout=30)
    assert answer.json() == {"client": "203.0.113.66", "scheme": "https"}
    for wrong in ("*", "proxy.example", "10.0.0.0/33"):
        with pytest.raises(ValueError, match="IP address or network of a reverse proxy"):
            ServerConfig(trusted_proxies=[wrong])


# --- bodies, at the ASGI boundary ------------------------------------------------------------------
def run_asgi(
    app: Any, headers: list[tuple[bytes, bytes]], receive: Any, path: str = "/v1/search", within: float | None = None
) -> list[dict[str, Any]]:
    """What `app` sent for a POST to `path`; `within`: seconds after which it is taken for held for
    ever (`TimeoutError`: the test fails, it does not wait on)."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "http_version": "1.1",
        "scheme": "http",
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), within))
    return sent


def test_a_stalled_body_is_a_408() -> None:
    async def endpoint(scope: Any, receive: Any, send: Any) -> None:  # never reached
        raise AssertionError("the app ran with a stalled body")

    async def stall() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    sent = run_asgi(BodyLimit(endpoint, max_body_bytes=1000, idle_timeout=0.2), [], stall)
    assert sent[0]["status"] == 408 and b"request_timeout" in sent[1]["body"]


def test_a_hook_body_has_a_shorter_deadline_than_other_bodies() -> None:
    async def endpoint(scope: Any, receive: Any, send: Any) -> None:  # never reached
        raise AssertionError("the app ran with a stalled body")

    async def stall() -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    refused: list[str] = []

    async def refusal(scope: Any, receive: Any, send: Any, why: str) -> None:  # the hooks' own answer
        refused.append(why)
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})

    limit = BodyLimit(endpoint, max_body_bytes=1000, idle_timeout=3600, quick=("/hooks/", 0.2, refusal))
    sent = run_asgi(limit, [], stall, path="/hooks/outlook/mail")  # not the hour other routes get
    assert sent[0]["status"] == 404 and refused == ["its body stalled (over 0 s between two parts, or 0 s in all)"]


def test_a_hook_nobody_registered_is_404_before_its_body_is_read(settings: Settings, index: Index) -> None:
    app = create_app(settings, index=index, env=KEYS)
    reads: list[int] = []

    async def receive() -> dict[str, Any]:
        reads.append(1)
        return {"type": "http.request", "body": b"{}", "more_body": False}

    sent = run_asgi(app, [(b"content-type", b"application/json")], receive, path="/hooks/outlook/made-up")
    assert sent[0]["status"] == 404 and reads == []


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/console", "/console/app.js", "/docs"])
def test_a_route_without_a_key_reads_no_body(settings: Settings, index: Index, path: str) -> None:
    app = create_app(settings, index=index, env=KEYS)
    reads: list[int] = []

    async def receive() -> dict[str, Any]:
        reads.append(1)
        return {"type": "http.request", "body": b"x", "more_body": True}  # a trickle, never done

    for declared in [(b"content-length", b"1000"), (b"transfer-encoding", b"chunked")]:
        sent = run_asgi(app, [declared], receive, path=path)
        assert sent[0]["status"] == 413 and reads == [], sent[:1]
        assert (b"connection", b"close") in sent[0]["headers"]


@pytest.mark.parametrize("authorization", [None, b"Bearer not-a-key"])
def test_no_body_is_read_before_the_key_is_checked(
    settings: Settings, index: Index, authorization: bytes | None
) -> None:
    app = create_app(settings, index=index, env=KEYS)
    reads: list[int] = []

    async def receive() -> dict[str, Any]:
        reads.append(1)
        return {"type": "http.request", "body": b'{"query": "x"}', "more_body": False}

    headers = [(b"content-type", b"application/json")] + ([(b"authorization", authorization)] if authorization else [])
    sent = run_asgi(app, headers, receive)
    assert sent[0]["status"] == 401 and reads == []
    ok = run_asgi(app, [*headers[:1], (b"authorization", ALICE["Authorization"].encode())], receive)
    assert ok[0]["status"] in (200, 503) and reads  # a valid key: the body is read
