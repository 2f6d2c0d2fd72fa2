"""Hybrid retrieval: dense (Chroma) and BM25 (SQLite FTS5), fused on their score distributions.

Invariant: a result list holds each document at most once. Both retrievers apply the same filters,
ACL included, inside their queries, so `k` results come back whenever `k` visible documents
exist. After fusion: a mild recency preference, passages grouped by document (the best passage is
the result's `text`, up to three more of its matching passages ride along in `passages`, and a
document is scored by all of them), near-duplicate documents collapsed (a thread quoted in three
mails is one result, and so is one mail through Outlook and Gmail or in two folders, of the same
second; `near_duplicates.py`: the same message text with the same facts, so reports made from one
template stay apart), each result's calibrated `relevance` with the answer's `match`
(`relevance.py`: `match` counts the words searched for, the question less the phrases read as
filters), and the likely answers (relevance at or above `min_relevance`) moved first.
What the question asks beyond its words (a time, a source, a person: `interpret.py`) filters or
boosts the search; a filter the request sets itself (a window, sources or source types) replaces
the one read from the question, and when the filters would leave nothing, the plain query runs.
A question for the newest thing ("the latest Teams message", "newest email from jsmith": no topic
beyond its filters and people) gets the newest documents the caller may see within them, newest
first (`_newest`); with a topic left ("the latest on the price cap"), the likely answers go newest
first (`_newest_first`). A person is named only to a caller who sees a document of theirs; for
anyone else their name is words to search for, as a name the index does not know is, so "the
latest email from" someone hidden is no listing of the caller's newest mail (and tells nothing of
who is in hidden documents). The answer's `interpreted` holds only what the search applied. Every
result's title, passages, author and text metadata are `readable` and its link `readable_url`
(`clean.py`), whoever asked: the API, MCP, the local channel, `inlet search`, the demo. `checked`
refuses a source or source type the deployment does not have (an `UnknownFilterError` naming the
valid ones) before a search would answer a typo with nothing.
"""

from __future__ import annotations

import contextvars
import math
import statistics
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from inlet.connectors.model import Document, iso_time, principals_for
from inlet.errors import UnknownFilterError
from inlet.storage.types import Filters, chunk_doc_id, chunk_id

from . import relevance as rel
from .interpret import Interpretation, People, Sight, interpret, name_words
from .clean import plain, readable, readable_url, readable_values
from .near_duplicates import Marks, document_marks, marks, near_duplicates, same_document
from .store import Index

_LEXICAL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="inlet-bm25")


def _beside(call: Callable[..., Any], *args: Any) -> Future[Any]:
    """`call(*args)` in a BM25 thread, in the caller's context (a request's storage stays impatient)."""
    return _LEXICAL.submit(contextvars.copy_context().run, call, *args)


MORE_PASSAGES = 3  # matching passages of a document besides its best, in `passages`
PERSON_BOOST = 0.1  # a document by or with a person the query names: +10% of the best score
SECOND_PASSAGE = 0.0  # a document's other matching passages add this share of their scores
DEPTH = 40  # passages the dense retriever returns for fusion (at least 4 x k)
# BM25 returns twice as many: fusion pads its list with zeros to that length, so a lexical match
# stands further above the passages matching nothing (benchmarks/README.md, issue 27: natural train
# questions recall@5 0.962 -> 0.972, the Enron sets pooled nDCG@10 0.897 -> 0.901, the workplace set
# unchanged; a dense list of 80 as well cost the first Enron set 0.019 nDCG@10).
LEXICAL_DEPTH = 2  # x DEPTH
# The first RERANK_POOL documents by fused score (at least k) get their relevance; those at or above
# min_relevance then go first (`_reordered`). Chosen on the natural train questions (benchmarks/README.md,
# issue 27); a pool of 20 or 30 changed nothing, ordering all by relevance cost the first Enron set 0.022
# nDCG@10, and a floor of 0.25-0.4 or a weight of 0.25-1 did no better on train.
RERANK_POOL = 10
RERANK_WEIGHT = 0.1  # the share of relevance, against the fused score, in the order of the likely answers


