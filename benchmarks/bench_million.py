"""A million chunks: search latency, dense recall, memory and build time at several `ef_search`.

    nice -n 10 .venv/bin/python benchmarks/bench_million.py --keep /work/m1 --setup folder      # 1M, folder
    nice -n 10 .venv/bin/python benchmarks/bench_million.py --keep /work/m1 --setup both       # + PostgreSQL
    .venv/bin/python benchmarks/bench_million.py --chunks 200000 --ef 50,100,200 --setup server --keep DIR

1. Builds `--chunks` chunks (default 1,000,000) of synthetic documents once into `--keep DIR` (a
   folder index: SQLite + embedded Chroma; and/or PostgreSQL + `chroma run`, started from
   tests/servers.py as the tests do), through inlet's own writes: the Chroma upsert of
   `Index._upsert` (4,096 vectors a call) with `vectors.chunk_rows`' metadata, and the catalog's
   `commit` (document rows, ACL rows, chunk texts, BM25 postings). Only the embedder is bypassed:
   the vectors are generated. A later run with the same DIR reuses what was built.
2. For each `--ef` value, in a fresh process (Chroma reads `ef_search` when it loads a collection;
   the Chroma server is restarted for the same reason), opens the index with `[index] ef_search`
   set, and times query by query, interleaved: the raw Chroma query (`collection.query`, the same
   vector, `n_results` 40 as inlet asks), inlet's `search()` (hybrid: Chroma, BM25, exact matches,
   fusion, texts; the query's vector is looked up, not embedded, so the ratio is what inlet adds to
   Chroma) without and with an ACL filter. Dense recall@10 is inlet's dense list (unfiltered, and as
   the benchmark user) against brute force over all vectors (numpy, computed during the build).
   Memory: RSS of the searching process after the queries (with a server: plus the Chroma server's
   RSS and PostgreSQL's PSS); disk: the index's files.

The data is synthetic but shaped like a workplace corpus embedded by a sentence model, not uniform
random: vectors are unit-normalised mixtures of topic clusters (300 topics of 8 sub-topics, Zipf
topic sizes, a shared mean direction and a decaying per-dimension spectrum: anisotropic like real
sentence embeddings, random pairs at cosine ~0.15, neighbours within a sub-topic ~0.6), with
varying spread per sub-topic; documents have 1-8 chunks of 20-250 words drawn from a Zipf
vocabulary mixed with their topic's and sub-topic's own words, so BM25 postings follow the topics;
sources, authors, times (recent-heavy) and ACLs (55% public, 30% member lists, 10% domains, 5%
admins only) like real chunks. Queries are new points of a sub-topic (70%) or perturbed corpus
chunks (30%), with 2-4 of their topic's words as text.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.servers: the real servers

from inlet.config import IndexConfig  # noqa: E402
from inlet.connectors.model import ACL, Document, principals_for  # noqa: E402
from inlet.index import vectors  # noqa: E402
from inlet.index.embedding import Embedder  # noqa: E402
from inlet.index.search import SearchRequest, people_of, search  # noqa: E402
from inlet.index.store import Index  # noqa: E402
from inlet.storage import Commit, Filters  # noqa: E402

DIM = 384
SEED = 29
TOPICS, SUBTOPICS = 300, 8
USERS = [f"u{n}@corp.example" for n in range(2000)]
BENCH_USER = USERS[7]
BATCH_CHUNKS = 8192  # chunks generated and written per step
COMMIT_DOCS = 500  # documents per catalog commit (PostgreSQL's idle-in-transaction limit, see bench_pg.py)
DEPTH = 40  # what inlet asks Chroma for (search.py: max(k * 4, 40) with k = 10)
K = 10
SOURCES = [  # (name, type, share)
    ("slack-eng", "slack", 0.22),
    ("slack-all", "slack", 0.13),
    ("drive", "gdrive", 0.2),
    ("sharepoint", "microsoft_files", 0.1),
    ("mail-sales", "outlook", 0.15),
    ("mail-ops", "outlook", 0.1),
    ("tickets", "files", 0.1),
]
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp()


# --- the synthetic corpus ---------------------------------------------------------------------


@dataclass
class Model:
    """What every batch draws from: cluster centres and spreads, vocabularies, topic sizes."""

    centres: np.ndarray  # (TOPICS * SUBTOPICS, DIM) unit vectors
    spreads: np.ndarray  # per sub-topic: noise scale (its points' cosine to the centre ~ 1/sqrt(1+s^2))
    scale: np.ndarray  # per-dimension standard deviation of the noise (sums of squares to 1)
    weights: np.ndarray  # per sub-topic probability
    vocab: np.ndarray  # the words
    global_p: np.ndarray  # Zipf probabilities over vocab
    topic_words: np.ndarray  # (TOPICS, 150) word indexes
    sub_words: np.ndarray  # (TOPICS * SUBTOPICS, 30) word indexes


def model(seed: int = SEED) -> Model:
    rng = np.random.default_rng(seed)
    scale = (np.arange(1, DIM + 1) ** -0.4).astype(np.float32)  # anisotropic: ~60 effective dimensions
    scale /= np.linalg.norm(scale)
    common = rng.standard_normal(DIM).astype(np.float32)
    common /= np.linalg.norm(common)
    topics = 0.4 * common + rng.standard_normal((TOPICS, DIM)).astype(np.float32) * scale
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    subs = np.repeat(topics, SUBTOPICS, axis=0)
    subs += 0.6 * rng.standard_normal(subs.shape).astype(np.float32) * scale
    subs /= np.linalg.norm(subs, axis=1, keepdims=True)
    spreads = np.clip(rng.lognormal(np.log(0.8), 0.3, len(subs)), 0.35, 1.6).astype(np.float32)
    topic_p = 1.0 / np.arange(1, TOPICS + 1) ** 0.8
    rng.shuffle(topic_p)
    sub_p = rng.dirichlet(np.ones(SUBTOPICS) * 2, TOPICS)
    weights = (topic_p[:, None] * sub_p).ravel()
    weights /= weights.sum()
    vocab = _vocabulary(rng, 30000)
    global_p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    global_p /= global_p.sum()
    topic_words = rng.integers(300, len(vocab), (TOPICS, 150))
    sub_words = rng.integers(300, len(vocab), (TOPICS * SUBTOPICS, 30))
    return Model(subs, spreads, scale, weights, vocab, global_p, topic_words, sub_words)


def _vocabulary(rng: np.random.Generator, size: int) -> np.ndarray:
    common = (
        "the to and of a in for is on that with this we be it are at from as have you will by not or "
        "meeting deploy review customer report budget release schedule incident contract invoice price "
        "team update issue plan design data service access account migration rollout forecast legal"
    ).split()
    syllables = np.array(["ka", "lo", "mi", "ne", "ru", "ta", "sha", "po", "vi", "de", "gan", "tor", "bel", "quin"])
    words: dict[str, None] = dict.fromkeys(common)
    while len(words) < size:
        parts = syllables[rng.integers(0, len(syllables), (size, 4))]
        lengths = rng.integers(2, 5, size)
        for row, n in zip(parts, lengths):
            words.setdefault("".join(row[:n]), None)
            if len(words) == size:
                break
    return np.array(list(words))


def _zipf_index(rng: np.random.Generator, n: int, size: int, s: float = 1.0) -> np.ndarray:
    p = 1.0 / np.arange(1, size + 1) ** s
    return rng.choice(size, n, p=p / p.sum())


def batch(m: Model, number: int, chunks: int) -> tuple[list[tuple[Document, list[str]]], np.ndarray, np.ndarray]:
    """Batch `number`: documents with their chunk texts, the chunks' vectors, and whether the
    benchmark user may see each chunk. The same for a number and seed, whatever ran before."""
    rng = np.random.default_rng([SEED, number])
    n_docs = max(1, chunks // 2)
    per_doc = np.clip(rng.geometric(0.45, n_docs), 1, 8)
    per_doc = per_doc[: int(np.searchsorted(np.cumsum(per_doc), chunks)) + 1]
    per_doc[-1] -= max(0, int(per_doc.sum()) - chunks)
    per_doc = per_doc[per_doc > 0]
    subs = rng.choice(len(m.weights), len(per_doc), p=m.weights)
    chunk_sub = np.repeat(subs, per_doc)
    n = len(chunk_sub)
    noise = rng.standard_normal((n, DIM)).astype(np.float32) * m.scale
    vecs = m.centres[chunk_sub] + m.spreads[chunk_sub, None] * noise
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    texts = _texts(m, rng, chunk_sub)
    docs: list[tuple[Document, list[str]]] = []
    visible = np.zeros(n, dtype=bool)
    at = 0
    for i, (sub, count) in enumerate(zip(subs, per_doc)):
        doc, sees = _document(m, rng, f"m{number}-{i}", int(sub), texts[at : at + count])
        docs.append((doc, texts[at : at + count]))
        visible[at : at + count] = sees
        at += count
    return docs, vecs, visible


def _texts(m: Model, rng: np.random.Generator, chunk_sub: np.ndarray) -> list[str]:
    lengths = np.clip(rng.lognormal(np.log(110), 0.5, len(chunk_sub)), 20, 250).astype(int)
    total = int(lengths.sum())
    word_sub = np.repeat(chunk_sub, lengths)
    kind = rng.random(total)
    words = rng.choice(len(m.vocab), total, p=m.global_p)
    topical = kind < 0.3
    words[topical] = m.topic_words[word_sub[topical] // SUBTOPICS, _zipf_index(rng, int(topical.sum()), 150)]
    own = kind > 0.85
    words[own] = m.sub_words[word_sub[own], _zipf_index(rng, int(own.sum()), 30)]
    tokens = m.vocab[words].tolist()
    out, at = [], 0
    for n in lengths:
        out.append(" ".join(tokens[at : at + n]))
        at += n
    return out


def _document(m: Model, rng: np.random.Generator, doc_id: str, sub: int, texts: list[str]) -> tuple[Document, bool]:
    name, kind, _ = SOURCES[rng.choice(len(SOURCES), p=[s[2] for s in SOURCES])]
    roll = rng.random()
    if roll < 0.55:
        acl, sees = ACL(public=True), True
    elif roll < 0.85:
        members = [USERS[int(u)] for u in rng.choice(len(USERS), int(rng.integers(2, 60)), replace=False)]
        if rng.random() < 0.15:
            members.append(BENCH_USER)  # the benchmark user is in some channels, shares and threads
        acl, sees = ACL(users=members), BENCH_USER in members
    elif roll < 0.95:
        domain = "corp.example" if rng.random() < 0.7 else "partner.example"
        acl, sees = ACL(domains=[domain]), domain == "corp.example"
    else:
        acl, sees = ACL(), False
    age = min(5 * 365.0, rng.exponential(300.0)) * 86400
    title = " ".join(m.vocab[m.sub_words[sub, rng.integers(0, 30, int(rng.integers(2, 6)))]])
    doc = Document(
        id=f"{name}:{doc_id}",
        source=name,
        source_type=kind,
        title=title,
        text="\n\n".join(texts),
        url=f"https://example.invalid/{name}/{doc_id}",
        author=USERS[int(rng.integers(0, len(USERS)))],
        updated_at=datetime.fromtimestamp(NOW - age, timezone.utc),
        metadata={"topic": int(sub // SUBTOPICS)},
        acl=acl,
    )
    return doc, sees


def queries(m: Model, n: int) -> tuple[list[str], np.ndarray]:
    """Query texts (unique) and vectors: new points of a sub-topic, or perturbed corpus chunks."""
    rng = np.random.default_rng([SEED, 10**6])
    _, first, _ = batch(m, 0, BATCH_CHUNKS)
    subs = rng.choice(len(m.weights), n, p=m.weights)
    vecs = m.centres[subs] + m.spreads[subs, None] * rng.standard_normal((n, DIM)).astype(np.float32) * m.scale
    near = rng.random(n) < 0.3
    picked = rng.integers(0, len(first), int(near.sum()))
    vecs[near] = first[picked] + 0.5 * rng.standard_normal((int(near.sum()), DIM)).astype(np.float32) * m.scale
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    texts: list[str] = []
    for sub in subs:  # drawn after every vector: the vectors do not depend on the texts
        pool = np.concatenate([m.topic_words[sub // SUBTOPICS, :40], m.sub_words[sub, :10]])
        text = ""
        while not text or text in texts:  # unique: the vector table is keyed by text
            text = " ".join(m.vocab[rng.choice(pool, int(rng.integers(2, 5)), replace=False)])
        texts.append(text)
    return texts, vecs


class Truth:
    """Exact top-k of each query by brute force, kept up to date batch by batch (all chunks, and
    those the benchmark user may see)."""

    def __init__(self, qvecs: np.ndarray) -> None:
        self.q = qvecs
        n = len(qvecs)
        self.ids = {"all": np.full((n, K), "", dtype=object), "acl": np.full((n, K), "", dtype=object)}
        self.scores = {"all": np.full((n, K), -9.0, np.float32), "acl": np.full((n, K), -9.0, np.float32)}

    def add(self, ids: list[str], vecs: np.ndarray, visible: np.ndarray) -> None:
        sims = self.q @ vecs.T
        for kind, mask in (("all", None), ("acl", visible)):
            s = sims if mask is None else np.where(mask[None, :], sims, -9.0)
            top = np.argpartition(-s, K, axis=1)[:, :K]
            cand_s = np.concatenate([self.scores[kind], np.take_along_axis(s, top, 1)], axis=1)
            cand_i = np.concatenate([self.ids[kind], np.asarray(ids, dtype=object)[top]], axis=1)
            best = np.argsort(-cand_s, axis=1)[:, :K]
            self.scores[kind] = np.take_along_axis(cand_s, best, 1)
            self.ids[kind] = np.take_along_axis(cand_i, best, 1)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({k: v.tolist() for k, v in self.ids.items()}))


# --- building -----------------------------------------------------------------------------------


def build(config: IndexConfig, n_chunks: int, out: Path, log: Path) -> dict[str, float]:
    """Write the corpus through inlet's writes (see module docstring); returns the build's figures."""
    m = model()
    texts, qvecs = queries(m, QUERIES)
    truth = Truth(qvecs)
    started = time.perf_counter()
    times = {"generate": 0.0, "chroma": 0.0, "catalog": 0.0, "truth": 0.0}
    done = number = 0
    with Index(config, embedder=_TableEmbedder({})) as index, log.open("a") as progress:
        while done < n_chunks:
            t0 = time.perf_counter()
            docs, vecs, visible = batch(m, number, min(BATCH_CHUNKS, n_chunks - done))
            ids, _, metas = vectors.chunk_rows(
                [d for d, _ in docs], {d.id: t for d, t in docs}, index.embedder.fingerprint
            )
            t1 = time.perf_counter()
            index._upsert(ids, vecs, metas)  # the write path's Chroma step (4,096 a call)
            t2 = time.perf_counter()
            for start in range(0, len(docs), COMMIT_DOCS):
                index.catalog.commit(Commit(0, docs[start : start + COMMIT_DOCS]))
            t3 = time.perf_counter()
            truth.add(ids, vecs, visible)
            t4 = time.perf_counter()
            for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[key] += value
            done += len(ids)
            number += 1
            elapsed = time.perf_counter() - started
            print(
                f"{time.strftime('%H:%M:%S')} {config.database_url and 'server' or 'folder'}: {done}/{n_chunks} "
                f"chunks, {elapsed:.0f}s, {done / elapsed:.0f}/s "
                + " ".join(f"{k} {v:.0f}s" for k, v in times.items()),
                file=progress,
                flush=True,
            )
        if config.database_url:
            with index.catalog.pool.connection() as db:  # type: ignore[attr-defined]
                db.execute("VACUUM ANALYZE")  # as autovacuum does after a bulk load (bench_pg.py)
    total = time.perf_counter() - started
    truth.save(out / "truth.json")
    (out / "queries.json").write_text(json.dumps(texts))
    figures = {"chunks": done, "build_s": total, "chunks_per_s": done / total}
    figures.update({f"{k}_s": v for k, v in times.items()})
    (out / "built.json").write_text(json.dumps(figures))
    return figures


QUERIES = 300
RAW_ACL_QUERIES = 5


class _TableEmbedder(Embedder):
    """The configured model's identity (its fingerprint is what the index records) with query
    vectors looked up by text: the benchmark measures the index, not the model."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.table = table

    def encode_query(self, text: str) -> np.ndarray:
        return self.table[text]

    def encode(self, texts: Any, *args: Any, **kwargs: Any) -> np.ndarray:
        raise AssertionError("the benchmark's index is written with generated vectors, never the model")


