"""The MCP tools, driven by the `mcp` SDK's own client: streamable HTTP against a real uvicorn
server on a loopback port, and stdio against `python -m inlet mcp` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from inlet.config import IndexConfig, Settings
from inlet.errors import ConfigError
from inlet.index.embedding import Embedder
from inlet.index.store import Index
from inlet.server.app import create_app
from inlet.server.mcp import run_stdio

from .conftest import KEYS, corpus, corpus_sources, serve


@pytest.fixture(scope="module")
def base_url(settings: Settings, index: Index) -> Iterator[str]:
    for address in serve(create_app(settings, index=index, env=KEYS), lifespan="on"):
        yield f"http://{address}"


def http_client(url: str, **headers: str) -> Client:
    return Client(streamable_http_client(f"{url}/mcp", http_client=create_mcp_http_client(headers=headers)))


async def call(client: Client, name: str, arguments: dict[str, Any]) -> Any:
    return await client.call_tool(name, arguments)


def check_tool_result(result: Any) -> dict[str, Any]:
    """structuredContent and exactly one JSON text item carrying the same object (an empty search
    too: clients that follow ChatGPT's connector format parse the text)."""
    assert not result.is_error, result.content
    assert len(result.content) == 1 and result.content[0].type == "text"
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


async def tool_session(client: Client) -> dict[str, Any]:
    """What a client sees: the tools and a few calls (run inside one session)."""
    async with client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        search = check_tool_result(await call(client, "search", {"query": "Falcon launch date partner"}))
        espresso = check_tool_result(await call(client, "search", {"query": "espresso machine descaled"}))
        public = check_tool_result(await call(client, "fetch", {"id": "eng:C1/100"}))
        nolink = check_tool_result(await call(client, "fetch", {"id": "files:notes/no-link.md"}))
        part = check_tool_result(await call(client, "fetch", {"id": "eng:C1/100", "offset": 3, "max_chars": 5}))
        past = await call(client, "fetch", {"id": "eng:C1/100", "offset": 10**6})
        private = await call(client, "fetch", {"id": "eng:C2/200"})
        missing = await call(client, "fetch", {"id": "eng:nope"})
        blank = await call(client, "search", {"query": "  "})
        two = check_tool_result(await call(client, "search", {"query": "launch", "k": 2}))
        bad_k = await call(client, "search", {"query": "launch", "k": 0})
        float_k = await call(client, "search", {"query": "launch", "k": 2.0})  # an integer to JSON Schema
        too_long = await call(client, "search", {"query": "launch " * 700})  # 4,900 characters
        nothing = await call(client, "search", {"query": "parental leave rules for hamsters in Antarctica"})
    return {
        "tools": tools,
        "search": search,
        "espresso": espresso,
        "public": public,
        "nolink": nolink,
        "part": part,
        "past": past,
        "private": private,
        "missing": missing,
        "blank": blank,
        "two": two,
        "bad_k": bad_k,
        "float_k": float_k,
        "too_long": too_long,
        "nothing": nothing,
    }


def check_tools(tools: dict[str, Any]) -> None:
    assert set(tools) == {"search", "fetch"}
    for tool in tools.values():
        assert tool.annotations.read_only_hint is True
        assert tool.output_schema["type"] == "object"
    assert tools["search"].input_schema["required"] == ["query"]  # ChatGPT's `query`-only shape stays valid
    assert tools["search"].input_schema["properties"]["k"]["type"] == "integer"
    assert tools["search"].input_schema["properties"]["query"]["maxLength"] == 4000
    assert set(tools["search"].output_schema["properties"]) == {"results"}
    # An agent reading the schema learns that a "none" answer withholds even results above the floor.
    said = tools["search"].output_schema["properties"]["results"]["description"]
    assert "min_relevance" in said and 'match "none"' in said
    assert tools["fetch"].input_schema["required"] == ["id"]
    fields = {"id", "title", "text", "url", "metadata", "offset", "total_chars", "next_offset", "note"}
    assert set(tools["fetch"].output_schema["properties"]) == fields
    assert "default" not in tools["fetch"].input_schema["properties"]["max_chars"]  # the whole text without it


def check_as_member(seen: dict[str, Any]) -> None:
    check_tools(seen["tools"])
    results = seen["search"]["results"]
    assert results[0]["id"] == "eng:C2/200" and "Initech" in results[0]["text"]
    for item in results:
        assert set(item) == {"id", "title", "url", "text"} and item["url"]
    assert len({r["id"] for r in results}) == len(results)
    assert seen["nolink"]["url"] == "inlet://doc/files:notes/no-link.md"
    assert seen["public"]["text"].startswith("To deploy") and seen["public"]["metadata"]["channel"] == "general"
    # probe31d F8: the whole text, or with `max_chars` a part, saying where the rest starts
    whole = seen["public"]
    assert (whole["offset"], whole["total_chars"], whole["next_offset"]) == (0, len(whole["text"]), None)
    part = seen["part"]
    assert part["text"] == whole["text"][3:8] and (part["offset"], part["next_offset"]) == (3, 8)
    assert part["total_chars"] == len(whole["text"]) and "offset 8" in part["note"]
    assert seen["past"].is_error and "past the end" in seen["past"].content[0].text
    assert not seen["private"].is_error and "Initech" in seen["private"].structured_content["text"]
    assert seen["missing"].is_error
    assert seen["blank"].is_error
    assert 1 <= len(seen["two"]["results"]) <= 2  # below the default min_relevance: left out
    assert seen["bad_k"].is_error and "'k'" in seen["bad_k"].content[0].text
    assert 1 <= len(check_tool_result(seen["float_k"])["results"]) <= 2
    assert seen["too_long"].is_error and "at most 4000" in seen["too_long"].content[0].text  # as /v1/search
    # Results below the default min_relevance are left out; with none left, the JSON says so: no results.
    assert check_tool_result(seen["nothing"]) == {"results": []}


def check_as_outsider(seen: dict[str, Any]) -> None:
    assert all(r["id"] != "eng:C2/200" for r in seen["search"]["results"])
    assert all("Initech" not in r["text"] for r in seen["search"]["results"])
    assert seen["private"].is_error
    # hidden and absent look the same
    assert seen["private"].content[0].text.replace("eng:C2/200", "X") == seen["missing"].content[0].text.replace(
        "eng:nope", "X"
    )


# --- streamable HTTP ----------------------------------------------------------------------------
def test_http_user_key_member(base_url: str) -> None:
    check_as_member(anyio.run(tool_session, http_client(base_url, Authorization="Bearer alice-secret-key")))


def test_http_user_key_non_member(base_url: str) -> None:
    check_as_outsider(anyio.run(tool_session, http_client(base_url, Authorization="Bearer bob-secret-key")))


def test_http_on_behalf_of_names_user_by_header(base_url: str) -> None:
    agent = "Bearer agent-secret-key"
    check_as_member(
        anyio.run(tool_session, http_client(base_url, Authorization=agent, **{"X-Inlet-User": "alice@example.com"}))
    )
    check_as_outsider(
        anyio.run(tool_session, http_client(base_url, Authorization=agent, **{"X-Inlet-User": "bob@other.org"}))
    )


def test_http_admin_sees_admin_only_documents(base_url: str) -> None:
    async def fetch_hr() -> Any:
        async with http_client(base_url, Authorization="Bearer ops-secret-key") as client:
            return await call(client, "fetch", {"id": "mail:hr-1"})

    result = anyio.run(fetch_hr)
    assert not result.is_error and result.structured_content["url"].startswith("inlet://doc/mail:hr-1")


@pytest.mark.parametrize(
    "headers,status",
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Bearer alice-secret-key", "X-Inlet-User": "bob@other.org"}, 403),
        ({"Authorization": "Bearer agent-secret-key"}, 400),
        (
            [
                ("Authorization", "Bearer agent-secret-key"),
                ("X-Inlet-User", "bob@other.org"),
                ("X-Inlet-User", "a@x.org"),
            ],
            400,
        ),
        ({"Authorization": "Bearer agent-secret-key", "X-Inlet-User": "eve@evil.com, bob@example.com"}, 400),
        ({"Authorization": "Bearer ops-secret-key", "X-Inlet-User": "eve@evil.com@example.com"}, 400),
    ],
)
def test_http_refuses_bad_keys_before_mcp(base_url: str, headers: Any, status: int) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)  # a list may repeat a header
    response = httpx.post(
        f"{base_url}/mcp", json=message, headers=[*pairs, ("Accept", "application/json, text/event-stream")]
    )
    assert response.status_code == status
    assert "error" in response.json() and "code" in response.json()["error"]