@dataclass
class SearchRequest:
    query: str
    k: int = 10
    sources: tuple[str, ...] = ()
    source_types: tuple[str, ...] = ()
    after: datetime | None = None
    before: datetime | None = None
    user: str | None = None  # None: operator, sees everything
    recency_half_life_days: float = 180.0  # 0: no recency preference
    per_document: int = 1 + MORE_PASSAGES  # passages a result carries: its best as text, the rest in passages
    mode: str = "hybrid"  # "hybrid", "dense" or "lexical" (for evaluation)
    now: datetime | None = None  # the question's time, for "yesterday" (default: now)
    interpret: bool = True  # apply what the query asks beyond its words

    def filters(self) -> Filters:
        principals = principals_for(self.user)
        return Filters(
            sources=tuple(self.sources),
            source_types=tuple(self.source_types),
            after=self.after.timestamp() if self.after else None,
            before=self.before.timestamp() if self.before else None,
            principals=tuple(principals) if principals is not None else None,
        )


@dataclass
class Hit:
    chunk_id: str
    doc_id: str
    source: str
    source_type: str
    title: str
    text: str
    url: str
    author: str
    created_at: str | None
    updated_at: str | None
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    passages: list[str] = field(default_factory=list)
    relevance: float = 0.0
    features: dict[str, float] = field(default_factory=dict, repr=False)  # what relevance was computed from
    # the document's time as the catalog holds it (`documents.ts`: updated, else created, epoch
    # seconds; 0 when unknown): what "newest" orders by, never re-read from the strings above
    ts: float = field(default=0.0, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out.pop("features")
        out.pop("ts")
        return out


@dataclass
class Answer:
    """One search: results best first (one per document), how likely any answers, what the query
    was understood to ask beyond its words, and the time taken."""

    hits: list[Hit]
    match: str
    interpreted: dict[str, Any]
    took_ms: float
    searched: str = ""  # the words searched for: the query less the phrases read as filters

    def qualifying(self, floor: float) -> list[Hit]:
        """The hits an agent is shown (`/v1/context`, MCP): see `shown`."""
        return [h for h in self.hits if shown(self.match, h.relevance, floor)]


def shown(match: str, relevance: float, floor: float) -> bool:
    """Whether an agent is shown a result: its relevance reaches `floor`, and the answer was not
    judged "none" as a whole (unless the caller lowered the floor below the default)."""
    return relevance >= floor and not (match == "none" and floor >= rel.model().min_relevance)


# Keyed by the index itself, held weakly: a closed index's vocabulary goes with it (keyed by `id`, a
# new index given a freed index's id would answer with the old one's people for up to a minute).
_PEOPLE: weakref.WeakKeyDictionary[Index, People] = weakref.WeakKeyDictionary()


def people_of(index: Index) -> People:
    """The index's vocabulary of people (built lazily, refreshed as the index changes)."""
    vocabulary = _PEOPLE.setdefault(index, People())
    vocabulary.refresh(index)
    return vocabulary


@dataclass(frozen=True)
class Configured:
    """The source names and types a deployment is configured with, from its composition root: valid
    in a search's filters before the index holds a document of them."""

    sources: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()


def checked(index: Index, request: SearchRequest, configured: Configured = Configured()) -> SearchRequest:
    """`request` with its `source_types` spelt as the deployment's ("Slack" is slack), or an
    `UnknownFilterError` naming each source or source type it has not, and the valid ones, so a
    typo is not taken for "nothing here answers".

    Types: the configured ones and those the index holds (never secret: every result names its
    type). Sources: for an operator (no `user`), the configured ones and those the index serves;
    for a user, only the served sources holding a document they may see, so that neither the
    error, nor its absence, nor the time either takes tells a user of a source hidden from them (a
    source no longer configured is unknown to all)."""
    problems: list[str] = []
    types = request.source_types
    if types:
        spelt = _spellings(configured.types | people_of(index).types)
        if any(t.lower() not in spelt for t in types):  # a type indexed within the last minute
            spelt = _spellings(configured.types | set(index.catalog.source_types()))
        unknown = [t for t in types if t.lower() not in spelt]
        if unknown:
            problems.append(f"unknown source_types {_listed(unknown)}; valid: {_listed(sorted(set(spelt.values())))}")
        types = tuple(dict.fromkeys(spelt.get(t.lower(), t) for t in types))
    if request.sources:
        principals = request.filters().principals
        operator = principals is None
        # Every source the caller may see, whichever they named: the same work for a source of
        # documents hidden from them as for a made-up name, so the time does not tell it either.
        valid = (configured.sources if operator else frozenset()) | index.visible_sources(principals)
        unknown = [s for s in request.sources if s not in valid]
        if unknown:
            where = "valid" if operator else "the sources holding documents you may see"
            problems.append(f"unknown sources {_listed(unknown)}; {where}: {_listed(sorted(valid))}")
    if problems:
        raise UnknownFilterError("; ".join(problems))
    return replace(request, source_types=types) if types != request.source_types else request


def _spellings(types: set[str] | frozenset[str]) -> dict[str, str]:
    return {t.lower(): t for t in sorted(types)}


def _listed(values: Sequence[str]) -> str:
    return ", ".join(repr(v) for v in values) if values else "none yet"


def search(index: Index, request: SearchRequest) -> tuple[list[Hit], float]:
    """Best results first, and the time taken in milliseconds."""
    got = answer(index, request)
    return got.hits, got.took_ms


def answer(index: Index, request: SearchRequest) -> Answer:
    """The results with their relevance, the match and the interpretation (see module docstring)."""
    started = time.perf_counter()
    understood = Interpretation(query=request.query)
    if request.interpret and request.mode == "hybrid":
        vocabulary = people_of(index)
        principals = request.filters().principals
        # the people the caller may see are all a name is read against: who else hidden documents
        # name changes nothing (a name only they have is words to search for, as a name no one has)
        sight = Sight(vocabulary, index, principals)
        understood = interpret(request.query, request.now, vocabulary, vocabulary.types, sight)
        if understood.people and principals is not None:
            # nor is a name reported by an address the caller sees nowhere (its link to the name
            # may come from a document hidden from them)
            seen = sight.seen(understood.reported.values())
            shown = {p: r for p, r in understood.reported.items() if r in seen}
            understood = replace(understood, reported=shown)
    understood = _applicable(request, understood)
    narrowed = _narrowed(request, understood)
    pool: list[Hit] = []
    listed = False
    if understood.newest and not understood.topic:  # "the latest Teams message": the newest documents
        pool = _newest(index, narrowed or request, understood.people)
        listed = bool(pool)
    if not pool and narrowed is not None:
        pool = _ranked(index, narrowed, understood.query, understood.people)
    if not pool:  # nothing, or nothing within what the query was understood to ask: the plain query
        understood = Interpretation(
            query=request.query, people=understood.people, reported=understood.reported, newest=understood.newest
        )
        pool = _ranked(index, request, request.query, understood.people)
    if understood.newest and not listed:
        pool = _newest_first(pool)
    # `match` judges every document scored, whatever `k`: a list of 3 has the verdict of the 10; a
    # listing of the newest documents is answered by its first (`_newest`).
    relevances = [h.relevance for h in pool]
    # the question's length is that of the words searched for: a time or source phrase the search
    # applied as a filter is not one more word the results must hold
    decided_from = None if listed else rel.answer_features(relevances, understood.query)
    return Answer(
        hits=[readable_hit(h) for h in pool[: request.k]],
        match=rel.model().match(relevances, decided_from),
        interpreted=readable_values(understood.as_dict()),
        took_ms=(time.perf_counter() - started) * 1000,
        searched=understood.query,
    )


def readable_hit(hit: Hit) -> Hit:
    """`hit` with its title, passages, author and text metadata `readable`, its link `readable_url`:
    what every caller of `answer` hands out (a document indexed before `readable` was still holds
    bidi overrides, tag characters or control characters)."""
    return replace(
        hit,
        title=readable(hit.title),
        text=readable(hit.text),
        passages=[readable(p) for p in hit.passages],
        author=readable(hit.author),
        url=readable_url(hit.url),
        metadata=readable_values(hit.metadata),
    )


def _applicable(request: SearchRequest, understood: Interpretation) -> Interpretation:
    """The interpretation without the filters the caller's own override: a time window when the
    request sets `after` or `before`, source types when it sets `sources` or `source_types`. What
    is left is what the search applies, and so all that `interpreted` may report."""
    if request.after or request.before:
        understood = replace(understood, after=None, before=None)
    if request.sources or request.source_types:
        understood = replace(understood, source_types=())
    return understood


def _narrowed(request: SearchRequest, understood: Interpretation) -> SearchRequest | None:
    """The request with the (applicable) interpretation's filters, or None when it adds none."""
    if not understood.filters:
        return None
    changes: dict[str, Any] = {}
    if understood.after or understood.before:
        changes.update(after=understood.after, before=understood.before)
    if understood.source_types:
        changes["source_types"] = understood.source_types
    return replace(request, **changes)


def _newest_first(hits: list[Hit]) -> list[Hit]:
    """`hits` with the likely answers (relevance at or above the model's `min_relevance`, the floor
    of `_reordered`) newest first, by their document's time (updated, else created; none: last),
    and the rest after them in their order: "the latest on the price cap" is answered by the newest
    answer. Relevance values stay as they are."""
    floor = rel.model().min_relevance
    likely = sorted((h for h in hits if h.relevance >= floor), key=lambda h: h.ts, reverse=True)
    return likely + [h for h in hits if h.relevance < floor]


NEWEST_DECAY = 0.75  # a listing's relevance: `strong` for the newest, each next one this share of the one before
NEWEST_READ = 3  # x the pool: documents read for a listing, so that copies dropped still leave a full one


def _newest(index: Index, request: SearchRequest, people: Sequence[str]) -> list[Hit]:
    """The newest documents the caller may see within the request's filters (and of `people`, when
    the question names someone), newest first, copies collapsed as in a search (`_diversify`), each
    with its first passage: what a question with no topic beyond them asks for ("the latest Teams
    message", "newest email from jsmith"). The newest answers it: its relevance is the model's
    `strong`, and each next one's `NEWEST_DECAY` of the one before (with the default floor, the
    first six are shown to an agent), so `match` is `strong`. Empty when no document passes."""
    pool = max(request.k, RERANK_POOL)
    found = index.newest(request.filters(), people, NEWEST_READ * pool)
    groups = [_Group(doc_id, [_Candidate(chunk_id(doc_id, 0), doc_id, 0.0, ts=ts)]) for doc_id, ts in found]
    hits = _materialise(index, _diversify(index, groups, pool, 0))
    strong = rel.model().strong
    for i, hit in enumerate(hits):
        hit.relevance = hit.score = round(strong * NEWEST_DECAY**i, 4)
    return hits


def _ranked(index: Index, request: SearchRequest, query: str, people: Sequence[str]) -> list[Hit]:
    """The pool (at least `k` documents), in the order of `_reordered` (hybrid search; a single
    retriever, for evaluation, keeps its own order)."""
    hits = _pool(index, request, query, people)
    return _reordered(hits) if request.mode == "hybrid" else hits


def _reordered(hits: list[Hit]) -> list[Hit]:
    """`hits` with the likely answers first: those whose relevance reaches the model's
    `min_relevance` (what `/v1/context` packs), ordered by their fused score and relevance (the log
    of each as a share of the best, weighed 1 - `RERANK_WEIGHT` and `RERANK_WEIGHT`), then the rest
    in the fused order. Below the floor the calibrated chance tells answers from look-alikes too
    weakly to overrule the retrievers (a keyword query whose candidates all score 0.1-0.2 keeps its
    order); above it a likely answer that fusion ranked below a look-alike moves up."""
    floor = rel.model().min_relevance

    def key(hit: Hit) -> float:
        relative = max(hit.features.get("relative", 0.0), 1e-6)
        return RERANK_WEIGHT * math.log(max(hit.relevance, 1e-6)) + (1 - RERANK_WEIGHT) * math.log(relative)

    likely = sorted((h for h in hits if h.relevance >= floor), key=key, reverse=True)
    return likely + [h for h in hits if h.relevance < floor]


def _pool(index: Index, request: SearchRequest, query: str, people: Sequence[str]) -> list[Hit]:
    """The best documents by fused score, `RERANK_POOL` of them (at least `k`), with their relevance."""
    filters = request.filters()
    depth = max(request.k * 4, DEPTH)
    lex_depth = LEXICAL_DEPTH * depth
    frequency = rel.frequency_of(index, filters.principals)  # what the caller may see (relevance.frequency_of)
    # BM25 runs beside the query embedding: both release the GIL (SQLite, torch).
    lexical = (
        _beside(index.lexical, expanded(query, frequency), filters, lex_depth)
        if request.mode in ("hybrid", "lexical")
        else None
    )
    exact = _beside(index.exact_matches, query, filters) if request.mode == "hybrid" else None
    lists: list[list[tuple[str, float]]] = []
    zero_below: list[int] = []
    dense: list[tuple[str, float]] = []
    reference: list[tuple[str, float]] = []  # what `dense_gap` measures against (`_dense_reference`)
    if request.mode in ("hybrid", "dense"):
        dense, reference = index.dense_within(query, filters, depth, _dense_reference(filters))
        lists.append(dense)
        zero_below.append(0)
    bm25: list[tuple[str, float]] = []
    if lexical is not None:
        bm25 = lexical.result()
        lists.append(bm25)
        zero_below.append(lex_depth)  # a passage BM25 did not return matched no term: its score is 0
    exact_hits = exact.result() if exact is not None else {}
    ranked = fuse(lists, zero_below, exact_hits)
    candidates = _candidates(index, ranked, request.recency_half_life_days)
    evidence = _Evidence.of(dense, bm25, lex_depth, exact_hits, reference)
    groups = _by_document(candidates, index, people)
    pool = max(request.k, RERANK_POOL) if request.mode == "hybrid" else request.k
    chosen = _diversify(index, groups, pool, max(0, request.per_document - 1))
    hits = _materialise(index, chosen)
    _score(hits, chosen, evidence, query, frequency)
    return hits


def _dense_reference(filters: Filters) -> Filters:
    """Where the passages `dense_gap` measures a result against come from when a time window or a
    source filter leaves fewer than the dense depth: the nearest ones outside it that the caller
    may see, topping the filtered ones up (`Index.dense_within`, from the same query vector). The
    median of the handful of passages a narrow window holds is far below that of any `depth`
    nearest, and would lift each of them as if it stood out ("... in 2024" over four documents of
    2024)."""
    return replace(filters, after=None, before=None, sources=(), source_types=())


def expanded(query: str, frequency: rel.Frequency | None) -> str:
    """The query for BM25, with words from the index's own vocabulary it implies: two adjacent
    words written as one where the index holds that compound ("gzip archive" -> GzipArchive,
    "data base" -> database). Dense retrieval keeps the question as asked."""
    if frequency is None:
        return query
    words = rel.content_terms(query)
    joined = [a + b for a, b in zip(words, words[1:]) if len(a + b) >= 6]
    extra = [w for w in joined if frequency(w) > 0]
    return f"{query} {' '.join(extra)}" if extra else query


def fuse(
    lists: list[list[tuple[str, float]]], zero_below: Sequence[int] = (), exact: Mapping[str, int] | None = None
) -> dict[str, float]:
    """Distribution-based score fusion of the retrievers' (chunk id, score) lists.

    Each list's scores are put on a common scale, (score - lowest in the list) / standard
    deviation, then averaged over the lists; a passage absent from a list gets 0 there (it ranked
    below everything the list returned). Unlike reciprocal-rank fusion, which keeps only ranks, a
    clear winner in one list (a code BM25 matches exactly, a paraphrase only the dense model sees)
    keeps its margin.

    `zero_below[i]` > 0 says list i was asked for that many passages and that a passage it did not
    return scores 0 (BM25: it matches no query term). A shorter list is then measured as if padded
    with zeros to that length: a lone BM25 match (the one ticket naming INC-20931) stands far above
    the passages that match nothing, instead of counting as a flat list, which a dense list of
    look-alikes outscores. A list with no spread otherwise (one score, or all equal) gets 1.

    `exact` (chunk id -> rare identifiers or quoted phrases of the query it holds, from
    `exact_matches`) puts the passages holding more of them first, in fused order among
    themselves: the lift, twice the best fused score per name held, outlasts the recency bonus.
    benchmarks/quality.py, two labelled Enron sets (67 queries): recall@5 0.925 and nDCG@10 0.891,
    the same with and without the padding and the lift (reciprocal-rank fusion measured 0.896 /
    0.840 on an older index); on the workplace set's 58 identifier
    queries (quality_workplace.py) they take hybrid from 0.655 / 0.569 to 1.000 / 1.000.
    """
    fused: dict[str, float] = {}
    for i, hits in enumerate(lists):
        scores = [score for _, score in hits]
        padding = (zero_below[i] if i < len(zero_below) else 0) - len(scores)
        if scores and padding > 0:
            scores += [0.0] * padding
        spread = _spread(scores)
        low = min(scores, default=0.0)
        for cid, score in hits:
            fused[cid] = fused.get(cid, 0.0) + ((score - low) / spread if spread > 0 else 1.0) / len(lists)
    if exact:
        lift = 2.0 * (max(fused.values(), default=0.0) + 1.0)
        for cid, names in exact.items():
            fused[cid] = fused.get(cid, 0.0) + lift * names
    return fused


def _spread(scores: Sequence[float]) -> float:
    """The population standard deviation in floats (`statistics.pstdev` works in exact fractions:
    a tenth of a search's time for a number compared only with zero and divided by)."""
    if len(scores) < 2 or min(scores) == max(scores):
        return 0.0
    mean = math.fsum(scores) / len(scores)
    return math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / len(scores))


