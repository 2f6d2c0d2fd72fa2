"""Names win: a passage holding a ticket number, order id, error code, host, address or channel is
first among 300 look-alike tickets, through `/v1/search`, `/v1/context` and MCP `search`.

The tickets (inlet/sandbox/tickets.py) share one template; each identifier appears in one ticket
alone, next to neighbours that differ by a digit, which the embedding model cannot tell apart. They
go through the real `files` connector, chunking and embedding once for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.connectors.registry import connector_class
from inlet.index.embedding import Embedder
from inlet.index.store import Index
from inlet.sandbox.tickets import Ticket, tickets, write_folders
from inlet.server.app import create_app

from .conftest import KEYS, OPS, serve, settings_for
from .test_mcp import call, check_tool_result, http_client

PICKED = [tickets()[n] for n in (31, 192, 257)]
SHAPES = {  # identifier shape -> the query naming it, bare or in a question
    "ticket": lambda t: f"what happened with {t.number}?",
    "order": lambda t: t.order,
    "error code": lambda t: f"error {t.error}",
    "host": lambda t: f"who worked on {t.host}",
    "host name alone": lambda t: f"incidents on {t.host.split('.')[0]}",
    "e-mail": lambda t: f"tickets opened by {t.contact}",
    "channel": lambda t: t.channel,
}
CASES = [(shape, t) for shape in SHAPES for t in PICKED]
PHRASE_DOCS = [  # the same words; only one has them in the quoted order
    Document(
        id="notes:release-a",
        source="notes",
        source_type="files",
        title="Release notes",
        text="The release was blocked by legal review, not by the failing tests.",
        acl=ACL(public=True),
    ),
    Document(
        id="notes:release-b",
        source="notes",
        source_type="files",
        title="Release notes",
        text="Legal review was not blocking; the release was blocked by the failing tests and review "
        "of the legal text went fine.",
        acl=ACL(public=True),
    ),
]


def load_folder(name: str, folder: Path) -> list[Document]:
    cls = connector_class("files")
    config = cls.Config.model_validate({"name": name, "type": "files", "path": str(folder)})
    return [item for item in cls(config, {}).load(None) if isinstance(item, Document)]


@pytest.fixture(scope="module")
def ticket_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Index]:
    root = tmp_path_factory.mktemp("tickets")
    ticket_folder, runbook_folder = write_folders(root / "data")
    with Index(IndexConfig(path=root / "index"), embedder=embedder) as index:
        index.apply(load_folder("tickets", ticket_folder) + load_folder("runbooks", runbook_folder) + PHRASE_DOCS)
        yield index


@pytest.fixture(scope="module")
def pg_ticket_index(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, postgres_url: str, chroma_server_url: str
) -> Iterator[Index]:
    """The same tickets in PostgreSQL + a Chroma server (one collection per session's server: emptied first)."""
    import chromadb

    from inlet.index.vectors import COLLECTION
    from tests.servers import new_database

    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server_url.rsplit(":", 1)[1]))
    if COLLECTION in [c.name for c in client.list_collections()]:
        client.delete_collection(COLLECTION)
    ticket_folder, runbook_folder = write_folders(tmp_path_factory.mktemp("pg-tickets"))
    config = IndexConfig(database_url=new_database(postgres_url, "tickets"), chroma_url=chroma_server_url)
    with Index(config, embedder=embedder) as index:
        index.apply(load_folder("tickets", ticket_folder) + load_folder("runbooks", runbook_folder) + PHRASE_DOCS)
        yield index


@pytest.fixture(scope="module")
def app(ticket_index: Index) -> Any:
    return create_app(settings_for(ticket_index.path), index=ticket_index, env=KEYS)


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        assert app.state.retrieval.ready.wait(30)
        yield client


def holder(ticket: Ticket) -> str:
    return f"tickets:{ticket.filename}"


@pytest.mark.parametrize(("shape", "ticket"), CASES, ids=[f"{s}-{t.number}" for s, t in CASES])
def test_search_puts_the_holder_first(client: TestClient, shape: str, ticket: Ticket) -> None:
    response = client.post("/v1/search", json={"query": SHAPES[shape](ticket), "k": 5}, headers=OPS)
    assert response.status_code == 200, response.text
    assert [r["doc_id"] for r in response.json()["results"]][0] == holder(ticket)


@pytest.mark.parametrize(("shape", "ticket"), CASES, ids=[f"{s}-{t.number}" for s, t in CASES])
def test_context_cites_the_holder_first(client: TestClient, shape: str, ticket: Ticket) -> None:
    response = client.post("/v1/context", json={"query": SHAPES[shape](ticket), "token_budget": 600}, headers=OPS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["citations"][0]["doc_id"] == holder(ticket)
    assert ticket.number in body["context"].split("[2]")[0]  # the first block is the ticket's text


def test_mcp_search_puts_the_holder_first(ticket_index: Index) -> None:
    async def firsts(url: str) -> list[str]:
        async with http_client(url, Authorization=OPS["Authorization"]) as mcp:
            return [
                check_tool_result(await call(mcp, "search", {"query": SHAPES[shape](t)}))["results"][0]["id"]
                for shape, t in CASES
            ]

    for address in serve(create_app(settings_for(ticket_index.path), index=ticket_index, env=KEYS), lifespan="on"):
        assert anyio.run(firsts, f"http://{address}") == [holder(t) for _, t in CASES]


def test_a_quoted_phrase_matches_as_a_phrase(client: TestClient) -> None:
    for query, first in (
        ('"blocked by legal review"', "notes:release-a"),
        ('"blocked by the failing tests" release notes', "notes:release-b"),
    ):
        response = client.post("/v1/search", json={"query": query, "k": 3}, headers=OPS)
        assert response.json()["results"][0]["doc_id"] == first, query


def test_postgresql_puts_the_holder_first_as_the_folder_does(pg_ticket_index: Index, ticket_index: Index) -> None:
    """The same identifier and phrase queries on PostgreSQL, whose BM25 matches phrases by
    position (storage/postgres/lexical.py): the holder is first there too, with the same exact matches."""
    from inlet.index.search import SearchRequest, search

    for shape, ticket in CASES:
        query = SHAPES[shape](ticket)
        hits, _ = search(pg_ticket_index, SearchRequest(query, k=5))
        assert hits[0].doc_id == holder(ticket), query
        assert pg_ticket_index.exact_matches(query, SearchRequest(query).filters()) == ticket_index.exact_matches(
            query, SearchRequest(query).filters()
        ), query
    for query, first in (
        ('"blocked by legal review"', "notes:release-a"),
        ('"blocked by the failing tests" release notes', "notes:release-b"),
    ):
        assert search(pg_ticket_index, SearchRequest(query, k=3))[0][0].doc_id == first, query
