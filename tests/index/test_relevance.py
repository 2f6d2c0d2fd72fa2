"""`relevance` and `match`: the features they are computed from, and what they say on a small index."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.index import relevance as rel
from inlet.index.search import SearchRequest, answer
from inlet.index.store import Index

UTC = timezone.utc


@pytest.mark.parametrize(
    ("query", "text", "created", "missing"),
    [
        ("the West Gas 2003 budget", "West Gas budget for 2001", None, 1.0),
        ("the West Gas 2001 budget", "West Gas budget for 2001", None, 0.0),
        ("the Q4 roadmap", "Q3 roadmap: search v2 on track", None, 1.0),
        ("what happened in June 2001", "the outage review", datetime(2001, 6, 3, tzinfo=UTC), 0.0),
        ("search p99 latency in June", "p50 latency doubled", datetime(2001, 6, 3, tzinfo=UTC), 1.0),
        ("enrique 0.2 and 0.3 releases", "enrique 0.2 release notes", None, 1 / 3),  # 0, 2 held; 3 lacking
        ("why did the deploy fail", "anything at all", None, 0.0),  # no number: nothing to lack
    ],
)
def test_numbers_missing_is_the_share_of_the_querys_numbers_the_document_lacks(query, text, created, missing) -> None:
    assert rel.numbers_missing(query, text, created) == pytest.approx(missing)


def test_match_follows_the_best_relevance_and_the_models_thresholds() -> None:
    model = rel.model()
    assert model.min_relevance < model.strong
    assert model.match([]) == "none"
    assert model.match([model.min_relevance / 2]) == "none"
    assert model.match([0.0, model.min_relevance]) == "weak"
    assert model.match([model.strong, 0.0]) == "strong"


def doc(n: str, title: str, text: str, when: datetime) -> Document:
    return Document(
        id=f"drive:{n}",
        source="drive",
        source_type="google_drive",
        title=title,
        text=text,
        acl=ACL(public=True),
        created_at=when,
        updated_at=when,
    )


@pytest.fixture
def index(tmp_path, embedder):
    corpus = [
        doc("1", "West Gas 2001 plan", "The desk plans 40 Bcf of storage.", datetime(2001, 1, 5, tzinfo=UTC)),
        doc("2", "Lunch menu", "Tacos on Tuesday, soup on Friday.", datetime(2001, 1, 9, tzinfo=UTC)),
        doc("3", "Parking", "The garage on Smith street closes at 9.", datetime(2001, 1, 7, tzinfo=UTC)),
    ]
    with Index(IndexConfig(path=tmp_path / "ix"), embedder=embedder) as ix:
        ix.apply(corpus, generation=1)
        yield ix


def best(index: Index, query: str):
    got = answer(index, SearchRequest(query=query, recency_half_life_days=0, interpret=False))
    return got, got.hits[0]


def test_a_number_the_document_lacks_lowers_its_relevance(index) -> None:
    asked, right = best(index, "what is in the West Gas 2001 plan")
    other, wrong = best(index, "what is in the West Gas 2003 plan")
    assert right.doc_id == wrong.doc_id == "drive:1"
    assert right.features["number"] == 0.0 and wrong.features["number"] == 1.0
    assert wrong.relevance < right.relevance
    order = ("none", "weak", "strong")
    assert order.index(other.match) <= order.index(asked.match)