@dataclass
class _Candidate:
    chunk_id: str
    doc_id: str
    score: float
    text: str = ""
    ts: float = 0.0  # the document's updated (else created) time, epoch seconds; 0 when unknown


@dataclass
class _Group:
    """A document's matching passages, best first, and its score from all of them."""

    doc_id: str
    passages: list[_Candidate]
    score: float = 0.0
    texts: list[str] = field(default_factory=list)
    named: str = ""  # the name words of the people the query names who are in this document


@dataclass
class _Evidence:
    """Per-passage retriever scores, kept for the relevance features."""

    dense: dict[str, float]
    dense_floor: float
    dense_median: float
    bm25: dict[str, float]
    exact: Mapping[str, int]

    @classmethod
    def of(
        cls,
        dense: list[tuple[str, float]],
        bm25: list[tuple[str, float]],
        depth: int,
        exact: Mapping[str, int],
        reference: list[tuple[str, float]] | None = None,
    ) -> "_Evidence":
        """`reference`: the passages whose median `dense_gap` is measured from (default: `dense`)."""
        scores = [s for _, s in dense]
        median = [s for _, s in (dense if reference is None else reference)]
        lexical = [s for _, s in bm25] + [0.0] * max(0, depth - len(bm25))
        spread = _spread(lexical)
        return cls(
            dense=dict(dense),
            dense_floor=min(scores, default=0.0),
            dense_median=statistics.median(median) if median else 0.0,
            bm25={cid: (s / spread if spread > 0 else 1.0) for cid, s in bm25},
            exact=exact,
        )


