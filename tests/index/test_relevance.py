"""`relevance` and `match`: the features they are computed from, and what they say on a small index."""

from __future__ import annotations

import importlib.util
import math
from datetime import datetime, timedelta, timezone
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
        ("search p99 latency in June", "p50 latency doubled", datetime(2001, 6, 3, tzinfo=UTC), 0.5),  # June held
        ("enrique 0.2 and 0.3 releases", "enrique 0.2 release notes", None, 1 / 3),  # 0, 2 held; 3 lacking
        ("why did the deploy fail", "anything at all", None, 0.0),  # no number: nothing to lack
    ],
)
def test_numbers_missing_is_the_share_of_the_querys_numbers_the_document_lacks(query, text, created, missing) -> None:
    assert rel.numbers_missing(query, text, created) == pytest.approx(missing)


MARCH_2024 = datetime(2024, 3, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "text", "created", "missing"),
    [
        # The March postmortem does not answer a question about the June outage, however alike.
        ("What was the root cause of the June outage?", "Incident postmortem 2024-03: root cause", MARCH_2024, 1.0),
        ("What was the root cause of the March outage?", "Incident postmortem: root cause", MARCH_2024, 0.0),
        ("what did the june all-hands say about hiring", "Slide 1: All-hands March", None, 1.0),
        ("June's release notes", "Release notes, Jun 2024", None, 0.0),  # an abbreviation holds it
        ("the mid-June outage", "outage report 2024-06-12", None, 0.0),  # so does a date in numbers
        ("the outage in June", "report of 6/3/2001", None, 0.0),  # month-first or day-first: both
        ("the outage in September", "report of 6/3/2001", None, 1.0),
        ("the June 2024 numbers", "2024 numbers for March", None, 0.5),  # a month and a year: one lacking
        ("what did the May offsite decide", "offsite notes", MARCH_2024, 1.0),
        ("May I see the 2024 budget?", "budget 2024", None, 0.0),  # "May" first: a modal
        ("what budget may we spend", "budget", None, 0.0),
        ("why did the teams march on the office", "teams office", None, 0.0),  # a verb
        ("what broke in march", "outage", MARCH_2024, 0.0),
        ("what broke in march", "outage", None, 1.0),
        # A month with its day is one date: held when both are, by the text or the document's date.
        ("the failover on March 30", "failover at 02:10", datetime(2024, 3, 14, tzinfo=UTC), 1.0),
        ("the failover on March 30", "failover at 02:10", datetime(2024, 3, 30, tzinfo=UTC), 0.0),
        ("is the 26th of December a work day", "Office closed December 24-26", None, 0.0),
        ("is the 26th of December a work day", "Office closed December 24-25", None, 1.0),
        ("the March 3.5 release", "release 3.5 notes", None, 1 / 3),  # a version, not a day: 3, 5 held
    ],
)
def test_a_month_the_question_names_counts_like_a_number(query, text, created, missing) -> None:
    assert rel.numbers_missing(query, text, created) == pytest.approx(missing)


def test_match_follows_the_best_relevance_and_the_models_thresholds() -> None:
    model = rel.model()
    assert model.min_relevance < model.strong
    assert model.match([]) == "none"
    assert model.match([model.min_relevance / 2]) == "none"
    assert model.match([0.0, model.min_relevance]) == "weak"
    assert model.match([model.strong, 0.0]) == "strong"


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("when does the cafeteria open", 2),  # when, does, the: stopwords
        ("what time does the garage on Smith street close at night", 6),
        ("is the garage closed, the garage on Smith street?", 4),  # a word counts once
        ("how much storage did the West Gas desk plan for 2001 and 2002 in Houston and Portland", rel.MAX_TERMS),
        ("what is it", 0),
    ],
)
def test_question_terms_counts_the_content_words_up_to_the_cap(query, terms) -> None:
    assert rel.question_terms(query) == terms
    assert rel.answer_features([0.5], query)["terms"] == terms


def best_at_edge(model: rel.Model, terms: float) -> float:
    """The best relevance at which the answer-level model's chance reaches its threshold for a question of
    `terms` content words."""
    assert model.answer_min is not None
    z = math.log(model.answer_min / (1 - model.answer_min))
    w = model.answer_weights
    return (z - model.answer_bias - w["terms"] * terms) / w["best"]


