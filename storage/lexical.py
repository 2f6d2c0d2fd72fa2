"""What a query asks the lexical (BM25) index for: words, identifiers and quoted phrases.

Pure functions, no storage: every backend builds its BM25 query from `parse_query`, so SQLite
(FTS5, `fts5_match`) and PostgreSQL rank the same terms. Workplace questions name things an
embedding model cannot tell apart (INC-20931 from INC-20932, db-fra-117 from db-fra-118): those
names must match exactly. A word tokenizer splits `INC-20931` into `inc` and `20931`; searching
for the parts alone ranks every ticket holding `20931` or `inc` alike. So an identifier becomes a
*phrase* of its parts (they must appear next to each other, in order: the whole token) and each
part is also a term of its own (a partial name still matches). A quoted phrase is a phrase too.

`words` is the one tokenizer of the keyword index: of what every backend indexes and of every
query. Text is folded the way a reader sees it: compatibility forms (ligatures, fullwidth letters
and digits) become their plain letters, accents are dropped, NFC and NFD spellings of a text are
the same words, and invisible format characters (soft hyphen, zero-width space and joiners, word
joiner, BOM: Unicode's default-ignorable characters) are dropped, so they never split a word.
Chinese, Japanese and Korean are written without spaces between words, so a run of Han, Kana or
Hangul characters is indexed as its overlapping character pairs (bigrams, as Lucene's CJK analyzer
does): `王小明` is `王小 小明`, which a search finds inside `負責人是王小明`; a run of one character is
that character. Text without a character outside ASCII tokenises as it always did.

What a storage backend must do (SQLite: storage/sqlite/catalog.py):
- index `" ".join(words(text))`, not the raw text (FTS5 with `porter unicode61` over it; PostgreSQL:
  postings of its Porter stems, `postgres/lexical.py`), and the same for the title; whatever
  changes `words` changes what existing rows must hold: a schema step re-indexes them;
- `lexical(query, ...)`: rank on every term of `parse_query(query)` OR-ed, a `Term` with several
  parts matched as a phrase (FTS5 `"part1 part2"`, a tsquery `part1 <-> part2`); word terms
  found in most passages may be dropped, `exact` ones never; for a caller with principals a word
  is judged by `CatalogReads.frequency`, so a word only chunks hidden from them hold is treated
  as a word no chunk holds (as absent); the common-term cutoff still weighs a visible word's count
  in the whole index against the whole index's total, an aggregate effect like BM25's IDF
  (storage/reads.py, docs/operations/security.md), so which visible words a search ranks on may
  shift with hidden documents' counts, never with their words alone;
- `exact_matches(query, filters)`: chunk id -> how many `exact` terms of the query it holds,
  counting only terms held by at most `RARE_EXACT` chunks. Fusion (index/search.py) puts those
  passages first.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

RARE_EXACT = 10  # an identifier or quoted phrase in at most this many chunks decides a ranking
LEXICAL_OVERFETCH = 4  # BM25 matches ranked per wanted result before falling back to a filtered query
COMMON_TERM = 0.25  # a query term in more chunks than this share adds little to BM25 but costs most
DF_TTL = 300.0  # seconds a cached document frequency is trusted
# What one query may cost BM25, whatever its 4,000 characters hold ("a.a.a..." is one identifier of
# 2,000 parts): the first MAX_TERMS terms (phrases and identifiers first), MAX_PARTS parts each.
MAX_TERMS = 48
MAX_PARTS = 12
PORTER_MIN, PORTER_MAX = 3, 64  # FTS5's porter stems only tokens of this many characters
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have how i in is it its of on or that the this to "
    "was were what when where which who why will with you your do does did can could should would".split()
)
_WORD = re.compile(r"[^\W_]+")  # letters and digits: unicode61's token characters
# Han (with its iteration marks and compatibility ideographs), Bopomofo, Hiragana, Katakana (with
# the prolonged sound mark) and Hangul: written without spaces between words.
_CJK = (
    "\u1100-\u11ff\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c\u3041-\u3096\u309d-\u309f"
    "\u30a1-\u30fa\u30fc-\u30ff\u3105-\u312f\u3131-\u318e\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\U00020000-\U0003ffff"
)
_CJK_CHAR = re.compile(f"[{_CJK}]")
_RUN = re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+")
_KANA_MARKS = "\u3099\u309a"  # the (semi-)voiced sound marks: か and が are different syllables
# Unicode's default-ignorable characters (soft hyphen, combining grapheme joiner, Hangul fillers,
# Mongolian selectors, zero-width space and (non-)joiners, bidi marks, word joiner, variation
# selectors, BOM, tags): invisible, so they join what they stand between.
_IGNORABLE = re.compile(
    "[\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\U0001bca0-\U0001bca3\U000e0000-\U000e0fff]"
)
_QUOTED = re.compile(r'["\u201c\u201d]([^"\u201c\u201d]+)["\u201c\u201d]')
# An e-mail address, a #channel, or word characters joined by - . / : @ _ (INC-20931,
# PO-2026-04192, db-fra-117.prod.example.com); a single word mixing letters and digits (0x8007A2B6)
# is an identifier too, so it is never dropped as a stopword or a common term.
# `\b` first: a match is only tried where a word starts, which keeps a long word linear to scan.
_IDENTIFIER = re.compile(r"#[\w-]+|\b\w+(?:[-./:@]\w+)+|\b(?=[a-z]*\d)(?=\d*[a-z])\w{3,}\b", re.IGNORECASE)


@dataclass(frozen=True)
class Term:
    """One thing to match: a word, or the parts of an identifier or quoted phrase in order."""

    parts: tuple[str, ...]
    kind: str  # "word", "identifier" or "phrase"

    @property
    def text(self) -> str:
        return " ".join(self.parts)

    @property
    def exact(self) -> bool:
        """An identifier or quoted phrase: the user named it, so it is kept whatever its frequency."""
        return self.kind != "word"


def words(text: str) -> list[str]:
    """The index's words of `text`: runs of letters and digits, lowercase, compatibility forms and
    accents folded, invisible format characters dropped; a run of CJK characters as its bigrams."""
    if text.isascii():
        return _WORD.findall(text.lower())
    folded = unicodedata.normalize("NFKD", _IGNORABLE.sub("", text)).lower()
    kept = "".join(c for c in folded if c in _KANA_MARKS or not unicodedata.combining(c))
    folded = unicodedata.normalize("NFC", kept)  # Hangul syllables and kana recomposed
    out: list[str] = []
    for run in _RUN.findall(folded):
        if len(run) > 1 and _CJK_CHAR.match(run):
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
        else:
            out.append(run)
    return out


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The word's Porter stem, as FTS5's `porter` tokenizer gives it (PostgreSQL's terms and the
    relevance features use it too): tokens shorter than PORTER_MIN or longer than PORTER_MAX pass
    through unchanged ("us" stays "us"; Porter alone would make it "u", and "us" a stem of "use")."""
    return _porter().stemWord(word) if PORTER_MIN <= len(word) <= PORTER_MAX else word


