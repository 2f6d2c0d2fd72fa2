"""`relevance`: the calibrated chance that a result answers the query, and the answer's `match`.

Invariant: relevance is a pure function of features search already has (no model call, no
network): the dense similarity of the best passage and how far it stands above the median of the
nearest passages (search's `_dense_reference`: a narrow window's or source filter's are topped up
from outside it), its BM25 standing, exact identifier or phrase hits, the share of the query's
words the document holds (in its passages and in its title), the same share weighted by each
word's rarity in the index (inverse document frequency), the share of the query's words the
index holds nowhere at all (a question about "parental leave" over a corpus that never says
"parental"), how
distinctive the rarest query word the document lacks is, the share of the numbers and months the
query names (a year, a quarter, a version, a month: "the 2003 budget", "Q4", "the June outage")
that neither the document nor its date holds, how many of the document's passages match (an
answer spread over a thread's messages or a document's sections), and the fused score's margin
over the next result. A logistic model maps them to 0-1; its coefficients are data
(`relevance_model.json`), fitted by `benchmarks/fit_relevance.py` on the train part of the
labelled natural questions.

A query without a letter or a digit ("🔥", "👍👍") asks for its symbols: the embedding model
reads most of them as the same unknown token, so only a passage holding them may answer, and
every other result's relevance is 0.

`match` is decided for the answer as a whole: a second logistic model, fitted on the same
questions, gives the chance that any of the first five results answers from the best relevance and
the number of the question's content words (up to eight; the words searched for, so a time phrase
read as a filter is none, and Chinese, Japanese and Korean counted as words, not as the index's
character pairs: `word_count`): the relevance features are shares of
the question's words, and an answer to a long question holds a smaller share of them, so the same
best relevance is stronger evidence of an answer the longer the question (on the labelled train
and held-out sets, questions without an answer are also the shorter ones). `none` below the
threshold chosen on the same part (nothing here answers), else `strong` when the best result is
very likely an answer, `weak` when one may be.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from inlet.storage.lexical import stem, words

MODEL_PATH = Path(__file__).with_name("relevance_model.json")
STOPWORDS = frozenset(
    """a about above after again all am an and any are as at be been before being below between both
but by can could did do does doing done down during each few for from further had has have having he her here hers
him his how i if in into is it its itself just me more most my no nor not now of off on once only or other our out
over own same she should so some such than that the their them then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you your yours get got
go going let lets make made say said tell know want please any anyone anything thing things there's what's it's
i'm we're they're""".split()
)


def content_terms(text: str) -> list[str]:
    """The query words that carry meaning: the index's `words` (so a CJK word is its bigrams, and
    `résumé` is `resume` in whichever Unicode form), no stopwords, no one-letter words."""
    return [w for w in dict.fromkeys(words(text)) if w not in STOPWORDS and len(w) > 1]


_NOT_ASKED = frozenset("\u200d\ufe0e\ufe0f" + "".join(map(chr, range(0x1F3FB, 0x1F400))))  # joiners, skin tones


def symbols(query: str) -> frozenset[str]:
    """What a query without letters or digits asks for: its characters (emoji, signs), joiners and
    skin-tone modifiers aside; empty when the query holds a letter or a digit."""
    if any(ch.isalnum() for ch in query):
        return frozenset()
    return frozenset(ch for ch in query if not ch.isspace() and ch not in _NOT_ASKED)


@lru_cache(maxsize=256)
def stems(text: str) -> frozenset[str]:
    """The stems of `text`'s words; cached, since each result's text is read by several features."""
    return frozenset(map(stem, words(text)))


def coverage(terms: list[str], text: str) -> float:
    """Share of `terms` that occur in `text`, on the keyword index's Porter stems ("expenses" ~ "expense")."""
    if not terms:
        return 0.0
    words = stems(text)
    return sum(1 for t in terms if stem(t) in words) / len(terms)


