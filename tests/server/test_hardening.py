"""What an outside probe of a running server found, each reproduced and bounded: bodies of every
method and framing are limited in size and time (memory measured), hooks answer a request that
fails its secret exactly like a hook nobody registered (no 500 for any body, one log line per
request however many notifications it holds), every response carries nosniff and no-referrer,
the console links only http/https/mailto URLs, and the API's labels, 404s and times are right."""

from __future__ import annotations

import json
import logging
import random
import re
import selectors
import socket
import subprocess
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from inlet.connectors.events import EventSource, WebhookRequest, WebhookResponse
from inlet.connectors.google_drive_events import DrivePushChannels
from inlet.connectors.kit.graph_webhooks import GraphWebhooks
from inlet.index.store import Index
from inlet.server.app import create_app

from .conftest import ALICE, KEYS, OPS, serve, settings_for

BODY_TIMEOUT = 1.0
SLACK = 5.0  # seconds beyond a deadline, for a loaded two-core machine
HINTS: list[Any] = []


def event_sources() -> dict[tuple[str, str], Any]:
    """The real Graph and Drive event sources of two sources, each with one live subscription/channel."""
    graph = GraphWebhooks(
        source="mail",
        url="http://x/hooks/outlook/mail",
        lifetime=3600,
        client=lambda: None,  # type: ignore[arg-type,return-value]
        resources=lambda client: {},
        change_type="created",
    )
    sub = graph.renewals.add("inbox", resource="/users/box/mailFolders('inbox')/messages")
    sub.id, sub.expires = "sub-1", time.time() + 3600
    graph.emit = HINTS.append
    drive = DrivePushChannels(SimpleNamespace(name="drive"), "http://x/hooks/google_drive/drive", 3600)  # type: ignore[arg-type]
    drive.channel.id, drive.channel.expires = "chan-1", time.time() + 3600
    drive.channel.data["resource_id"] = "res-1"
    drive.held.add("chan-1")  # as `changes.watch` left it
    drive.emit = HINTS.append
    return {("outlook", "mail"): graph, ("google_drive", "drive"): drive, ("docket", "wiki"): Crashing()}


class Crashing(EventSource):
    """A plug-in's event source whose `webhook` has a bug (it raises before checking the secret)."""

    def start(self, emit: Any) -> None:
        self.emit, self.live = emit, True

    def stop(self) -> None:
        self.live = False

    def webhook(self, request: WebhookRequest) -> WebhookResponse:
        raise RuntimeError("plug-in bug in webhook")


def with_hooks(app: Any) -> Any:
    sources = event_sources()
    app.state.hooks = lambda type_, name: sources.get((type_, name))
    app.state.event_sources = sources
    return app


@pytest.fixture(scope="module")
def hooked(index: Index) -> Iterator[TestClient]:
    app = with_hooks(create_app(settings_for(index.path), index=index, env=KEYS))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.retrieval.ready.wait(60)
        yield client


@pytest.fixture(scope="module")
def served(index: Index) -> Iterator[str]:
    """A real uvicorn (chunked framing, stalls) with hooks and a short body timeout."""
    app = with_hooks(create_app(settings_for(index.path, body_timeout=BODY_TIMEOUT), index=index, env=KEYS))
    yield from serve(app)