def test_the_same_best_relevance_is_weaker_evidence_for_a_shorter_question() -> None:
    model = rel.model()
    assert model.answer_weights["best"] > 0 and model.answer_weights["terms"] > 0
    long, short = "what time does the garage on Smith street close at night", "what is the parking fee"
    between = (best_at_edge(model, rel.question_terms(long)) + best_at_edge(model, rel.question_terms(short))) / 2
    relevance = 1 / (1 + math.exp(-between))  # under the short question's edge, above the long one's
    assert model.match([relevance, 0.0], rel.answer_features([relevance, 0.0], long)) in ("weak", "strong")
    assert model.match([relevance, 0.0], rel.answer_features([relevance, 0.0], short)) == "none"
    assert model.match([], rel.answer_features([], "anything")) == "none"


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


def indexed(path, embedder, *texts: tuple[str, str]) -> Index:
    """An index of one document per (title, text), each a day older than the next."""
    ix = Index(IndexConfig(path=path), embedder=embedder)
    start = datetime(2001, 1, 5, tzinfo=UTC)
    ix.apply([doc(str(n), t, x, start + timedelta(days=n)) for n, (t, x) in enumerate(texts, 1)], generation=1)
    return ix


@pytest.fixture
def index(tmp_path, embedder):
    with indexed(
        tmp_path / "ix",
        embedder,
        ("West Gas 2001 plan", "The desk plans 40 Bcf of storage."),
        ("Lunch menu", "Tacos on Tuesday, soup on Friday."),
        ("Parking", "The garage on Smith street closes at 9."),
    ) as ix:
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


def test_match_tells_a_question_worded_at_length_from_a_short_look_alike(index) -> None:
    answered, garage = best(index, "what time does the garage on Smith street close at night")
    unanswered, parking = best(index, "what is the parking fee")
    assert garage.doc_id == parking.doc_id == "drive:3"  # the same document looks like an answer to both
    assert answered.match in ("weak", "strong")
    assert unanswered.match == "none"
    assert best(index, "who is the CEO")[0].match == "none"


@pytest.mark.parametrize(("asked", "held"), [("storages", "storage"), ("garages", "garage")])
def test_a_plural_or_another_form_of_a_word_counts_as_the_word(index, asked: str, held: str) -> None:
    """The features read a document's words on the keyword index's own (Porter) stems: "expenses"
    in a question found "Expense FAQ" but counted its word as missing, and `match` said none."""
    singular = best(index, f"the {held}")[1]
    plural = best(index, f"the {asked}")[1]
    assert singular.doc_id == plural.doc_id
    assert plural.features["coverage"] == singular.features["coverage"] == 1.0


@pytest.mark.parametrize(
    ("asked", "held"), [("expenses", "expense"), ("outages", "outage"), ("shipped", "ships"), ("policies", "policy")]
)
def test_coverage_reads_words_on_their_stems(asked: str, held: str) -> None:
    assert rel.coverage([asked], f"the {held} list") == 1.0


def fitting_module(monkeypatch):
    benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    monkeypatch.syspath_prepend(str(benchmarks))
    spec = importlib.util.spec_from_file_location("fit_relevance", benchmarks / "fit_relevance.py")
    assert spec and spec.loader
    fitting = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fitting)
    return fitting


def test_fit_answer_learns_the_question_length_and_calls_none_for_at_most_the_allowed_share(monkeypatch) -> None:
    fitting = fitting_module(monkeypatch)
    model = rel.Model(weights={"dense": 1.0}, bias=0.0, min_relevance=0.3, strong=0.9)  # relevance = logistic(dense)

    def row(relevance: float) -> list[float]:
        return [math.log(relevance / (1 - relevance)) if name == "dense" else 0.0 for name in rel.FEATURES]

    words = "alpha bravo charlie delta echo foxtrot golf hotel".split()
    answers, answerable = [], []
    for i in range(60):  # answerable: best relevance over 0.1-0.9, 3-7 content words, a top-5 answer but the lowest
        best = 0.1 + 0.8 * i / 59
        answers.append(([row(best), row(best / 2)], " ".join(words[: 3 + i % 5]), best > 0.2))
        answerable.append(True)
    for i in range(30):  # unanswerable: as likely-looking, shorter (2-4 content words)
        best = 0.1 + 0.8 * i / 29
        answers.append(([row(best)], " ".join(words[: 2 + i % 3]), False))
        answerable.append(False)
    got = fitting.fit_answer(model, answers, answerable, 0.1, 1.0)
    assert got["weights"]["best"] > 0 and got["weights"]["terms"] > 0
    scored = rel.Model({}, 0.0, 0.0, 1.0, answer_weights=got["weights"], answer_bias=got["bias"])
    none = [scored.answers(f) < got["min"] for f in got["features"]]
    assert 0 < sum(n for n, a in zip(none, answerable) if a) <= 6  # at most 10% of the 60
    assert sum(n for n, a in zip(none, answerable) if not a) > 6


