"""The index database's schema as named steps (`storage/migrations.py`), applied on start under an
advisory lock so several starters do not race.

No step is applied while a process of an earlier inlet uses the database: a live lease names it, or a
daemon connected to it plans runs (`migrate`). The stored formats (`migrations.FORMATS`) are
recorded after the steps, so a format change alone is refused the same way.

Databases made before named steps recorded numbered versions in `schema_version` (1 to 9): such a
database is adopted, its first N steps recorded as applied, and migrated on from there. The steps
keep the numbered migrations' DDL as it was, so an adopted database and a new one are the same.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..migrations import FORMATS, Migrations, blocked
from ..types import people_rows
from . import lexical

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)
MIGRATION_LOCK = 7_150_015  # pg_advisory_xact_lock key: one migrator at a time
DATABASE = Migrations("index database", formats=FORMATS)


@DATABASE.step
def m001_initial(db: psycopg.Connection[Any]) -> None:
    db.execute("""
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
    """)


@DATABASE.step
def m002_paused(db: psycopg.Connection[Any]) -> None:
    """Operators' pauses of a source's schedule (the console)."""
    db.execute("CREATE TABLE paused (source TEXT PRIMARY KEY, since DOUBLE PRECISION NOT NULL)")


@DATABASE.step
def m003_chunk_key(db: psycopg.Connection[Any]) -> None:
    """Each chunk's vector key (index/dedup.py): identical texts reuse a stored vector."""
    db.execute("ALTER TABLE chunks ADD COLUMN key TEXT; CREATE INDEX chunks_key ON chunks (key)")


@DATABASE.step
def m004_run_progress(db: psycopg.Connection[Any]) -> None:
    """A run in flight's progress, for `inlet status` on any host."""
    db.execute(
        "CREATE TABLE run_progress (run_id BIGINT PRIMARY KEY, holder TEXT NOT NULL, seen INTEGER NOT NULL, "
        "done INTEGER, total INTEGER, unit TEXT, updated DOUBLE PRECISION NOT NULL)"
    )


@DATABASE.step
def m005_postings_positions(db: psycopg.Connection[Any]) -> None:
    """Postings keep positions (phrases, identifiers); the key covers what ranking reads (index-only
    scans) and each term's chunk count is kept (IDF without counting postings); the ACL check reads
    its key alone."""
    db.execute("""ALTER TABLE postings ADD COLUMN pos INTEGER[];
       ALTER TABLE postings DROP CONSTRAINT postings_pkey, ADD PRIMARY KEY (term, chunk) INCLUDE (tf, length);
       CREATE TABLE terms (term TEXT PRIMARY KEY, df BIGINT NOT NULL);
       DROP INDEX acl_doc; CREATE INDEX acl_doc ON acl (doc_id, principal);""")


@DATABASE.step
def m006_repost(db: psycopg.Connection[Any]) -> None:
    """Rewrite every chunk's postings with positions and stopwords (phrases on PostgreSQL)."""
    done = _repost(db)
    log.info("index database: rewrote the postings of %d chunks with positions", done)


def _repost(db: psycopg.Connection[Any]) -> int:
    """Every chunk's postings, lengths and the corpus counts written anew from its title and text
    (`lexical.postings`); returns how many chunks."""
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
                    found, length = lexical.postings(titles[doc_id], text)
                    lengths.append((length, rid))
                    for term, posting in found.items():
                        copy.write_row((term, rid, posting.tf, length, posting.positions))
            with db.cursor() as cur:
                cur.executemany("UPDATE chunks SET length = %s WHERE id = %s", lengths)
            done += len(rows)
    db.execute(
        "UPDATE corpus SET chunks = (SELECT count(*) FROM chunks), "
        "length = (SELECT COALESCE(sum(length), 0) FROM chunks) WHERE id = 1"
    )
    db.execute("TRUNCATE terms")
    db.execute("INSERT INTO terms SELECT term, count(*) FROM postings GROUP BY term")
    return done


@DATABASE.step
def m007_embedding_record(db: psycopg.Connection[Any]) -> None:
    """The vectors' model fingerprint and a reindex under way (index/fingerprint.py), one row, versioned."""
    db.execute(
        "CREATE TABLE embedding_record (id INTEGER PRIMARY KEY CHECK (id = 1), record TEXT NOT NULL, "
        "version BIGINT NOT NULL)"
    )


@DATABASE.step
def m008_daemon_events(db: psycopg.Connection[Any]) -> None:
    """Each daemon's change-event status per source (postgres/event_status.py), for status on any host."""
    db.execute(
        "CREATE TABLE daemon_events (source TEXT NOT NULL, holder TEXT NOT NULL, report TEXT NOT NULL, "
        "updated TIMESTAMPTZ NOT NULL, PRIMARY KEY (source, holder))"
    )


