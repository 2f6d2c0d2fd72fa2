"""The audit log: every retrieval route, admin action and MCP tool call (over HTTP and on stdio)
writes one JSON line naming who asked what and which documents came back; no key, token or
passage text ever appears in it; `inlet audit` reads it back, rotated files too."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from mcp import Client, StdioServerParameters

from inlet.cli import cli
from inlet.config import IndexConfig, ServerConfig
from inlet.errors import ConfigError
from inlet.index.embedding import Embedder
from inlet.index.search import Answer, SearchRequest
from inlet.index.store import Index
from inlet.server.app import create_app
from inlet.server.audit import AuditLog, _PrivateRotatingFile, read_audit
from inlet.server.auth import Caller
from inlet.server.mcp import INTERNAL_ERROR, InletTools
from inlet.server.metrics import AuditCollector, Metrics
from inlet.server.service import Retrieval

from tests.test_disk_faults import fill, small_disk  # noqa: F401 (a fixture)

from .conftest import AGENT, ALICE, BOB, KEYS, OPS, corpus, corpus_sources, serve, settings_for
from .test_mcp import http_client

PASSAGES = [d.text for d in corpus()]
KIM, BOB_EMAIL = "kim@example.com", "bob@other.org"


def requests(client: TestClient) -> list[Any]:
    search = client.post("/v1/search", json={"query": "Falcon launch date partner"}, headers=ALICE)
    context = client.post("/v1/context", json={"query": "pipeline review", "user": "kim@example.com"}, headers=AGENT)
    document = client.get("/v1/documents/eng:C1/100", headers=BOB)
    hidden = client.get("/v1/documents/eng:C2/200", headers=BOB)
    forbidden = client.post("/v1/search", json={"query": "salary", "user": "alice@example.com"}, headers=BOB)
    admin = client.post("/v1/admin/sync", json={}, headers=OPS)
    client.get("/v1/sources", headers=OPS)  # a read, not an action: no line
    return [search, context, document, hidden, forbidden, admin]


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_clean(text: str) -> None:
    """No secret and no passage text anywhere in the audit file."""
    for secret in KEYS.values():
        assert secret not in text
    for passage in PASSAGES:
        assert passage not in text and passage[:40] not in text


def test_every_route_writes_one_line_without_secrets_or_passages(tmp_path: Path, index: Index) -> None:
    log = tmp_path / "audit" / "audit.jsonl"
    app = create_app(settings_for(index.path, audit_log=str(log)), index=index, env=KEYS)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.retrieval.ready.wait(30)
        responses = requests(client)
    search, context, document, hidden, forbidden, admin = responses
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 403, 409]
    lines = lines_of(log)  # the lifespan's end wrote what was queued
    assert [(line["route"], line["status"]) for line in lines] == [
        ("POST /v1/search", 200),
        ("POST /v1/context", 200),
        ("GET /v1/documents/{id}", 200),
        ("GET /v1/documents/{id}", 404),
        ("POST /v1/search", 403),
        ("POST /v1/admin/sync", 409),
    ]
    first, second, third = lines[0], lines[1], lines[2]
    assert first["key"] == "alice-laptop" and first["user"] == "alice@example.com"
    assert first["query"] == "Falcon launch date partner"
    assert first["doc_ids"] == list(dict.fromkeys(h["doc_id"] for h in search.json()["results"])) != []
    assert second["key"] == "support-agent" and second["user"] == "kim@example.com"
    assert second["doc_ids"] == list(dict.fromkeys(h["doc_id"] for h in context.json()["results"]))
    assert third["doc_ids"] == ["eng:C1/100"] and third["user"] == "bob@other.org"
    assert lines[3]["doc_ids"] == []  # not visible: nothing returned ...
    assert lines[3]["requested_id"] == "eng:C2/200" and third["requested_id"] == "eng:C1/100"  # ... but asked for
    assert all("requested_id" not in line for line in (first, second, lines[4], lines[5]))
    assert lines[4]["query"] == "salary" and lines[4]["doc_ids"] == []  # refused: what it asked is kept
    assert lines[5]["key"] == "ops" and lines[5]["user"] is None
    assert all(isinstance(line["ms"], float) and line["time"].endswith("Z") for line in lines)
    assert_clean(log.read_text())


def test_a_refused_on_behalf_of_key_is_never_called_an_operator(tmp_path: Path, index: Index) -> None:
    log = tmp_path / "audit.jsonl"
    app = create_app(settings_for(index.path, audit_log=str(log)), index=index, env=KEYS)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.retrieval.ready.wait(30)
        refused = client.get("/v1/documents/eng:C1/100", headers=AGENT)  # names no user
        admin = client.post("/v1/search", json={"query": "deploy runbook"}, headers=OPS)
    assert (refused.status_code, refused.json()["error"]["code"], admin.status_code) == (400, "user_required", 200)
    agent, ops = lines_of(log)
    assert (agent["key"], agent["user"], agent["kind"]) == ("support-agent", None, "on_behalf_of")
    assert agent["requested_id"] == "eng:C1/100"  # refused before any lookup: what it asked for is kept
    assert (ops["key"], ops["user"], ops["kind"]) == ("ops", None, "admin")
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{tmp_path / "index"}"\n[server]\naudit_log = "{log}"\n')
    prose = CliRunner().invoke(cli, ["audit", "--config", str(config)]).output.splitlines()
    assert "support-agent  for (no user)  GET /v1/documents/{id}  400" in prose[0]
    assert "ops  for operator  POST /v1/search  200" in prose[1]


def test_refused_over_the_rate_limit_names_the_user_and_query(tmp_path: Path, index: Index) -> None:
    log = tmp_path / "audit.jsonl"
    settings = settings_for(index.path, audit_log=str(log), rate_limit="1/h", rate_burst=1)
    app = create_app(settings, index=index, env=KEYS)
    body = {"query": "pipeline review", "user": "kim@example.com"}
    with TestClient(app) as client:
        assert app.state.retrieval.ready.wait(30)
        assert client.post("/v1/search", json=body, headers=AGENT).status_code == 200
        assert client.post("/v1/search", json=body, headers=AGENT).status_code == 429
        assert (
            client.get("/v1/documents/eng:C1/100", headers={**OPS, "X-Inlet-User": "kim@example.com"}).status_code
            == 200
        )
        assert (
            client.get("/v1/documents/eng:C1/100", headers={**OPS, "X-Inlet-User": "kim@example.com"}).status_code
            == 429
        )
    lines = lines_of(log)
    assert [(line["status"], line["user"], line.get("query")) for line in lines] == [
        (200, "kim@example.com", "pipeline review"),
        (429, "kim@example.com", "pipeline review"),
        (200, "kim@example.com", None),
        (429, "kim@example.com", None),
    ]
    assert log.stat().st_mode & 0o777 == 0o600  # it names users and holds their queries


def test_refused_for_a_bad_field_or_the_keys_rights_names_the_user_and_query(tmp_path: Path, index: Index) -> None:
    """A 422 (the body's `k`) or a 403 (an admin action by an agent key) is refused after the key
    check: its line names the user and the question as the route's own line would."""
    log = tmp_path / "audit.jsonl"
    app = create_app(settings_for(index.path, audit_log=str(log)), index=index, env=KEYS)
    as_kim = {**AGENT, "X-Inlet-User": "kim@example.com"}
    with TestClient(app) as client:
        assert app.state.retrieval.ready.wait(30)
        bad_k = client.post("/v1/search", json={"query": "is alice being fired", "k": 0}, headers=as_kim)
        in_body = client.post(
            "/v1/context", json={"query": "salaries", "user": "kim@example.com", "k": "x"}, headers=AGENT
        )
        pause = client.post("/v1/admin/sources/eng/pause", headers=as_kim)
    assert [bad_k.status_code, in_body.status_code, pause.status_code] == [422, 422, 403]
    assert [(line["status"], line["user"], line.get("query")) for line in lines_of(log)] == [
        (422, "kim@example.com", "is alice being fired"),
        (422, "kim@example.com", "salaries"),
        (403, "kim@example.com", None),
    ]


def test_hashed_queries_keep_only_the_digest(tmp_path: Path, index: Index, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "audit.jsonl"
    app = create_app(settings_for(index.path, audit_log=str(log), audit_queries="hash"), index=index, env=KEYS)
    with TestClient(app) as client, caplog.at_level("INFO", logger="inlet.server.access"):
        assert app.state.retrieval.ready.wait(30)
        assert client.post("/v1/search", json={"query": "espresso machine"}, headers=ALICE).status_code == 200
        assert client.get("/v1/documents/eng:C2/200", headers=BOB).status_code == 404
        assert client.get("/v1/documents/eng:C1/100", headers=BOB).status_code == 200
        assert client.get("/v1/document/eng:C1/100", headers=BOB).status_code == 404  # no route: the path hashed
    # the access log of the same requests hides the ids too: the route's template, or a digest
    access = [json.loads(r.getMessage()) for r in caplog.records if r.name == "inlet.server.access"]
    assert [a["path"] for a in access] == [
        "/v1/search",
        *[a["route"] for a in access[1:3]],
        f"sha256:{hashlib.sha256(b'/v1/document/eng:C1/100').hexdigest()}",
    ]
    assert "{" in access[1]["route"] and not any("eng:C" in r.getMessage() for r in caplog.records)
    line, fetched, found = lines_of(log)
    assert "query" not in line and line["query_sha256"] == hashlib.sha256(b"espresso machine").hexdigest()
    assert "espresso" not in log.read_text()
    assert line["doc_ids"] and not any(d.startswith("sha256:") for d in line["doc_ids"])  # a search's: in clear
    assert "requested_id" not in fetched and fetched["requested_id_sha256"] == hashlib.sha256(b"eng:C2/200").hexdigest()
    assert "eng:C2/200" not in json.dumps(fetched)
    # a fetch that found its document: the id returned is the id asked for, hashed alike
    digest = hashlib.sha256(b"eng:C1/100").hexdigest()
    assert found["requested_id_sha256"] == digest and found["doc_ids"] == [f"sha256:{digest}"]
    assert "eng:C1/100" not in json.dumps(found)
    # the MCP fetch tool's line (written by the same `record`)
    tool_log = tmp_path / "tool.jsonl"
    audit = AuditLog(str(tool_log), "hash")
    audit.record(
        key=None, caller=None, status=200, ms=1.0, tool="fetch", requested_id="eng:C1/100", doc_ids=["eng:C1/100"]
    )
    audit.close()
    (tool,) = lines_of(tool_log)
    assert tool["requested_id_sha256"] == digest and tool["doc_ids"] == [f"sha256:{digest}"]


def test_mcp_over_http_writes_a_line_per_tool_call(tmp_path: Path, index: Index) -> None:
    log = tmp_path / "audit.jsonl"
    app = create_app(settings_for(index.path, audit_log=str(log)), index=index, env=KEYS)

    async def session(url: str) -> None:
        async with http_client(url, Authorization=ALICE["Authorization"]) as client:
            await client.call_tool("search", {"query": "Falcon budget"})
            await client.call_tool("fetch", {"id": "drive:f1"})
            await client.call_tool("fetch", {"id": "eng:nope"})

    for address in serve(app, lifespan="on"):
        anyio.run(session, f"http://{address}")
    lines = lines_of(log)  # the server stopped: its lifespan closed the log
    assert [(line["tool"], line["status"]) for line in lines] == [("search", 200), ("fetch", 200), ("fetch", 400)]
    assert all(line["key"] == "alice-laptop" and line["user"] == "alice@example.com" for line in lines)
    assert lines[0]["query"] == "Falcon budget" and "drive:f1" in lines[0]["doc_ids"]
    assert lines[1]["doc_ids"] == ["drive:f1"]
    assert [line.get("requested_id") for line in lines] == [None, "drive:f1", "eng:nope"]  # also when refused
    assert_clean(log.read_text())


def test_an_mcp_tool_call_refused_before_its_tool_ran_is_written_too(tmp_path: Path, index: Index) -> None:
    """Probe 23b F1: a `tools/call` that /mcp refuses at the HTTP level (an on_behalf_of key naming
    no user: 400; a user key naming someone else: 403) writes its line, with the tool and what it
    asked, as the same question to /v1/search does; a refused message that calls no tool writes
    none, and an answered call still writes one line (the tool's)."""
    log = tmp_path / "audit.jsonl"
    app = create_app(settings_for(index.path, audit_log=str(log)), index=index, env=KEYS)
    mcp = {"Accept": "application/json, text/event-stream"}

    def call(tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}

    with TestClient(app) as client:
        assert app.state.retrieval.ready.wait(30)
        nobody = client.post("/mcp", json=call("search", {"query": "is alice being fired"}), headers={**AGENT, **mcp})
        other = client.post(
            "/mcp", json=call("fetch", {"id": "eng:C2/200"}), headers={**ALICE, **mcp, "X-Inlet-User": BOB_EMAIL}
        )
        listing = client.post(
            "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers={**AGENT, **mcp}
        )
        answered = client.post(
            "/mcp", json=call("search", {"query": "pipeline review"}), headers={**AGENT, **mcp, "X-Inlet-User": KIM}
        )
        same = client.post("/v1/search", json={"query": "is alice being fired"}, headers=AGENT)
    assert [r.status_code for r in (nobody, other, listing, answered, same)] == [400, 403, 400, 200, 400]
    assert nobody.json()["error"]["code"] == "user_required"
    lines = lines_of(log)
    assert [(line.get("tool") or line["route"], line["status"], line["user"]) for line in lines] == [
        ("search", 400, None),
        ("fetch", 403, "alice@example.com"),  # a user key acts for its own user, whom it names
        ("search", 200, KIM),
        ("POST /v1/search", 400, None),
    ]
    assert lines[0]["query"] == "is alice being fired" == lines[3]["query"] and "route" not in lines[0]
    assert (lines[0]["key"], lines[0]["kind"]) == ("support-agent", "on_behalf_of")
    assert lines[1]["requested_id"] == "eng:C2/200" and "query" not in lines[1]
    assert (lines[1]["key"], lines[1]["kind"]) == ("alice-laptop", "user")


def test_an_mcp_tool_call_refused_for_its_form_is_written_too(tmp_path: Path, index: Index) -> None:
    """Probe 27c F7: a `tools/call` the SDK refused before its tool ran (no `params`, `params: []`, a
    batch) wrote no line. It is written with the tool it names (null: none), what it asked and the
    status of its answer; a refused message that calls no tool writes none."""
    log = tmp_path / "audit.jsonl"
    app = create_app(settings_for(index.path, audit_log=str(log)), index=index, env=KEYS)
    mcp = {**ALICE, "Accept": "application/json, text/event-stream"}
    search = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "search", "arguments": {"query": "q3 layoffs"}},
    }
    bodies: list[Any] = [
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": []},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "fetch", "arguments": ["eng:C2/200"]}},
        [search, {"jsonrpc": "2.0", "id": 5, "method": "ping"}],
        [{"jsonrpc": "2.0", "id": 6, "method": "tools/list"}],  # calls no tool: no line
        search,
    ]
    with TestClient(app) as client:
        assert app.state.retrieval.ready.wait(30)
        statuses = [client.post("/mcp", json=body, headers=mcp).status_code for body in bodies]
    assert statuses == [400, 400, 400, 400, 400, 200]
    lines = lines_of(log)
    assert [(line["tool"], line["status"], line.get("query")) for line in lines] == [
        (None, 400, None),
        (None, 400, None),
        ("fetch", 400, None),
        ("search", 400, "q3 layoffs"),
        ("search", 200, "q3 layoffs"),
    ]
    assert all(line["key"] == "alice-laptop" and line["user"] == "alice@example.com" for line in lines)
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{tmp_path / "index"}"\n[server]\naudit_log = "{log}"\n')
    prose = CliRunner().invoke(cli, ["audit", "--config", str(config)]).output.splitlines()
    assert "for alice@example.com  tools/call (no tool named)  400" in prose[0]  # never "None"