FEATURES = (
    "dense",
    "dense_gap",
    "lexical",
    "exact",
    "coverage",
    "title",
    "margin",
    "relative",
    "weighted",
    "absent",
    "missing",
    "number",
    "passages",
)


Frequency = Callable[[str], int]  # chunks holding a term ("": all chunks)
ABSENT = -1.0  # the weight of a term no chunk holds


def frequency_of(index: Any, principals: tuple[str, ...] | None = None) -> Frequency | None:
    """The index's document-frequency count (`Index.frequency`, cached), where its catalog keeps one:
    the count the keyword search chooses its terms by. For a caller limited to `principals`, a term
    no chunk they may see holds counts as held by none: the relevance features must not tell them
    that a word exists in documents they cannot read."""
    if not callable(getattr(index.catalog, "frequency", None)):
        return None
    return lambda term: int(index.frequency(term, principals))


def term_weights(terms: list[str], frequency: Frequency | None) -> dict[str, float]:
    """Each term's inverse document frequency (ABSENT when no chunk holds it; 1 each without counts)."""
    if frequency is None or not terms:
        return dict.fromkeys(terms, 1.0)
    total = max(1, frequency(""))
    weights = {}
    for term in terms:
        df = frequency(term)
        weights[term] = ABSENT if df == 0 else math.log(1 + total / df)
    return weights


def weighted_coverage(weights: dict[str, float], text: str) -> float:
    """Share of the query's rarity-weighted terms the text holds (an absent term weighs most)."""
    if not weights:
        return 0.0
    ceiling = max((w for w in weights.values() if w != ABSENT), default=1.0) * 1.5
    words = stems(text)
    total = sum(ceiling if w == ABSENT else w for w in weights.values())
    held = sum(w for t, w in weights.items() if w != ABSENT and stem(t) in words)
    return held / total if total else 0.0


def missing_rarest(weights: dict[str, float], text: str) -> float:
    """How rare the rarest query term the text lacks is, against the rarest term of the query (0:
    it lacks none; 1: it lacks the most distinctive one). An answer may miss the common words of a
    paraphrase; a near miss lacks the word that mattered ("Q4" of "the Q4 roadmap")."""
    if not weights:
        return 0.0
    ceiling = max((w for w in weights.values() if w != ABSENT), default=1.0) * 1.5
    values = {t: ceiling if w == ABSENT else w for t, w in weights.items()}
    words = stems(text)
    lacking = [v for t, v in values.items() if stem(t) not in words]
    return max(lacking, default=0.0) / max(values.values())


MONTHS = "january february march april may june july august september october november december".split()
_ABBREVIATIONS = {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9, "oct": 10}
_ABBREVIATIONS |= {"nov": 11, "dec": 12}
_MONTH_WORDS = {name: n for n, name in enumerate(MONTHS, 1)} | _ABBREVIATIONS
_QUERY_MONTH = re.compile(rf"\b({'|'.join(MONTHS)})\b", re.IGNORECASE)
# "march" is a verb and "may" a modal: lowercase "march" is a month only after a word that
# introduces a time ("in march", "since march", "the march outage"); "may" only as "May" mid-sentence.
_BEFORE_MARCH = re.compile(r"\b(?:in|of|since|from|during|until|till|by|before|after|through|the|this|last|next)\s+$")
_SENTENCE_START = re.compile(r"(?:^\s*|[.!?:;]\s*|\n\s*)$")
# A date written with numbers: "2024-03", "2001-06-12", "6/3/2001" (6 or 3: month-first or day-first).
_ISO_MONTH = re.compile(r"\b(?:19|20)\d\d[-/](0?[1-9]|1[0-2])\b")
_SLASHED = re.compile(r"\b(\d{1,2})/(\d{1,2})/(?:19|20)?\d\d\b")


