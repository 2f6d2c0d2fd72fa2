"""The SQLite side of the index: documents, their chunks, ACLs, and the BM25 lexical index.

Local Chroma has no lexical search, so FTS5 (BM25 ranking, Porter stemming) lives here, written in
the same transaction as the document rows: the catalog is the commit record of the index. Vectors
are written to Chroma first; a crash between the two leaves a catalog that is behind, and the
next sync re-applies the document (chunk ids are deterministic, so nothing is duplicated).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from inlet.connectors.model import Document

from .lexical import RARE_EXACT, fts5_match, parse_query

if TYPE_CHECKING:
    from .storage import Commit

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    source_type TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    meta_hash TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    seen_gen INTEGER NOT NULL DEFAULT 0,
    ts REAL NOT NULL DEFAULT 0,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_source ON documents (source, seen_gen);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (title, text, tokenize = 'porter unicode61');
CREATE TABLE IF NOT EXISTS acl (
    principal TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    PRIMARY KEY (principal, doc_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS acl_doc ON acl (doc_id);
CREATE TABLE IF NOT EXISTS chunk_keys (
    chunk_id TEXT PRIMARY KEY,
    key TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunk_keys_key ON chunk_keys (key);
CREATE TABLE IF NOT EXISTS vector_writes (
    doc_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    chunks INTEGER NOT NULL
);
"""

# chunks of documents whose vectors a write may have left half-done: never a source of reused vectors
UNSETTLED_CHUNKS = "SELECT c.chunk_id FROM chunks c JOIN vector_writes w ON w.doc_id = c.doc_id"

LEXICAL_OVERFETCH = 4   # BM25 matches ranked per wanted result before falling back to a filtered query
COMMON_TERM = 0.25      # a query term in more chunks than this share adds little to BM25 but costs most
DF_TTL = 300.0          # seconds a cached document frequency is trusted
READ_MMAP_BYTES = 1 << 30   # readers map the file: pages shared by all threads, no read() copies (-10% BM25)


@dataclass(frozen=True)
class StoredDoc:
    doc_id: str
    content_hash: str
    meta_hash: str
    chunks: int
    source: str = ""


@dataclass(frozen=True)
class Filters:
    """Search filters; `principals` None means an operator (no ACL filter)."""

    sources: tuple[str, ...] = ()
    source_types: tuple[str, ...] = ()
    after: float | None = None
    before: float | None = None
    principals: tuple[str, ...] | None = None


def _filter_sql(filters: Filters) -> tuple[list[str], list[object]]:
    """SQL conditions on `d` (documents) for the filters, with their parameters."""
    where: list[str] = []
    params: list[object] = []
    if filters.sources:
        where.append(f"d.source IN ({','.join('?' * len(filters.sources))})")
        params += filters.sources
    if filters.source_types:
        where.append(f"d.source_type IN ({','.join('?' * len(filters.source_types))})")
        params += filters.source_types
    if filters.after is not None:
        where.append("d.ts >= ?")
        params.append(filters.after)
    if filters.before is not None:
        where.append("d.ts < ?")
        params.append(filters.before)
    if filters.principals is not None:
        where.append(f"EXISTS (SELECT 1 FROM acl a WHERE a.doc_id = d.doc_id AND a.principal IN "
                     f"({','.join('?' * len(filters.principals))}))")
        params += filters.principals
    return where, params


def visible_only(found: dict[str, int], filters: Filters,
                 passing: Callable[[list[str], Filters], set[str]]) -> dict[str, int]:
    """`found` (chunk id -> count) without the chunks `filters` exclude (ACL, source, time)."""
    if not found or filters == Filters():
        return found
    keep = passing(list(found), filters)
    return {cid: n for cid, n in found.items() if cid in keep}


def doc_ts(doc: Document) -> float:
    when = doc.updated_at or doc.created_at
    return when.timestamp() if when else 0.0


def chunk_id(doc_id: str, n: int) -> str:
    return f"{doc_id}#{n}"


def chunk_doc_id(chunk: str) -> str:
    return chunk.rpartition("#")[0]


