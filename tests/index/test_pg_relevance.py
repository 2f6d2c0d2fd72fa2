"""`relevance` and `match` do not depend on where the index is stored: the same requests over the same
documents give the same results, order, relevance and match in PostgreSQL + a Chroma server as in
the folder (SQLite + embedded Chroma)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.index.embedding import Embedder
from inlet.index.search import Answer, SearchRequest, answer
from inlet.index.store import Index

UTC = timezone.utc
TEXTS = {
    "plan": ("West Gas 2001 plan", "The West Gas desk plans 40 Bcf of storage injections for 2001."),
    "outage": ("March outage postmortem", "The API went down on 14 March: a certificate expired on the load balancer."),
    "deploy": ("Deploy log", "Deploy of billing finished on 12 nodes; the migration ran first."),
    "lunch": ("Lunch menu", "Tacos on Tuesday, soup on Friday, pizza for the offsite."),
    "parking": ("Parking", "The garage on Smith street closes at 9 pm; badges open the side door."),
    "oncall": ("On-call rotation", "The on-call rotation changes every Monday at 10:00; swaps go in the sheet."),
}
QUERIES = [
    "why did the API go down in March",
    "how often does the on-call rotation change",
    "what is in the West Gas 2003 plan",
    "who approved the parental leave policy",
    "billing deploy",
]


def corpus() -> list[Document]:
    return [
        Document(
            id=f"notes:{name}",
            source="notes",
            source_type="files",
            title=title,
            text=text,
            acl=ACL(public=True),
            created_at=datetime(2001, 3, n + 1, tzinfo=UTC),
            updated_at=datetime(2001, 3, n + 1, tzinfo=UTC),
        )
        for n, (name, (title, text)) in enumerate(TEXTS.items())
    ]


@pytest.fixture(scope="module")
def folder_index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Index]:
    with Index(IndexConfig(path=tmp_path_factory.mktemp("folder") / "index"), embedder=embedder) as index:
        index.apply(corpus(), generation=1)
        yield index


@pytest.fixture(scope="module")
def pg_index(embedder: Embedder, postgres_url: str, chroma_server_url: str) -> Iterator[Index]:
    """The same documents in PostgreSQL + a Chroma server (the session's collection emptied first)."""
    import chromadb

    from inlet.index.vectors import COLLECTION
    from tests.servers import new_database

    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server_url.rsplit(":", 1)[1]))
    if COLLECTION in [c.name for c in client.list_collections()]:
        client.delete_collection(COLLECTION)
    config = IndexConfig(database_url=new_database(postgres_url, "relevance"), chroma_url=chroma_server_url)
    with Index(config, embedder=embedder) as index:
        index.apply(corpus(), generation=1)
        yield index


def ask(index: Index, query: str) -> Answer:
    return answer(index, SearchRequest(query=query, k=5, recency_half_life_days=0, interpret=False))


@pytest.mark.parametrize("query", QUERIES)
def test_the_same_request_gets_the_same_relevance_and_match(folder_index: Index, pg_index: Index, query: str) -> None:
    here, there = ask(folder_index, query), ask(pg_index, query)
    assert [h.doc_id for h in there.hits] == [h.doc_id for h in here.hits]
    assert there.match == here.match
    for a, b in zip(here.hits, there.hits):
        assert b.relevance == pytest.approx(a.relevance, abs=0.02), (a.doc_id, a.features, b.features)


def test_query_words_are_weighted_by_the_same_counts(folder_index: Index, pg_index: Index) -> None:
    for word in ("", "rotation", "rotations", "deploy", "tacos", "parental"):
        assert pg_index.catalog._frequency(word) == folder_index.catalog._frequency(word), word