def test_folds_keep_questions_sharing_an_answer_together(monkeypatch) -> None:
    fitting = fitting_module(monkeypatch)
    labelled = [
        {"answers": ["a"]},
        {"answers": ["b", "a"]},  # a paraphrase answered by a and by its copy b
        {"answers": ["b"]},
        {"answers": ["c"]},
        {"answers": []},
        {"answers": []},
    ]
    for seed in range(5):
        folds = fitting.folds_of(labelled, 3, seed)
        assert folds[0] == folds[1] == folds[2]
        assert len(set(folds)) == 3  # four groups over three folds: none empty


def test_a_query_of_symbols_alone_is_answered_only_by_passages_holding_them(tmp_path, embedder) -> None:
    with indexed(
        tmp_path / "ix",
        embedder,
        ("#launch", "Shipped the release 🚀"),
        ("#general", "Thanks for the review 👍"),
        ("Lunch menu", "Tacos on Tuesday, soup on Friday."),
    ) as ix:
        fire = answer(ix, SearchRequest(query="🔥", recency_half_life_days=0, interpret=False))
        rocket = answer(ix, SearchRequest(query="🚀 🚀", recency_half_life_days=0, interpret=False))
    assert fire.hits and all(h.relevance == 0.0 for h in fire.hits) and fire.match == "none"
    relevance = {h.doc_id: h.relevance for h in rocket.hits}
    assert relevance["drive:1"] > 0.0 and relevance["drive:2"] == relevance["drive:3"] == 0.0
    assert rel.symbols("🚀 🚀") == rel.symbols("🚀🏽") == {"🚀"} and rel.symbols("what is 🚀") == frozenset()


def test_match_judges_the_whole_scored_pool_whatever_k(tmp_path, embedder) -> None:
    with indexed(
        tmp_path / "ix",
        embedder,
        ("Parking", "The garage on Smith street closes at 9."),
        ("Parking fees", "Parking costs 5 dollars a day in the Smith street garage."),
        ("Garage hours", "Weekend hours: the garage opens at 7."),
        ("Lunch menu", "Tacos on Tuesday, soup on Friday."),
        ("West Gas 2001 plan", "The desk plans 40 Bcf of storage."),
        ("Storage report", "Gas storage rose to 40 Bcf in March."),
        ("Budget approval", "Hamza approved the travel budget for the offsite."),
        ("Offsite", "The offsite is in May; travel approved by the budget owner."),
    ) as ix:
        for query in ("hamza closes", "opens hamza"):  # the best-scored document is not the first
            ten = answer(ix, SearchRequest(query=query, k=10, recency_half_life_days=0, interpret=False))
            one = answer(ix, SearchRequest(query=query, k=1, recency_half_life_days=0, interpret=False))
            assert max(h.relevance for h in ten.hits) > ten.hits[0].relevance
            assert one.hits == ten.hits[:1] and one.match == ten.match


NFC_TEXT = "Le résumé de la réunion à Genève: la crème brûlée du café Müller, 2026."


def test_a_text_in_nfd_has_the_features_of_the_same_text_in_nfc() -> None:
    """macOS names and many PDFs' text layers spell `é` as `e` + a combining accent: the features
    read the index's words, so both spellings hold the query's words alike (and a CJK query's)."""
    import unicodedata

    nfd = unicodedata.normalize("NFD", NFC_TEXT)
    query = "résumé réunion Genève 2026"
    terms = rel.content_terms(query)
    assert terms == ["resume", "reunion", "geneve", "2026"]
    assert rel.coverage(terms, nfd) == rel.coverage(terms, NFC_TEXT) == 1.0
    assert rel.numbers_missing(query, nfd, None) == 0.0
    weights = dict.fromkeys(terms, 1.0)
    assert rel.missing_rarest(weights, nfd) == 0.0 and rel.weighted_coverage(weights, nfd) == 1.0
    assert rel.coverage(rel.content_terms("李建国"), "特别说明：熊猫仓库的钥匙由李建国保管。") == 1.0
    assert rel.coverage(rel.content_terms("ﬁnance"), "the finance report") == 1.0