def _candidates(index: Index, ranked: dict[str, float], half_life_days: float) -> list[_Candidate]:
    """Fused candidates, best first, scored from document times alone: texts are read later, and
    only for the few that `_diversify` looks at."""
    doc_ids = {cid: chunk_doc_id(cid) for cid in ranked}
    times = index.catalog.doc_times(set(doc_ids.values()))
    now = time.time()
    out = []
    for cid, score in ranked.items():
        ts = times.get(doc_ids[cid])
        if ts is None:  # deleted since it was ranked
            continue
        if half_life_days > 0 and ts > 0:
            # At most +10% for a passage updated today, fading with the half-life: a tie-breaker.
            age_days = max(0.0, (now - ts) / 86400)
            score *= 1.0 + 0.1 * math.pow(0.5, age_days / half_life_days)
        out.append(_Candidate(cid, doc_ids[cid], score, ts=ts))
    out.sort(key=lambda c: c.score, reverse=True)
    return out


def _by_document(candidates: list[_Candidate], index: Index, people: Sequence[str]) -> list[_Group]:
    """Candidates grouped by document, best document first. A document scores its best passage
    plus `SECOND_PASSAGE` of each other matching one (an answer spread over a thread's messages
    beats a lone look-alike line), and `PERSON_BOOST` more when a person the query names wrote it
    or took part. Such a document also holds that person's name words for the relevance features,
    whatever its text calls them (a Slack thread shows "doubledeez:", not Hermione Granger), unless
    the person is in most of the candidates (a mailbox's owner): there their name tells none apart."""
    groups: dict[str, _Group] = {}
    for c in candidates:
        group = groups.setdefault(c.doc_id, _Group(c.doc_id, []))
        group.passages.append(c)
    best = candidates[0].score if candidates else 0.0
    for group in groups.values():
        first, *rest = group.passages
        group.score = first.score + SECOND_PASSAGE * sum(max(0.0, c.score) for c in rest[:MORE_PASSAGES])
    ordered = sorted(groups.values(), key=lambda g: g.score, reverse=True)
    if people and ordered:
        wanted = set(people)
        top = ordered[:60]
        docs = index.catalog.documents(g.doc_id for g in top)
        involved = {g.doc_id: _involved(docs[g.doc_id], wanted) if g.doc_id in docs else set() for g in top}
        everywhere = {p for p in wanted if 2 * sum(p in found for found in involved.values()) > len(top)}
        for group in top:
            if involved[group.doc_id]:
                group.score += PERSON_BOOST * max(best, group.score)
                distinct = involved[group.doc_id] - everywhere
                group.named = " ".join(sorted(set().union(*map(name_words, distinct))))
        ordered.sort(key=lambda g: g.score, reverse=True)
    return ordered