_DAY_AFTER = re.compile(r"^\s+(\d{1,2})(?:st|nd|rd|th)?\b(?![.:,]?\d)")  # "March 30", "June 23, 2000"
_DAY_BEFORE = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?$")  # "30 March", "the 26th of December"


@dataclass(frozen=True)
class Month:
    """A month the query names (1-12) and the day written beside it, if any ("March 30": 3, 30)."""

    month: int
    day: int | None = None
    day_word: str | None = None  # the day as the index's words spell it ("30", "26th")


def query_months(query: str) -> list[Month]:
    """The months `query` names, each once, in order: "the June outage", "June's release", "mid-june",
    "March 30" (with its day); "march" lowercase only after a word that introduces a time, "May"
    only capitalised and not the first word of a sentence ("May I ..." asks permission)."""
    found: dict[tuple[int, int | None], Month] = {}
    for m in _QUERY_MONTH.finditer(query):
        name, before = m[1], query[: m.start()]
        if name.lower() == "may" and (name != "May" or _SENTENCE_START.search(before)):
            continue
        if name == "march" and not _BEFORE_MARCH.search(before.lower()):
            continue
        day = _DAY_AFTER.search(query[m.end() :]) or _DAY_BEFORE.search(before)
        number = MONTHS.index(name.lower()) + 1
        if day and 1 <= int(day[1]) <= 31:
            spelt = words(day[0])[0]
            found.setdefault((number, int(day[1])), Month(number, int(day[1]), spelt))
        else:
            found.setdefault((number, None), Month(number))
    return list(found.values())


def text_months(text: str) -> frozenset[int]:
    """The months `text` names: by name or common abbreviation ("Jun", "Sept"; "may" counts, modal
    or not), or in a date written with numbers ("2024-03-18"; "6/3/2001" counts June and March)."""
    held = {_MONTH_WORDS[w] for w in words(text) if w in _MONTH_WORDS}
    held |= {int(m[1]) for m in _ISO_MONTH.finditer(text)}
    for m in _SLASHED.finditer(text):
        held |= {int(f) for f in m.groups() if 1 <= int(f) <= 12}
    return frozenset(held)


def numbers_missing(query: str, text: str, created: datetime | None) -> float:
    """Share of the query's numbers, its words holding a digit ("2003", "q4", "p99", "5000") and the
    months it names ("the June outage"), that the text lacks, the document's year and month counting
    as held (0 when the query names none). A month with its day ("March 30", "the 26th of December")
    is one date, held when the month and the day are (the day as a word of the text, or the
    document's own date). A question about the 2003 budget is not answered by the 2001 one, nor one
    about the June outage by the March postmortem, however alike their words."""
    months = query_months(query)
    days = {m.day_word for m in months}
    numbers = [w for w in dict.fromkeys(words(query)) if any(c.isdigit() for c in w) and w not in days]
    if not numbers and not months:
        return 0.0
    held = set(words(text))
    if created is not None:
        held.add(str(created.year))
    lacking = sum(1 for n in numbers if n not in held)
    if months:
        named = text_months(text)
        for m in months:
            dated = created is not None and created.month == m.month and m.day in (None, created.day)
            day_held = m.day is None or str(m.day) in held or m.day_word in held
            lacking += not dated and not (m.month in named and day_held)
    return lacking / (len(numbers) + len(months))


ANSWER_FEATURES = ("best", "terms")
MAX_TERMS = 8  # longer questions count as this long: the labelled ones are too few beyond it to say more


# Chinese, Japanese and Korean words as a reader counts them, where the index's words are character
# pairs (`words`): a run of Han characters is a word per two (their words are mostly one or two
# characters), a katakana run (a loanword) or a Hangul run (Korean spaces its words, particles
# attached) one word; hiragana, which writes Japanese particles and endings, none (unless the
# question is written in hiragana alone: then each of its runs is one).
_HAN = "\u3005-\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_KATAKANA = "\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff"
_HANGUL = "\u1100-\u11ff\u3131-\u318e\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff"
_HIRAGANA = "\u3041-\u3096\u309d-\u309f"
_CJK_WORD = re.compile(f"(?P<han>[{_HAN}]+)|[{_KATAKANA}]+|[{_HANGUL}]+")
_CJK_TEXT = re.compile(f"[{_HAN}{_KATAKANA}{_HANGUL}{_HIRAGANA}]+")
_HIRAGANA_RUN = re.compile(f"[{_HIRAGANA}]+")