@DATABASE.step
def m009_vector_writes(db: psycopg.Connection[Any]) -> None:
    """Documents whose vectors a write was touching (Index.repair settles what a crash left)."""
    db.execute("CREATE TABLE vector_writes (doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, chunks INTEGER NOT NULL)")


@DATABASE.step
def m010_run_skips(db: psycopg.Connection[Any]) -> None:
    """The first items each run skipped, with reasons (`SKIPS_KEPT` of them), for `inlet status`."""
    db.execute(
        "CREATE TABLE run_skips (run_id BIGINT NOT NULL, n INTEGER NOT NULL, item_id TEXT NOT NULL, "
        "title TEXT, reason TEXT NOT NULL, failed BOOLEAN NOT NULL, PRIMARY KEY (run_id, n))"
    )


@DATABASE.step
def m011_rate_buckets(db: psycopg.Connection[Any]) -> None:
    """Rate limits shared by every API replica: one token bucket per key name or OAuth user."""
    db.execute("CREATE TABLE rate_buckets (name TEXT PRIMARY KEY, tat DOUBLE PRECISION NOT NULL)")


@DATABASE.step
def m012_recent_window(db: psycopg.Connection[Any]) -> None:
    """A backfill's completed recent window (the engine's recent pass): how far back a source is searchable."""
    db.execute("ALTER TABLE sources ADD COLUMN recent TEXT")


@DATABASE.step
def m013_people(db: psycopg.Connection[Any]) -> None:
    """Who wrote or took part in each document (`Document.people`), written with it: the search's
    vocabulary of people reads this table, not every document's body."""
    from inlet.connectors.model import Document

    db.execute(
        "CREATE TABLE people (person TEXT NOT NULL, doc_id TEXT NOT NULL, PRIMARY KEY (person, doc_id)); "
        "CREATE INDEX people_doc ON people (doc_id)"
    )
    with db.cursor(name="people") as bodies:
        bodies.execute("SELECT body FROM documents")
        while rows := bodies.fetchmany(2000):
            docs = [Document.model_validate_json(body) for (body,) in rows]
            with db.cursor().copy("COPY people (person, doc_id) FROM STDIN") as copy:
                for row in people_rows(docs):
                    copy.write_row(row[:2])


@DATABASE.step
def m014_counts_index(db: psycopg.Connection[Any]) -> None:
    """Documents and chunks per source (`inlet status`, the console) from an index-only scan."""
    db.execute("CREATE INDEX documents_source_chunks ON documents (source, chunks)")


@DATABASE.step
def m015_scope_fingerprint(db: psycopg.Connection[Any]) -> None:
    """The digest of the config keys that choose what a source reads (`SourceState.scope`)."""
    db.execute("ALTER TABLE sources ADD COLUMN scope TEXT")


def _numbered(db: psycopg.Connection[Any]) -> int:
    """How many numbered migrations a database made before named steps has (0: none, or a new one)."""
    if db.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:  # type: ignore[index]
        return 0
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(db: psycopg.Connection[Any], where: str, me: str = "") -> list[str]:
    """Apply the steps this database lacks (its stored formats too), in one transaction; returns
    their names. Steps to apply mean no process of this inlet connected since, so any other running
    inlet daemon is of an earlier release: refused (`UpgradeBlockedError`) while a process other
    than `me` (`pool.holder_name`) holds a live lease, or plans runs (`daemon_schedule`) with a
    session open on the database (named `pool.session_name` of it): a daemon idle between two runs
    holds no lease, but keeps its connection and its plans."""

    def guard(db: psycopg.Connection[Any], names: list[str]) -> None:
        if db.execute("SELECT to_regclass('leases')").fetchone()[0] is None:  # type: ignore[index]
            return
        live = db.execute(
            "SELECT holder, min(source), count(*), max(extract(epoch FROM expires - now())) FROM leases "
            "WHERE expires > now() AND holder <> %s GROUP BY holder ORDER BY holder",
            (me,),
        ).fetchall()
        leasing = {holder for holder, *_ in live}
        # a session's name is `session_name(holder)`: "inlet " and the holder, cut to 63 bytes
        idle = db.execute(
            "SELECT holder, min(source), count(*) FROM daemon_schedule s WHERE holder <> %s AND EXISTS "
            "(SELECT 1 FROM pg_stat_activity a WHERE a.application_name = left('inlet ' || s.holder, 63)) "
            "GROUP BY holder ORDER BY holder",
            (me,),
        ).fetchall()
        who = [
            f"{holder} (holding the lease of source {source!r}"
            + (f" and {count - 1} more" if count > 1 else "")
            + f", live for {float(left):.0f} s more)"
            for holder, source, count, left in live
        ] + [
            f"{holder} (a daemon connected to it, planning the runs of source {source!r}"
            + (f" and {count - 1} more" if count > 1 else "")
            + ")"
            for holder, source, count in idle
            if holder not in leasing
        ]
        if who:
            raise blocked(
                where,
                " and ".join(who),
                names,
                "stop the daemons of the earlier inlet on every host; a stopped one's lease lapses by itself",
            )

    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        return DATABASE.apply(db, "%s", where, adopted=_numbered, guard=guard)