_STEMMERS = threading.local()  # a snowball stemmer holds the word it stems: one per thread


def _porter() -> Any:
    stemmer = getattr(_STEMMERS, "porter", None)
    if stemmer is None:
        import snowballstemmer  # type: ignore[import-untyped]

        stemmer = _STEMMERS.porter = snowballstemmer.stemmer("porter")
    return stemmer


def parse_query(query: str) -> list[Term]:
    """The terms of a query, phrases and identifiers first, without repeats.

    Quoted phrases and identifiers keep their parts together as one exact term (their first
    MAX_PARTS parts); their parts and the remaining words become word terms, stopwords left out
    unless nothing else is left; MAX_TERMS terms at most."""
    exact: list[Term] = []
    for quoted in _QUOTED.findall(query):
        if parts := tuple(words(quoted)):
            exact.append(Term(parts, "phrase"))
    rest = _QUOTED.sub(" ", query)
    for match in _IDENTIFIER.finditer(rest):
        if parts := tuple(words(match.group())):
            exact.append(Term(parts, "identifier"))
    exact = [Term(t.parts[:MAX_PARTS], t.kind) for t in exact]
    plain = words(rest) + [p for t in exact if t.kind == "phrase" for p in t.parts]
    kept = [w for w in plain if w not in STOPWORDS] or ([] if exact else plain)
    terms = exact + [Term((w,), "word") for w in kept]
    unique = dict.fromkeys(t for t in terms if t.exact or not any(t.parts == e.parts for e in exact))
    return list(unique)[:MAX_TERMS]


def fts5_match(terms: list[Term]) -> str:
    """An FTS5 MATCH expression ranking passages on any of `terms` (phrases quoted as phrases)."""
    return " OR ".join(f'"{term.text}"' for term in terms)
