"""What BM25 statistics reveal across ACLs, measured (docs/operations/reliability.md).

SQLite FTS5's bm25() weighs a term by how many chunks of the *whole* index contain it and
normalises by the whole index's average chunk length, so hidden chunks move the lexical scores of
a caller's own results. This test pins down exactly what crosses the ACL that way, and what does
not: a restricted document's id, title and text never come back, the set of results is the same,
but the lexical scores (and so the order of two of the caller's own results under a two-word
query) shift when restricted chunks containing a query word are added. A word only restricted
chunks hold is another matter: it is chosen, weighed and answered as a word no chunk holds.
"""

from __future__ import annotations

from pathlib import Path

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index

ALICE = "alice@example.com"


def doc(n: str, text: str, acl: ACL) -> Document:
    return Document(id=f"wiki:{n}", source="wiki", source_type="files", title=f"Note {n}", text=text, acl=acl)


def lexical(index: Index) -> dict[str, float]:
    hits, _ = search(
        index, SearchRequest(query="merger zeppelin", k=10, user=ALICE, mode="lexical", recency_half_life_days=0)
    )
    return {h.doc_id: h.score for h in hits}


def test_hidden_chunks_move_lexical_scores_but_reveal_no_document(tmp_path: Path, embedder: object) -> None:
    own = [
        doc("a", "The merger review is on Monday with the board.", ACL(users=[ALICE])),
        doc("b", "The zeppelin hangar tour is on Monday with the board.", ACL(users=[ALICE])),
        doc("c", "Lunch menu: soup, bread and salad for the whole floor.", ACL(public=True)),
    ]
    with Index(IndexConfig(path=tmp_path / "ix"), embedder=embedder) as index:  # type: ignore[arg-type]
        index.apply(own)
        before = lexical(index)
        hidden = [
            doc(f"h{i}", f"Confidential: the merger with Globex, part {i}.", ACL(users=["ceo@example.com"]))
            for i in range(20)
        ]
        index.apply(hidden)
        after = lexical(index)
    assert set(before) == set(after) == {"wiki:a", "wiki:b"}  # no hidden document comes back
    assert before["wiki:a"] == before["wiki:b"] or before["wiki:a"] > before["wiki:b"]
    # The leak, measured: 20 hidden chunks with "merger" make alice's own "merger" note score
    # lower than her "zeppelin" note: the order of her own results reveals that hidden documents
    # contain the word.
    assert after["wiki:a"] < before["wiki:a"] and after["wiki:a"] < after["wiki:b"]


def test_relevance_does_not_tell_a_word_only_hidden_documents_hold(tmp_path: Path, embedder: object) -> None:
    """Two indexes alike but for one word of a document alice cannot see: her results for a query
    naming that word get the same rarity features, as for a word the index holds nowhere. (Their
    relevance differs by the int8 rounding of the documents' vectors alone, which depends on what
    was embedded beside them.)"""
    from inlet.index.search import answer

    def features(codename: str) -> dict[str, float]:
        own = doc("a", "The gas trading desk meets on Monday.", ACL(users=[ALICE]))
        hidden = doc("h", f"Project {codename}: the secret merger plan.", ACL(users=["ceo@example.com"]))
        filler = [doc(f"f{i}", f"Lunch menu {i}: soup, bread and salad.", ACL(public=True)) for i in range(10)]
        with Index(IndexConfig(path=tmp_path / codename), embedder=embedder) as index:  # type: ignore[arg-type]
            index.apply([own, hidden, *filler])
            got = answer(index, SearchRequest(query="zorblaxian gas desk", k=5, user=ALICE, recency_half_life_days=0))
            assert got.hits[0].doc_id == "wiki:a"
            ceo = answer(index, SearchRequest(query="zorblaxian", k=5, user="ceo@example.com"))
            assert ceo.hits and ceo.hits[0].doc_id == "wiki:h"
            return {**got.hits[0].features, "relevance": got.hits[0].relevance}

    held, nowhere = features("Zorblaxian"), features("Quuxfrobnic")
    for name in ("absent", "weighted", "missing", "coverage", "lexical"):
        assert held[name] == nowhere[name], name
    assert abs(held["relevance"] - nowhere["relevance"]) < 0.01


def test_an_identifier_counts_as_rare_by_what_the_caller_may_see(tmp_path: Path, embedder: object) -> None:
    """Hidden chunks naming INC-12345 do not make alice's own mention of it lose its exact match
    (the rarity cutoff counts the chunks she may see)."""
    from inlet.index.search import answer
    from inlet.storage.lexical import RARE_EXACT

    def exact() -> float:
        got = answer(index, SearchRequest(query="INC-12345", k=5, user=ALICE, recency_half_life_days=0))
        assert got.hits[0].doc_id == "wiki:a"
        return got.hits[0].features["exact"]

    with Index(IndexConfig(path=tmp_path / "ix"), embedder=embedder) as index:  # type: ignore[arg-type]
        index.apply([doc("a", "Postmortem of INC-12345: the queue filled up.", ACL(users=[ALICE]))])
        alone = exact()
        hidden = [
            doc(f"h{i}", f"Escalation {i} about INC-12345 for the board.", ACL(users=["ceo@example.com"]))
            for i in range(RARE_EXACT + 2)
        ]
        index.apply(hidden)
        assert alone == exact() == 1.0


def test_the_answer_for_a_word_only_hidden_mail_holds_is_the_answer_for_a_made_up_word(
    tmp_path: Path, embedder: object
) -> None:
    """Two indexes alike but for one word of mail alice cannot read (Quimby, or Xavier): her
    question "lighthouse Quimby" gets the same match, the same results in the same order with the
    same keyword scores. Before, Quimby in five hidden chunks made it a common word, so "lighthouse"
    was ranked on too: `match` none and keyword scores for both her notes, against `weak` and none
    when no hidden mail held the name."""
    from inlet.index.search import answer

    def asked(surname: str) -> tuple[tuple[str, object], list[tuple[str, float]], list[float]]:
        own = [
            doc("budget", "The lighthouse project budget from Zed Alpha.", ACL(users=[ALICE])),
            doc("lunch", "Lunch for the lighthouse project team, from Amy Bell.", ACL(users=[ALICE])),
        ]
        hidden = [
            doc(f"h{i}", f"Zed {surname}: lighthouse severance terms, part {i}.", ACL(users=["hr@example.com"]))
            for i in range(5)
        ]
        with Index(IndexConfig(path=tmp_path / surname), embedder=embedder) as index:  # type: ignore[arg-type]
            index.apply([*own, *hidden])
            got = answer(index, SearchRequest(query="lighthouse Quimby", k=5, user=ALICE, recency_half_life_days=0))
            lexical = index.lexical("lighthouse Quimby", SearchRequest(query="x", user=ALICE).filters(), 10)
        keyword = [(h.doc_id, h.features["lexical"]) for h in got.hits]
        return (got.match, lexical), keyword, [h.relevance for h in got.hits]

    held, nowhere = asked("Quimby"), asked("Xavier")
    assert held[:2] == nowhere[:2]
    assert all(abs(a - b) < 0.01 for a, b in zip(held[2], nowhere[2], strict=True))
