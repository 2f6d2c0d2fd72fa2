"""Retrieval quality on labelled query sets: recall@5 and nDCG@10 for dense, BM25 and hybrid.

    .venv/bin/python benchmarks/quality.py [--data /work/shared/data/enron-mini] [--queries FILE ...] [--backend B]
                                           [--exact-dense]

Indexes the enron-mini mails through the `mail_archive` connector (real chunking and embeddings,
in a temporary folder), then runs each query of each labelled set in each mode with the recency
preference off (the mails are 20 years old). Two sets: `quality_queries.json`, and
`quality_queries_holdout.json`, written separately so that a ranking change tuned on one can be
checked on the other. Each query has one answer mail; exact copies
of it (the same message filed in two folders) count as the same answer. So:
  recall@5  = share of queries whose answer is among the first 5 documents;
  nDCG@10   = mean of 1/log2(1 + rank of the answer) over queries (0 when not in the first 10);
  MRR@10 is printed too.
`--exact-dense` ranks the dense list by brute force over every stored vector instead of Chroma's
HNSW graph, which misses some true nearest neighbours (a query's clear best chunk absent from its
first 40): that isolates the embedding model's effect from the graph's, which varies build to build.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path

from inlet.config import IndexConfig
from inlet.connectors.model import Document
from inlet.connectors.registry import connector_class
from inlet.index.backends import BACKENDS, DEFAULT_BACKEND
from inlet.storage import Filters
from inlet.index.search import SearchRequest, search
from inlet.index.store import Index

HERE = Path(__file__).parent
MODES = ("dense", "lexical", "hybrid")
DEFAULT_SETS = [HERE / "quality_queries.json", HERE / "quality_queries_holdout.json"]


def load_mails(data: Path) -> list[Document]:
    cls = connector_class("mail_archive")
    config = cls.Config.model_validate({"name": "enron", "type": "mail_archive", "path": str(data)})
    return [item for item in cls(config, {}).load(None) if isinstance(item, Document)]


def answer_groups(docs: list[Document]) -> dict[str, set[str]]:
    """doc id -> ids of every copy: same title and nearly the same body (`same_body`), as the same
    mail filed in two folders, or indexed through both Outlook and Gmail."""
    by_title: dict[str, list[Document]] = {}
    for doc in docs:
        by_title.setdefault(doc.title.strip().lower(), []).append(doc)
    out: dict[str, set[str]] = {}
    for alike in by_title.values():
        marks = {doc.id: body_shingles(doc.text) for doc in alike}
        for doc in alike:
            out[doc.id] = {other.id for other in alike if same_body(marks[doc.id], marks[other.id])}
    return out


def body_shingles(text: str, size: int = 5) -> set[tuple[str, ...]]:
    """Word 5-grams of a text's body; a mail's header block (sources write it differently) left out."""
    if text.startswith("From:") and "\n\n" in text:
        text = text.split("\n\n", 1)[1]
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


def same_body(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> bool:
    """Nearly the same body: 90% of the shorter one's 5-grams are in the other (whitespace, quoting
    and header forms aside)."""
    return len(a & b) >= 0.9 * max(1, min(len(a), len(b)))


def use_exact_dense(index: Index) -> None:
    """Make `index.dense` exact: cosine against every vector in the collection (benchmark only:
    a few thousand chunks). A query the interpretation gave filters (a time, a person, a source)
    keeps Chroma's search, which applies them."""
    import numpy as np

    stored = index.collection.get(include=["embeddings"])
    ids, matrix = stored["ids"], np.asarray(stored["embeddings"], dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)

    graph = index.dense

    def dense(query: str, filters: Filters, limit: int) -> list[tuple[str, float]]:
        if filters != Filters():
            return graph(query, filters, limit)
        sims = matrix @ np.asarray(index.embedder.encode_query(query), dtype=np.float32)
        return [(ids[i], float(sims[i])) for i in np.argsort(-sims)[:limit]]

    index.dense = dense  # type: ignore[method-assign]


def ranked_docs(index: Index, query: str, mode: str, k: int = 10) -> list[str]:
    hits, _ = search(index, SearchRequest(query=query, k=k, mode=mode, per_document=1, recency_half_life_days=0))
    return list(dict.fromkeys(h.doc_id for h in hits))[:k]