# --- measuring (one process per ef_search) ------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def measure(config: IndexConfig, out: Path, n_queries: int) -> dict[str, Any]:
    truth = json.loads((out / "truth.json").read_text())
    texts, qvecs = queries(model(), QUERIES)
    texts = texts[:n_queries]
    table = {t: qvecs[i] for i, t in enumerate(texts)}
    acl = Filters(principals=tuple(principals_for(BENCH_USER) or ()))
    t0 = time.perf_counter()
    with Index(config, embedder=_TableEmbedder(table)) as index:
        collection = index.collection
        collection.query(query_embeddings=[qvecs[0]], n_results=DEPTH, include=["distances"])
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        people_of(index)  # the vocabulary of people, read on the first search: timed apart
        people_s = time.perf_counter() - t0
        for q in texts[:20]:  # warm caches (BM25 term counts, pages)
            search(index, SearchRequest(q, k=K))
            search(index, SearchRequest(q, k=K, user=BENCH_USER))
        raw: list[float] = []
        ours: list[float] = []
        ours_acl: list[float] = []
        recall: list[float] = []
        recall_acl: list[float] = []
        for i, q in enumerate(texts):
            started = time.perf_counter()
            got = collection.query(query_embeddings=[table[q]], n_results=DEPTH, include=["distances"])
            raw.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            search(index, SearchRequest(q, k=K))
            ours.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            search(index, SearchRequest(q, k=K, user=BENCH_USER))
            ours_acl.append((time.perf_counter() - started) * 1000)
            recall.append(len(set(got["ids"][0][:K]) & set(truth["all"][i])) / K)
            dense = index.dense(q, acl, DEPTH)  # inlet's dense list as the user sees it
            recall_acl.append(len({c for c, _ in dense[:K]} & set(truth["acl"][i])) / K)
        # RSS counts a page of the catalog once per reader connection that maps it (each thread
        # has one: READ_MMAP_BYTES); USS is what this process holds alone, PSS shares pages out
        memory = psutil.Process().memory_full_info()
        raw_acl = []  # Chroma filtering by itself (what inlet's overfetch avoids): a few queries
        for q in texts[:RAW_ACL_QUERIES]:
            started = time.perf_counter()
            collection.query(
                query_embeddings=[table[q]], n_results=DEPTH, where=vectors.where_clause(acl), include=["distances"]
            )
            raw_acl.append((time.perf_counter() - started) * 1000)
    embed = embedding_ms(texts)
    return {
        "queries": len(texts),
        "raw_p50": pct(raw, 50),
        "raw_p99": pct(raw, 99),
        "hybrid_p50": pct(ours, 50),
        "hybrid_p99": pct(ours, 99),
        "hybrid_acl_p50": pct(ours_acl, 50),
        "hybrid_acl_p99": pct(ours_acl, 99),
        "recall": float(np.mean(recall)),
        "recall_acl": float(np.mean(recall_acl)),
        "rss_mb": memory.rss / 2**20,
        "uss_mb": memory.uss / 2**20,
        "pss_mb": memory.pss / 2**20,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "raw_acl_p50": pct(raw_acl, 50),
        "embed_p50": pct(embed, 50),
        # as a user waits: the query embedded by inlet's own query path, then each path
        "with_embed_raw_p50": pct([e + r for e, r in zip(embed, raw)], 50),
        "with_embed_hybrid_p50": pct([e + h for e, h in zip(embed, ours)], 50),
        "with_embed_hybrid_acl_p50": pct([e + h for e, h in zip(embed, ours_acl)], 50),
        "load_s": load_s,
        "people_s": people_s,
    }


