"""The PostgreSQL catalog: documents, chunks, ACL principals and a BM25 index, shared by every host.

Same contract as the SQLite catalog (`catalog.py`), so the engine and the server cannot tell them
apart. BM25 (FTS5's, phrases included) is computed from postings and corpus statistics written in
each commit's transaction: see `pg_lexical.py`.

Every commit checks the committing run's lease fence in its own transaction (`sync/leases.py`).
Schema migrations are applied on start, under an advisory lock so several starters do not race.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Union

from inlet.connectors.model import Document
from inlet.errors import DatabaseError

from . import pg_lexical
from .catalog import LEXICAL_OVERFETCH, Filters, visible_only, StoredDoc, chunk_doc_id, chunk_id, doc_ts
from .lexical import RARE_EXACT, parse_query

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from inlet.config import IndexConfig

    from .storage import Commit

log = logging.getLogger(__name__)
IDLE_IN_TRANSACTION_MS = 5000
MIGRATION_LOCK = 7_150_015   # pg_advisory_xact_lock key: one migrator at a time

Migration = Union[str, Callable[["psycopg.Connection[Any]"], None]]   # DDL, or a step that needs Python


def _repost(db: psycopg.Connection[Any]) -> None:
    """Rewrite every chunk's postings with positions and stopwords (phrases on PostgreSQL, migration 6)."""
    from inlet.connectors.model import Document

    db.execute("TRUNCATE postings")
    titles: dict[str, str] = {}
    done = 0
    with db.cursor(name="repost") as chunks:
        chunks.execute("SELECT c.id, c.text, c.doc_id, d.body FROM chunks c JOIN documents d ON d.doc_id = c.doc_id")
        while rows := chunks.fetchmany(2000):
            lengths = []
            with db.cursor().copy("COPY postings (term, chunk, tf, length, pos) FROM STDIN") as copy:
                for rid, text, doc_id, body in rows:
                    if doc_id not in titles:
                        titles[doc_id] = Document.model_validate_json(body).title or ""
                    found, length = pg_lexical.postings(titles[doc_id], text)
                    lengths.append((length, rid))
                    for term, posting in found.items():
                        copy.write_row((term, rid, posting.tf, length, posting.positions))
            with db.cursor() as cur:
                cur.executemany("UPDATE chunks SET length = %s WHERE id = %s", lengths)
            done += len(rows)
    db.execute("UPDATE corpus SET chunks = (SELECT count(*) FROM chunks), "
               "length = (SELECT COALESCE(sum(length), 0) FROM chunks) WHERE id = 1")
    db.execute("TRUNCATE terms")
    db.execute("INSERT INTO terms SELECT term, count(*) FROM postings GROUP BY term")
    log.info("index database: rewrote the postings of %d chunks with positions", done)


MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE documents (
        doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, source_type TEXT NOT NULL,
        content_hash TEXT NOT NULL, meta_hash TEXT NOT NULL, chunks INTEGER NOT NULL,
        seen_gen INTEGER NOT NULL DEFAULT 0, ts DOUBLE PRECISION NOT NULL DEFAULT 0, body TEXT NOT NULL);
    CREATE INDEX documents_source ON documents (source, seen_gen);
    CREATE TABLE chunks (
        id BIGSERIAL PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL,
        n INTEGER NOT NULL, text TEXT NOT NULL, length INTEGER NOT NULL);
    CREATE INDEX chunks_doc ON chunks (doc_id);
    CREATE TABLE postings (term TEXT NOT NULL, chunk BIGINT NOT NULL, tf REAL NOT NULL,
                           length INTEGER NOT NULL, PRIMARY KEY (term, chunk));
    CREATE INDEX postings_chunk ON postings (chunk);
    CREATE TABLE corpus (id INTEGER PRIMARY KEY CHECK (id = 1), chunks BIGINT NOT NULL, length BIGINT NOT NULL);
    INSERT INTO corpus VALUES (1, 0, 0);
    CREATE TABLE acl (principal TEXT NOT NULL, doc_id TEXT NOT NULL, PRIMARY KEY (principal, doc_id));
    CREATE INDEX acl_doc ON acl (doc_id);
    CREATE TABLE sources (
        name TEXT PRIMARY KEY, checkpoint TEXT, phase TEXT NOT NULL DEFAULT 'new',
        generation INTEGER NOT NULL DEFAULT 0, since TEXT, last_prune DOUBLE PRECISION);
    CREATE TABLE runs (
        id BIGSERIAL PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION, outcome TEXT,
        upserted INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
        embedded INTEGER NOT NULL DEFAULT 0, error TEXT);
    CREATE INDEX runs_source ON runs (source, id);
    CREATE TABLE daemon_schedule (source TEXT PRIMARY KEY, next_run DOUBLE PRECISION,
                                  pid INTEGER NOT NULL, holder TEXT, updated DOUBLE PRECISION NOT NULL);
    CREATE TABLE leases (source TEXT PRIMARY KEY, holder TEXT NOT NULL, fence BIGINT NOT NULL,
                         expires TIMESTAMPTZ NOT NULL);
    """,
    # 2: operators' pauses of a source's schedule (the console)
    "CREATE TABLE paused (source TEXT PRIMARY KEY, since DOUBLE PRECISION NOT NULL);",
    # 3: each chunk's vector key (dedup.py): identical texts reuse a stored vector
    "ALTER TABLE chunks ADD COLUMN key TEXT; CREATE INDEX chunks_key ON chunks (key);",
    # 4: a run in flight's progress, for `inlet status` on any host
    """CREATE TABLE run_progress (run_id BIGINT PRIMARY KEY, holder TEXT NOT NULL, seen INTEGER NOT NULL,
                                  done INTEGER, total INTEGER, unit TEXT, updated DOUBLE PRECISION NOT NULL);""",
    # 5: postings keep positions (phrases, identifiers); the key covers what ranking reads (index-only scans)
    # and each term's chunk count is kept (IDF without counting postings); the ACL check reads its key alone
    """ALTER TABLE postings ADD COLUMN pos INTEGER[];
       ALTER TABLE postings DROP CONSTRAINT postings_pkey, ADD PRIMARY KEY (term, chunk) INCLUDE (tf, length);
       CREATE TABLE terms (term TEXT PRIMARY KEY, df BIGINT NOT NULL);
       DROP INDEX acl_doc; CREATE INDEX acl_doc ON acl (doc_id, principal);""",
    # 6: the postings written before 5, with positions and stopwords
    _repost,
    # 7: the vectors' model fingerprint and a reindex under way (fingerprint.py), one row, versioned
    """CREATE TABLE embedding_record (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL,
                                      version BIGINT NOT NULL);""",
    # 8: each daemon's change-event status per source (sync/pg_event_status.py), for status on any host
    """CREATE TABLE daemon_events (source TEXT NOT NULL, holder TEXT NOT NULL, report TEXT NOT NULL,
                                   updated TIMESTAMPTZ NOT NULL, PRIMARY KEY (source, holder));""",
    # 9: documents whose vectors a write was touching (Index.repair settles what a crash left)
    "CREATE TABLE vector_writes (doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, chunks INTEGER NOT NULL);",
    # 10: the first items each run skipped, with reasons (sync/state.py SKIPS_KEPT), for `inlet status`
    """CREATE TABLE run_skips (run_id BIGINT NOT NULL, n INTEGER NOT NULL, item_id TEXT NOT NULL, title TEXT,
                               reason TEXT NOT NULL, failed BOOLEAN NOT NULL, PRIMARY KEY (run_id, n));""",
]

_pools: dict[str, tuple[ConnectionPool, int]] = {}
_pools_lock = threading.Lock()


def connect(config: IndexConfig) -> ConnectionPool:
    """The process's pool for `database_url` (shared by catalog, state and leases), the schema
    migrated. Release it with `disconnect`."""
    url = config.database_url or ""
    with _pools_lock:
        if url in _pools:
            pool, users = _pools[url]
            _pools[url] = (pool, users + 1)
            return pool
        pool = _open_pool(url, config.database_password_env)
        _pools[url] = (pool, 1)
        return pool


def disconnect(pool: ConnectionPool) -> None:
    with _pools_lock:
        for url, (known, users) in list(_pools.items()):
            if known is pool:
                if users > 1:
                    _pools[url] = (known, users - 1)
                else:
                    del _pools[url]
                    pool.close()


def session_name(holder: str) -> str:
    """The `application_name` of a lease holder's database sessions: a successor finds them by it
    (`leases.PgLeases.acquire`). The server keeps 63 bytes of it."""
    return f"inlet {holder}".encode()[:63].decode(errors="ignore")


def _open_pool(url: str, password_env: str | None) -> ConnectionPool:
    import psycopg
    from psycopg_pool import ConnectionPool

    from inlet.sync.leases import holder_name

    # A process frozen (SIGSTOP) inside a commit holds its lease row's lock: the server ends such a
    # session after IDLE_IN_TRANSACTION, so a successor's takeover waits at most that long; frozen in
    # the middle of a statement, it is the successor that ends it, finding it by `session_name`.
    # Statements psycopg has prepared (run 5 times on a connection) keep one generic plan: the BM25
    # statement's custom plans, which the server otherwise keeps choosing for its array parameters,
    # were the same plan re-made each time (0.4 ms, about 5% of a search's p50 at 100k chunks).
    kwargs: dict[str, Any] = {"autocommit": True,
                              "options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS} "
                                         "-c plan_cache_mode=force_generic_plan",
                              "application_name": session_name(holder_name())}
    if password_env:
        if password_env not in os.environ:
            raise DatabaseError(f"[index].database_password_env names {password_env}, which is not set")
        kwargs["password"] = os.environ[password_env]
    where = psycopg.conninfo.conninfo_to_dict(url)
    server = f"{where.get('host', 'localhost')}:{where.get('port', 5432)}/{where.get('dbname', '')}"
    pool = ConnectionPool(url, kwargs=kwargs, min_size=1, max_size=8, open=False, name="inlet")
    try:
        pool.open(wait=True, timeout=15)
        with pool.connection() as db:
            migrate(db)
    except Exception as exc:
        pool.close()
        raise DatabaseError(f"cannot use the index database at {server}: {exc}") from exc
    return pool


def migrate(db: psycopg.Connection[Any]) -> int:
    """Apply the migrations this database lacks; returns the schema version."""
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT max(version) FROM schema_version").fetchone()
        version = row[0] if row and row[0] is not None else 0
        for number, sql in enumerate(MIGRATIONS[version:], version + 1):
            log.info("index database: applying schema migration %d", number)
            if callable(sql):
                sql(db)
            else:
                db.execute(sql)   # type: ignore[arg-type]   # our own constant DDL
            db.execute("INSERT INTO schema_version VALUES (%s)", (number,))
    return len(MIGRATIONS)


def _filter_sql(filters: Filters) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if filters.sources:
        where.append("d.source = ANY(%s)")
        params.append(list(filters.sources))
    if filters.source_types:
        where.append("d.source_type = ANY(%s)")
        params.append(list(filters.source_types))
    if filters.after is not None:
        where.append("d.ts >= %s")
        params.append(filters.after)
    if filters.before is not None:
        where.append("d.ts < %s")
        params.append(filters.before)
    if filters.principals is not None:
        where.append("EXISTS (SELECT 1 FROM acl a WHERE a.doc_id = d.doc_id AND a.principal = ANY(%s))")
        params.append(list(filters.principals))
    return where, params


class PgCatalog:
    """The catalog in PostgreSQL; thread-safe (a connection per call from the shared pool)."""

    def __init__(self, config: IndexConfig) -> None:
        self.pool = connect(config)
        self._frequencies = pg_lexical.Frequencies()

    def close(self) -> None:
        disconnect(self.pool)

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self.pool.connection() as db:
            return db.execute(sql, tuple(params)).fetchall()   # type: ignore[arg-type]

    # --- reads --------------------------------------------------------------------------------
    def stored(self, doc_ids: list[str]) -> dict[str, StoredDoc]:
        rows = self._query("SELECT doc_id, content_hash, meta_hash, chunks, source FROM documents "
                           "WHERE doc_id = ANY(%s)", [doc_ids])
        return {r[0]: StoredDoc(*r) for r in rows}

    def document(self, doc_id: str) -> Document | None:
        rows = self._query("SELECT body FROM documents WHERE doc_id = %s", [doc_id])
        return Document.model_validate_json(rows[0][0]) if rows else None

    def documents(self, doc_ids: Iterable[str]) -> dict[str, Document]:
        rows = self._query("SELECT doc_id, body FROM documents WHERE doc_id = ANY(%s)", [list(doc_ids)])
        return {r[0]: Document.model_validate_json(r[1]) for r in rows}

    def doc_times(self, doc_ids: Iterable[str]) -> dict[str, float]:
        rows = self._query("SELECT doc_id, ts FROM documents WHERE doc_id = ANY(%s)", [list(doc_ids)])
        return {r[0]: r[1] for r in rows}

    def chunk_texts(self, chunk_ids: Iterable[str]) -> dict[str, str]:
        rows = self._query("SELECT chunk_id, text FROM chunks WHERE chunk_id = ANY(%s)", [list(chunk_ids)])
        return {r[0]: r[1] for r in rows}

    def visible(self, doc_id: str, principals: tuple[str, ...] | None) -> bool:
        if principals is None:
            return bool(self._query("SELECT 1 FROM documents WHERE doc_id = %s", [doc_id]))
        return bool(self._query("SELECT 1 FROM acl WHERE doc_id = %s AND principal = ANY(%s) LIMIT 1",
                                [doc_id, list(principals)]))

    def source_doc_ids(self, source: str) -> list[str]:
        return [r[0] for r in self._query("SELECT doc_id FROM documents WHERE source = %s ORDER BY doc_id",
                                          [source])]

    def unseen(self, source: str, generation: int) -> list[str]:
        return [r[0] for r in self._query("SELECT doc_id FROM documents WHERE source = %s AND seen_gen < %s",
                                          [source, generation])]

    def counts(self) -> dict[str, tuple[int, int]]:
        rows = self._query("SELECT source, count(*), COALESCE(sum(chunks), 0) FROM documents GROUP BY source")
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def passing(self, chunk_ids: list[str], filters: Filters) -> set[str]:
        docs = list({chunk_doc_id(c) for c in chunk_ids})
        if not docs:
            return set()
        if filters == Filters(principals=filters.principals) and filters.principals is not None:
            rows = self._query("SELECT DISTINCT doc_id FROM acl WHERE doc_id = ANY(%s) AND principal = ANY(%s)",
                               [docs, list(filters.principals)])   # an ACL alone: its key answers
        else:
            where, params = _filter_sql(filters)
            rows = self._query(f"SELECT d.doc_id FROM documents d WHERE d.doc_id = ANY(%s) AND "
                               f"{' AND '.join(where or ['TRUE'])}", [docs, *params])
        keep = {r[0] for r in rows}
        return {c for c in chunk_ids if chunk_doc_id(c) in keep}

    def keyed_chunks(self, keys: list[str]) -> dict[str, str]:
        """key -> one chunk id whose vector has that key (see `dedup`), for the keys that have one."""
        if not keys:
            return {}
        with self.pool.connection() as db:
            rows = db.execute("SELECT key, MIN(chunk_id) FROM chunks WHERE key = ANY(%s) "
                              "AND doc_id NOT IN (SELECT doc_id FROM vector_writes) GROUP BY key", (keys,)).fetchall()
        return {key: chunk for key, chunk in rows}

    def unsettled(self, source: str) -> list[tuple[str, int]]:
        return [(r[0], r[1]) for r in self._query("SELECT doc_id, chunks FROM vector_writes WHERE source = %s",
                                                  [source])]

    def exact_matches(self, query: str, filters: Filters) -> dict[str, int]:
        """chunk id -> how many of the query's rare identifiers and quoted phrases it holds (as the
        SQLite catalog): each term's parts at consecutive positions, in title or text, counted only
        when at most RARE_EXACT chunks hold it; one statement for all of them."""
        exact = [t for t in parse_query(query) if t.exact]
        if not exact:
            return {}
        with self.pool.connection() as db:
            _, df = self._frequencies.get(db, {s for t in exact for s in pg_lexical.stems_of(t)})
            sql, params = pg_lexical.exact_sql(exact, df, RARE_EXACT)
            rows = db.execute(sql, params).fetchall()   # type: ignore[arg-type]   # built from constants
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
        # Words alone (no phrase, whose rarest part leads its match): the statement itself drops the
        # common ones, saving the round trip that reads their frequencies (most queries).
        choose = all(len(t.parts) == 1 for t in terms)
        with self.pool.connection() as db:
            df: dict[str, int] = {}
            if choose:
                chosen = terms
            else:
                total, df = self._frequencies.get(db, {s for t in terms for s in pg_lexical.stems_of(t)})
                if not total:
                    return []
                chosen = pg_lexical.selective(terms, df, total)
            wide_limit = limit * LEXICAL_OVERFETCH
            sql, params = pg_lexical.ranking_sql(chosen, df, wide_limit, filters, False, _filter_sql, choose, limit)
            rows = db.execute(sql, params).fetchall()   # type: ignore[arg-type]   # built from constants
            hits = [(r[0], float(r[1])) for r in rows]
            if len(hits) == limit or rows and rows[0][2] <= wide_limit:   # enough, or every match was seen
                return hits
            sql, params = pg_lexical.ranking_sql(chosen, df, limit, filters, True, _filter_sql, choose)
            return [(r[0], float(r[1])) for r in db.execute(sql, params).fetchall()]   # type: ignore[arg-type]

    # --- writes -------------------------------------------------------------------------------
    def commit(self, batch: Commit) -> None:
        """Write one batch in one transaction, refused unless the batch's fence is still current."""
        from inlet.sync.leases import check_fence

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
                    cur.executemany("UPDATE chunks SET key = %s WHERE chunk_id = %s",
                                    [(key, chunk) for chunk, key in batch.keys])
            if batch.seen:
                db.execute("UPDATE documents SET seen_gen = %s WHERE doc_id = ANY(%s)", (batch.generation, batch.seen))
            if batch.gone:
                db.execute("DELETE FROM acl WHERE doc_id = ANY(%s)", (batch.gone,))
                db.execute("DELETE FROM documents WHERE doc_id = ANY(%s)", (batch.gone,))
            new_terms.subtract(gone_terms)
            _count_terms(db, new_terms)
            if added or dropped:
                db.execute("UPDATE corpus SET chunks = chunks + %s, length = length + %s WHERE id = 1",
                           (added - dropped, added_length - dropped_length))
            if batch.marked:
                marked = {d: (s, n) for d, s, n in sorted(batch.marked, key=lambda m: m[2])}   # one row a document
                db.execute("INSERT INTO vector_writes (doc_id, source, chunks) SELECT * FROM unnest(%s::text[], "
                           "%s::text[], %s::int[]) ON CONFLICT (doc_id) DO UPDATE SET "
                           "chunks = GREATEST(vector_writes.chunks, EXCLUDED.chunks)",
                           (list(marked), [m[0] for m in marked.values()], [m[1] for m in marked.values()]))
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
            terms.update(dict(db.execute("WITH gone AS (DELETE FROM postings WHERE chunk = ANY(%s) RETURNING term) "
                                         "SELECT term, count(*) FROM gone GROUP BY term",
                                         ([r[0] for r in rows],)).fetchall()))
        return len(rows), sum(r[1] for r in rows), terms

    @staticmethod
    def _put_documents(db: psycopg.Connection[Any], docs: list[Document], chunks: dict[str, int],
                       generation: int) -> None:
        if not docs:
            return
        with db.cursor() as cur:
            cur.executemany(
                "INSERT INTO documents (doc_id, source, source_type, content_hash, meta_hash, chunks, seen_gen, "
                "ts, body) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (doc_id) DO UPDATE SET "
                "source = excluded.source, source_type = excluded.source_type, content_hash = "
                "excluded.content_hash, meta_hash = excluded.meta_hash, chunks = COALESCE(%s, documents.chunks), "
                "seen_gen = excluded.seen_gen, ts = excluded.ts, body = excluded.body",
                [(d.id, d.source, d.source_type, d.content_hash(), d.meta_hash(), chunks.get(d.id, 0), generation,
                  doc_ts(d), d.model_dump_json(), chunks.get(d.id)) for d in docs])
        ids = [d.id for d in docs]
        db.execute("DELETE FROM acl WHERE doc_id = ANY(%s)", (ids,))
        acl = [(p, d.id) for d in docs for p in dict.fromkeys(d.acl.principals())]
        if acl:
            with db.cursor().copy("COPY acl (principal, doc_id) FROM STDIN") as copy:
                for row in acl:
                    copy.write_row(row)

    @staticmethod
    def _put_chunks(db: psycopg.Connection[Any], rows: list[ChunkRow]) -> tuple[int, int, Counter[str]]:
        """Insert chunks and their postings: how many, their length, and the chunks each term gained."""
        if not rows:
            return 0, 0, Counter()
        ids = db.execute(
            "INSERT INTO chunks (chunk_id, doc_id, n, text, length) SELECT * FROM unnest("
            "%s::text[], %s::text[], %s::int[], %s::text[], %s::int[]) RETURNING id, chunk_id",
            ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
             [r[5] for r in rows])).fetchall()
        by_chunk = dict((cid, rid) for rid, cid in ids)
        with db.cursor().copy("COPY postings (term, chunk, tf, length, pos) FROM STDIN") as copy:
            for cid, *_, found, length in rows:
                for term, posting in found.items():
                    copy.write_row((term, by_chunk[cid], posting.tf, length, posting.positions))
        return len(rows), sum(r[5] for r in rows), Counter(term for row in rows for term in row[4])


ChunkRow = tuple[str, str, int, str, dict[str, pg_lexical.Posting], int]   # id, doc, n, text, postings, length


def _chunk_rows(embedded: list[tuple[Document, list[str]]]) -> list[ChunkRow]:
    return [(chunk_id(doc.id, n), doc.id, n, text, *pg_lexical.postings(doc.title or "", text))
            for doc, texts in embedded for n, text in enumerate(texts)]


def _count_terms(db: psycopg.Connection[Any], change: Counter[str]) -> None:
    """Add `change` to the terms' chunk counts, locking their rows in term order: two commits
    touching the same terms wait for each other instead of deadlocking."""
    moved = sorted((term, n) for term, n in change.items() if n)
    if moved:
        db.execute("INSERT INTO terms (term, df) SELECT * FROM unnest(%s::text[], %s::bigint[]) ORDER BY 1 "
                   "ON CONFLICT (term) DO UPDATE SET df = terms.df + excluded.df",
                   ([t for t, _ in moved], [n for _, n in moved]))