def _involved(doc: Document, people: set[str]) -> set[str]:
    """Those of `people` who wrote `doc`, were sent it or took part in it."""
    recipients = doc.metadata.get("recipients")
    named = set(doc.people())
    if isinstance(recipients, str):
        named.add(recipients.lower())
    elif isinstance(recipients, list):
        named.update(r.lower() for r in recipients)
    return named & people


def _diversify(index: Index, groups: list[_Group], k: int, more: int) -> list[_Group]:
    """The best `k` documents, each with its best passage and up to `more` other matching
    passages; a document whose best passage nearly repeats a chosen one's (a forward, a quote: the
    same message text with the same facts, `near_duplicates`) is dropped, and so is a copy: one of
    the same time, to the second, as a chosen one that shares a matching passage with it, carries
    the same mail's `message_id` or nearly repeats it as a whole document (the same mail through
    Outlook and Gmail, or in two folders of one mailbox, whose best passages may differ, or whose
    attachments the two sources read differently: `_Copies`). Texts are read a page of 2 x `k`
    documents at a time: usually one page is enough."""
    chosen: list[_Group] = []
    best_marks: list[Marks] = []  # each chosen document's best passage
    by_time: dict[float, list[Marks]] = {}  # a chosen document's time -> its passages' marks
    ids_by_time: dict[float, list[str]] = {}  # a chosen document's time -> the chosen documents of that time
    copies = _Copies(index)
    texts: dict[str, str | None] = {}
    for i, group in enumerate(groups):
        if group.passages[0].chunk_id not in texts:
            page = [c.chunk_id for g in groups[i : i + 2 * k] for c in g.passages[: 1 + more]]
            texts.update(dict.fromkeys(page))
            texts.update(index.catalog.chunk_texts(page))
        passages: list[tuple[_Candidate, str]] = []
        for c in group.passages[: 1 + more]:
            found = texts.get(c.chunk_id)
            if found is not None:  # else re-chunked or deleted since it was ranked
                passages.append((c, found))
        if not passages:
            continue
        best, text = passages[0]
        found_marks = [marks(t) for _, t in passages]
        if any(near_duplicates(found_marks[0], other) for other in best_marks):
            continue
        twins = by_time.get(best.ts, []) if best.ts > 0 else []
        if any(near_duplicates(m, other) for m in found_marks for other in twins):
            continue
        if best.ts > 0 and copies.of(group.doc_id, ids_by_time.get(best.ts, [])):
            continue
        best.text = text
        group.passages = [best]
        group.texts = [text]
        kept = [found_marks[0]]
        for (c, other), other_marks in zip(passages[1:], found_marks[1:]):
            if not any(near_duplicates(other_marks, m) for m in kept):
                c.text = other
                group.passages.append(c)
                group.texts.append(other)
                kept.append(other_marks)
        chosen.append(group)
        best_marks.append(found_marks[0])
        by_time.setdefault(best.ts, []).extend(found_marks)
        ids_by_time.setdefault(best.ts, []).append(group.doc_id)
        if len(chosen) == k:
            break
    return chosen


