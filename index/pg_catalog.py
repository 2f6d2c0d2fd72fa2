"""The PostgreSQL catalog: documents, chunks, ACL principals and a BM25 index, shared by every host.

Same contract as the SQLite catalog (`catalog.py`), so the engine and the server cannot tell them
apart. PostgreSQL has no BM25 (`ts_rank` ignores corpus-wide term rarity and length), so the
ranking is computed here from maintained statistics: a `postings` row per (term, chunk) holding the
term's weighted frequency (title counts double, as in the SQLite index) and the chunk's length,
and one `corpus` row holding the number of chunks and their total length, all written in the
commit's transaction. A query reads each term's document frequency and scores

    sum over terms  idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg_length))

in one SQL statement, with FTS5's constants and IDF (log((N - df + 0.5) / (df + 0.5)), floored),
so both backends rank alike. Terms come from `lexical_terms()`: the one tokeniser of this module.

Every commit checks the committing run's lease fence in its own transaction (`sync/leases.py`).
Schema migrations are applied on start, under an advisory lock so several starters do not race.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from inlet.connectors.model import Document
from inlet.errors import DatabaseError

from .lexical import STOPWORDS
from .catalog import COMMON_TERM, LEXICAL_OVERFETCH, Filters, visible_only, StoredDoc, chunk_doc_id, chunk_id, doc_ts

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from inlet.config import IndexConfig

    from .storage import Commit

log = logging.getLogger(__name__)
K1 = 1.2
B = 0.75
TITLE_WEIGHT = 2
IDLE_IN_TRANSACTION_MS = 5000
MIGRATION_LOCK = 7_150_015   # pg_advisory_xact_lock key: one migrator at a time

MIGRATIONS: list[str] = [
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
    # 5: the vectors' model fingerprint and a reindex under way (fingerprint.py), one row, versioned
    """CREATE TABLE embedding_record (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL,
                                      version BIGINT NOT NULL);""",
    # 6: each daemon's change-event status per source (sync/pg_event_status.py), for status on any host
    """CREATE TABLE daemon_events (source TEXT NOT NULL, holder TEXT NOT NULL, report TEXT NOT NULL,
                                   updated TIMESTAMPTZ NOT NULL, PRIMARY KEY (source, holder));""",
]

_TOKEN = re.compile(r"[^\W_]+")
_pools: dict[str, tuple[ConnectionPool, int]] = {}
_pools_lock = threading.Lock()


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import snowballstemmer   # type: ignore[import-untyped]

    return snowballstemmer.stemmer("porter")


def lexical_terms(text: str) -> list[str]:
    """The index terms of `text`, in order: lower-cased letter/digit runs, Porter-stemmed (what the
    SQLite index's `porter unicode61` tokeniser yields). The one tokeniser of this module."""
    return [_stem(w) for w in _TOKEN.findall(text.lower())]


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


def _open_pool(url: str, password_env: str | None) -> ConnectionPool:
    import psycopg
    from psycopg_pool import ConnectionPool

    # A process frozen (SIGSTOP) inside a commit holds its lease row's lock: the server ends such a
    # session after IDLE_IN_TRANSACTION, so a successor's takeover waits at most that long.
    kwargs: dict[str, Any] = {"autocommit": True,
                              "options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"}
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

    def close(self) -> None:
        disconnect(self.pool)

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self.pool.connection() as db:
            return db.execute(sql, tuple(params)).fetchall()   # type: ignore[arg-type]

    # --- reads --------------------------------------------------------------------------------
    def stored(self, doc_ids: list[str]) -> dict[str, StoredDoc]:
        rows = self._query("SELECT doc_id, content_hash, meta_hash, chunks FROM documents WHERE doc_id = ANY(%s)",
                           [doc_ids])
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
            rows = db.execute("SELECT key, MIN(chunk_id) FROM chunks WHERE key = ANY(%s) GROUP BY key",
                              (keys,)).fetchall()
        return {key: chunk for key, chunk in rows}

    def exact_matches(self, query: str, filters: Filters) -> dict[str, int]:
        """chunk id -> how many of the query's rare identifiers and quoted phrases it holds (as the
        SQLite catalog, `lexical.py`): candidates hold every part's stem (postings), then the parts
        must stand in order, separated only by non-word characters, in the chunk's own text."""
        from .lexical import RARE_EXACT, parse_query

        found: dict[str, int] = {}
        with self.pool.connection() as db:
            for term in parse_query(query):
                if not term.exact:
                    continue
                stems = list(dict.fromkeys(_stem(p) for p in term.parts))
                stems = [s for s in stems if s not in _stop_stems()] or stems   # stopwords have no postings
                pattern = "[^[:alnum:]]+".join(rf"\m{re.escape(p)}\M" for p in term.parts)
                rows = db.execute(
                    "SELECT c.chunk_id FROM chunks c JOIN (SELECT chunk FROM postings WHERE term = ANY(%s) "
                    "GROUP BY chunk HAVING count(*) = %s) p ON p.chunk = c.id WHERE lower(c.text) ~ %s LIMIT %s",
                    (stems, len(stems), pattern, RARE_EXACT + 1)).fetchall()
                if len(rows) <= RARE_EXACT:
                    for (cid,) in rows:
                        found[cid] = found.get(cid, 0) + 1
        return visible_only(found, filters, self.passing)

    def lexical(self, query: str, filters: Filters, limit: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score), best first, filtered like the dense search; the same query
        terms as the SQLite catalog (stopwords out, corpus-common terms dropped). As there, the
        best LEXICAL_OVERFETCH x `limit` are ranked unfiltered and filtered after; only when too
        few pass is the ranking joined with the filters."""
        every = lexical_terms(query)
        terms = list(dict.fromkeys([t for t in every if t not in _stop_stems()] or every))
        if not terms:
            return []
        with self.pool.connection() as db:
            stats = db.execute("SELECT NULL, chunks, length FROM corpus UNION ALL SELECT term, count(*), 0 "
                               "FROM postings WHERE term = ANY(%s) GROUP BY term", (terms,)).fetchall()
            total, length = next(((int(r[1]), int(r[2])) for r in stats if r[0] is None), (0, 0))
            df: dict[str, int] = {r[0]: int(r[1]) for r in stats if r[0] is not None}
            if not total or not df:
                return []
            chosen = [t for t in _selective(terms, df, total) if t in df]
            weights = ([float(max(_idf(total, df[t]), 1e-6)) for t in chosen], length / total)
            wide = _rank(db, chosen, weights, Filters(), limit * LEXICAL_OVERFETCH)
            if filters == Filters():
                return wide[:limit]
            keep = self.passing([cid for cid, _ in wide], filters)
            hits = [hit for hit in wide if hit[0] in keep][:limit]
            if len(hits) == limit or len(wide) < limit * LEXICAL_OVERFETCH:   # enough, or every match was seen
                return hits
            return _rank(db, chosen, weights, filters, limit)

    # --- writes -------------------------------------------------------------------------------
    def commit(self, batch: Commit) -> None:
        """Write one batch in one transaction, refused unless the batch's fence is still current."""
        from inlet.sync.leases import check_fence

        with self.pool.connection() as db, db.transaction():
            check_fence(db, batch.fence)
            docs = [d for d, _ in batch.embedded] + batch.relabelled
            rechunked = [d.id for d, _ in batch.embedded] + batch.gone
            dropped, dropped_length = self._drop_chunks(db, rechunked)
            self._put_documents(db, docs, {d.id: len(t) for d, t in batch.embedded}, batch.generation)
            added, added_length = self._put_chunks(db, batch.embedded)
            if batch.keys:
                with db.cursor() as cur:
                    cur.executemany("UPDATE chunks SET key = %s WHERE chunk_id = %s",
                                    [(key, chunk) for chunk, key in batch.keys])
            if batch.seen:
                db.execute("UPDATE documents SET seen_gen = %s WHERE doc_id = ANY(%s)", (batch.generation, batch.seen))
            if batch.gone:
                db.execute("DELETE FROM acl WHERE doc_id = ANY(%s)", (batch.gone,))
                db.execute("DELETE FROM documents WHERE doc_id = ANY(%s)", (batch.gone,))
            if added or dropped:
                db.execute("UPDATE corpus SET chunks = chunks + %s, length = length + %s WHERE id = 1",
                           (added - dropped, added_length - dropped_length))

    @staticmethod
    def _drop_chunks(db: psycopg.Connection[Any], doc_ids: list[str]) -> tuple[int, int]:
        if not doc_ids:
            return 0, 0
        rows = db.execute("DELETE FROM chunks WHERE doc_id = ANY(%s) RETURNING id, length", (doc_ids,)).fetchall()
        if rows:
            db.execute("DELETE FROM postings WHERE chunk = ANY(%s)", ([r[0] for r in rows],))
        return len(rows), sum(r[1] for r in rows)

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
    def _put_chunks(db: psycopg.Connection[Any], embedded: list[tuple[Document, list[str]]]) -> tuple[int, int]:
        lengths: list[int] = []   # every token of title and text, as FTS5 counts a row's length
        rows = []
        for doc, texts in embedded:
            title = lexical_terms(doc.title or "")
            for n, text in enumerate(texts):
                body = lexical_terms(text)
                rows.append((chunk_id(doc.id, n), doc.id, n, text, _weighted(title, body)))
                lengths.append(len(title) + len(body))
        if not rows:
            return 0, 0
        ids = db.execute(
            "INSERT INTO chunks (chunk_id, doc_id, n, text, length) SELECT * FROM unnest("
            "%s::text[], %s::text[], %s::int[], %s::text[], %s::int[]) RETURNING id, chunk_id",
            ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
             lengths)).fetchall()
        by_chunk = dict((cid, rid) for rid, cid in ids)
        with db.cursor().copy("COPY postings (term, chunk, tf, length) FROM STDIN") as copy:
            for (cid, *_, weights), length in zip(rows, lengths):
                for term, tf in weights.items():
                    copy.write_row((term, by_chunk[cid], tf, length))
        return len(rows), sum(lengths)