def test_the_nfd_copy_of_a_document_scores_as_its_nfc_copy_and_is_collapsed_with_it(tmp_path, embedder) -> None:
    import unicodedata

    with indexed(
        tmp_path / "ix",
        embedder,
        ("nfc.txt", NFC_TEXT),
        ("Lunch menu", "Tacos on Tuesday, soup on Friday."),
    ) as ix:
        alone = answer(ix, SearchRequest(query="résumé réunion Genève", recency_half_life_days=0, interpret=False))
    with indexed(
        tmp_path / "ix2",
        embedder,
        ("nfd.txt", unicodedata.normalize("NFD", NFC_TEXT)),
        ("Lunch menu", "Tacos on Tuesday, soup on Friday."),
    ) as ix:
        nfd = answer(ix, SearchRequest(query="résumé réunion Genève", recency_half_life_days=0, interpret=False))
    assert nfd.hits[0].doc_id == alone.hits[0].doc_id == "drive:1"
    assert nfd.hits[0].relevance == pytest.approx(alone.hits[0].relevance, abs=0.02)
    with indexed(
        tmp_path / "ix3",
        embedder,
        ("nfc.txt", NFC_TEXT),
        ("nfd.txt", unicodedata.normalize("NFD", NFC_TEXT)),
        ("Lunch menu", "Tacos on Tuesday, soup on Friday."),
    ) as ix:
        both = answer(ix, SearchRequest(query="résumé réunion Genève", recency_half_life_days=0, interpret=False))
    assert [h.doc_id for h in both.hits].count("drive:1") + [h.doc_id for h in both.hits].count("drive:2") == 1


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("猫の名前は何ですか", 3),  # 猫, 名前, 何: hiragana particles and endings are no words
        ("会議はいつですか", 1),
        ("社員食堂のメニュー", 3),  # 社員食堂: two words of two; メニュー: one loanword
        ("주차장은 어디에 있나요", 3),  # Korean spaces its words, particles attached
        ("负责人是王小明", 4),  # Han alone: a word per two characters
        ("what is 王小明's role", 3),
        ("すし ありますか", 2),  # hiragana alone: its runs are the words
    ],
)
def test_a_cjk_question_counts_its_words_not_its_character_pairs(query: str, terms: int) -> None:
    """The index's words of "猫の名前は何ですか" are its eight character pairs, particles included;
    counted as eight words, a three-word question was judged by the longest questions' `none` threshold."""
    assert rel.question_terms(query) == terms


def test_a_cjk_question_without_an_answer_is_none_where_english_wording_is() -> None:
    """What the demo's "猫の名前は何ですか" got: a "👍" Slack message at 0.2587 (it embeds close to a
    question of mostly unknown tokens), `weak` as if asked in eight words."""
    model = rel.model()
    found = [0.2587, 0.0064]
    assert model.match(found, rel.answer_features(found, "猫の名前は何ですか")) == "none"
    assert model.match(found, rel.answer_features(found, "what is the cat's name")) == "none"
    eight = "what time does the garage on Smith street close at night for trucks"
    assert model.match(found, rel.answer_features(found, eight)) == "weak"  # the same relevance, a long question


def dated(n: int, title: str, text: str, when: datetime) -> Document:
    return doc(str(n), title, text, when)


def handbook_docs() -> list[Document]:
    """A year of varied documents, and three in the next year (the window a question may name)."""
    earlier = [
        ("West Gas plan", "The desk plans 40 Bcf of storage for the winter."),
        ("Lunch menu", "Tacos on Tuesday, soup on Friday."),
        ("Parking", "The garage on Smith street closes at 9."),
        ("Travel policy", "Book flights through the travel desk; economy under six hours."),
        ("Vacation policy", "Employees get 25 days of paid vacation a year."),
        ("Security policy", "All laptops use full-disk encryption."),
        ("Outage review", "The March outage was caused by an expired certificate."),
        ("Hiring plan", "Two more search engineers in the second half."),
        ("Benefits overview", "Health insurance starts on the first day of employment."),
        ("Office hours", "The office is closed on public holidays."),
        ("Release notes", "Version 2 ships the new search ranking."),
    ]
    later = [
        ("Expense policy", "Meals while travelling are reimbursed up to 60 dollars a day."),
        ("Onboarding guide", "Welcome! Your first week: laptop setup, accounts, and a buddy."),
        ("FAQ", "Expense reports are due by the 5th of each month."),
    ]
    start = datetime(2000, 2, 1, tzinfo=UTC)
    docs = [dated(n, t, x, start + timedelta(days=20 * n)) for n, (t, x) in enumerate(earlier)]
    return docs + [dated(100 + n, t, x, datetime(2001, 3, 1 + n, tzinfo=UTC)) for n, (t, x) in enumerate(later)]


