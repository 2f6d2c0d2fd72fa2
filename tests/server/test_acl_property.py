"""Permissions at random: every read path against a reference model of the document ACL (connectors/model.py).

Hypothesis builds random documents with random ACLs (users with and without a domain, mixed-case
emails, domains, sub-domains and look-alike domains, public) and random callers, indexes them for
real (real model, real Chroma, real SQLite), and checks dense, BM25 and hybrid search,
/v1/search, /v1/context, /v1/documents and the MCP `fetch` tool: the documents each path returns
are exactly those the reference model lets the caller see (zero leaks, zero misses).

CI runs INLET_ACL_EXAMPLES (default 20) random corpora; the long run is
`INLET_ACL_EXAMPLES=500 pytest tests/server/test_acl_property.py`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document, principals_for
from inlet.storage import Filters, chunk_doc_id
from inlet.index.embedding import Embedder
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index
from inlet.server.auth import Caller
from inlet.server.mcp import InletTools

from .conftest import AGENT, OPS, client_for, settings_for

EXAMPLES = int(os.environ.get("INLET_ACL_EXAMPLES", "20"))
NAMES = ["alice", "bob", "carol", "dave"]
DOMAINS = ["example.com", "eng.example.com", "example.co", "examp1e.com", "example.com.evil.org", "other.org"]
WORDS = [
    "budget",
    "launch",
    "roadmap",
    "invoice",
    "harbour",
    "meadow",
    "quarter",
    "pipeline",
    "station",
    "lantern",
    "orchard",
    "compass",
    "glacier",
    "ferry",
    "tunnel",
    "marble",
]
QUERY = "quokka"  # every document says it, so every visible document matches every search


def mixed_case(text: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(text, upper))
    )


identities = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.sampled_from(DOMAINS)).map(lambda p: f"{p[0]}@{p[1]}"),
    st.sampled_from(NAMES),  # a user without a domain
).flatmap(mixed_case)
acls = st.builds(
    ACL,
    public=st.integers(0, 3).map(lambda n: n == 0),  # one in four public
    users=st.lists(identities, max_size=3),
    domains=st.lists(st.sampled_from(DOMAINS).flatmap(mixed_case), max_size=2),
)
callers = st.one_of(st.none(), identities)


@dataclass(frozen=True)
class Spec:
    acl: ACL
    words: tuple[str, ...]


specs = st.lists(
    st.builds(Spec, acl=acls, words=st.lists(st.sampled_from(WORDS), min_size=8, max_size=12).map(tuple)),
    min_size=1,
    max_size=10,
)


def may_see(user: str | None, acl: ACL) -> bool:
    """The ACL rule of the document model, written independently of the index: operators see everything; a user
    sees public documents, documents listing them (case-insensitive), and documents listing
    their email's domain exactly (no sub-domain or look-alike matches)."""
    if user is None:
        return True
    email = user.strip().lower()
    domain = email.rpartition("@")[2] if "@" in email else None
    return (
        acl.public
        or email in {u.lower() for u in acl.users}
        or (domain is not None and domain in {d.lower() for d in acl.domains})
    )


@pytest.mark.parametrize(
    "user,acl,visible",
    [
        ("Alice@Example.COM", ACL(users=["alice@example.com"]), True),
        ("alice@example.com", ACL(domains=["EXAMPLE.com"]), True),
        ("alice@eng.example.com", ACL(domains=["example.com"]), False),  # a sub-domain is another domain
        ("alice@example.com", ACL(domains=["eng.example.com"]), False),
        ("alice@examp1e.com", ACL(domains=["example.com"]), False),  # a look-alike
        ("alice@example.com.evil.org", ACL(domains=["example.com"]), False),
        ("alice", ACL(users=["alice"]), True),  # no domain
        ("alice", ACL(domains=["example.com"]), False),
        ("bob@other.org", ACL(), False),  # admins only
        (None, ACL(), True),
    ],
)
def test_the_reference_model(user: str | None, acl: ACL, visible: bool) -> None:
    assert may_see(user, acl) is visible
    principals = principals_for(user)
    assert (principals is None or bool(set(principals) & set(acl.principals()))) is visible  # the index's tokens agree


@dataclass
class World:
    index: Index
    client: TestClient
    tools: InletTools
    ids: list[str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[World]:
    path: Path = tmp_path_factory.mktemp("acl-property")
    with Index(IndexConfig(path=path), embedder=embedder) as index:
        for client in client_for(settings_for(path), index):
            retrieval = client.app.state.retrieval  # type: ignore[attr-defined]
            yield World(index, client, InletTools(retrieval, 0, lambda ctx: None), [])  # type: ignore[arg-type,return-value]


def load(world: World, corpus: list[Spec]) -> dict[str, ACL]:
    docs = [
        Document(
            id=f"p:{i}",
            source="p",
            source_type="files",
            title=f"Note {i}",
            text=f"{QUERY} " + " ".join(f"{w}{i}" for w in spec.words),
            acl=spec.acl,
        )
        for i, spec in enumerate(corpus)
    ]  # words suffixed per document: no two are near-duplicates
    world.index.apply(docs, deletions=world.ids)
    world.ids = [d.id for d in docs]
    return {d.id: d.acl for d in docs}


def docs_of(chunks: list[tuple[str, float]]) -> set[str]:
    return {chunk_doc_id(cid) for cid, _ in chunks}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(corpus=specs, users=st.lists(callers, min_size=1, max_size=4))
def test_every_read_path_shows_exactly_what_the_acl_allows(
    world: World, corpus: list[Spec], users: list[str | None]
) -> None:
    acl_of = load(world, corpus)
    for user in users:
        expected = {doc_id for doc_id, acl in acl_of.items() if may_see(user, acl)}
        principals = principals_for(user)
        filters = Filters(principals=tuple(principals) if principals is not None else None)
        assert docs_of(world.index.dense(QUERY, filters, 100)) == expected, ("dense", user)
        assert docs_of(world.index.lexical(QUERY, filters, 100)) == expected, ("bm25", user)
        hits, _ = search(
            world.index, SearchRequest(query=QUERY, k=50, user=user, per_document=1, recency_half_life_days=0)
        )
        assert {h.doc_id for h in hits} == expected, ("hybrid", user)
        check_api(world, user, expected, acl_of)


def check_api(world: World, user: str | None, expected: set[str], acl_of: dict[str, ACL]) -> None:
    headers, body = (OPS, {}) if user is None else (AGENT, {"user": user})
    found = world.client.post("/v1/search", headers=headers, json={"query": QUERY, "k": 50, **body}).json()
    assert {r["doc_id"] for r in found["results"]} == expected, ("/v1/search", user)
    packed = world.client.post(
        "/v1/context", headers=headers, json={"query": QUERY, "k": 50, "token_budget": 20_000, **body}
    ).json()
    assert {c["doc_id"] for c in packed["citations"]} == expected, ("/v1/context", user)
    caller = Caller("agent", user, admin=user is None)
    for doc_id in acl_of:
        params = {} if user is None else {"user": user}
        status = world.client.get(f"/v1/documents/{doc_id}", headers=headers, params=params).status_code
        assert status == (200 if doc_id in expected else 404), ("/v1/documents", user, doc_id)
        result = asyncio.run(world.tools.call("fetch", {"id": doc_id}, caller))
        assert result.is_error == (doc_id not in expected), ("mcp fetch", user, doc_id)
