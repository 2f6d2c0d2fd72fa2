"""Query parsing for BM25: identifiers and quoted phrases stay whole, their parts still count."""

import pytest

from inlet.index.lexical import Term, fts5_match, parse_query, words


def texts(query: str) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in parse_query(query)]


@pytest.mark.parametrize(("query", "whole", "parts"), [
    ("what happened with INC-20931?", "inc 20931", ["inc", "20931"]),
    ("PO-2026-04192", "po 2026 04192", ["po", "2026", "04192"]),
    ("error 0x8007A2B6", "0x8007a2b6", []),
    ("who owns db-fra-117.prod.example.com", "db fra 117 prod example com", ["db", "fra", "117", "prod"]),
    ("mail from dana.ng@acme.example.com", "dana ng acme example com", ["dana", "ng", "acme"]),
    ("what was said in #falcon-private", "falcon private", ["falcon", "private"]),
])
def test_an_identifier_is_one_exact_term_and_its_parts_are_words(query: str, whole: str, parts: list[str]) -> None:
    terms = texts(query)
    assert terms[0] == ("identifier", whole)
    assert all(("word", p) in terms for p in parts)
    assert [t for t in terms if t[1] == whole] == [("identifier", whole)]   # no repeats


def test_a_quoted_phrase_is_exact_and_stopwords_go_from_words_only() -> None:
    terms = texts('"blocked by the legal review" what did Dana say')
    assert terms[0] == ("phrase", "blocked by the legal review")
    assert ("word", "dana") in terms and ("word", "say") in terms
    assert ("word", "by") not in terms and ("word", "what") not in terms
    assert ("word", "blocked") in terms      # a phrase's words also match alone


def test_plain_words_and_a_query_of_stopwords() -> None:
    assert texts("Falcon launch date") == [("word", "falcon"), ("word", "launch"), ("word", "date")]
    assert texts("what is it") == [("word", "what"), ("word", "is"), ("word", "it")]
    assert parse_query("  ?! ") == []


def test_words_split_like_fts5_unicode61() -> None:
    assert words("Café_au-lait #ops, x86_64") == ["cafe", "au", "lait", "ops", "x86", "64"]


def test_fts5_match_quotes_each_term() -> None:
    assert fts5_match([Term(("inc", "20931"), "identifier"), Term(("inc",), "word")]) == '"inc 20931" OR "inc"'