def evaluate(
    index: Index, labelled: list[dict[str, str]], groups: dict[str, set[str]], mode: str, misses: list[str]
) -> tuple[float, float, float, float]:
    """Sums of recall@5, nDCG@10 and MRR@10 hits over the queries, and ms per query."""
    recall = ndcg = mrr = 0.0
    t0 = time.perf_counter()
    for item in labelled:
        ranking = ranked_docs(index, item["query"], mode)
        group = groups[item["answer"]]
        rank = next((n for n, doc_id in enumerate(ranking, 1) if doc_id in group), None)
        if rank is not None and rank <= 5:
            recall += 1
        if rank is not None:
            ndcg += 1 / math.log2(1 + rank)
            mrr += 1 / rank
        else:
            misses.append(item["query"])
    return recall, ndcg, mrr, (time.perf_counter() - t0) * 1000 / max(1, len(labelled))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/enron-mini"))
    parser.add_argument(
        "--queries",
        type=Path,
        action="append",
        help="a labelled set (repeatable); default: quality_queries.json and the held-out set",
    )
    parser.add_argument("--show-misses", action="store_true", help="print the queries each mode misses")
    parser.add_argument("--keep", type=Path, help="build the index here (or reuse it) instead of a temp folder")
    parser.add_argument("--database-url", help="evaluate on PostgreSQL (with --chroma-url) instead of the folder")
    parser.add_argument("--chroma-url", help="the Chroma server beside --database-url")
    parser.add_argument("--backend", choices=BACKENDS, default=DEFAULT_BACKEND, help="embedding backend")
    parser.add_argument("--exact-dense", action="store_true", help="brute-force dense ranking instead of HNSW")
    args = parser.parse_args()
    sets = {path.name: json.loads(path.read_text())["queries"] for path in args.queries or DEFAULT_SETS}
    docs = load_mails(args.data)
    groups = answer_groups(docs)
    missing = [q["answer"] for labelled in sets.values() for q in labelled if q["answer"] not in groups]
    if missing:
        raise SystemExit(f"answers not in the data: {missing}")
    with (
        tempfile.TemporaryDirectory() as tmp,
        Index(
            IndexConfig(
                path=args.keep or Path(tmp),
                database_url=args.database_url,
                chroma_url=args.chroma_url,
                backend=args.backend,
            )
        ) as index,
    ):
        started = time.perf_counter()
        index.apply(docs)  # a no-op when --keep reuses a built index: unchanged texts are not re-embedded
        chunks = sum(c for _, c in index.catalog.counts().values())
        index.embedder.encode_query("warm up")  # the first query loads the model: not a query's cost
        if args.exact_dense:
            use_exact_dense(index)
        print(
            f"backend {args.backend}{' (exact dense)' if args.exact_dense else ''}: indexed {len(docs)} mails, "
            f"{chunks} chunks in {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
        )
        pooled = {mode: [0.0, 0.0, 0.0] for mode in MODES}
        for name, labelled in sets.items():
            print(f"\n{name}: {len(labelled)} queries over {len(docs)} enron-mini mails ({chunks} chunks)")
            print(f"{'mode':8} {'recall@5':>9} {'nDCG@10':>8} {'MRR@10':>7} {'ms/query':>9}")
            for mode in MODES:
                misses: list[str] = []
                recall, ndcg, mrr, per_query = evaluate(index, labelled, groups, mode, misses)
                n = len(labelled)
                pooled[mode] = [a + b for a, b in zip(pooled[mode], (recall, ndcg, mrr))]
                print(f"{mode:8} {recall / n:9.3f} {ndcg / n:8.3f} {mrr / n:7.3f} {per_query:9.1f}")
                if args.show_misses and misses:
                    print("   missed (not in top 10): " + "; ".join(misses))
        if len(sets) > 1:
            total = sum(len(labelled) for labelled in sets.values())
            print(f"\nall {total} queries")
            print(f"{'mode':8} {'recall@5':>9} {'nDCG@10':>8} {'MRR@10':>7}")
            for mode, (recall, ndcg, mrr) in pooled.items():
                print(f"{mode:8} {recall / total:9.3f} {ndcg / total:8.3f} {mrr / total:7.3f}")


if __name__ == "__main__":
    main()
