"""Query parsing for BM25: identifiers and quoted phrases stay whole, their parts still count."""

import sys
import threading

import pytest

from inlet.storage import lexical
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


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("負責人是王小明。", ["負責", "責人", "人是", "是王", "王小", "小明"]),  # CJK: character bigrams
        ("王 and 小明", ["王", "and", "小明"]),  # a run of one character is that character
        ("データベースのガス", ["デー", "ータ", "タベ", "ベー", "ース", "スの", "のガ", "ガス"]),  # が stays が
        ("데이터베이스를", ["데이", "이터", "터베", "베이", "이스", "스를"]),  # Hangul syllables, not jamo
        ("ﬁnance oﬃce ﬂagged ＡＢＣ１２３", ["finance", "office", "flagged", "abc123"]),  # compatibility forms
        ("re\u0301sume\u0301 résumé", ["resume", "resume"]),  # NFD and NFC alike
        ("pass\u00adword flamingo\u200bledger wo\u2060rd \ufeffbom", ["password", "flamingoledger", "word", "bom"]),
    ],
)
def test_words_fold_what_a_reader_cannot_see_and_split_cjk_into_bigrams(text: str, want: list[str]) -> None:
    assert words(text) == want


def test_a_cjk_query_is_its_bigrams_and_a_quoted_one_a_phrase_of_them() -> None:
    assert texts("熊猫仓库") == [("word", "熊猫"), ("word", "猫仓"), ("word", "仓库")]
    assert texts('"王小明" 会议')[0] == ("phrase", "王小 小明")


def test_the_catalog_finds_words_inside_cjk_text_and_folded_forms(tmp_path) -> None:
    """A word inside a line of Chinese, a ligature, fullwidth digits, an NFD accent and a word
    with a soft hyphen in it are found by the plain query (FTS5 alone tokenised the raw text)."""
    from inlet.connectors.model import ACL, Document
    from inlet.storage import Filters
    from inlet.storage.sqlite.catalog import SqliteCatalog as Catalog

    texts = {
        "zh": "会议纪要：数据库迁移计划在星期五完成。負責人是王小明。",
        "long": "特别说明：熊猫仓库的钥匙由李建国保管。",
        "en": "Minutes: the database migration is planned for Friday.",
        "lig": "The ﬁnance team ﬂagged order ＡＢＣ１２３.",
        "nfd": "Le re\u0301sume\u0301 de la re\u0301union",
        "shy": "Reset the pass\u00adword of the flamingo\u200bledger.",
    }
    catalog = Catalog(tmp_path / "catalog.db")
    with catalog.transaction() as db:
        for key, text in texts.items():
            Catalog.put(
                db, Document(id=f"t:{key}", source="t", source_type="files", text=text, acl=ACL(public=True)), [text], 0
            )
    found = {
        q: [c for c, _ in catalog.lexical(q, Filters(), 5)] for q in ("王小明", "数据库", "李建国", "熊猫仓库的钥匙")
    }
    assert found == {"王小明": ["t:zh#0"], "数据库": ["t:zh#0"], "李建国": ["t:long#0"], "熊猫仓库的钥匙": ["t:long#0"]}
    assert catalog.exact_matches('"王小明"', Filters()) == {"t:zh#0": 1}
    for query, doc in [("finance", "lig"), ("flagged", "lig"), ("ABC123", "lig"), ("résumé réunion", "nfd")]:
        assert [c for c, _ in catalog.lexical(query, Filters(), 5)] == [f"t:{doc}#0"], query
    for query in ("password", "flamingoledger"):
        assert [c for c, _ in catalog.lexical(query, Filters(), 5)] == ["t:shy#0"], query
    catalog.close()


def test_stemming_from_many_threads_at_once_gives_each_word_its_own_stem() -> None:
    """probe34e F1: one snowball stemmer (which holds the word it stems) was shared by every thread:
    concurrent searches failed ("string index out of range") or took another word's stem, which
    the cache then kept for good."""
    import snowballstemmer  # type: ignore[import-untyped]

    bases = [
        "contract",
        "happiness",
        "relational",
        "generalization",
        "conditional",
        "hopeful",
        "replacement",
        "adjust",
        "electric",
        "formal",
        "sensitive",
        "agreed",
        "controll",
        "rate",
        "operat",
        "digit",
    ]
    suffixes = ["", "s", "ing", "ed", "ness", "ations", "ively", "fulness", "izer", "alism", "ement", "ibly"]
    words = [base + suffix for base in bases for suffix in suffixes]
    expected = {w: snowballstemmer.stemmer("porter").stemWord(w) for w in words}
    wrong: list[str] = []
    failed: list[BaseException] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as they can: races show at once
    try:

        def stem_all() -> None:
            for _ in range(20):
                for w in words:
                    try:
                        if lexical.stem.__wrapped__(w) != expected[w]:  # the stemmer itself, not the cache
                            wrong.append(w)
                    except Exception as exc:  # what a shared stemmer raised
                        failed.append(exc)

        threads = [threading.Thread(target=stem_all) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failed and not wrong, (failed[:3], wrong[:3])