MCP_VERSION_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "tests", "version": "1"},
}


def test_an_mcp_tool_call_the_transport_refuses_for_its_protocol_version_is_written_too(
    tmp_path: Path, index: Index
) -> None:
    """Probe 34e F2: a `tools/call` the SDK's transport refuses for its protocol version (a 2026-07-28
    header without the request's `_meta`, an unknown version, a header the `_meta` contradicts: 400)
    wrote no line. Each is written with its tool, query and status; an answered call still writes
    one line (the tool's)."""
    log = tmp_path / "audit.jsonl"
    app = create_app(settings_for(index.path, audit_log=str(log)), index=index, env=KEYS)
    mcp = {**ALICE, "Accept": "application/json, text/event-stream"}
    older = {**MCP_VERSION_META, "io.modelcontextprotocol/protocolVersion": "2025-11-25"}
    cases: list[tuple[str | None, dict[str, Any]]] = [
        ("2026-07-28", {}),
        ("2099-01-01", {}),
        ("2026-07-28", {"_meta": older}),
        (None, {}),  # answered
    ]
    with TestClient(app) as client:
        assert app.state.retrieval.ready.wait(30)
        statuses = []
        for number, (version, envelope) in enumerate(cases):
            params = {"name": "search", "arguments": {"query": f"q3 layoffs {number}"}, **envelope}
            body = {"jsonrpc": "2.0", "id": number, "method": "tools/call", "params": params}
            versioned = {"MCP-Protocol-Version": version} if version else {}
            answer = client.post("/mcp", json=body, headers={**mcp, **versioned})
            statuses.append(answer.status_code)
    assert statuses == [400, 400, 400, 200]
    lines = lines_of(log)
    assert [(line["tool"], line["status"], line["query"]) for line in lines] == [
        ("search", 400, "q3 layoffs 0"),
        ("search", 400, "q3 layoffs 1"),
        ("search", 400, "q3 layoffs 2"),
        ("search", 200, "q3 layoffs 3"),
    ]
    assert all(line["key"] == "alice-laptop" and line["user"] == "alice@example.com" for line in lines)