def test_http_input_that_is_no_mcp_request_is_answered_as_on_stdio(base_url: str) -> None:
    """Probe 27c F5: a JSON-RPC batch or a `"jsonrpc": "1.0"` message got -32602 "Invalid params"
    with the SDK's validation dump; it is -32600 "invalid request" in the words `inlet mcp` uses
    on stdio (one answer per POST: a batch's is id null). A `tools/call` naming no tool is -32602."""
    headers = {"Authorization": "Bearer alice-secret-key", "Accept": "application/json, text/event-stream"}
    bodies: list[Any] = [
        [{"jsonrpc": "2.0", "id": 4, "method": "tools/list"}, {"jsonrpc": "2.0", "id": 5, "method": "ping"}],
        {"jsonrpc": "1.0", "id": 6, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": []},
        {"jsonrpc": "2.0", "id": 8, "method": "tools/call"},
        {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "search", "arguments": []}},
    ]
    answers = [httpx.post(f"{base_url}/mcp", json=body, headers=headers) for body in bodies]
    assert [a.status_code for a in answers] == [400] * 5
    errors = [(a.json()["jsonrpc"], a.json()["id"], a.json()["error"]["code"]) for a in answers]
    assert errors == [
        ("2.0", None, -32600),
        ("2.0", 6, -32600),
        ("2.0", 7, -32600),
        ("2.0", 8, -32602),
        ("2.0", 9, -32602),
    ]
    messages = [a.json()["error"]["message"] for a in answers]
    assert "a JSON-RPC batch: MCP takes one message per request" in messages[0]
    assert "not a valid MCP message" in messages[1] and '"jsonrpc": "2.0"' in messages[1]
    assert "not a valid MCP message" in messages[2] and "'name'" in messages[3] == messages[4]
    assert not any("validation" in m.lower() or "pydantic" in m.lower() for m in messages)  # no parser internals
    listing = httpx.post(f"{base_url}/mcp", json={"jsonrpc": "2.0", "id": 10, "method": "tools/list"}, headers=headers)
    assert listing.status_code == 200 and listing.json()["result"]["tools"]
    # probe31d F6: a request whose id is null or fractional was read as a notification (202, no body)
    for unusable in (None, 1.5):
        asked = {"jsonrpc": "2.0", "id": unusable, "method": "tools/call", "params": {"name": "search"}}
        refused = httpx.post(f"{base_url}/mcp", json=asked, headers=headers)
        assert refused.status_code == 400 and refused.json()["id"] is None, refused.text
        assert (
            refused.json()["error"]["code"] == -32600 and "string or an integer" in refused.json()["error"]["message"]
        )
    noted = {"jsonrpc": "2.0", "method": "notifications/initialized"}  # a notification is still one
    assert httpx.post(f"{base_url}/mcp", json=noted, headers=headers).status_code == 202


