"""The sources a search may name and the people it may understand: served sources only, decided with
the same work whichever source a caller names (`checked`, `answer`, `relevance.frequency_of`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.errors import UnknownFilterError
from inlet.index import relevance as rel
from inlet.index.search import SearchRequest, answer, checked
from inlet.index.store import Index

BOB = "bob@other.org"
QUESTION = "what did john arnold say about gas prices"


def note(source: str, n: int, text: str, acl: ACL, author: str = "") -> Document:
    return Document(
        id=f"{source}:{n}", source=source, source_type="files", title=f"note {n}", text=text, author=author, acl=acl
    )


def refused(index: Index, request: SearchRequest) -> str:
    with pytest.raises(UnknownFilterError) as caught:
        checked(index, request)
    return str(caught.value)


def test_a_source_no_longer_configured_is_no_source_and_names_no_one(tmp_path: Path, text_hash_embedder: Any) -> None:
    """A source taken out of the config (`old`, its documents kept until `inlet forget`) is unknown
    to the sources filter, and who its documents name and which words they hold tell nothing."""
    config = IndexConfig(path=tmp_path / "index")
    with Index(config, embedder=text_hash_embedder) as index:
        index.apply(
            [
                note("chat", 1, "gas prices went up again this week", ACL(public=True), "kim@example.com"),
                note("old", 1, "gas prices and the zebrafish deal", ACL(public=True), "john.arnold@enron.com"),
            ]
        )
        assert "john.arnold@enron.com" in answer(index, SearchRequest(QUESTION, user=BOB)).interpreted["people"]
    with Index(config, embedder=text_hash_embedder, configured={"chat"}) as index:
        assert index.unserved() == ("old",)
        for user in (BOB, None):
            message = refused(index, SearchRequest("gas", sources=("old",), user=user))
            assert message.startswith("unknown sources 'old'; ") and message.endswith(": 'chat'")
            assert checked(index, SearchRequest("gas", sources=("chat",), user=user)).sources == ("chat",)
            assert "people" not in answer(index, SearchRequest(QUESTION, user=user)).interpreted
        frequency = rel.frequency_of(index, ("*", f"u:{BOB}", "d:other.org"))
        assert frequency is not None and frequency("zebrafish") == 0 and frequency("gas") > 0


def test_the_people_of_a_source_no_longer_configured_shape_no_answer(tmp_path: Path, text_hash_embedder: Any) -> None:
    """probe34i F1: once `old` is out of the config, its people no more decide whether a word is a
    first name ("Ottoline Kim" is Kim again) or whom a shared name means (its five-document Sam no
    longer takes "Sam" from the chat's three), for its former readers, anyone else or the operator."""
    config = IndexConfig(path=tmp_path / "index")
    chat = [note("chat", 1, "parking passes renew in May", ACL(public=True), "kim@example.com")]
    chat += [note("chat", 1 + n, f"the canteen menu {n}", ACL(public=True), f"sam.{n}@example.com") for n in (1, 2, 3)]
    readers = ACL(users=["carol@example.com"])
    old = [note("old", 1, "board prep", readers, "ottoline.fairweather@secretco.example")]
    old += [note("old", 1 + n, f"merger note {n}", readers, "sam.old@secretco.example") for n in range(1, 6)]
    questions = {
        "what did Ottoline Kim say about parking": ["kim@example.com"],
        "what did Sam say about the canteen": [f"sam.{n}@example.com" for n in (1, 2, 3)],
    }
    with Index(config, embedder=text_hash_embedder) as index:
        index.apply([*chat, *old])
        assert answer(index, SearchRequest("what did Sam say", user="carol@example.com")).interpreted == {
            "people": ["sam.old@secretco.example"]
        }
    with Index(config, embedder=text_hash_embedder, configured={"chat"}) as index:
        for user in ("carol@example.com", BOB, None):
            for question, people in questions.items():
                assert answer(index, SearchRequest(question, user=user)).interpreted == {"people": people}, (
                    question,
                    user,
                )


def test_which_sources_a_user_may_name_takes_the_same_work_whatever_they_name(
    tmp_path: Path, text_hash_embedder: Any
) -> None:
    """The 422 for a source of documents all hidden from the caller costs what it costs for a made-up
    name (SQLite's count of executed instructions, not a clock), and no more when the source grows."""
    with Index(IndexConfig(path=tmp_path / "index"), embedder=text_hash_embedder, configured={"chat", "hr"}) as index:
        hidden = ACL(users=["hr@example.com"])
        index.apply([note("chat", 1, "lunch menu", ACL(public=True))])
        index.apply([note("hr", n, f"salary review {n}", hidden) for n in range(200)])
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        def work(name: str) -> int:
            before = steps[0]
            assert refused(index, SearchRequest("x", sources=(name,), user=BOB)).endswith(": 'chat'")
            return steps[0] - before

        work("nope")  # the catalog's reader is open, the list of sources read
        for reader in index.catalog._idle:  # type: ignore[attr-defined]
            reader.set_progress_handler(count, 1)
        made_up, hr = work("no-such-source"), work("hr")
        index.apply([note("hr", n, f"salary review {n}", hidden) for n in range(200, 600)])
        assert made_up > 0 and hr == made_up == work("hr") == work("nope")
