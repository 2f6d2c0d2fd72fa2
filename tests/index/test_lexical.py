"""Query parsing for BM25: identifiers and quoted phrases stay whole, their parts still count."""

import pytest

from inlet.storage.lexical import MAX_PARTS, MAX_TERMS, Term, fts5_match, parse_query, words


def texts(query: str) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in parse_query(query)]


@pytest.mark.parametrize(
    ("query", "whole", "parts"),
    [
        ("what happened with INC-20931?", "inc 20931", ["inc", "20931"]),
        ("PO-2026-04192", "po 2026 04192", ["po", "2026", "04192"]),
        ("error 0x8007A2B6", "0x8007a2b6", []),
        ("who owns db-fra-117.prod.example.com", "db fra 117 prod example com", ["db", "fra", "117", "prod"]),
        ("mail from dana.ng@acme.example.com", "dana ng acme example com", ["dana", "ng", "acme"]),
        ("what was said in #falcon-private", "falcon private", ["falcon", "private"]),
    ],
)
def test_an_identifier_is_one_exact_term_and_its_parts_are_words(query: str, whole: str, parts: list[str]) -> None:
    terms = texts(query)
    assert terms[0] == ("identifier", whole)
    assert all(("word", p) in terms for p in parts)
    assert [t for t in terms if t[1] == whole] == [("identifier", whole)]  # no repeats


def test_a_quoted_phrase_is_exact_and_stopwords_go_from_words_only() -> None:
    terms = texts('"blocked by the legal review" what did Dana say')
    assert terms[0] == ("phrase", "blocked by the legal review")
    assert ("word", "dana") in terms and ("word", "say") in terms
    assert ("word", "by") not in terms and ("word", "what") not in terms
    assert ("word", "blocked") in terms  # a phrase's words also match alone


def test_plain_words_and_a_query_of_stopwords() -> None:
    assert texts("Falcon launch date") == [("word", "falcon"), ("word", "launch"), ("word", "date")]
    assert texts("what is it") == [("word", "what"), ("word", "is"), ("word", "it")]
    assert parse_query("  ?! ") == []


def test_words_split_like_fts5_unicode61() -> None:
    assert words("Café_au-lait #ops, x86_64") == ["cafe", "au", "lait", "ops", "x86", "64"]


def test_fts5_match_quotes_each_term() -> None:
    assert fts5_match([Term(("inc", "20931"), "identifier"), Term(("inc",), "word")]) == '"inc 20931" OR "inc"'


def test_the_catalog_matches_identifiers_whole_and_counts_rare_ones(tmp_path) -> None:
    from inlet.connectors.model import ACL, Document
    from inlet.storage import Filters
    from inlet.storage.sqlite.catalog import SqliteCatalog as Catalog
    from inlet.storage.lexical import RARE_EXACT

    def doc(n: int, text: str, **acl: object) -> Document:
        return Document(
            id=f"t:{n}",
            source="t",
            source_type="files",
            title=f"ticket {n}",
            text=text,
            acl=ACL(**acl) if acl else ACL(public=True),
        )

    docs = [doc(n, f"INC-{20900 + n} on db-fra-{100 + n}.prod.example.com, see #ops-general") for n in range(30)]
    docs.append(doc(99, "INC 20931 was mentioned apart, and so was db fra 131", users=["ann@example.com"]))
    catalog = Catalog(tmp_path / "catalog.db")
    with catalog.transaction() as db:
        for d in docs:
            Catalog.put(db, d, [d.text], 0)
    assert catalog.lexical("who owns db-fra-117.prod.example.com", Filters(), 5)[0][0] == "t:17#0"
    assert catalog.exact_matches("what about INC-20917 and db-fra-117?", Filters()) == {"t:17#0": 2}
    assert catalog.exact_matches("INC-20931", Filters()) == {"t:99#0": 1}  # the parts, adjacent, count
    assert catalog.exact_matches("INC-20931", Filters(principals=("bob@example.com",))) == {}
    assert len(docs) - 1 > RARE_EXACT and catalog.exact_matches("#ops-general", Filters()) == {}  # busy: no say
    catalog.close()


def test_a_query_of_thousands_of_words_or_parts_costs_bm25_a_bounded_number_of_terms() -> None:
    dotted = parse_query("http://" + "a." * 1995)  # one "identifier" of 1,996 parts
    assert dotted and all(len(t.parts) <= MAX_PARTS for t in dotted)
    many = parse_query(" ".join(f"w{i}x" for i in range(800)) + ' "quoted phrase here"')
    assert len(many) == MAX_TERMS and many[0].kind == "phrase"  # what the user named exactly comes first
    assert parse_query("INC-20931 outage") == [Term(("inc", "20931"), "identifier")] + [
        Term((w,), "word") for w in ("inc", "20931", "outage")
    ]