def test_http_a_body_not_declared_json_gets_the_api_error_shape(base_url: str) -> None:
    """`curl -d` declares a form: the answer says what to send, in the API's JSON error shape."""
    message = '{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}'
    response = httpx.post(
        f"{base_url}/mcp",
        content=message,
        headers={
            "Authorization": "Bearer alice-secret-key",
            "Content-Type": "text/plain",
            "Accept": "application/json, text/event-stream",
        },
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert "application/json" in response.json()["error"]["message"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "PUT", "OPTIONS"])
def test_http_every_405_names_post_alone(base_url: str, method: str) -> None:
    """Only POST is served (stateless: no event stream, no session to end), and each 405 says so in
    `Allow` (RFC 9110 §15.5.6); DELETE's body is the MCP transport's own JSON-RPC error."""
    headers = {"Authorization": "Bearer alice-secret-key", "Accept": "application/json, text/event-stream"}
    response = httpx.request(method, f"{base_url}/mcp", headers=headers)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    if method == "DELETE":
        assert "Session termination not supported" in response.json()["error"]["message"]
    keyless = httpx.request(method, f"{base_url}/mcp")  # OPTIONS passes the key check, as CORS preflights do
    assert keyless.status_code == (405 if method == "OPTIONS" else 401)


# --- stdio --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stdio_config(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """An index of its own (the Index lock is per folder and per process), closed before spawning."""
    root = tmp_path_factory.mktemp("stdio")
    with Index(IndexConfig(path=root / "index"), embedder=embedder) as idx:
        idx.apply(corpus())
    config = root / "config.toml"
    config.write_text(f'[index]\npath = "{root / "index"}"\n{corpus_sources(root)}')
    return config


def stdio_client(config: Path, user: str) -> Client:
    return Client(
        StdioServerParameters(
            command=sys.executable, args=["-m", "inlet", "mcp", "--config", str(config)], env={"INLET_USER": user}
        )
    )


def test_stdio_as_member_and_as_outsider(stdio_config: Path) -> None:
    check_as_member(anyio.run(tool_session, stdio_client(stdio_config, "alice@example.com")))
    check_as_outsider(anyio.run(tool_session, stdio_client(stdio_config, "bob@other.org")))