def _rank(db: psycopg.Connection[Any], terms: list[str], weights: tuple[list[float], float], filters: Filters,
          limit: int) -> list[tuple[str, float]]:
    """BM25 of the chunks matching `terms` (with their IDFs and the average length in `weights`).
    The `term = ANY` condition lets the planner read only those terms' postings through the primary
    key; joined with the unnest() alone, it estimated badly and scanned every posting."""
    where, params = _filter_sql(filters)
    join = "JOIN chunks c ON c.id = p.chunk JOIN documents d ON d.doc_id = c.doc_id" if where else ""
    sql = ("WITH q(term, idf) AS (SELECT * FROM unnest(%s::text[], %s::float8[])) "
           "SELECT c.chunk_id, s.score FROM (SELECT p.chunk, sum(q.idf * p.tf * %s / "
           "(p.tf + %s * (1 - %s + %s * p.length / %s))) AS score FROM postings p "
           f"JOIN q ON q.term = p.term {join} WHERE p.term = ANY(%s) AND {' AND '.join(where or ['TRUE'])} "
           "GROUP BY p.chunk ORDER BY score DESC, p.chunk LIMIT %s) s "
           "JOIN chunks c ON c.id = s.chunk ORDER BY s.score DESC, s.chunk")
    idf, average = weights
    rows = db.execute(sql, (terms, idf, K1 + 1, K1, B, B, average, terms, *params, limit)).fetchall()   # type: ignore[arg-type]
    return [(r[0], float(r[1])) for r in rows]


def _weighted(title: list[str], body: list[str]) -> Counter[str]:
    """Term -> frequency in a chunk, a title occurrence counting TITLE_WEIGHT times (stopwords are
    dropped from queries with other words, so they get no postings; they still count in the length)."""
    stop = _stop_stems()
    weights: Counter[str] = Counter(t for t in body if t not in stop)
    for term in title:
        if term not in stop:
            weights[term] += TITLE_WEIGHT
    return weights


@lru_cache(maxsize=1)
def _stop_stems() -> frozenset[str]:
    return frozenset(_stem(w) for w in STOPWORDS)


def _idf(total: int, df: int) -> float:
    import math

    return math.log((total - df + 0.5) / (df + 0.5))


def _selective(terms: list[str], df: dict[str, int], total: int) -> list[str]:
    """As the SQLite catalog: a term in over COMMON_TERM of all chunks is dropped while rarer ones remain."""
    if len(terms) < 2:
        return terms
    common = {t for t in terms if df.get(t, 0) > COMMON_TERM * total}
    return [t for t in terms if t not in common] or sorted(terms, key=lambda t: df.get(t, 0))[:2]
