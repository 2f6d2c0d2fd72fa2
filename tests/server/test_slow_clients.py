"""Slow or hostile clients are bounded: headers have a deadline, a stalled body is a 408, a body
is never read before the key is checked, and GET /mcp opens no never-ending event stream."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from inlet.config import Settings
from inlet.index.store import Index
from inlet.server.app import create_app
from inlet.server.middleware import BodyLimit
from inlet.server.timeouts import uvicorn_protocol

from .conftest import ALICE, KEYS, serve

DEADLINE = 0.5


@pytest.fixture(scope="module")
def served(settings: Settings, index: Index) -> Iterator[str]:
    """The API on a real uvicorn with the bounded protocol and a short header deadline."""
    yield from serve(create_app(settings, index=index, env=KEYS), http=uvicorn_protocol(DEADLINE))


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


# --- bodies, at the ASGI boundary ------------------------------------------------------------------
def run_asgi(
    app: Any, headers: list[tuple[bytes, bytes]], receive: Any, path: str = "/v1/search"
) -> list[dict[str, Any]]:
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
    asyncio.run(app(scope, receive, send))
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
