"""Hybrid retrieval: dense (Chroma) and BM25 (SQLite FTS5), fused on their score distributions.

Both retrievers apply the same filters, ACL included, inside their queries, so `k` results come
back whenever `k` visible passages exist. After fusion: a mild recency preference, near-duplicate
passages collapsed (a thread quoted in three mails is one result), at most a few passages per
document.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inlet.connectors.model import principals_for
from inlet.storage.types import Filters, chunk_doc_id

from .store import Index

_LEXICAL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="inlet-bm25")
_WORDS = re.compile(r"\w+")


@dataclass
class SearchRequest:
    query: str
    k: int = 10
    sources: tuple[str, ...] = ()
    source_types: tuple[str, ...] = ()
    after: datetime | None = None
    before: datetime | None = None
    user: str | None = None                  # None: operator, sees everything
    recency_half_life_days: float = 180.0    # 0: no recency preference
    per_document: int = 2
    mode: str = "hybrid"                     # "hybrid", "dense" or "lexical" (for evaluation)

    def filters(self) -> Filters:
        principals = principals_for(self.user)
        return Filters(
            sources=tuple(self.sources), source_types=tuple(self.source_types),
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

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def search(index: Index, request: SearchRequest) -> tuple[list[Hit], float]:
    """Best passages first, and the time taken in milliseconds."""
    started = time.perf_counter()
    filters = request.filters()
    depth = max(request.k * 4, 40)
    # BM25 runs beside the query embedding: both release the GIL (SQLite, torch).
    lexical = (_LEXICAL.submit(index.lexical, request.query, filters, depth)
               if request.mode in ("hybrid", "lexical") else None)
    exact = (_LEXICAL.submit(index.exact_matches, request.query, filters)
             if request.mode == "hybrid" else None)
    lists: list[list[tuple[str, float]]] = []
    zero_below: list[int] = []
    if request.mode in ("hybrid", "dense"):
        lists.append(index.dense(request.query, filters, depth))
        zero_below.append(0)
    if lexical is not None:
        lists.append(lexical.result())
        zero_below.append(depth)   # a passage BM25 did not return matched no term: its score is 0
    ranked = fuse(lists, zero_below, exact.result() if exact is not None else None)
    candidates = _candidates(index, ranked, request.recency_half_life_days)
    chosen = _diversify(index, candidates, request.k, request.per_document)
    return _materialise(index, chosen), (time.perf_counter() - started) * 1000


def fuse(lists: list[list[tuple[str, float]]], zero_below: Sequence[int] = (),
         exact: Mapping[str, int] | None = None) -> dict[str, float]:
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
        spread = statistics.pstdev(scores) if len(scores) > 1 else 0.0
        low = min(scores, default=0.0)
        for cid, score in hits:
            fused[cid] = fused.get(cid, 0.0) + ((score - low) / spread if spread > 0 else 1.0) / len(lists)
    if exact:
        lift = 2.0 * (max(fused.values(), default=0.0) + 1.0)
        for cid, names in exact.items():
            fused[cid] = fused.get(cid, 0.0) + lift * names
    return fused


@dataclass
class _Candidate:
    chunk_id: str
    doc_id: str
    score: float
    text: str = ""


def _candidates(index: Index, ranked: dict[str, float], half_life_days: float) -> list[_Candidate]:
    """Fused candidates, best first, scored from document times alone: texts are read later, and
    only for the few that `_diversify` looks at."""
    doc_ids = {cid: chunk_doc_id(cid) for cid in ranked}
    times = index.catalog.doc_times(set(doc_ids.values()))
    now = time.time()
    out = []
    for cid, score in ranked.items():
        ts = times.get(doc_ids[cid])
        if ts is None:   # deleted since it was ranked
            continue
        if half_life_days > 0 and ts > 0:
            # At most +10% for a passage updated today, fading with the half-life: a tie-breaker.
            age_days = max(0.0, (now - ts) / 86400)
            score *= 1.0 + 0.1 * math.pow(0.5, age_days / half_life_days)
        out.append(_Candidate(cid, doc_ids[cid], score))
    out.sort(key=lambda c: c.score, reverse=True)
    return out


def _materialise(index: Index, chosen: list[_Candidate]) -> list[Hit]:
    docs = index.catalog.documents(c.doc_id for c in chosen)
    hits = []
    for c in chosen:
        doc = docs.get(c.doc_id)
        if doc is None:   # deleted between ranking and now
            continue
        hits.append(Hit(
            chunk_id=c.chunk_id, doc_id=c.doc_id, source=doc.source, source_type=doc.source_type,
            title=doc.title, text=c.text, url=doc.url, author=doc.author,
            created_at=doc.created_at.isoformat().replace("+00:00", "Z") if doc.created_at else None,
            updated_at=doc.updated_at.isoformat().replace("+00:00", "Z") if doc.updated_at else None,
            score=c.score, metadata=dict(doc.metadata)))
    return hits


def _diversify(index: Index, candidates: list[_Candidate], k: int, per_document: int) -> list[_Candidate]:
    """The best `k`, at most `per_document` from one document, near-duplicates dropped. Texts are
    read a page of 2 x `k` candidates at a time: usually one page is enough."""
    chosen: list[_Candidate] = []
    shingles: list[set[str]] = []
    per_doc: dict[str, int] = {}
    texts: dict[str, str | None] = {}
    for i, candidate in enumerate(candidates):
        if per_doc.get(candidate.doc_id, 0) >= per_document:
            continue
        if candidate.chunk_id not in texts:
            page = [c.chunk_id for c in candidates[i:i + 2 * k]]
            texts.update(dict.fromkeys(page))
            texts.update(index.catalog.chunk_texts(page))
        text = texts.get(candidate.chunk_id)
        if text is None:   # re-chunked or deleted since it was ranked
            continue
        marks = _shingles(text)
        if any(_similar(marks, other) for other in shingles):
            continue
        candidate.text = text
        chosen.append(candidate)
        shingles.append(marks)
        per_doc[candidate.doc_id] = per_doc.get(candidate.doc_id, 0) + 1
        if len(chosen) == k:
            break
    return chosen


def _shingles(text: str, size: int = 5) -> set[str]:
    words = _WORDS.findall(text.lower())
    if len(words) < size:
        return {" ".join(words)}
    return {" ".join(words[i:i + size]) for i in range(len(words) - size + 1)}


def _similar(a: set[str], b: set[str], threshold: float = 0.7) -> bool:
    """Near-duplicates: most of the smaller passage's shingles appear in the other."""
    if not a or not b:
        return False
    return len(a & b) / min(len(a), len(b)) >= threshold