class _Copies:
    """What tells a copy of a chosen document from another document of the same time, to the
    second: their `message_id` metadata and whole texts, read only for documents that share a time
    with a chosen one (rare outside copies of one mail), and the texts' marks only when the
    `message_id`s do not settle it."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.docs: dict[str, Document | None] = {}
        self.marks: dict[str, Marks] = {}

    def of(self, doc_id: str, others: Sequence[str]) -> bool:
        """Whether `doc_id` is a copy of one of `others`: it carries the non-empty `message_id` of
        one, or its whole text is one's (`same_document`)."""
        if not others:
            return False
        missing = [d for d in (doc_id, *others) if d not in self.docs]
        if missing:
            found = self.index.catalog.documents(missing)
            self.docs.update((d, found.get(d)) for d in missing)
        mine = self.docs[doc_id]
        theirs = [doc for doc in (self.docs[o] for o in others) if doc is not None]
        if mine is None or not theirs:
            return False
        key = _message_id(mine)
        if key and any(_message_id(doc) == key for doc in theirs):
            return True
        return any(same_document(self._marks(mine), self._marks(doc)) for doc in theirs)

    def _marks(self, doc: Document) -> Marks:
        if doc.id not in self.marks:
            self.marks[doc.id] = document_marks(plain(doc).text)  # the text its chunks were cut from
        return self.marks[doc.id]


