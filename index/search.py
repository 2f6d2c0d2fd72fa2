"""Hybrid retrieval: dense (Chroma) and BM25 (SQLite FTS5) fused by reciprocal rank.

Both retrievers apply the same filters, ACL included, inside their queries, so `k` results come
back whenever `k` visible passages exist. After fusion: a mild recency preference, near-duplicate
passages collapsed (a thread quoted in three mails is one result), at most a few passages per
document.
"""

from __future__ import annotations

import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inlet.connectors.model import principals_for

from .catalog import Filters
from .store import Index

RRF_K = 60
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
    ranked: dict[str, float] = {}
    if request.mode in ("hybrid", "dense"):
        for rank, (cid, _sim) in enumerate(index.dense(request.query, filters, depth)):
            ranked[cid] = ranked.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
    if lexical is not None:
        for rank, cid in enumerate(lexical.result()):
            ranked[cid] = ranked.get(cid, 0.0) + 1.0 / (RRF_K + rank + 1)
    hits = _materialise(index, ranked)
    if request.recency_half_life_days > 0:
        _prefer_recent(hits, request.recency_half_life_days)
    hits.sort(key=lambda h: h.score, reverse=True)
    return _diversify(hits, request.k, request.per_document), (time.perf_counter() - started) * 1000


def _materialise(index: Index, ranked: dict[str, float]) -> list[Hit]:
    chunks = index.catalog.chunk_texts(ranked)
    docs = index.catalog.documents(doc_id for doc_id, _ in chunks.values())
    hits = []
    for cid, (doc_id, text) in chunks.items():
        doc = docs.get(doc_id)
        if doc is None:
            continue
        hits.append(Hit(
            chunk_id=cid, doc_id=doc_id, source=doc.source, source_type=doc.source_type, title=doc.title,
            text=text, url=doc.url, author=doc.author,
            created_at=doc.created_at.isoformat().replace("+00:00", "Z") if doc.created_at else None,
            updated_at=doc.updated_at.isoformat().replace("+00:00", "Z") if doc.updated_at else None,
            score=ranked[cid], metadata=dict(doc.metadata)))
    return hits


def _prefer_recent(hits: list[Hit], half_life_days: float) -> None:
    """At most +10% for a passage updated today, fading with the half-life: a tie-breaker."""
    now = time.time()
    for hit in hits:
        when = hit.updated_at or hit.created_at
        if not when:
            continue
        age_days = max(0.0, (now - datetime.fromisoformat(when).timestamp()) / 86400)
        hit.score *= 1.0 + 0.1 * math.pow(0.5, age_days / half_life_days)


def _diversify(hits: list[Hit], k: int, per_document: int) -> list[Hit]:
    chosen: list[Hit] = []
    shingles: list[set[str]] = []
    per_doc: dict[str, int] = {}
    for hit in hits:
        if per_doc.get(hit.doc_id, 0) >= per_document:
            continue
        marks = _shingles(hit.text)
        if any(_similar(marks, other) for other in shingles):
            continue
        chosen.append(hit)
        shingles.append(marks)
        per_doc[hit.doc_id] = per_doc.get(hit.doc_id, 0) + 1
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
