"""The SQLite side of the index: documents, their chunks, ACLs, and the BM25 lexical index.

Local Chroma has no lexical search, so FTS5 (BM25 ranking, Porter stemming) lives here, written in
the same transaction as the document rows. It holds each chunk's title and text as `lexical.words`
gives them, joined by spaces (`fts_columns`), not as written: FTS5's `unicode61` would keep a
ligature, a fullwidth letter or an NFD accent as it is, split a word at a soft hyphen, and make a
whole line of Chinese one token, where `words`, which every query goes through, folds or splits
them: the catalog is the commit record of the index. Vectors
are written to Chroma first; a crash between the two leaves a catalog that is behind, and the
next sync re-applies the document (chunk ids are deterministic, so nothing is duplicated).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from inlet.connectors.model import Document

from ..dialect import SQLITE
from ..private import private_files
from ..lexical import COMMON_TERM, DF_TTL, LEXICAL_OVERFETCH, RARE_EXACT, fts5_match, parse_query
from ..reads import CatalogReads, filter_sql, seen_by, served
from ..records import FolderRecords, Records
from ..types import Commit, Filters, chunk_id, doc_ts, people_rows, visible_only
from .schema import CATALOG, connect, fts_columns, named_damage, transaction

READ_MMAP_BYTES = 1 << 30  # readers map the file: pages shared by all threads, no read() copies (-10% BM25)
IDLE_READERS = 8  # read connections kept open between queries (the API's worker threads, a search's two)


class SqliteCatalog(CatalogReads):
    """One SQLite file, WAL: one writer connection behind a lock, and read-only connections lent
    to one query at a time, so concurrent searches neither wait for each other nor for a sync's
    batch. Idle readers are kept up to `IDLE_READERS`: the connections a process holds follow how
    many queries run at once, not how many threads ever ran one (a daemon's pipeline and the API's
    workers come and go: one connection per thread was kept open until the process ended)."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = path
        # It holds every restricted document's text, whichever command opens a new index first
        # (`inlet status` too): folder 0700, file 0600, and its -wal and -shm inherit the mode.
        with private_files():
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = connect(path, CATALOG, synchronous="NORMAL")
        self._lock = threading.RLock()
        self._idle: list[sqlite3.Connection] = []  # readers no query holds
        self._closed = False
        self._df: dict[str, tuple[float, int]] = {}  # term -> (when counted, chunks containing it)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for reader in self._idle:
                reader.close()
            self._idle.clear()
            self._db.close()

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            reader = self._idle.pop() if self._idle else None
        if reader is None:
            reader = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            reader.execute("PRAGMA busy_timeout = 10000")
            reader.execute(f"PRAGMA mmap_size = {READ_MMAP_BYTES}")
        try:
            yield reader
        finally:
            with self._lock:
                keep = not self._closed and len(self._idle) < IDLE_READERS
                if keep:
                    self._idle.append(reader)
            if not keep:
                reader.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, named_damage(self.path), transaction(self._db, "BEGIN IMMEDIATE") as db:
            yield db

    def _query(self, sql: str, params: Iterable[object] = ()) -> list[tuple]:
        with named_damage(self.path), self._reader() as reader:
            return reader.execute(sql, tuple(params)).fetchall()

    def records(self) -> Records:
        return FolderRecords(self.path.parent)

    def lexical(self, query: str, filters: Filters, limit: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score), best first (title weighted double), filtered like the dense search.

        Ranking inside FTS5 alone is ~4x cheaper than ranking the join with the filter tables,
        so the best `LEXICAL_OVERFETCH` x `limit` matches are ranked first and filtered after;
        only when too few pass is the filtered query run in full. FTS5's bm25() is negative
        (lower is better); the scores returned are its negation."""
        terms = parse_query(query)  # identifiers and quoted phrases match as phrases (index/lexical.py)
        if not terms:
            return []
        words = [t.text for t in terms if not t.exact]
        selective = set(self.selective_terms(words, filters.principals, filters.unserved))
        match = fts5_match([t for t in terms if t.exact or t.text in selective])
        wide = [
            (r[0], -r[1])
            for r in self._query(
                "SELECT c.chunk_id, f.score FROM (SELECT rowid, bm25(chunks_fts, 2.0, 1.0) AS score FROM chunks_fts "
                "WHERE chunks_fts MATCH ? ORDER BY score LIMIT ?) f JOIN chunks c ON c.rowid = f.rowid "
                "ORDER BY f.score",
                [match, limit * LEXICAL_OVERFETCH],
            )
        ]
        if filters == Filters():
            return wide[:limit]
        keep = self.passing([cid for cid, _ in wide], filters)
        hits = [hit for hit in wide if hit[0] in keep][:limit]
        if len(hits) == limit or len(wide) < limit * LEXICAL_OVERFETCH:  # enough, or every match was seen
            return hits
        where, params = filter_sql(SQLITE, filters)
        sql = (
            f"SELECT c.chunk_id, bm25(chunks_fts, 2.0, 1.0) AS score FROM chunks_fts "
            f"JOIN chunks c ON c.rowid = chunks_fts.rowid JOIN documents d ON d.doc_id = c.doc_id "
            f"WHERE chunks_fts MATCH ? AND {' AND '.join(where)} ORDER BY score LIMIT ?"
        )
        return [(r[0], -r[1]) for r in self._query(sql, [match, *params, limit])]

    def exact_matches(self, query: str, filters: Filters) -> dict[str, int]:
        """chunk id -> how many of the query's rare identifiers and quoted phrases it holds.

        Someone who names INC-20931 or "blocked by legal review" means the passages holding it,
        however alike their neighbours look to a dense model; a name in more than RARE_EXACT
        chunks (a busy #channel) narrows nothing and is left to BM25. Each check is a phrase MATCH
        stopped after RARE_EXACT + 1 rows: cheap, and never stale. For a caller limited by an ACL
        only the chunks they may see are counted (how many hidden chunks hold a name is not theirs
        to learn)."""
        found: dict[str, int] = {}
        seen, more = ("", []) if filters.principals is None else seen_by(self.dialect, "c.doc_id", filters.principals)
        visible = f" AND {seen}" if seen else ""
        for term in parse_query(query):
            if not term.exact:
                continue
            rows = self._query(
                "SELECT c.chunk_id FROM chunks_fts f JOIN chunks c ON c.rowid = f.rowid "
                f"WHERE chunks_fts MATCH ?{visible} LIMIT ?",
                [f'"{term.text}"', *more, RARE_EXACT + 1],
            )
            if len(rows) <= RARE_EXACT:
                for (cid,) in rows:
                    found[cid] = found.get(cid, 0) + 1
        return visible_only(found, filters, self.passing)

    def selective_terms(
        self, terms: list[str], principals: tuple[str, ...] | None = None, unserved: Sequence[str] = ()
    ) -> list[str]:
        """The query terms worth ranking on: a term in over COMMON_TERM of all chunks (a corpus
        stopword: "gas" in a gas trader's mail) costs most of the BM25 time and moves rankings
        little, so it is dropped while rarer terms remain. Frequencies are cached for DF_TTL; for a
        caller limited to `principals` they are `frequency`'s, so a term only hidden chunks hold is
        chosen (or not) as a word no chunk holds. Only a term common by the whole count can be
        told apart that way, so only such a term is looked for among the chunks they may see."""
        if len(terms) < 2:
            return terms
        total = self._frequency("")
        bar = COMMON_TERM * total
        common = {t for t in terms if self._frequency(t) > bar and self.frequency(t, principals, unserved) > bar}
        # all common: each is held visibly, so its whole count is the caller's
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

    def held_visibly(self, term: str, principals: tuple[str, ...], unserved: Sequence[str] = ()) -> bool:
        """Whether a chunk of a document `principals` may see, of a source not `unserved`, holds
        `term` (FTS5's own tokenizer)."""
        seen, params = seen_by(self.dialect, "c.doc_id", principals)
        kept, more = served(self.dialect, "c.doc_id", unserved)
        rows = self._query(
            "SELECT 1 FROM chunks_fts f JOIN chunks c ON c.rowid = f.rowid "
            f"WHERE chunks_fts MATCH ? AND {seen} AND {kept} LIMIT 1",
            [f'"{term}"', *params, *more],
        )
        return bool(rows)

    # --- writes (inside `transaction()`) ------------------------------------------------------
    def commit(self, batch: Commit) -> None:
        """Write one batch in one transaction (the fence is not checked: a folder's leases are
        `flock`s, which no other process can take over while their holder lives)."""
        with self.transaction() as db:
            for doc, texts in batch.embedded:
                SqliteCatalog.put(db, doc, texts, batch.generation)
            for doc in batch.relabelled:
                SqliteCatalog.put(db, doc, None, batch.generation)
            SqliteCatalog.put_keys(db, batch.keys)
            SqliteCatalog.touch(db, batch.seen, batch.generation)
            for doc_id in batch.gone:
                SqliteCatalog.delete(db, doc_id)
            db.executemany(
                "INSERT INTO vector_writes (doc_id, source, chunks) VALUES (?, ?, ?) ON CONFLICT "
                "(doc_id) DO UPDATE SET chunks = max(chunks, excluded.chunks)",
                batch.marked,
            )
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
            [
                doc.id,
                doc.source,
                doc.source_type,
                doc.content_hash(),
                doc.meta_hash(),
                n_chunks,
                generation,
                doc_ts(doc),
                doc.model_dump_json(),
            ],
        )
        db.execute("DELETE FROM acl WHERE doc_id = ?", [doc.id])
        db.executemany("INSERT INTO acl (principal, doc_id) VALUES (?, ?)", [(p, doc.id) for p in doc.acl.principals()])
        db.execute("DELETE FROM people WHERE doc_id = ?", [doc.id])
        db.executemany("INSERT INTO people (person, doc_id, identity) VALUES (?, ?, ?)", people_rows([doc]))
        if texts is not None:
            SqliteCatalog._drop_chunks(db, doc.id)
            for n, text in enumerate(texts):
                cur = db.execute(
                    "INSERT INTO chunks (chunk_id, doc_id, n, text) VALUES (?,?,?,?)",
                    [chunk_id(doc.id, n), doc.id, n, text],
                )
                db.execute(
                    "INSERT INTO chunks_fts (rowid, title, text) VALUES (?,?,?)",
                    [cur.lastrowid, *fts_columns(doc.title or "", text)],
                )

    @staticmethod
    def put_keys(db: sqlite3.Connection, rows: list[tuple[str, str]]) -> None:
        """(chunk id, vector key) rows of chunks just written (after `put`, which dropped the old ones)."""
        db.executemany("UPDATE chunks SET key = ? WHERE chunk_id = ?", [(key, chunk) for chunk, key in rows])

    @staticmethod
    def touch(db: sqlite3.Connection, doc_ids: list[str], generation: int) -> None:
        db.executemany("UPDATE documents SET seen_gen = ? WHERE doc_id = ?", [(generation, d) for d in doc_ids])

    @staticmethod
    def delete(db: sqlite3.Connection, doc_id: str) -> None:
        SqliteCatalog._drop_chunks(db, doc_id)
        db.execute("DELETE FROM acl WHERE doc_id = ?", [doc_id])
        db.execute("DELETE FROM people WHERE doc_id = ?", [doc_id])
        db.execute("DELETE FROM documents WHERE doc_id = ?", [doc_id])

    @staticmethod
    def _drop_chunks(db: sqlite3.Connection, doc_id: str) -> None:
        rowids = [r[0] for r in db.execute("SELECT rowid FROM chunks WHERE doc_id = ?", [doc_id])]
        db.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(r,) for r in rowids])
        db.execute("DELETE FROM chunks WHERE doc_id = ?", [doc_id])


def settled_chunks(path: Path, copy: bool = False) -> int:
    """The chunks of the catalog file `path` that Chroma must hold a vector for, as `Index` counts
    them: every document's, but those of documents a write marked (`vector_writes`). Read only,
    never upgraded; a `copy` nobody writes (a backup's) is read leaving no SQLite side file."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro{'&immutable=1' if copy else ''}", uri=True, timeout=5)
    try:
        total = db.execute("SELECT COALESCE(SUM(chunks), 0) FROM documents").fetchone()[0]
        marked = 0
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'vector_writes'").fetchone():
            marked = db.execute("SELECT COALESCE(SUM(chunks), 0) FROM vector_writes").fetchone()[0]
    finally:
        db.close()
    return max(0, int(total) - int(marked))