def _message_id(doc: Document) -> str:
    value = doc.metadata.get("message_id")
    return value.strip() if isinstance(value, str) else ""


def _materialise(index: Index, chosen: list[_Group]) -> list[Hit]:
    docs = index.catalog.documents(g.doc_id for g in chosen)
    hits = []
    for g in chosen:
        doc = docs.get(g.doc_id)
        if doc is None:  # deleted between ranking and now
            continue
        best = g.passages[0]
        hits.append(
            Hit(
                chunk_id=best.chunk_id,
                doc_id=g.doc_id,
                source=doc.source,
                source_type=doc.source_type,
                title=doc.title,
                text=best.text,
                url=doc.url,
                author=doc.author,
                created_at=iso_time(doc.created_at) if doc.created_at else None,
                updated_at=iso_time(doc.updated_at) if doc.updated_at else None,
                score=g.score,
                metadata=dict(doc.metadata),
                passages=[c.text for c in g.passages[1:]],
                ts=best.ts,
            )
        )
    return hits


def _score(
    hits: list[Hit], chosen: list[_Group], evidence: _Evidence, query: str, frequency: rel.Frequency | None
) -> None:
    """Each hit's `relevance` from its features (`relevance.py`); 0 for a hit lacking a symbol that
    a query without words asks for."""
    model = rel.model()
    asked = rel.symbols(query)
    for hit, features in zip(hits, features_of(hits, chosen, evidence, query, frequency)):
        hit.features = features
        held = all(s in " ".join([hit.title, hit.text, *hit.passages]) for s in asked)
        hit.relevance = round(model.relevance(features), 4) if held else 0.0


