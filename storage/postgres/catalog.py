"""The PostgreSQL catalog: documents, chunks, ACL principals and a BM25 index, shared by every host.

Same contract as the SQLite catalog (`storage/sqlite/catalog.py`), so the engine and the server cannot tell them
apart. BM25 (FTS5's, phrases included) is computed from postings and corpus statistics written in
each commit's transaction: see `lexical.py` here. The reads both share are `storage/reads.py`'s.

Every commit checks the committing run's lease fence in its own transaction (`leases.py`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from inlet.connectors.model import Document

from . import lexical as pg_lexical
from ..dialect import POSTGRES
from ..lexical import COMMON_TERM, LEXICAL_OVERFETCH, RARE_EXACT, Term, parse_query
from ..reads import CatalogReads, filter_sql, seen_by, served
from ..records import Records
from ..types import Commit, Filters, chunk_id, doc_ts, people_rows, visible_only
from .leases import check_fence
from .pool import connect, disconnect, server_name
from .records import PgRecords

if TYPE_CHECKING:
    import psycopg

    from inlet.config import IndexConfig


def _filter_sql(filters: Filters) -> tuple[list[str], list[Any]]:
    where, params = filter_sql(POSTGRES, filters)
    return [POSTGRES.sql(w) for w in where], params


class PgCatalog(CatalogReads):
    """The catalog in PostgreSQL; thread-safe (a connection per call from the shared pool)."""

    dialect = POSTGRES

    def __init__(self, config: IndexConfig) -> None:
        self.pool = connect(config)
        self.url = config.database_url or ""
        self._frequencies = pg_lexical.Frequencies()

    def close(self) -> None:
        disconnect(self.pool)

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self.pool.connection() as db:
            return db.execute(sql, tuple(params)).fetchall()  # type: ignore[arg-type]

    def _frequency(self, term: str) -> int:
        """Chunks holding `term` ("": all chunks), from the terms table by its Porter stem, as the
        SQLite catalog counts them with FTS5 (relevance weighs query words by it); cached alike."""
        stemmed = pg_lexical.stem(term) if term else ""
        known = self._frequencies.cached(stemmed)
        if known is not None:
            return known
        with self.pool.connection() as db:
            total, df = self._frequencies.get(db, {stemmed} - {""})
        return df.get(stemmed, 0) if term else total

    def held_visibly(self, term: str, principals: tuple[str, ...], unserved: Sequence[str] = ()) -> bool:
        """Whether a chunk of a document `principals` may see, of a source not `unserved`, holds
        `term` (by its Porter stem, as `_frequency` counts it)."""
        seen, params = seen_by(self.dialect, "c.doc_id", principals)
        kept, more = served(self.dialect, "c.doc_id", unserved)
        rows = self._query(
            self.dialect.sql(
                "SELECT 1 FROM postings p JOIN chunks c ON c.id = p.chunk "
                f"WHERE p.term = ? AND {seen} AND {kept} LIMIT 1"
            ),
            [pg_lexical.stem(term), *params, *more],
        )
        return bool(rows)

    def _chosen(self, terms: list[Term], filters: Filters, df: dict[str, int]) -> list[Term]:
        """`selective`'s terms (none when the index is empty), `df` filled with the chunk counts of
        their stems. A user's words are weighed by `frequency`: a word only chunks hidden from them
        hold is chosen as a word no chunk holds. Each read takes its own connection, one at a time."""
        with self.pool.connection() as db:
            total, counts = self._frequencies.get(db, {s for t in terms for s in pg_lexical.stems_of(t)})
        df.update(counts)
        if not total:
            return []
        if filters.principals is not None:  # the counts just read are cached: only the ACL checks run
            # a word rare by the whole count is rare at 0 too: only the common ones can tell
            words = [
                t.parts[0]
                for t in terms
                if not t.exact and df.get(pg_lexical.stem(t.parts[0]), 0) > COMMON_TERM * total
            ]
            df.update({pg_lexical.stem(w): self.frequency(w, filters.principals, filters.unserved) for w in words})
        return pg_lexical.selective(terms, df, total)

    def records(self) -> Records:
        return PgRecords(self.pool, f"the index database at {server_name(self.url)}")

    def exact_matches(self, query: str, filters: Filters) -> dict[str, int]:
        """chunk id -> how many of the query's rare identifiers and quoted phrases it holds (as the
        SQLite catalog): each term's parts at consecutive positions, in title or text, counted only
        when at most RARE_EXACT chunks hold it (that the caller may see); one statement for all."""
        exact = [t for t in parse_query(query) if t.exact]
        if not exact:
            return {}
        with self.pool.connection() as db:
            _, df = self._frequencies.get(db, {s for t in exact for s in pg_lexical.stems_of(t)})
            sql, params = pg_lexical.exact_sql(exact, df, RARE_EXACT, filters.principals)
            rows = db.execute(sql, params).fetchall()  # type: ignore[arg-type]   # built from constants
        per_term: dict[int, list[str]] = {}
        for k, cid in rows:
            per_term.setdefault(k, []).append(cid)
        found: dict[str, int] = {}
        for chunks in per_term.values():
            if len(chunks) <= RARE_EXACT:
                for cid in chunks:
                    found[cid] = found.get(cid, 0) + 1
        return visible_only(found, filters, self.passing)

    def lexical(self, query: str, filters: Filters, limit: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score), best first, filtered like the dense search, on the same terms as
        the SQLite catalog (`parse_query`: identifiers and quoted phrases as phrases, corpus-common
        words dropped). As there, the best LEXICAL_OVERFETCH x `limit` are ranked unfiltered, and
        the filters checked on those in the same statement; only when too few pass is the ranking
        run again over the chunks that pass."""
        terms = parse_query(query)
        if not terms:
            return []
        # Words alone (no phrase, whose rarest part leads its match), asked by the operator or with
        # fewer than two words to choose from: the statement itself drops the common ones, saving
        # the round trip that reads their frequencies (most queries).
        choose = all(len(t.parts) == 1 for t in terms) and (
            filters.principals is None or sum(not t.exact for t in terms) < 2
        )
        df: dict[str, int] = {}
        chosen = terms if choose else self._chosen(terms, filters, df)
        if not chosen:
            return []
        with self.pool.connection() as db:
            wide_limit = limit * LEXICAL_OVERFETCH
            sql, params = pg_lexical.ranking_sql(chosen, df, wide_limit, filters, False, _filter_sql, choose, limit)
            rows = db.execute(sql, params).fetchall()  # type: ignore[arg-type]   # built from constants
            hits = [(r[0], float(r[1])) for r in rows]
            if len(hits) == limit or rows and rows[0][2] <= wide_limit:  # enough, or every match was seen
                return hits
            sql, params = pg_lexical.ranking_sql(chosen, df, limit, filters, True, _filter_sql, choose)
            return [(r[0], float(r[1])) for r in db.execute(sql, params).fetchall()]  # type: ignore[arg-type]

    # --- writes -------------------------------------------------------------------------------
    def commit(self, batch: Commit) -> None:
        """Write one batch in one transaction, refused unless the batch's fence is still current."""
        # Tokenised before the transaction: a slow or starved process must not sit idle inside it
        # (the server ends a session idle in a transaction for IDLE_IN_TRANSACTION).
        chunks = _chunk_rows(batch.embedded)
        with self.pool.connection() as db, db.transaction():
            check_fence(db, batch.fence)
            docs = [d for d, _ in batch.embedded] + batch.relabelled
            rechunked = [d.id for d, _ in batch.embedded] + batch.gone
            dropped, dropped_length, gone_terms = self._drop_chunks(db, rechunked)
            self._put_documents(db, docs, {d.id: len(t) for d, t in batch.embedded}, batch.generation)
            added, added_length, new_terms = self._put_chunks(db, chunks)
            if batch.keys:
                with db.cursor() as cur:
                    cur.executemany(
                        "UPDATE chunks SET key = %s WHERE chunk_id = %s", [(key, chunk) for chunk, key in batch.keys]
                    )
            if batch.seen:
                db.execute("UPDATE documents SET seen_gen = %s WHERE doc_id = ANY(%s)", (batch.generation, batch.seen))
            if batch.gone:
                db.execute("DELETE FROM acl WHERE doc_id = ANY(%s)", (batch.gone,))
                db.execute("DELETE FROM people WHERE doc_id = ANY(%s)", (batch.gone,))
                db.execute("DELETE FROM documents WHERE doc_id = ANY(%s)", (batch.gone,))
            new_terms.subtract(gone_terms)
            _count_terms(db, new_terms)
            if added or dropped:
                db.execute(
                    "UPDATE corpus SET chunks = chunks + %s, length = length + %s WHERE id = 1",
                    (added - dropped, added_length - dropped_length),
                )
            if batch.marked:
                marked = {d: (s, n) for d, s, n in sorted(batch.marked, key=lambda m: m[2])}  # one row a document
                db.execute(
                    "INSERT INTO vector_writes (doc_id, source, chunks) SELECT * FROM unnest(%s::text[], "
                    "%s::text[], %s::int[]) ON CONFLICT (doc_id) DO UPDATE SET "
                    "chunks = GREATEST(vector_writes.chunks, EXCLUDED.chunks)",
                    (list(marked), [m[0] for m in marked.values()], [m[1] for m in marked.values()]),
                )
            if batch.settled:
                db.execute("DELETE FROM vector_writes WHERE doc_id = ANY(%s)", (batch.settled,))

    @staticmethod
    def _drop_chunks(db: psycopg.Connection[Any], doc_ids: list[str]) -> tuple[int, int, Counter[str]]:
        """Delete the documents' chunks: how many, their length, and the chunks each term lost."""
        if not doc_ids:
            return 0, 0, Counter()
        rows = db.execute("DELETE FROM chunks WHERE doc_id = ANY(%s) RETURNING id, length", (doc_ids,)).fetchall()
        terms: Counter[str] = Counter()
        if rows:
            terms.update(
                dict(
                    db.execute(
                        "WITH gone AS (DELETE FROM postings WHERE chunk = ANY(%s) RETURNING term) "
                        "SELECT term, count(*) FROM gone GROUP BY term",
                        ([r[0] for r in rows],),
                    ).fetchall()
                )
            )
        return len(rows), sum(r[1] for r in rows), terms

    @staticmethod
    def _put_documents(
        db: psycopg.Connection[Any], docs: list[Document], chunks: dict[str, int], generation: int
    ) -> None:
        if not docs:
            return
        with db.cursor() as cur:
            cur.executemany(
                "INSERT INTO documents (doc_id, source, source_type, content_hash, meta_hash, chunks, seen_gen, "
                "ts, body) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (doc_id) DO UPDATE SET "
                "source = excluded.source, source_type = excluded.source_type, content_hash = "
                "excluded.content_hash, meta_hash = excluded.meta_hash, chunks = COALESCE(%s, documents.chunks), "
                "seen_gen = excluded.seen_gen, ts = excluded.ts, body = excluded.body",
                [
                    (
                        d.id,
                        d.source,
                        d.source_type,
                        d.content_hash(),
                        d.meta_hash(),
                        chunks.get(d.id, 0),
                        generation,
                        doc_ts(d),
                        d.model_dump_json(),
                        chunks.get(d.id),
                    )
                    for d in docs
                ],
            )
        ids = [d.id for d in docs]
        db.execute("DELETE FROM acl WHERE doc_id = ANY(%s)", (ids,))
        acl = [(p, d.id) for d in docs for p in dict.fromkeys(d.acl.principals())]
        if acl:
            with db.cursor().copy("COPY acl (principal, doc_id) FROM STDIN") as copy:
                for row in acl:
                    copy.write_row(row)
        db.execute("DELETE FROM people WHERE doc_id = ANY(%s)", (ids,))
        people = people_rows(docs)
        if people:
            with db.cursor().copy("COPY people (person, doc_id, identity) FROM STDIN") as copy:
                for named in people:
                    copy.write_row(named)

    @staticmethod
    def _put_chunks(db: psycopg.Connection[Any], rows: list[ChunkRow]) -> tuple[int, int, Counter[str]]:
        """Insert chunks and their postings: how many, their length, and the chunks each term gained."""
        if not rows:
            return 0, 0, Counter()
        ids = db.execute(
            "INSERT INTO chunks (chunk_id, doc_id, n, text, length) SELECT * FROM unnest("
            "%s::text[], %s::text[], %s::int[], %s::text[], %s::int[]) RETURNING id, chunk_id",
            (
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                [r[3] for r in rows],
                [r[5] for r in rows],
            ),
        ).fetchall()
        by_chunk = dict((cid, rid) for rid, cid in ids)
        with db.cursor().copy("COPY postings (term, chunk, tf, length, pos) FROM STDIN") as copy:
            for cid, *_, found, length in rows:
                for term, posting in found.items():
                    copy.write_row((term, by_chunk[cid], posting.tf, length, posting.positions))
        return len(rows), sum(r[5] for r in rows), Counter(term for row in rows for term in row[4])


ChunkRow = tuple[str, str, int, str, dict[str, pg_lexical.Posting], int]  # id, doc, n, text, postings, length


def _chunk_rows(embedded: list[tuple[Document, list[str]]]) -> list[ChunkRow]:
    return [
        (chunk_id(doc.id, n), doc.id, n, text, *pg_lexical.postings(doc.title or "", text))
        for doc, texts in embedded
        for n, text in enumerate(texts)
    ]


def _count_terms(db: psycopg.Connection[Any], change: Counter[str]) -> None:
    """Add `change` to the terms' chunk counts, locking their rows in term order: two commits
    touching the same terms wait for each other instead of deadlocking."""
    moved = sorted((term, n) for term, n in change.items() if n)
    if moved:
        db.execute(
            "INSERT INTO terms (term, df) SELECT * FROM unnest(%s::text[], %s::bigint[]) ORDER BY 1 "
            "ON CONFLICT (term) DO UPDATE SET df = terms.df + excluded.df",
            ([t for t, _ in moved], [n for _, n in moved]),
        )
