"""The final order: likely answers (relevance at or above the model's `min_relevance`) first, the
rest in fused order; a short list is cut from the reordered pool, not from the fused order."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import Document
from inlet.index import search as S
from inlet.index.search import Hit, SearchRequest, answer
from inlet.index.store import Index
from tests.index.test_relevance import doc as dated


FLOOR = S.rel.model().min_relevance


def below(share: float) -> float:
    return FLOOR * share


def above(share: float) -> float:
    return FLOOR + (1 - FLOOR) * share


def hit(name: str, score: float, relevance: float, relative: float) -> Hit:
    return Hit(
        chunk_id=f"{name}#0",
        doc_id=name,
        source="drive",
        source_type="google_drive",
        title=name,
        text="",
        url="",
        author="",
        created_at=None,
        updated_at=None,
        score=score,
        relevance=relevance,
        features={"relative": relative},
    )


def test_likely_answers_go_first_and_the_rest_keep_the_fused_order() -> None:
    fused = [
        hit("a", 5.0, below(0.5), 1.0),
        hit("b", 4.0, below(0.9), 0.8),
        hit("c", 3.0, above(0.8), 0.6),
        hit("d", 2.0, above(0.1), 0.4),
        hit("e", 1.0, below(0.2), 0.2),
    ]
    assert [h.doc_id for h in S._reordered(fused)] == ["c", "d", "a", "b", "e"]


def test_among_likely_answers_the_fused_score_weighs_most() -> None:
    assert S.RERANK_WEIGHT == pytest.approx(0.1) and 0.01 < FLOOR < 0.5
    # A sure answer does not overturn a fused score twice as high as its own.
    fused = [hit("a", 2.0, FLOOR, 1.0), hit("b", 1.0, 0.99, 0.5)]
    assert [h.doc_id for h in S._reordered(fused)] == ["a", "b"]
    # Close behind, it does.
    fused = [hit("a", 2.0, FLOOR, 1.0), hit("b", 1.9, 0.99, 0.95)]
    assert [h.doc_id for h in S._reordered(fused)] == ["b", "a"]


def test_below_the_floor_nothing_moves() -> None:
    fused = [hit("a", 5.0, below(0.5), 1.0), hit("b", 4.0, below(0.99), 0.8), hit("c", 3.0, below(0.8), 0.6)]
    assert [h.doc_id for h in S._reordered(fused)] == ["a", "b", "c"]


def doc(n: str, title: str, text: str) -> Document:
    return dated(n, title, text, datetime(2001, 1, int(n), tzinfo=UTC))


@pytest.fixture
def index(tmp_path, embedder):
    corpus = [
        doc("1", "West Gas 2001 plan", "The west desk plans 40 Bcf of gas storage for 2001."),
        doc("2", "Gas storage notes", "Storage levels in the east were low; the plan is unchanged."),
        doc("3", "Lunch menu", "Tacos on Tuesday, soup on Friday."),
        doc("4", "Parking", "The garage on Smith street closes at 9."),
        doc("5", "West desk offsite", "The west desk meets in Portland to plan the year."),
        doc("6", "Gas prices", "West gas basis widened in December."),
    ]
    with Index(IndexConfig(path=tmp_path / "ix"), embedder=embedder) as ix:
        ix.apply(corpus, generation=1)
        yield ix


@pytest.mark.parametrize("query", ["how much gas storage does the west desk plan", "lunch on Tuesday", "parking"])
def test_a_search_returns_its_pool_in_the_reordered_order(index, query) -> None:
    hits = answer(index, SearchRequest(query=query, recency_half_life_days=0, interpret=False)).hits
    likely = [h for h in hits if h.relevance >= FLOOR]
    assert all(h.relevance >= FLOOR for h in hits[: len(likely)])
    assert all(h.relevance < FLOOR for h in hits[len(likely) :])
    rest = [h.score for h in hits[len(likely) :]]
    assert rest == sorted(rest, reverse=True)


def test_a_short_list_is_the_head_of_the_reordered_pool(index) -> None:
    query = "how much gas storage does the west desk plan"
    full = answer(index, SearchRequest(query=query, k=10, recency_half_life_days=0, interpret=False)).hits
    for k in (1, 2, 3):
        short = answer(index, SearchRequest(query=query, k=k, recency_half_life_days=0, interpret=False)).hits
        assert [h.doc_id for h in short] == [h.doc_id for h in full[:k]]
