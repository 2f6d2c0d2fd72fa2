"""A synthetic index for query benchmarks: Zipf-distributed words, mixed ACLs, random vectors.

Embedding 100k real chunks takes over an hour on 2 cores, so chunk vectors are random unit vectors
written straight into Chroma, and the texts straight into the catalog (so BM25 has real work); the
queries are embedded for real. About 70% of documents are public, the rest visible to 3 of 200
users, to another domain, or to admins only.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from inlet.config import IndexConfig
from inlet.connectors.model import ACL, Document
from inlet.index import vectors
from inlet.storage.sqlite.catalog import SqliteCatalog as Catalog
from inlet.storage.types import chunk_id, doc_ts
from inlet.index.store import Index

USERS = [f"u{n}@corp.example" for n in range(200)]
BENCH_USER = USERS[7]
SOURCES = tuple(f"src{n}" for n in range(4))  # the documents' sources, round robin
SEED = 7  # batches' and build's default: the vocabulary of a kept index is vocabulary(Random(SEED))


def vocabulary(rng: random.Random, size: int = 6000) -> list[str]:
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "sha", "po", "vi", "de", "gan", "tor", "bel", "quin", "mar"]
    common = (
        "pipeline gas contract deal trading price meeting schedule report budget risk power market "
        "invoice forecast storage capacity west east desk legal review approval customer"
    ).split()
    words = {"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(size)}
    return common + sorted(words)


def acl_for(rng: random.Random) -> ACL:
    roll = rng.random()
    if roll < 0.70:
        return ACL(public=True)
    if roll < 0.90:
        return ACL(users=rng.sample(USERS, 3))
    if roll < 0.97:
        return ACL(domains=["other.example"])
    return ACL()


def batches(n_chunks: int, seed: int = SEED, size: int = 4000) -> Iterator[tuple[list[Document], np.ndarray]]:
    """The synthetic one-chunk documents with their random unit vectors, `size` at a time
    (the same for a seed, so two backends can be filled alike)."""
    rng = random.Random(seed)
    words = vocabulary(rng)
    weights = [1.0 / (i + 1) for i in range(len(words))]  # Zipf-like word frequencies
    np_rng = np.random.default_rng(seed)
    for start in range(0, n_chunks, size):
        docs = []
        for n in range(start, min(start + size, n_chunks)):
            text = " ".join(rng.choices(words, weights, k=rng.randint(60, 140)))
            docs.append(
                Document(
                    id=f"synth:{n}",
                    source=SOURCES[n % len(SOURCES)],
                    source_type="files",
                    title=f"doc {n}",
                    text=text,
                    url=f"https://example.invalid/{n}",
                    acl=acl_for(rng),
                    updated_at=time.time() - rng.random() * 3 * 365 * 86400,
                )
            )
        vecs = np_rng.standard_normal((len(docs), 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        yield docs, vecs


def upsert_vectors(collection: Any, docs: list[Document], vecs: np.ndarray) -> None:
    collection.upsert(
        ids=[chunk_id(d.id, 0) for d in docs],
        embeddings=vecs,
        metadatas=[
            vectors.chunk_metadata(d.id, d.source, d.source_type, doc_ts(d), d.acl.principals(), 0) for d in docs
        ],
    )


def build(path: Path, n_chunks: int, seed: int = SEED, backend: str | None = None) -> list[str]:
    """Synthetic documents straight into the catalog and Chroma; returns the vocabulary. The index
    is stamped with `backend` (default: the configured default), so a benchmark of another
    embedding backend can open it (the vectors are random whatever the backend)."""
    index = Index(IndexConfig(path=path, backend=backend) if backend else IndexConfig(path=path))
    started = time.perf_counter()
    done = 0
    for docs, vecs in batches(n_chunks, seed):
        upsert_vectors(index.collection, docs, vecs)
        with index.catalog.transaction() as db:
            for d in docs:
                Catalog.put(db, d, [d.text], 0)
        done += len(docs)
        print(f"  built {done}/{n_chunks} chunks ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    index.close()
    return vocabulary(random.Random(seed))


def queries(words: list[str], n: int = 500, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.sample(words[:2000], rng.randint(2, 4))) for _ in range(n)]