def features_of(
    hits: list[Hit], chosen: list[_Group], evidence: _Evidence, query: str, frequency: rel.Frequency | None
) -> list[dict[str, float]]:
    """The relevance features of each hit (also what `benchmarks/fit_relevance.py` fits on)."""
    terms = rel.content_terms(query)
    groups = {g.doc_id: g for g in chosen}
    top = hits[0].score if hits and hits[0].score > 0 else 1.0
    weights = rel.term_weights(terms, frequency)
    absent = sum(1 for t in terms if weights.get(t) == rel.ABSENT) / len(terms) if terms else 0.0
    out = []
    for i, hit in enumerate(hits):
        group = groups[hit.doc_id]
        ids = [c.chunk_id for c in group.passages]
        dense = max((evidence.dense[c] for c in ids if c in evidence.dense), default=evidence.dense_floor)
        following = hits[i + 1].score if i + 1 < len(hits) else 0.0
        created = datetime.fromisoformat(hit.created_at.replace("Z", "+00:00")) if hit.created_at else None
        held = " ".join([hit.title, *group.texts, group.named])
        out.append(
            {
                "dense": dense,
                "dense_gap": dense - evidence.dense_median,
                "lexical": min(6.0, max((evidence.bm25.get(c, 0.0) for c in ids), default=0.0)),
                "exact": 1.0 if any(c in evidence.exact for c in ids) else 0.0,
                "coverage": (covered := rel.coverage(terms, held)),
                "title": rel.coverage(terms, hit.title),
                "margin": max(0.0, (hit.score - following) / top),
                "relative": max(0.0, hit.score / top),
                "weighted": rel.weighted_coverage(weights, held),
                "absent": absent,
                # Without term counts (a catalog that keeps none) the share of words lacking stands in.
                "missing": rel.missing_rarest(weights, held) if frequency else 1 - covered,
                "number": rel.numbers_missing(query, held, created),
                "passages": (len(group.passages) - 1) / MORE_PASSAGES,
            }
        )
    return out