# --- bodies: every method and framing, bounded in size and time ------------------------------------
def chunked(address: str, head: str) -> socket.socket:
    host, port = address.split(":")
    conn = socket.create_connection((host, int(port)), timeout=30)
    conn.sendall(f"{head}\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    return conn


def response_of(conn: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := conn.recv(65536):
            received += chunk
    except OSError:
        pass
    return received


@pytest.mark.parametrize(
    "head",
    [
        "GET /hooks/outlook/mail HTTP/1.1",
        "POST /hooks/outlook/mail HTTP/1.1",
        "GET /hooks/outlook/nobody HTTP/1.1",
        "DELETE /console HTTP/1.1",
    ],
)
def test_a_huge_chunked_body_is_refused_early_with_bounded_memory(served: str, head: str) -> None:
    """The probe's 287 MiB chunked GET to a hook grew the daemon by 546 MiB; here 48 MiB are offered."""
    piece = b"x" * 65536
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    tracemalloc.start()
    started = time.monotonic()
    conn = chunked(served, head)
    sent = 0
    answered = selectors.DefaultSelector()  # epoll: select() refuses descriptors past 1023
    answered.register(conn, selectors.EVENT_READ)
    try:
        for _ in range(768):  # 48 MiB unless the server answers first
            if answered.select(0):
                break
            conn.sendall(frame)
            sent += len(piece)
    except OSError:
        pass  # the server closed the connection: it read no more
    finally:
        answered.close()
    received = response_of(conn)
    conn.close()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    seconds = time.monotonic() - started
    # A hook, live or made up, answers 404 (a live one after reading its limit: the status tells
    # no listening source from a made-up one); other paths 413.
    refused = b"HTTP/1.1 404" if "/hooks/" in head else b"HTTP/1.1 413"
    assert received.startswith(refused), received[:200]
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB allocated while {sent / 2**20:.1f} MiB were offered"
    assert seconds < SLACK


@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickled"])
@pytest.mark.parametrize("path", ["/hooks/outlook/mail", "/hooks/google_drive/drive"])
def test_a_stalled_or_trickled_body_times_out(served: str, path: str, trickle: bool) -> None:
    conn = chunked(served, f"GET {path} HTTP/1.1")
    started = time.monotonic()
    conn.sendall(b"1\r\n{\r\n")
    if trickle:  # one byte every half deadline: never idle for long, but never done
        conn.settimeout(BODY_TIMEOUT / 2)
        for _ in range(int(8 * SLACK / BODY_TIMEOUT)):
            try:
                if conn.recv(1, socket.MSG_PEEK):
                    break
            except TimeoutError:
                conn.sendall(b"1\r\n \r\n")
        conn.settimeout(30)
    received = response_of(conn)
    seconds = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 404"), received[:200]  # a hook nobody registered's answer
    assert seconds < 2 * BODY_TIMEOUT + SLACK


# --- hooks: a refused request looks like a hook nobody registered ------------------------------------
REFUSED_SHAPES: list[tuple[str, str, dict[str, Any], bytes]] = [
    ("GET", "outlook/mail", {}, b""),
    ("POST", "outlook/mail", {}, b""),
    ("POST", "outlook/mail", {}, b"not json"),
    ("POST", "outlook/mail", {}, b"[1, 2]"),
    ("POST", "outlook/mail", {}, b'{"value": "x"}'),
    ("POST", "outlook/mail", {}, b'{"value": [{}]}'),
    ("POST", "outlook/mail", {}, '{"value": [{"clientState": "é", "subscriptionId": "sub-1"}]}'.encode()),
    ("POST", "outlook/mail", {}, b'{"value": [{"clientState": 5}]}'),
    ("POST", "outlook/mail", {}, b'{"value": [{"clientState": "\\ud800"}]}'),
    ("GET", "outlook/mail", {}, b'{"value": []}'),
    ("GET", "google_drive/drive", {}, b""),
    ("POST", "google_drive/drive", {}, b""),
    ("POST", "google_drive/drive", {"X-Goog-Channel-ID": "chan-1", "X-Goog-Channel-Token": "guess"}, b""),
    ("POST", "google_drive/drive", {"X-Goog-Channel-ID": "chan-1", "X-Goog-Channel-Token": "é".encode()}, b""),
    ("POST", "google_drive/drive", {"X-Goog-Channel-ID": "other", "X-Goog-Channel-Token": "guess"}, b""),
]


def shape(response: httpx.Response) -> tuple[int, bytes, str, str | None]:
    return (
        response.status_code,
        response.content,
        response.headers.get("content-type", ""),
        response.headers.get("x-content-type-options"),
    )


@pytest.mark.parametrize("method,hook,headers,body", REFUSED_SHAPES)
def test_a_request_failing_the_secret_is_answered_like_an_unknown_hook(
    hooked: TestClient, method: str, hook: str, headers: dict[str, Any], body: bytes
) -> None:
    known = hooked.request(method, f"/hooks/{hook}", headers=headers, content=body)
    unknown = hooked.request(method, f"/hooks/{hook.split('/')[0]}/nobody", headers=headers, content=body)
    assert shape(known) == shape(unknown)
    assert known.status_code == 404 and known.headers["x-content-type-options"] == "nosniff"


def test_the_validation_handshake_is_the_one_exception_and_is_not_sniffed(hooked: TestClient) -> None:
    answer = hooked.post("/hooks/outlook/mail", params={"validationToken": "<b>abc</b>"})
    assert answer.status_code == 200 and answer.text == "<b>abc</b>"
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert hooked.get("/hooks/outlook/mail", params={"validationToken": "abc"}).status_code == 404


def test_notifications_with_the_secret_still_arrive(hooked: TestClient) -> None:
    sources = hooked.app.state.event_sources  # type: ignore[attr-defined]
    graph, drive = sources[("outlook", "mail")], sources[("google_drive", "drive")]
    HINTS.clear()
    note = {"subscriptionId": "sub-1", "clientState": graph.client_state, "changeType": "created"}
    assert hooked.post("/hooks/outlook/mail", json={"value": [note]}).status_code == 202
    headers = {
        "X-Goog-Channel-ID": "chan-1",
        "X-Goog-Channel-Token": drive.token,
        "X-Goog-Message-Number": "7",
        "X-Goog-Resource-State": "change",
    }
    assert hooked.post("/hooks/google_drive/drive", headers=headers).status_code == 200
    assert [h.container for h in HINTS] == ["inbox", None]


def test_no_hook_body_makes_a_500(hooked: TestClient) -> None:
    rng = random.Random(31)
    atoms: list[Any] = [None, 0, -1, 1e308, "", "é", "\x00", "\ud800", [], {}, True, "x" * 1000]
    for _ in range(150):
        value = [
            {rng.choice(["clientState", "subscriptionId", "lifecycleEvent", "value"]): rng.choice(atoms)}
            for _ in range(rng.randint(0, 4))
        ]
        body = (
            json.dumps({"value": rng.choice([value, rng.choice(atoms)])})
            if rng.random() < 0.8
            else bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        )
        for hook in ("outlook/mail", "google_drive/drive"):
            answer = hooked.post(f"/hooks/{hook}", content=body)
            assert answer.status_code in (200, 202, 404), (hook, body, answer.text[:200])


def test_a_refused_request_is_one_log_line_and_one_count(hooked: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    """The probe's 64 KB of `{}` made 21,839 WARNING lines."""

    def refused_count() -> float:
        text = hooked.get("/metrics", headers=OPS).text
        found = re.search(r'^inlet_webhook_refused_total\{source="mail"\} (\S+)$', text, re.M)
        return float(found.group(1)) if found else 0.0

    for size in (20_000, 40_000):  # under the 64 KiB limit, and over it (refused before the source reads it)
        before = refused_count()
        body = b'{"value":[' + b",".join([b"{}"] * size) + b"]}"
        caplog.clear()
        with caplog.at_level(logging.INFO):
            answer = hooked.post("/hooks/outlook/mail", content=body)
        lines = [r for r in caplog.records if r.name.startswith("inlet") and r.name != "inlet.server.access"]
        assert answer.status_code == 404
        assert len(lines) == 1 and len(lines[0].getMessage()) < 400 and "'mail'" in lines[0].getMessage()
        assert refused_count() == before + 1


def test_a_webhook_that_raises_is_logged_with_its_message_and_traceback_once(
    hooked: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A plug-in's `webhook()` raising: the sender gets the 404 of a refused request; the log names
    the source, the exception's type and message, and carries its traceback the first time only
    (a sender repeating the request cannot fill the log with tracebacks)."""
    lines = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            assert hooked.post("/hooks/docket/wiki", headers={"x-hook-secret": "right"}).status_code == 404
        lines += [r for r in caplog.records if r.name == "inlet.server.hooks"]
    assert len(lines) == 2
    for line in lines:
        assert "source 'wiki': webhook POST refused" in line.getMessage()
        assert "RuntimeError: plug-in bug in webhook" in line.getMessage()
    assert lines[0].exc_info is not None and lines[0].exc_info[0] is RuntimeError and not lines[1].exc_info


# --- headers everywhere, and the console's links ------------------------------------------------------
@pytest.mark.parametrize("path", ["/healthz", "/v1/sources", "/console", "/hooks/outlook/nobody", "/nowhere"])
def test_every_answer_is_not_sniffed_and_sends_no_referrer(hooked: TestClient, path: str) -> None:
    answer = hooked.get(path)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_the_console_forbids_forms_and_base_urls(hooked: TestClient) -> None:
    policy = hooked.get("/console").headers["content-security-policy"]
    assert "form-action 'none'" in policy and "base-uri 'none'" in policy


def test_console_links_only_http_https_and_mailto() -> None:
    script = (Path(__file__).parents[2] / "server" / "console_static" / "console.js").read_text()
    found = re.search(r"^const LINK_SCHEMES.*?^}\n", script, re.M | re.S)
    assert found, "console.js has no LINK_SCHEMES / safeHref"
    urls = [
        "https://a.example/x",
        "http://a.example",
        "mailto:x@y.example",
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<b>x</b>",
        "vbscript:x",
        "file:///etc/passwd",
        "/relative",
        "",
    ]
    program = found.group(0) + f"console.log(JSON.stringify({json.dumps(urls)}.map(safeHref)));"
    out = json.loads(
        subprocess.run(["node", "-e", program], capture_output=True, text=True, check=True, timeout=30).stdout
    )
    assert out == ["https://a.example/x", "http://a.example/", "mailto:x@y.example"] + [None] * 8


# --- labels, probes and times (issue 28 item 8) -------------------------------------------------------
def test_mcp_and_well_known_routes_are_labelled_by_path(hooked: TestClient) -> None:
    hooked.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    hooked.get("/.well-known/oauth-authorization-server")
    hooked.post("/hooks/outlook/nobody")
    text = hooked.get("/metrics", headers=OPS).text
    assert 'route="/mcp"' in text and 'route="/hooks/{type}/{source}"' in text
    hooked.put("/mcp", json={})  # a known path with a method it does not take
    text = hooked.get("/metrics", headers=OPS).text
    assert 'method="PUT",route="/mcp"' in text


@pytest.mark.parametrize(
    "path",
    ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/.well-known/anything/else"],
)
def test_unknown_well_known_paths_are_404_without_a_key(hooked: TestClient, path: str) -> None:
    answer = hooked.get(path)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_docs_explains_the_key_to_a_browser(hooked: TestClient) -> None:
    page = hooked.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Authorization: Bearer" in page.text and "/openapi.json" in page.text
    assert hooked.get("/openapi.json").status_code == 401 and hooked.get("/openapi.json", headers=ALICE).is_success


def test_api_times_have_at_most_millisecond_precision(hooked: TestClient) -> None:
    answer = hooked.post("/v1/search", json={"query": "deploy billing"}, headers=ALICE)
    times = [r[k] for r in answer.json()["results"] for k in ("created_at", "updated_at") if r[k]]
    document = hooked.get("/v1/documents/eng:C1/100", headers=ALICE).json()
    times += [document["created_at"], document["updated_at"]]
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", t) for t in times), times