def embedding_ms(texts: list[str]) -> list[float]:
    """ms per query through the configured model's query path (`encode_query`, one thread as
    `serve` sets), after the index figures: what a user's query costs before the index sees it."""
    from inlet.index.embedding import serve_queries

    serve_queries()
    model = Embedder()
    model.encode_query("warm up")
    out = []
    for q in texts:
        started = time.perf_counter()
        model.encode_query(q)
        out.append((time.perf_counter() - started) * 1000)
    return out


def disk_mb(*paths: Path) -> float:
    return sum(f.stat().st_size for p in paths if p.exists() for f in p.rglob("*") if f.is_file()) / 2**20


def server_memory_mb() -> dict[str, float]:
    """RSS of this process's `chroma run` and PSS of its PostgreSQL processes (shared buffers once)."""
    chroma = pg = 0.0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "postgres" in proc.name():
                pg += proc.memory_full_info().pss / 2**20
            elif "chromadb" in " ".join(proc.cmdline()):
                chroma += proc.memory_info().rss / 2**20
        except psutil.Error:
            continue
    return {"chroma_server_mb": chroma, "postgres_mb": pg}


def run_child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"measurement failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def folder_setup(keep: Path, n_chunks: int, efs: list[int], n_queries: int) -> list[dict[str, Any]]:
    out = keep / f"folder-{n_chunks}"
    out.mkdir(parents=True, exist_ok=True)
    config = IndexConfig(path=out / "ix")
    if not (out / "built.json").exists():
        figures = build(config, n_chunks, out, keep / "progress.log")
        print(f"folder built: {json.dumps(figures)}", file=sys.stderr)
    built = json.loads((out / "built.json").read_text())
    rows = []
    for ef in efs:
        row = run_child(["--_measure", str(out), "--_ef", str(ef), "--queries", str(n_queries)])
        rows.append({"setup": "folder", "ef": ef, **built, **row, "disk_mb": disk_mb(out / "ix")})
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def server_setup(keep: Path, n_chunks: int, efs: list[int], n_queries: int) -> list[dict[str, Any]]:
    from tests.servers import chroma_server, new_database, postgres_server

    out = keep / f"server-{n_chunks}"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with postgres_server(out / "pg") as server:
        database = server.rsplit("/", 1)[0] + "/bench"
        if not (out / "built.json").exists():
            database = new_database(server, "bench")
            with chroma_server(out / "chroma", timeout=300) as chroma:
                vectors.drop_collection(vectors.connect(out, chroma), chroma, vectors.COLLECTION)  # a cut-off build's
                config = IndexConfig(path=out / "ix", database_url=database, chroma_url=chroma)
                figures = build(config, n_chunks, out, keep / "progress.log")
            print(f"server built: {json.dumps(figures)}", file=sys.stderr)
        built = json.loads((out / "built.json").read_text())
        for ef in efs:  # a fresh Chroma server per ef_search: it reads the breadth when it loads the collection
            with chroma_server(out / "chroma", timeout=300) as chroma:
                row = run_child(
                    [
                        "--_measure",
                        str(out),
                        "--_ef",
                        str(ef),
                        "--queries",
                        str(n_queries),
                        "--_database",
                        database,
                        "--_chroma",
                        chroma,
                    ]
                )
                memory = server_memory_mb()
            disk = disk_mb(out / "chroma", out / "pg")
            rows.append({"setup": "server", "ef": ef, **built, **row, **memory, "disk_mb": disk})
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| chunks | setup | ef_search | raw Chroma p50 / p99 ms | hybrid p50 / p99 ms | ratio | "
        "hybrid ACL p50 / p99 ms | ratio ACL | with query embedding: ratio / ratio ACL | "
        "dense recall@10 (ACL) | RSS (USS) MB | disk MB | build |\n" + "| --- " * 13 + "|"
    )
    lines = [head]
    for r in rows:
        rss = f"{r['rss_mb']:.0f}" + (f" ({r['uss_mb']:.0f})" if "uss_mb" in r else "")
        if r["setup"] == "server":
            rss += f" + Chroma {r['chroma_server_mb']:.0f} + PG {r['postgres_mb']:.0f}"
        base = r["with_embed_raw_p50"]
        lines.append(
            f"| {r['chunks']:,} | {r['setup']} | {r['ef']} | {r['raw_p50']:.1f} / {r['raw_p99']:.1f} | "
            f"{r['hybrid_p50']:.1f} / {r['hybrid_p99']:.1f} | {r['hybrid_p50'] / r['raw_p50']:.2f}x | "
            f"{r['hybrid_acl_p50']:.1f} / {r['hybrid_acl_p99']:.1f} | {r['hybrid_acl_p50'] / r['raw_p50']:.2f}x | "
            f"{r['with_embed_hybrid_p50'] / base:.2f}x / {r['with_embed_hybrid_acl_p50'] / base:.2f}x | "
            f"{r['recall']:.3f} ({r['recall_acl']:.3f}) | {rss} | {r['disk_mb']:.0f} | "
            f"{r['build_s'] / 60:.0f} min, {r['chunks_per_s']:.0f}/s |"
        )
    lines.append("")
    lines.append(
        "query embedding p50 "
        + ", ".join(f"{r['setup']} ef {r['ef']}: {r['embed_p50']:.1f} ms" for r in rows)
        + "; raw Chroma with the ACL `where` p50 "
        + ", ".join(f"{r['setup']} ef {r['ef']}: {r['raw_acl_p50']:.0f} ms" for r in rows)
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--ef", default="50,100,200,400", help="ef_search values measured, each in a fresh process")
    parser.add_argument("--setup", choices=["folder", "server", "both"], default="folder")
    parser.add_argument("--queries", type=int, default=250, help=f"queries timed per ef_search (at most {QUERIES})")
    parser.add_argument("--keep", type=Path, help="build into DIR once and reuse it (default: a temporary folder)")
    parser.add_argument("--_measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--_ef", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_database", help=argparse.SUPPRESS)
    parser.add_argument("--_chroma", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args._measure:
        config = IndexConfig(
            path=args._measure / "ix", ef_search=args._ef, database_url=args._database, chroma_url=args._chroma
        )
        print(json.dumps(measure(config, args._measure, min(args.queries, QUERIES))))
        return
    efs = [int(e) for e in args.ef.split(",")]
    with tempfile.TemporaryDirectory(prefix="inlet-bench-million-") as tmp:
        keep = args.keep or Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        rows = []
        if args.setup in ("folder", "both"):
            rows += folder_setup(keep, args.chunks, efs, args.queries)
        if args.setup in ("server", "both"):
            rows += server_setup(keep, args.chunks, efs, args.queries)
        (keep / f"results-{args.chunks}.json").write_text(json.dumps(rows, indent=1))
        print(table(rows))


if __name__ == "__main__":
    main()
