"""Questions for the newest thing: "the latest Teams message" lists the newest documents the caller
may see within the filters; "the latest on the billing deploy" puts the newest likely answer first."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.index import relevance as rel
from inlet.index.search import Answer, Hit, SearchRequest, _newest_first, answer
from inlet.index.store import Index

UTC = timezone.utc
NOW = datetime(2001, 4, 11, 15, 30, tzinfo=UTC)
STAFF = "staff@example.com"
JSMITH = "jsmith@example.com"


def message(n: int, kind: str, days_ago: float, text: str, author: str = "", acl: ACL | None = None) -> Document:
    when = NOW - timedelta(days=days_ago)
    return Document(
        id=f"{kind}:{n}",
        source=kind,
        source_type=kind,
        title=f"{kind} {n}",
        text=text,
        author=author,
        acl=acl or ACL(users=[STAFF]),
        created_at=when,
        updated_at=when,
    )


CORPUS = [
    message(1, "teams", 9, "Standup moved to ten tomorrow.", "ann@example.com"),
    message(2, "teams", 2, "The release train leaves on Friday.", "bob@example.com"),
    message(3, "teams", 1, "Board minutes: the merger is approved.", "ceo@example.com", ACL(users=["ceo@example.com"])),
    message(4, "teams", 5, "Lunch order for the offsite.", "ann@example.com"),
    message(5, "slack", 0.5, "Who broke the build again?", "carl@example.com"),
    message(6, "outlook", 3, "Invoice 4411 attached for March.", JSMITH),
    message(7, "outlook", 0.2, "Your parcel is on its way.", "shop@example.com"),
    message(8, "outlook", 20, "Quarterly numbers, as promised.", JSMITH),
    message(9, "outlook", 40, "Welcome aboard, first day notes.", JSMITH),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, text_hash_embedder: Any) -> Any:
    with Index(IndexConfig(path=tmp_path_factory.mktemp("newest") / "ix"), embedder=text_hash_embedder) as ix:
        ix.apply(CORPUS, generation=1)
        yield ix


def ask(index: Index, query: str, **kw: Any) -> Answer:
    return answer(index, SearchRequest(query=query, recency_half_life_days=0, now=NOW, **kw))


def test_the_latest_teams_message_is_the_newest_one_the_caller_may_see(index: Index) -> None:
    got = ask(index, "what's the latest Teams message", user=STAFF)
    assert got.interpreted == {"source_types": ["teams"], "sort": "newest"}
    # the board minutes are newer, but the staff may not see them
    assert [h.doc_id for h in got.hits] == ["teams:2", "teams:4", "teams:1"]
    assert got.match == "strong"
    strong = rel.model().strong
    assert [h.relevance for h in got.hits] == [round(strong * 0.75**i, 4) for i in range(3)]
    assert got.qualifying(rel.model().min_relevance)[0].doc_id == "teams:2"
    # the operator sees them
    assert [h.doc_id for h in ask(index, "the latest Teams message").hits][:2] == ["teams:3", "teams:2"]


def test_latest_in_a_source_within_a_time_window(index: Index) -> None:
    got = ask(index, "latest in Teams last week", user=STAFF)
    assert got.interpreted["sort"] == "newest" and got.interpreted["source_types"] == ["teams"]
    assert [h.doc_id for h in got.hits] == ["teams:2", "teams:4"]  # teams:1 is nine days old
    assert [h.doc_id for h in ask(index, "latest in Slack", user=STAFF).hits] == ["slack:5"]


def test_the_newest_email_from_someone_is_theirs(index: Index) -> None:
    for query in ("show me the newest email from jsmith", "latest email from jsmith", "most recent emails from jsmith"):
        got = ask(index, query, user=STAFF, k=2)
        assert got.interpreted == {"source_types": ["outlook"], "people": [JSMITH], "sort": "newest"}, query
        # the parcel notice is newer, but not his
        assert [h.doc_id for h in got.hits] == ["outlook:6", "outlook:8"], query
        assert got.match == "strong", query


def test_with_nothing_to_list_the_plain_query_runs(index: Index) -> None:
    got = ask(index, "the latest Teams message", user="guest@other.example")  # sees no document at all
    assert got.hits == [] and got.match == "none"
    # the CEO sees no Slack message: the plain query runs over what they may see, and lists nothing
    got = ask(index, "the latest Slack message", user="ceo@example.com")
    assert "source_types" not in got.interpreted and [h.doc_id for h in got.hits] == ["teams:3"]
    assert got.hits[0].relevance != rel.model().strong


def test_likely_answers_go_newest_first_and_the_rest_keep_their_order() -> None:
    floor = rel.model().min_relevance

    def hit(n: int, relevance: float, day: int) -> Hit:  # ordered by the catalog's time, not by the strings
        ts = datetime(2001, 4, day, tzinfo=UTC).timestamp()
        return Hit(f"d:{n}#0", f"d:{n}", "d", "files", "", "", "", "", None, None, 1.0, relevance=relevance, ts=ts)

    hits = [hit(1, 0.9, 1), hit(2, floor, 9), hit(3, floor / 2, 20), hit(4, 0.5, 5), hit(5, 0.01, 30)]
    assert [h.doc_id for h in _newest_first(hits)] == ["d:2", "d:4", "d:1", "d:3", "d:5"]
    assert [h.relevance for h in _newest_first(hits)] == [floor, 0.5, 0.9, floor / 2, 0.01]