class FailingRetrieval(Retrieval):
    """A retrieval with a fault inside inlet on every call (probe 34e met a stemmer's IndexError)."""

    def answer(self, request: SearchRequest) -> Answer:
        raise IndexError("string index out of range")

    def document(self, doc_id: str, caller: Caller) -> Any:
        raise IndexError("string index out of range")


def test_an_mcp_tool_call_that_fails_inside_inlet_is_a_tool_error_with_its_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe 34e F2: a tool that raised reached the client as JSON-RPC `code: 0` with the exception's
    words, and wrote no audit line. It is a tool error a user can act on (not the exception's
    text), written with status 500, its cause logged once."""
    log = tmp_path / "audit.jsonl"
    audit = AuditLog(str(log))
    caller = Caller(key_name="alice-laptop", user="alice@example.com", admin=False)
    tools = InletTools(FailingRetrieval(), 30.0, lambda ctx: caller, audit)
    with caplog.at_level(logging.ERROR, logger="inlet.server.mcp"):
        search = anyio.run(tools.call, "search", {"query": "q3 layoffs"}, caller)
        fetch = anyio.run(tools.call, "fetch", {"id": "eng:C2/200"}, caller)
    audit.close()
    for result in (search, fetch):
        assert result.is_error and [item.text for item in result.content] == [INTERNAL_ERROR]
    lines = lines_of(log)
    assert [(line["tool"], line["status"], line.get("query"), line.get("requested_id")) for line in lines] == [
        ("search", 500, "q3 layoffs", None),
        ("fetch", 500, None, "eng:C2/200"),
    ]
    faults = [r for r in caplog.records if r.name == "inlet.server.mcp" and r.levelno >= logging.ERROR]
    assert len(faults) == 2 and all(r.exc_info and isinstance(r.exc_info[1], IndexError) for r in faults)


def test_mcp_on_stdio_writes_a_line_per_tool_call(tmp_path: Path, embedder: Embedder) -> None:
    with Index(IndexConfig(path=tmp_path / "index"), embedder=embedder) as idx:
        idx.apply(corpus())
    log = tmp_path / "audit.jsonl"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[index]\npath = "{tmp_path / "index"}"\n[server]\naudit_log = "{log}"\n' + corpus_sources(tmp_path)
    )

    async def session() -> None:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "inlet", "mcp", "--config", str(config)],
            env={**os.environ, "INLET_USER": "alice@example.com"},
        )
        async with Client(params) as client:
            await client.call_tool("search", {"query": "Falcon launch"})

    anyio.run(session)
    (line,) = lines_of(log)
    assert line["tool"] == "search" and line["key"] == "stdio" and line["user"] == "alice@example.com"
    assert line["status"] == 200 and line["doc_ids"]
    assert_clean(log.read_text())


def test_inlet_audit_reads_rotated_files_by_user_and_date(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path), max_bytes=1024, backups=50)  # small: several rotations
    for n in range(40):
        user = "alice@example.com" if n % 2 else "bob@example.com"
        audit.record(
            key=None,
            caller=None,
            user=user,
            status=200,
            ms=1.0,
            route="POST /v1/search",
            query=f"question {n}",
            doc_ids=[f"d{n}"],
        )
    audit.close()
    assert len(list(tmp_path.glob("audit.jsonl.*"))) >= 2
    everything = list(read_audit(path))
    assert [line["query"] for line in everything] == [f"question {n}" for n in range(40)]  # oldest first
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{tmp_path / "index"}"\n[server]\naudit_log = "{path}"\n')
    done = CliRunner().invoke(
        cli, ["audit", "--user", "ALICE@example.com", "--since", "2000-01-01", "--json", "--config", str(config)]
    )
    assert done.exit_code == 0, done.output
    lines = json.loads(done.output)["lines"]
    assert [line["doc_ids"] for line in lines] == [[f"d{n}"] for n in range(1, 40, 2)]
    later = CliRunner().invoke(cli, ["audit", "--since", "2999-01-01", "--json", "--config", str(config)])
    assert json.loads(later.output)["lines"] == []
    prose = CliRunner().invoke(cli, ["audit", "--user", "bob@example.com", "--config", str(config)])
    assert prose.exit_code == 0 and prose.output.count("\n") == 20 and "question 38" in prose.output


def test_inlet_audit_skips_a_line_that_is_json_but_not_an_object(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    lines = [
        json.dumps({"user": "alice@example.com", "query": f"q{n}", "time": "2026-01-01T00:00:00Z"}) for n in range(2)
    ]
    path.write_text("\n".join([lines[0], "12.5", "[]", '"x"', "null", "{torn", lines[1]]) + "\n")
    with caplog.at_level("WARNING", logger="inlet.server.audit"):
        assert [line["query"] for line in read_audit(path, "alice@example.com")] == ["q0", "q1"]
    skipped = [r.getMessage() for r in caplog.records if r.name == "inlet.server.audit"]
    assert len(skipped) == 5 and all("is not an audit line; skipped" in message for message in skipped)
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{tmp_path / "index"}"\n[server]\naudit_log = "{path}"\n')
    prose = CliRunner().invoke(cli, ["audit", "--config", str(config)])
    assert prose.exit_code == 0 and "q0" in prose.output and "q1" in prose.output, prose.output


def test_an_audit_file_moved_or_removed_under_the_writer_is_opened_anew(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe 31e F11: a file moved (an external logrotate) or removed while a server writes it: the
    next line goes to a new file at the path (0600), said once each time in the log; `inlet audit`
    on no file at all says so."""
    import logging

    from inlet.server.audit import _PrivateRotatingFile

    path = tmp_path / "audit.jsonl"
    writer = _PrivateRotatingFile(path, maxBytes=0, backupCount=0, encoding="utf-8")
    writer.setFormatter(logging.Formatter("%(message)s"))

    def write(text: str) -> None:  # as the audit log's writer thread does, here in this thread
        writer.handle(logging.makeLogRecord({"msg": text}))

    write("one")
    moved = tmp_path / "audit.jsonl-20261207"
    path.rename(moved)
    with caplog.at_level("WARNING", logger="inlet.server.audit"):
        write("two")
        path.unlink()
        write("three")
    writer.close()
    assert moved.read_text() == "one\n" and path.read_text() == "three\n"
    assert path.stat().st_mode & 0o777 == 0o600 and writer.lost == 0
    said = [r.getMessage() for r in caplog.records if r.name == "inlet.server.audit"]
    assert len(said) == 2 and all("was moved or removed while in use" in m for m in said)
    caplog.clear()
    with caplog.at_level("WARNING", logger="inlet.server.audit"):
        assert list(read_audit(tmp_path / "gone.jsonl")) == []
    assert "gone.jsonl does not exist" in caplog.text