@pytest.fixture
def handbook(tmp_path, embedder):
    ix = Index(IndexConfig(path=tmp_path / "handbook"), embedder=embedder)
    ix.apply(handbook_docs(), generation=1)
    with ix:
        yield ix


def asked(index: Index, query: str):
    return answer(index, SearchRequest(query=query, recency_half_life_days=0, now=datetime(2002, 6, 1, tzinfo=UTC)))


@pytest.mark.parametrize("question", ["what is the parental leave policy", "what is the engineering budget"])
def test_a_year_narrows_the_search_without_making_an_answer_of_what_is_left(handbook, question: str) -> None:
    """ "... in 2001" leaves the three documents of 2001: the year is a filter, not one more word the
    results must hold (`match` counts the words searched for), and a document of the window is
    measured against the median of the nearest passages the caller may see, not of the three left."""
    plain, narrowed = asked(handbook, question), asked(handbook, f"{question} in 2001")
    assert narrowed.interpreted["after"].startswith("2001-01-01")
    assert {h.doc_id for h in narrowed.hits} <= {"drive:100", "drive:101", "drive:102"}
    assert narrowed.searched == plain.searched == question
    assert narrowed.match == "none"  # nothing of 2001 answers it (without the year, "Vacation policy" may)
    gaps = {h.doc_id: h.features["dense_gap"] for h in plain.hits}
    for hit in narrowed.hits:
        if hit.doc_id in gaps:
            assert hit.features["dense_gap"] == pytest.approx(gaps[hit.doc_id])


def test_a_hidden_document_nearest_to_the_query_changes_no_users_dense_gap(tmp_path, embedder, monkeypatch) -> None:
    """The passages a narrowed search tops `dense_gap`'s reference up with are only those the user
    may see, of served sources: a document hidden from them, or of a source the configuration no
    longer names, worded as the question itself changes no gap they see."""
    question = "what is the parental leave policy"
    when = datetime(2000, 6, 1, tzinfo=UTC)
    hidden = doc("900", "Parental leave", question, when).model_copy(update={"acl": ACL(users=["bob@other.org"])})
    unserved = doc("901", "Parental leave", question, when).model_copy(
        update={"id": "old:901", "source": "old", "source_type": "files"}
    )

    def gaps(ix: Index, user: str) -> dict[str, float]:
        got = answer(ix, SearchRequest(query=f"{question} in 2001", user=user, recency_half_life_days=0))
        return {h.doc_id: h.features["dense_gap"] for h in got.hits}

    def opened() -> Index:
        return Index(IndexConfig(path=tmp_path / "ix"), embedder=embedder, configured={"drive"})

    with opened() as ix:
        ix.apply(handbook_docs(), generation=1)
        seen, bobs = gaps(ix, "ann@example.com"), gaps(ix, "bob@other.org")
        ix.apply([hidden, unserved], generation=1)  # a batch of its own: the handbook's vectors stay as they are
    with opened() as ix:  # which sources are served is read as an index opens
        assert seen != {} and gaps(ix, "ann@example.com") == pytest.approx(seen)
        encoded = []
        monkeypatch.setattr(
            ix.embedder, "encode_query", lambda q, real=ix.embedder.encode_query: [encoded.append(q), real(q)][1]
        )
        gaps(ix, "ann@example.com")
        assert encoded == [question]  # the top-up reuses the query's vector: it is embedded once
        assert gaps(ix, "bob@other.org") != pytest.approx(bobs)  # bob may see it: his reference moves


def test_a_year_still_finds_the_answer_within_it(handbook) -> None:
    got = asked(handbook, "when are expense reports due in 2001")
    assert got.hits[0].doc_id == "drive:102" and got.match in ("weak", "strong")