def test_stdio_needs_a_user(stdio_config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "INLET_USER"}
    done = subprocess.run(
        [sys.executable, "-m", "inlet", "mcp", "--config", str(stdio_config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and "--user" in done.stderr


def test_stdio_refuses_a_malformed_user(settings: Settings) -> None:
    """The rule for users a key names over HTTP holds for --user too: no domain for a list of names."""
    with pytest.raises(ConfigError, match="not one well-formed email address"):
        run_stdio(settings, "eve@evil.com, bob@example.com")


def test_stdio_answers_every_request_it_read_before_its_input_ended(stdio_config: Path) -> None:
    """Issue 28.6: `printf '<initialize>\\n<tools/list>\\n<tools/call>\\n' | inlet mcp` printed no
    tools/call answer: the input's end cancelled the request still running."""
    lines: list[Any] = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "printf", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "launch plan"}},
        },
    ]
    lines += [
        [{"jsonrpc": "2.0", "id": 4, "method": "ping"}, {"jsonrpc": "2.0", "id": 5, "method": "tools/list"}],
        {"jsonrpc": "2.0", "id": 6, "method": 42},
        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": [{"id": 42, "method": "z"}]},  # not 42's
    ]
    # probe31d F2, F6, F7: lines the SDK answered nothing (no JSON; a lone surrogate escape, as
    # JavaScript clients write a string cut in UTF-16 units; a request with a null or fractional
    # id), a leading byte-order mark, and a tool request before `initialize` (the SDK's "invalid params")
    early = [{"jsonrpc": "2.0", "id": 0, "method": "tools/list"}]
    lines += [
        "not json at all",
        {
            "jsonrpc": "2.0",
            "id": 8,
            "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "a \ud83c"}},
        },
        {"jsonrpc": "2.0", "id": None, "method": "ping"},
        {
            "jsonrpc": "2.0",
            "id": 1.5,
            "method": "tools/call",
            "params": {"name": "search", "arguments": {"query": "x"}},
        },
    ]
    text = "\ufeff" + "".join(m if isinstance(m, str) else json.dumps(m) for m in early) + "\n"
    text += "".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in lines)
    done = subprocess.run(
        [sys.executable, "-m", "inlet", "mcp", "--config", str(stdio_config), "--user", "alice@example.com"],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    read = list(map(json.loads, done.stdout.splitlines()))
    answers = {m["id"]: m for m in read if m["id"] is not None}
    assert sorted(answers) == [0, 1, 2, 3, 4, 5, 6, 7, 8], done.stdout
    assert answers[0]["error"]["code"] == -32600 and "send 'initialize' first" in answers[0]["error"]["message"]
    assert answers[8]["error"]["code"] == -32700 and "Parse error" in answers[8]["error"]["message"], answers[8]
    unnamed = sorted((m["error"]["code"], m["error"]["message"][:27]) for m in read if m["id"] is None)
    assert unnamed == [(-32700, "Parse error: Invalid JSON: ")] + [(-32600, "not a valid MCP request: 'p")] + [
        (-32600, "not a valid MCP request: 't")
    ], unnamed
    assert "result" in answers[3] and not answers[3]["result"].get("isError"), answers[3]
    # a JSON-RPC batch (not in MCP) and an object that is no message: an error per request id
    for n, why in ((4, "batch"), (5, "batch"), (6, "not a valid MCP message"), (7, "not a valid MCP message")):
        assert answers[n]["error"]["code"] == -32600 and why in answers[n]["error"]["message"], answers[n]


def test_stdio_ends_quietly_when_the_client_closes_its_end() -> None:
    """Probe 34e F3: an agent that quits or crashes mid-call closes the pipes: the answer then
    written to stdout failed (BrokenPipeError) and `inlet mcp` exited 1 with a 73-line traceback,
    which desktop agents log as a server crash. A client going away is the normal end: status 0,
    no traceback. (The stdio loop alone, on a server with no tools: no index or model to load.)"""
    serve = (
        "import anyio; from mcp.server import Server; from inlet.server.mcp import _serve_stdio; "
        "anyio.run(_serve_stdio, Server('quiet'))"
    )
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    child = subprocess.Popen(
        [sys.executable, "-c", serve], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout is not None and child.stdin is not None
    child.stdout.close()  # the client is gone before the answer is written
    child.stdin.write((json.dumps(initialize) + "\n").encode())
    child.stdin.close()
    assert child.stderr is not None
    stderr = child.stderr.read()  # until the child exits
    assert child.wait(timeout=60) == 0 and b"Traceback" not in stderr, stderr.decode()


def test_stdio_a_cancelled_request_is_owed_no_answer() -> None:
    """probe31d F1: after `notifications/cancelled`, the end of stdin left `inlet mcp` (and the index
    it holds) up for 300 s, waiting for an answer the SDK never sends to a cancelled request."""
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    from inlet.server.mcp import _DrainingReader, _Owed

    async def read() -> set[Any]:
        owed = _Owed()
        lines, stdin = anyio.create_memory_object_stream[Any](4)
        answers, _ = anyio.create_memory_object_stream[Any](4)
        reader = _DrainingReader(stdin, owed, answers)
        for message in (
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "search", "arguments": {}}},
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 2}},
        ):
            await lines.send(SessionMessage(types.jsonrpc_message_adapter.validate_python(message)))
            await reader.receive()
        owed.settle(1)  # initialize was answered
        return owed.ids

    assert anyio.run(read) == set()  # nothing owed: the end of input ends the process at once