def test_audit_off_by_default_and_dash_goes_to_the_log_stream(index: Index, caplog: pytest.LogCaptureFixture) -> None:
    assert ServerConfig().audit_log is None
    app = create_app(settings_for(index.path, audit_log="-"), index=index, env=KEYS)
    with caplog.at_level("INFO", logger="inlet.audit"), TestClient(app) as client:
        assert app.state.retrieval.ready.wait(30)
        client.post("/v1/search", json={"query": "deploy runbook"}, headers=ALICE)
    (record,) = [r for r in caplog.records if r.name == "inlet.audit"]
    assert json.loads(record.getMessage())["route"] == "POST /v1/search"


def test_a_full_disk_loses_lines_with_a_warning_and_the_total_at_close_and_no_query_on_stderr(
    small_disk: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Requests go on; logging's default would print each lost line (query and all) with a traceback."""
    path = small_disk / "audit.jsonl"
    audit = AuditLog(str(path))
    fill(small_disk, leave=0)
    with caplog.at_level("WARNING", logger="inlet.server.audit"):
        for n in range(40):
            audit.record(
                key=None, caller=None, status=200, ms=1.0, route="POST /v1/search", query=f"secret question {n}"
            )
        audit.close()
    err = capfd.readouterr().err
    assert "Logging error" not in err and "secret question" not in err and "Traceback" not in err
    warning, total = [r.getMessage() for r in caplog.records if r.name == "inlet.server.audit"]
    assert str(path) in warning and "No space left on device" in warning and "secret question" not in warning
    # probe 34g F2: the warning said "1 line(s) lost so far" and the other 39 were never said
    assert "40 line(s) lost in all" in total and audit.lost == 40
    metrics = Metrics(lambda: {}, lambda: {})
    metrics.registry.register(AuditCollector(lambda: audit.lost))
    assert "inlet_audit_lines_lost_total 40.0" in metrics.render().decode()


def test_after_lost_lines_the_total_is_said_when_writing_works_again(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe 34g F2: lines lost on a full disk, then room made: the next line written says how many
    were lost in all (the one warning said 1), so the close has nothing more to say."""
    path = small_disk / "audit.jsonl"
    writer = _PrivateRotatingFile(path, maxBytes=0, backupCount=0, encoding="utf-8")
    writer.setFormatter(logging.Formatter("%(message)s"))
    writer.handle(logging.makeLogRecord({"msg": "before"}))  # as the writer thread does, here in this thread
    filler = fill(small_disk, leave=0)
    with caplog.at_level("WARNING", logger="inlet.server.audit"):
        for n in range(5):
            writer.handle(logging.makeLogRecord({"msg": f"during {n} " + "x" * 8192}))
        filler.unlink()
        writer.handle(logging.makeLogRecord({"msg": "after"}))
        writer.close()
    said = [r.getMessage() for r in caplog.records if r.name == "inlet.server.audit"]
    assert len(said) == 2 and "1 line(s) lost so far" in said[0], said
    assert f"writing again; {writer.lost} line(s) lost in all" in said[1] and writer.lost >= 5
    assert path.read_text().splitlines()[-1] == "after"


def test_an_audit_folder_moved_away_is_made_again_and_no_line_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe 34g F2: with the audit folder moved away (archived) under a running server, every later
    line was lost until a restart, the folder being made only at start-up."""
    path = tmp_path / "audit" / "audit.jsonl"
    audit = AuditLog(str(path))
    audit.record(key=None, caller=None, status=200, ms=1.0, route="POST /v1/search", query="before")
    audit.close()
    audit = AuditLog(str(path))
    audit.record(key=None, caller=None, status=200, ms=1.0, route="POST /v1/search", query="one")
    writer = audit._listener.handlers[0]
    audit._listener.stop()  # every queued line written: the next one is written in this thread
    (tmp_path / "audit").rename(tmp_path / "archived")
    with caplog.at_level("WARNING", logger="inlet.server.audit"):
        writer.handle(logging.makeLogRecord({"msg": '{"query": "two"}'}))
        writer.close()
    assert writer.lost == 0 and path.read_text() == '{"query": "two"}\n'
    assert len((tmp_path / "archived" / "audit.jsonl").read_text().splitlines()) == 2
    assert (tmp_path / "audit").stat().st_mode & 0o777 == 0o700
    said = [r.getMessage() for r in caplog.records if r.name == "inlet.server.audit"]
    assert len(said) == 1 and "was moved or removed while in use" in said[0]


def test_a_rotation_by_another_process_writing_the_file_is_not_blamed_on_the_operator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Probe 34g F5: `inlet serve` and a stdio `inlet mcp` of one configuration write one audit file;
    each rotation by one was logged by the other as the file moved by an operator. Here two writers
    share the path, each rotating at a few lines: no warning, no line lost, each line once."""
    path = tmp_path / "audit.jsonl"
    writers = [_PrivateRotatingFile(path, maxBytes=64, backupCount=50, encoding="utf-8") for _ in range(2)]
    for writer in writers:
        writer.setFormatter(logging.Formatter("%(message)s"))
    with caplog.at_level("WARNING", logger="inlet.server.audit"):
        for n in range(40):
            writers[n % 2].handle(logging.makeLogRecord({"msg": f"line {n:02d} of the shared audit"}))
        for writer in writers:
            writer.close()
    assert [r.getMessage() for r in caplog.records if r.name == "inlet.server.audit"] == []
    files = [path, *sorted(tmp_path.glob("audit.jsonl.*"))]
    lines = sorted(line for f in files for line in f.read_text().splitlines())
    assert len(files) > 5 and lines == [f"line {n:02d} of the shared audit" for n in range(40)]
    assert all(w.lost == 0 for w in writers)


def test_an_audit_file_that_cannot_be_opened_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match=r"\[server\] audit_log: .*afile/audit.jsonl cannot be opened") as info:
        AuditLog(str(tmp_path / "afile" / "audit.jsonl"))
    assert info.value.exit_code == 2


def test_a_line_written_before_lines_named_the_key_kind_reads_as_it_did() -> None:
    from inlet.server.audit import acted_for

    assert acted_for({"key": "adm", "user": None}) == "operator"  # an older line: no "kind"
    assert acted_for({"key": "agent", "user": None, "kind": "on_behalf_of"}) == "(no user)"
    assert acted_for({"key": "adm", "user": None, "kind": "admin"}) == "operator"
    assert acted_for({"key": "bob", "user": "bob@x.org", "kind": "user"}) == "bob@x.org"


def test_a_look_alike_user_is_neither_the_user_it_looks_like_nor_printed_as_them(tmp_path: Path) -> None:
    """`\\u212aate@example.com` (KELVIN SIGN) is another user: `inlet audit --user kate@example.com`
    leaves its lines out, and its own lines name it with the sign spelt out."""
    from inlet.server.audit import acted_for

    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    for user in ("kate@example.com", "\u212aate@example.com", "JÜRGEN@example.com"):
        audit.record(key=None, caller=None, user=user, status=200, ms=1.0, route="POST /v1/search", query=user)
    audit.close()
    assert [line["query"] for line in read_audit(path, "Kate@Example.com")] == ["kate@example.com"]
    assert [line["query"] for line in read_audit(path, "\u212aATE@example.com")] == ["\u212aate@example.com"]
    assert [line["query"] for line in read_audit(path, "jürgen@example.com")] == ["JÜRGEN@example.com"]
    assert acted_for({"user": "\u212aate@example.com", "kind": "user"}) == "\\u212aate@example.com"
    assert acted_for({"user": "JÜRGEN@example.com", "kind": "user"}) == "JÜRGEN@example.com"


def test_the_prose_keeps_one_line_per_request_and_writes_look_alikes_apart(tmp_path: Path) -> None:
    """probe27c F8: what a token or request named (`sub`, tool, route, user) cannot forge a line (a
    newline in a `sub`) nor read as someone else (a Cyrillic `о` in the domain, a trailing ZERO WIDTH
    SPACE, a fullwidth letter); ordinary non-ASCII names read as they are; `--json` keeps the lines raw."""
    from inlet.server.auth import KeyEntry

    forged = "eve-1\n2026-12-07T14:00:00.000Z  boss-sub  for phillip.allen@enron.com  POST /v1/search  200"
    users = [
        ("sub-cyr", "phillip.allen@enr\u043en.com", "search"),
        ("sub-zwsp", "phillip.allen@enron.com\u200b", "search"),
        (forged, "eve@evil.example", "fetch\tfetch"),
        ("sub-full", "\uff50hillip.allen@enron.com", "search"),
        ("sub-jose", "josé@exámple.com", "search"),
        ("sub-ivan", "иван@пример.рф", "search"),
    ]
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(str(path))
    for subject, user, tool in users:
        entry = KeyEntry(
            name="oauth:agent", secret=b"", user=user, on_behalf_of=False, admin=False, subject=subject, issuer="i"
        )
        audit.record(key=entry, caller=None, status=200, ms=1.0, tool=tool, query="layoffs list")
    audit.close()
    config = tmp_path / "config.toml"
    config.write_text(f'[index]\npath = "{tmp_path / "index"}"\n[server]\naudit_log = "{path}"\n')
    prose = CliRunner().invoke(cli, ["audit", "--config", str(config)])
    assert prose.exit_code == 0, prose.output
    printed = prose.output.splitlines()
    assert len(printed) == len(users)  # no forged line
    assert "  sub-cyr  for phillip.allen@enr\\u043en.com  search  " in printed[0]
    assert "  sub-zwsp  for phillip.allen@enron.com\\u200b  search  " in printed[1]
    assert "  eve-1\\n2026-12-07T14:00:00.000Z  boss-sub  for phillip" in printed[2]
    assert "  for eve@evil.example  fetch\\tfetch  " in printed[2]
    assert "  for \\uff50hillip.allen@enron.com  " in printed[3]
    assert "  for josé@exámple.com  " in printed[4] and "  for иван@пример.рф  " in printed[5]
    raw = json.loads(CliRunner().invoke(cli, ["audit", "--json", "--config", str(config)]).output)["lines"]
    assert [(line["subject"], line["user"], line["tool"]) for line in raw] == users