class Catalog:
    """One SQLite file, WAL: one writer connection behind a lock, one reader connection per thread,
    so concurrent searches neither wait for each other nor for a sync's batch."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._df: dict[str, tuple[float, int]] = {}   # term -> (when counted, chunks containing it)

    def close(self) -> None:
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._db.close()

    def _reader(self) -> sqlite3.Connection:
        reader = getattr(self._local, "db", None)
        if reader is None:
            reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            reader.execute("PRAGMA busy_timeout = 10000")
            reader.execute(f"PRAGMA mmap_size = {READ_MMAP_BYTES}")
            self._local.db = reader
            with self._lock:
                self._readers.append(reader)
        return reader

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        return self._reader().execute(sql, tuple(params)).fetchall()

    # --- reads --------------------------------------------------------------------------------
    def stored(self, doc_ids: list[str]) -> dict[str, StoredDoc]:
        out: dict[str, StoredDoc] = {}
        for start in range(0, len(doc_ids), 500):
            part = doc_ids[start:start + 500]
            rows = self._query(
                f"SELECT doc_id, content_hash, meta_hash, chunks, source FROM documents "
                f"WHERE doc_id IN ({','.join('?' * len(part))})", part)
            out.update({r[0]: StoredDoc(*r) for r in rows})
        return out

    def document(self, doc_id: str) -> Document | None:
        rows = self._query("SELECT body FROM documents WHERE doc_id = ?", [doc_id])
        return Document.model_validate_json(rows[0][0]) if rows else None

    def documents(self, doc_ids: Iterable[str]) -> dict[str, Document]:
        ids = list(dict.fromkeys(doc_ids))
        if not ids:
            return {}
        rows = self._query(f"SELECT doc_id, body FROM documents WHERE doc_id IN ({','.join('?' * len(ids))})",
                           ids)
        return {r[0]: Document.model_validate_json(r[1]) for r in rows}

    def doc_times(self, doc_ids: Iterable[str]) -> dict[str, float]:
        """doc_id -> its updated (else created) time as epoch seconds, 0 when unknown; absent
        documents (deleted) are missing."""
        ids = list(doc_ids)
        if not ids:
            return {}
        rows = self._query(f"SELECT doc_id, ts FROM documents WHERE doc_id IN ({','.join('?' * len(ids))})", ids)
        return {r[0]: r[1] for r in rows}

    def chunk_texts(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(chunk_ids))
        if not ids:
            return {}
        rows = self._query(f"SELECT chunk_id, text FROM chunks WHERE chunk_id IN ({','.join('?' * len(ids))})", ids)
        return {r[0]: r[1] for r in rows}

    def keyed_chunks(self, keys: list[str]) -> dict[str, str]:
        """key -> one chunk id whose vector has that key (see `dedup`), for the keys that have one."""
        out: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            out.update(self._query(f"SELECT key, MIN(chunk_id) FROM chunk_keys WHERE key IN "
                                   f"({','.join('?' * len(part))}) AND chunk_id NOT IN ({UNSETTLED_CHUNKS}) "
                                   "GROUP BY key", part))
        return out

    def unsettled(self, source: str) -> list[tuple[str, int]]:
        return [(r[0], r[1]) for r in self._query("SELECT doc_id, chunks FROM vector_writes WHERE source = ?",
                                                  [source])]

    def visible(self, doc_id: str, principals: tuple[str, ...] | None) -> bool:
        if principals is None:
            return bool(self._query("SELECT 1 FROM documents WHERE doc_id = ?", [doc_id]))
        marks = ",".join("?" * len(principals))
        return bool(self._query(f"SELECT 1 FROM acl WHERE doc_id = ? AND principal IN ({marks}) LIMIT 1",
                                [doc_id, *principals]))

    def source_doc_ids(self, source: str) -> list[str]:
        return [r[0] for r in self._query("SELECT doc_id FROM documents WHERE source = ?", [source])]

    def unseen(self, source: str, generation: int) -> list[str]:
        return [r[0] for r in self._query(
            "SELECT doc_id FROM documents WHERE source = ? AND seen_gen < ?", [source, generation])]

    def counts(self) -> dict[str, tuple[int, int]]:
        """source -> (documents, chunks)."""
        rows = self._query("SELECT source, COUNT(*), COALESCE(SUM(chunks), 0) FROM documents GROUP BY source")
        return {r[0]: (r[1], r[2]) for r in rows}

    def passing(self, chunk_ids: list[str], filters: Filters) -> set[str]:
        """The chunk ids among `chunk_ids` whose documents pass `filters` (ACL included).

        Works on the document ids inside chunk ids; an ACL-only filter (every user search) is
        answered from the ACL table's primary key alone."""
        docs = list({chunk_doc_id(c) for c in chunk_ids})
        if not docs:
            return set()
        marks = ",".join("?" * len(docs))
        if filters == Filters(principals=filters.principals) and filters.principals is not None:
            sql = (f"SELECT DISTINCT doc_id FROM acl WHERE doc_id IN ({marks}) "
                   f"AND principal IN ({','.join('?' * len(filters.principals))})")
            params: list[object] = [*docs, *filters.principals]
        else:
            where, params = _filter_sql(filters)
            sql = f"SELECT d.doc_id FROM documents d WHERE d.doc_id IN ({marks}) AND {' AND '.join(where or ['1'])}"
            params = [*docs, *params]
        keep = {r[0] for r in self._query(sql, params)}
        return {c for c in chunk_ids if chunk_doc_id(c) in keep}

    def lexical(self, query: str, filters: Filters, limit: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score), best first (title weighted double), filtered like the dense search.

        Ranking inside FTS5 alone is ~4x cheaper than ranking the join with the filter tables,
        so the best `LEXICAL_OVERFETCH` x `limit` matches are ranked first and filtered after;
        only when too few pass is the filtered query run in full. FTS5's bm25() is negative
        (lower is better); the scores returned are its negation."""
        terms = parse_query(query)   # identifiers and quoted phrases match as phrases (index/lexical.py)
        if not terms:
            return []
        selective = set(self.selective_terms([t.text for t in terms if not t.exact]))
        match = fts5_match([t for t in terms if t.exact or t.text in selective])
        wide = [(r[0], -r[1]) for r in self._query(
            "SELECT c.chunk_id, f.score FROM (SELECT rowid, bm25(chunks_fts, 2.0, 1.0) AS score FROM chunks_fts "
            "WHERE chunks_fts MATCH ? ORDER BY score LIMIT ?) f JOIN chunks c ON c.rowid = f.rowid "
            "ORDER BY f.score", [match, limit * LEXICAL_OVERFETCH])]
        if filters == Filters():
            return wide[:limit]
        keep = self.passing([cid for cid, _ in wide], filters)
        hits = [hit for hit in wide if hit[0] in keep][:limit]
        if len(hits) == limit or len(wide) < limit * LEXICAL_OVERFETCH:   # enough, or every match was seen
            return hits
        where, params = _filter_sql(filters)
        sql = (f"SELECT c.chunk_id, bm25(chunks_fts, 2.0, 1.0) AS score FROM chunks_fts "
               f"JOIN chunks c ON c.rowid = chunks_fts.rowid JOIN documents d ON d.doc_id = c.doc_id "
               f"WHERE chunks_fts MATCH ? AND {' AND '.join(where)} ORDER BY score LIMIT ?")
        return [(r[0], -r[1]) for r in self._query(sql, [match, *params, limit])]

    def exact_matches(self, query: str, filters: Filters) -> dict[str, int]:
        """chunk id -> how many of the query's rare identifiers and quoted phrases it holds.

        Someone who names INC-20931 or "blocked by legal review" means the passages holding it,
        however alike their neighbours look to a dense model; a name in more than RARE_EXACT
        chunks (a busy #channel) narrows nothing and is left to BM25. Each check is a phrase MATCH
        stopped after RARE_EXACT + 1 rows: cheap, and never stale."""
        found: dict[str, int] = {}
        for term in parse_query(query):
            if not term.exact:
                continue
            rows = self._query("SELECT c.chunk_id FROM (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? "
                               "LIMIT ?) f JOIN chunks c ON c.rowid = f.rowid", [f'"{term.text}"', RARE_EXACT + 1])
            if len(rows) <= RARE_EXACT:
                for (cid,) in rows:
                    found[cid] = found.get(cid, 0) + 1
        return visible_only(found, filters, self.passing)

    def selective_terms(self, terms: list[str]) -> list[str]:
        """The query terms worth ranking on: a term in over COMMON_TERM of all chunks (a corpus
        stopword: "gas" in a gas trader's mail) costs most of the BM25 time and moves rankings
        little, so it is dropped while rarer terms remain. Frequencies are cached for DF_TTL."""
        if len(terms) < 2:
            return terms
        total = self._frequency("")
        common = {t for t in terms if total and self._frequency(t) > COMMON_TERM * total}
        return [t for t in terms if t not in common] or sorted(terms, key=self._frequency)[:2]

    def _frequency(self, term: str) -> int:
        """Chunks containing `term` ("" : all chunks), counted by FTS5 with the index's own tokenizer."""
        cached = self._df.get(term)
        if cached and time.monotonic() - cached[0] < DF_TTL:
            return cached[1]
        if term:
            count = self._query("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", [f'"{term}"'])[0][0]
        else:
            count = self._query("SELECT count(*) FROM chunks")[0][0]
        if len(self._df) > 50_000:
            self._df.clear()
        self._df[term] = (time.monotonic(), count)
        return count

    # --- writes (inside `transaction()`) ------------------------------------------------------
    def commit(self, batch: Commit) -> None:
        """Write one batch in one transaction (the fence is not checked: a folder's leases are
        `flock`s, which no other process can take over while their holder lives)."""
        with self.transaction() as db:
            for doc, texts in batch.embedded:
                Catalog.put(db, doc, texts, batch.generation)
            for doc in batch.relabelled:
                Catalog.put(db, doc, None, batch.generation)
            Catalog.put_keys(db, batch.keys)
            Catalog.touch(db, batch.seen, batch.generation)
            for doc_id in batch.gone:
                Catalog.delete(db, doc_id)
            db.executemany("INSERT INTO vector_writes (doc_id, source, chunks) VALUES (?, ?, ?) ON CONFLICT "
                           "(doc_id) DO UPDATE SET chunks = max(chunks, excluded.chunks)", batch.marked)
            db.executemany("DELETE FROM vector_writes WHERE doc_id = ?", [(d,) for d in batch.settled])

    @staticmethod
    def put(db: sqlite3.Connection, doc: Document, texts: list[str] | None, generation: int) -> None:
        """Write a document; `texts` None keeps its chunks (metadata-only change)."""
        old = db.execute("SELECT chunks FROM documents WHERE doc_id = ?", [doc.id]).fetchone()
        n_chunks = len(texts) if texts is not None else (old[0] if old else 0)
        db.execute(
            "INSERT INTO documents (doc_id, source, source_type, content_hash, meta_hash, chunks, seen_gen, "
            "ts, body) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (doc_id) DO UPDATE SET source = excluded.source, "
            "source_type = excluded.source_type, content_hash = excluded.content_hash, meta_hash = "
            "excluded.meta_hash, chunks = excluded.chunks, seen_gen = excluded.seen_gen, ts = excluded.ts, "
            "body = excluded.body",
            [doc.id, doc.source, doc.source_type, doc.content_hash(), doc.meta_hash(), n_chunks, generation,
             doc_ts(doc), doc.model_dump_json()])
        db.execute("DELETE FROM acl WHERE doc_id = ?", [doc.id])
        db.executemany("INSERT INTO acl (principal, doc_id) VALUES (?, ?)",
                       [(p, doc.id) for p in doc.acl.principals()])
        if texts is not None:
            Catalog._drop_chunks(db, doc.id)
            for n, text in enumerate(texts):
                cur = db.execute("INSERT INTO chunks (chunk_id, doc_id, n, text) VALUES (?,?,?,?)",
                                 [chunk_id(doc.id, n), doc.id, n, text])
                db.execute("INSERT INTO chunks_fts (rowid, title, text) VALUES (?,?,?)",
                           [cur.lastrowid, doc.title, text])

    @staticmethod
    def put_keys(db: sqlite3.Connection, rows: list[tuple[str, str]]) -> None:
        """(chunk id, vector key) rows of chunks just written (after `put`, which dropped the old ones)."""
        db.executemany("INSERT OR REPLACE INTO chunk_keys (chunk_id, key) VALUES (?, ?)", rows)

    @staticmethod
    def touch(db: sqlite3.Connection, doc_ids: list[str], generation: int) -> None:
        db.executemany("UPDATE documents SET seen_gen = ? WHERE doc_id = ?", [(generation, d) for d in doc_ids])

    @staticmethod
    def delete(db: sqlite3.Connection, doc_id: str) -> None:
        Catalog._drop_chunks(db, doc_id)
        db.execute("DELETE FROM acl WHERE doc_id = ?", [doc_id])
        db.execute("DELETE FROM documents WHERE doc_id = ?", [doc_id])

    @staticmethod
    def _drop_chunks(db: sqlite3.Connection, doc_id: str) -> None:
        rowids = [r[0] for r in db.execute("SELECT rowid FROM chunks WHERE doc_id = ?", [doc_id])]
        db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(r,) for r in rowids])
        db.execute("DELETE FROM chunk_keys WHERE chunk_id IN (SELECT chunk_id FROM chunks WHERE doc_id = ?)", [doc_id])
        db.execute("DELETE FROM chunks WHERE doc_id = ?", [doc_id])