def word_count(query: str) -> int:
    """How many content words `query` has: its `content_terms`, except that Chinese, Japanese and
    Korean text counts as the words a reader sees (`_CJK_WORD`), not as the index's character
    pairs: "猫の名前は何ですか" ("what is the cat's name") is three words (猫, 名前, 何), not its
    eight pairs, particles included."""
    text = unicodedata.normalize("NFKC", query)
    plain = len(content_terms(_CJK_TEXT.sub(" ", text)))
    runs = _CJK_WORD.finditer(text)
    counted = plain + sum((len(m[0]) + 1) // 2 if m["han"] else 1 for m in runs)
    return counted or len(_HIRAGANA_RUN.findall(text))


def question_terms(query: str) -> float:
    """How many content words the question has (`word_count`), at most `MAX_TERMS`. The relevance
    features are shares of these words, and an answer to a long question holds a smaller share of
    them (on the answerable train questions, the best coverage among the first five results falls
    from 0.70 at three words to 0.49 at eight or more): the same best relevance is stronger evidence
    of an answer the longer the question."""
    return float(min(word_count(query), MAX_TERMS))


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def answer_features(relevances: list[float], query: str) -> dict[str, float]:
    """What `match` is decided from: the best relevance (as log-odds) and `question_terms`."""
    return {"best": _logit(max(relevances, default=0.0)), "terms": question_terms(query)}


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@dataclass
class Model:
    weights: dict[str, float]
    bias: float
    min_relevance: float
    strong: float
    answer_weights: dict[str, float] = field(default_factory=dict)
    answer_bias: float = 0.0
    answer_min: float | None = None  # None: `match` from the best relevance against min_relevance

    def relevance(self, features: dict[str, float]) -> float:
        return _logistic(self.bias + sum(self.weights.get(n, 0.0) * features.get(n, 0.0) for n in FEATURES))

    def answers(self, features: dict[str, float]) -> float:
        """The chance that any of the first five results answers (`answer_features`)."""
        weights = self.answer_weights
        return _logistic(self.answer_bias + sum(weights.get(n, 0.0) * features.get(n, 0.0) for n in ANSWER_FEATURES))

    def match(self, relevances: list[float], answer: dict[str, float] | None = None) -> str:
        """`none` when nothing answers (by the answer-level model given `answer`, else by the best
        relevance against `min_relevance`), `strong` when the best result very likely does."""
        best = max(relevances, default=0.0)
        if not relevances:
            return "none"
        if answer is not None and self.answer_min is not None:
            if self.answers(answer) < self.answer_min:
                return "none"
        elif best < self.min_relevance:
            return "none"
        return "strong" if best >= self.strong else "weak"


@lru_cache(maxsize=1)
def model() -> Model:
    data: dict[str, Any] = json.loads(MODEL_PATH.read_text())
    answer: dict[str, Any] = data.get("answer", {})
    return Model(
        weights={k: float(v) for k, v in data["weights"].items()},
        bias=float(data["bias"]),
        min_relevance=float(data["min_relevance"]),
        strong=float(data["strong"]),
        answer_weights={k: float(v) for k, v in answer.get("weights", {}).items()},
        answer_bias=float(answer.get("bias", 0.0)),
        answer_min=float(answer["min"]) if "min" in answer else None,
    )


def default_min_relevance() -> float:
    """The documented default of `min_relevance` (chosen on the labelled sets)."""
    return model().min_relevance