@DATABASE.step
def m016_run_retry_at(db: psycopg.Connection[Any]) -> None:
    """When the service that failed a run allows the next call (its Retry-After): every daemon waits."""
    db.execute("ALTER TABLE runs ADD COLUMN retry_at DOUBLE PRECISION")


@DATABASE.step
def m017_repost_words(db: psycopg.Connection[Any]) -> None:
    """Rewrite every chunk's postings with the tokenizer that splits CJK text into bigrams, folds
    compatibility forms and NFD accents and drops invisible characters (`lexical.words`): text all
    ASCII gets the postings it had; the rest of a database made before is found only now."""
    done = _repost(db)
    log.info("index database: re-indexed the keywords of %d chunks", done)


@DATABASE.step
def m018_source_coverage(db: psycopg.Connection[Any]) -> None:
    """How far back a source's completed passes reach (`SourceState.covered`), apart from the date
    the current pass loads from; a source past its backfill covers what its last pass did."""
    db.execute("ALTER TABLE sources ADD COLUMN covered TEXT")
    db.execute("UPDATE sources SET covered = COALESCE(since, 'all') WHERE phase = 'incremental'")


@DATABASE.step
def m019_acl_key_bytewise(db: psycopg.Connection[Any]) -> None:
    """The ACL's key (principal, document id) with the id in byte order, whatever the database's
    collation: the documents of one source a principal may see are then one range of it (ids are
    `source:...`), so which sources a caller may see is one probe per source and principal
    (`CatalogReads.visible_sources`). It replaces the primary key: the same rows, one index."""
    db.execute('CREATE UNIQUE INDEX acl_principal_doc ON acl (principal, doc_id COLLATE "C")')
    db.execute("ALTER TABLE acl DROP CONSTRAINT acl_pkey")


@DATABASE.step
def m020_people_identity(db: psycopg.Connection[Any]) -> None:
    """Which of the people table's names are one person (`Document.identities`: a Slack member's
    handle, full name and address): the vocabulary reports each person once, by one name. Only
    documents that name someone more than one way have such rows to fill."""
    from inlet.connectors.model import Document

    db.execute("ALTER TABLE people ADD COLUMN identity TEXT")
    with db.cursor(name="people_identity") as bodies:
        bodies.execute(
            "SELECT body FROM documents WHERE body LIKE '%participant_full_names%' OR body LIKE '%participant_emails%'"
        )
        while rows := bodies.fetchmany(2000):
            linked = [row for row in people_rows(Document.model_validate_json(b) for (b,) in rows) if row[2]]
            with db.cursor() as cur:
                cur.executemany(
                    "UPDATE people SET identity = %s WHERE person = %s AND doc_id = %s",
                    [(i, p, d) for p, d, i in linked],
                )


@DATABASE.step
def m021_newest_index(db: psycopg.Connection[Any]) -> None:
    """The documents by time, with what the filters read (`reads.newest_sql`): "the latest Teams
    message" walks it from its end instead of scanning every document's row. A plain build (about
    2 s per million documents, docs/operations/upgrades.md): steps run in the migration's
    transaction, where `CONCURRENTLY` cannot."""
    db.execute("CREATE INDEX documents_newest ON documents (ts, doc_id) INCLUDE (source, source_type, chunks)")


@DATABASE.step
def m022_run_history(db: psycopg.Connection[Any]) -> None:
    """The runs by source and kind, which each run's end trims to the newest `RUNS_KEPT`
    (`SqlState._trim_runs`), and the unfinished ones (`sources_with_unfinished_runs` reads these
    alone); the progress rows of finished runs, which nothing reads, go."""
    db.execute(
        "CREATE INDEX runs_kind ON runs (source, kind, id); "
        "CREATE INDEX runs_unfinished ON runs (source) WHERE finished_at IS NULL; "
        "DELETE FROM run_progress WHERE run_id NOT IN (SELECT id FROM runs WHERE finished_at IS NULL)"
    )
