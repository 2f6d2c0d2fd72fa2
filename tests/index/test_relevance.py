"""`relevance` and `match`: the features they are computed from, and what they say on a small index."""

from __future__ import annotations

import importlib.util
import math
from datetime import datetime, timezone
from pathlib import Path

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


COUNTS = {"plan": 12, "office": 40, "tokyo": 0, "cafeteria": 0, "p99": 0, "latency": 3, "west": 9, "gas": 20}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("what is the plan for the Tokyo office", 1.0),  # a place the index never mentions
        ("why did search p99 latency double", 1.0),  # a number-word no chunk holds
        ("Tokyo office plan", 0.0),  # the first word is capitalised anyway
        ("when does the cafeteria open", 0.0),  # an unknown common word: paraphrases use those too
        ("what is the West Gas plan", 0.0),  # named, and held
    ],
)
def test_named_absent_is_a_name_or_number_of_the_question_that_no_chunk_holds(query, named) -> None:
    assert rel.named_absent(query, lambda term: COUNTS.get(term, 5)) == named
    assert rel.named_absent(query, None) == 0.0  # without term counts nothing is known absent


def test_match_is_decided_by_the_answer_level_model_when_given_its_features() -> None:
    model = rel.model()
    assert model.answer_min is not None and model.answer_weights["best"] > 0
    assert model.answer_weights["named_absent"] < 0  # naming what the index lacks lowers the chance of an answer
    # The best relevance at which the answer-level model's chance reaches its threshold.
    z = math.log(model.answer_min / (1 - model.answer_min))
    edge = 1 / (1 + math.exp(-(z - model.answer_bias) / model.answer_weights["best"]))
    above = min(edge * 1.05, (edge + 1) / 2)
    known = rel.answer_features([above, 0.0], "what is the West Gas plan", lambda t: COUNTS.get(t, 5))
    unknown = rel.answer_features([above, 0.0], "what is the Tokyo plan", lambda t: COUNTS.get(t, 5))
    assert model.match([above, 0.0], known) in ("weak", "strong")
    assert model.match([above, 0.0], unknown) == "none"
    below = rel.answer_features([edge * 0.9], "what is the West Gas plan", lambda t: COUNTS.get(t, 5))
    assert model.match([edge * 0.9], below) == "none"
    assert model.match([], rel.answer_features([], "anything", None)) == "none"


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


def test_named_absent_reads_the_index_term_counts(index) -> None:
    frequency = rel.frequency_of(index)
    assert frequency is not None
    assert rel.named_absent("what is in the West Gas plan", frequency) == 0.0
    assert rel.named_absent("what is in the Tokyo plan", frequency) == 1.0
    asked, _ = best(index, "what is in the West Gas 2001 plan")
    other, _ = best(index, "what is in the West Gas 2001 plan for Tokyo")
    order = ("none", "weak", "strong")
    assert order.index(other.match) <= order.index(asked.match)


def test_fit_answer_calls_none_for_no_more_answerable_questions_than_min_relevance(monkeypatch) -> None:
    benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    monkeypatch.syspath_prepend(str(benchmarks))
    spec = importlib.util.spec_from_file_location("fit_relevance", benchmarks / "fit_relevance.py")
    assert spec and spec.loader
    fitting = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fitting)
    model = rel.Model(weights={"dense": 1.0}, bias=0.0, min_relevance=0.3, strong=0.9)  # relevance = logistic(dense)

    def row(relevance: float) -> list[float]:
        return [math.log(relevance / (1 - relevance)) if name == "dense" else 0.0 for name in rel.FEATURES]

    answers, answerable = [], []
    for i in range(60):  # answerable: best relevance spread over 0.1-0.9, a top-5 answer for all but the lowest
        best = 0.1 + 0.8 * i / 59
        answers.append(([row(best), row(best / 2)], 0.0, best > 0.2))
        answerable.append(True)
    for i in range(30):  # unanswerable: low relevance, half of them naming what the index lacks
        best = 0.05 + 0.4 * i / 29
        answers.append(([row(best)], float(i % 2), False))
        answerable.append(False)
    got = fitting.fit_answer(model, answers, answerable, model.min_relevance, 1.0)
    assert got["weights"]["best"] > 0 and got["weights"]["named_absent"] < 0
    scored = rel.Model({}, 0.0, 0.0, 1.0, answer_weights=got["weights"], answer_bias=got["bias"])
    below = sum(1 for (hits, _, _), a in zip(answers, answerable) if a and model.relevance({"dense": hits[0][0]}) < 0.3)
    none = [scored.answers(f) < got["min"] for f in got["features"]]
    assert 0 < sum(n for n, a in zip(none, answerable) if a) <= below
    assert sum(n for n, a in zip(none, answerable) if not a) > 0
