"""The folder's SQLite schemas as named steps (`storage/migrations.py`): `catalog.db` and `state.db`.

The first step of each is the schema of the releases before named steps, all `IF NOT EXISTS`: on
such a folder it creates only what that release had not yet made, and the later steps then alter
it like any other. A step may rewrite rows, not only tables: `m005_fts_words` re-indexes every
chunk's keywords when the tokenizer changed. `connect` opens a file: WAL, busy timeout, migrated;
`transaction` is the one way a statement group runs on such a connection (committed, or rolled
back on any exception). A file SQLite cannot read as a database (overwritten, truncated), or a
damaged page a query reaches later (a bad sector, a torn copy), is a `StorageError` naming it and
what to do (`named_damage`, around opening and every connection's use), not a traceback.
`state.db` records the stored formats (`FORMATS`) after its steps: every command of an earlier
release checks that file before it opens the catalog, so it refuses a folder this inlet opened.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from inlet.connectors.model import Document
from inlet.errors import StorageError

from ..lexical import words
from ..lock import other_holder
from ..migrations import FORMATS, Migrations, blocked, run_script
from ..types import people_rows

CATALOG = Migrations("catalog")
STATE = Migrations("state", formats=FORMATS)


@CATALOG.step
def m001_catalog_tables(db: sqlite3.Connection) -> None:
    run_script(
        db,
        """
    CREATE TABLE IF NOT EXISTS documents (
        doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, source_type TEXT NOT NULL, content_hash TEXT NOT NULL,
        meta_hash TEXT NOT NULL, chunks INTEGER NOT NULL, seen_gen INTEGER NOT NULL DEFAULT 0,
        ts REAL NOT NULL DEFAULT 0, body TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS documents_source ON documents (source, seen_gen);
    CREATE TABLE IF NOT EXISTS chunks (
        rowid INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL, n INTEGER NOT NULL,
        text TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
    CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (title, text, tokenize = 'porter unicode61');
    CREATE TABLE IF NOT EXISTS acl (
        principal TEXT NOT NULL, doc_id TEXT NOT NULL, PRIMARY KEY (principal, doc_id)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS acl_doc ON acl (doc_id);
    CREATE TABLE IF NOT EXISTS chunk_keys (chunk_id TEXT PRIMARY KEY, key TEXT NOT NULL) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS chunk_keys_key ON chunk_keys (key);
    CREATE TABLE IF NOT EXISTS vector_writes (doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, chunks INTEGER NOT NULL)
    """,
    )


@CATALOG.step
def m002_chunk_key_column(db: sqlite3.Connection) -> None:
    """Each chunk's vector key (index/dedup.py) in a column of its row, as the database keeps it,
    instead of a table of its own: written and dropped with the chunk itself."""
    run_script(
        db,
        """
    ALTER TABLE chunks ADD COLUMN key TEXT;
    UPDATE chunks SET key = (SELECT k.key FROM chunk_keys k WHERE k.chunk_id = chunks.chunk_id);
    DROP TABLE chunk_keys;
    CREATE INDEX chunks_key ON chunks (key)
    """,
    )


@CATALOG.step
def m003_people(db: sqlite3.Connection) -> None:
    """Who wrote or took part in each document (`Document.people`), written with it: the search's
    vocabulary of people reads this table, not every document's body."""
    run_script(
        db,
        """
    CREATE TABLE people (person TEXT NOT NULL, doc_id TEXT NOT NULL, PRIMARY KEY (person, doc_id)) WITHOUT ROWID;
    CREATE INDEX people_doc ON people (doc_id)
    """,
    )
    bodies = db.execute("SELECT body FROM documents")
    while rows := bodies.fetchmany(2000):
        docs = [Document.model_validate_json(body) for (body,) in rows]
        db.executemany("INSERT INTO people (person, doc_id) VALUES (?, ?)", [row[:2] for row in people_rows(docs)])


@CATALOG.step
def m004_counts_index(db: sqlite3.Connection) -> None:
    """Documents and chunks per source (`inlet status`, the console) from an index alone: 35 ms at a
    million chunks instead of a scan of every document's row (0.7 s warm, 24 s cold)."""
    run_script(db, "CREATE INDEX documents_source_chunks ON documents (source, chunks)")


def fts_columns(title: str, text: str) -> tuple[str, str]:
    """What `chunks_fts` holds for a chunk: its title's and text's `lexical.words`, space-joined
    (FTS5's `porter unicode61` then only stems them), the tokens every query is parsed into."""
    return " ".join(words(title)), " ".join(words(text))


@CATALOG.step
def m005_fts_words(db: sqlite3.Connection) -> None:
    """Re-index every chunk's keywords as `fts_columns` gives them (the raw text before): CJK
    bigrams, compatibility forms and NFD accents folded, invisible characters dropped. Text that is
    all ASCII indexes as it did; the rest of an index made before finds what it holds only now."""
    db.execute("DELETE FROM chunks_fts")
    rows = db.execute(
        "SELECT c.rowid, c.text, coalesce(json_extract(d.body, '$.title'), '') FROM chunks c "
        "LEFT JOIN documents d ON d.doc_id = c.doc_id"
    )
    while batch := rows.fetchmany(2000):
        db.executemany(
            "INSERT INTO chunks_fts (rowid, title, text) VALUES (?, ?, ?)",
            [(rowid, *fts_columns(title, text)) for rowid, text, title in batch],
        )


@CATALOG.step
def m006_people_identity(db: sqlite3.Connection) -> None:
    """Which of the people table's names are one person (`Document.identities`: a Slack member's
    handle, full name and address): the vocabulary reports each person once, by one name. Only
    documents that name someone more than one way have such rows to fill."""
    db.execute("ALTER TABLE people ADD COLUMN identity TEXT")
    bodies = db.execute(
        "SELECT body FROM documents WHERE body LIKE '%participant_full_names%' OR body LIKE '%participant_emails%'"
    )
    while rows := bodies.fetchmany(2000):
        linked = [row for row in people_rows(Document.model_validate_json(b) for (b,) in rows) if row[2]]
        db.executemany(
            "UPDATE people SET identity = ? WHERE person = ? AND doc_id = ?", [(i, p, d) for p, d, i in linked]
        )


@CATALOG.step
def m007_newest_index(db: sqlite3.Connection) -> None:
    """The documents by time, with what the filters read (`reads.newest_sql`): "the latest Teams
    message" walks it from its end instead of scanning every document's row."""
    run_script(db, "CREATE INDEX documents_newest ON documents (ts, doc_id, source, source_type, chunks)")


@STATE.step
def m001_state_tables(db: sqlite3.Connection) -> None:
    run_script(
        db,
        """
    CREATE TABLE IF NOT EXISTS sources (
        name TEXT PRIMARY KEY, checkpoint TEXT, phase TEXT NOT NULL DEFAULT 'new',
        generation INTEGER NOT NULL DEFAULT 0, since TEXT, last_prune REAL);
    CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL, started_at REAL NOT NULL,
        finished_at REAL, outcome TEXT, upserted INTEGER NOT NULL DEFAULT 0, deleted INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0, embedded INTEGER NOT NULL DEFAULT 0,
        error TEXT);
    CREATE INDEX IF NOT EXISTS runs_source ON runs (source, id);
    CREATE TABLE IF NOT EXISTS run_progress (
        run_id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, seen INTEGER NOT NULL, done INTEGER, total INTEGER,
        unit TEXT, updated REAL NOT NULL);
    CREATE TABLE IF NOT EXISTS daemon_schedule (
        source TEXT PRIMARY KEY, next_run REAL, pid INTEGER NOT NULL, updated REAL NOT NULL);
    CREATE TABLE IF NOT EXISTS paused (source TEXT PRIMARY KEY, since REAL NOT NULL);
    CREATE TABLE IF NOT EXISTS daemon_events (
        source TEXT PRIMARY KEY, report TEXT NOT NULL, pid INTEGER NOT NULL, updated REAL NOT NULL)
    """,
    )


@STATE.step
def m002_run_skips(db: sqlite3.Connection) -> None:
    """The first items each run skipped, with reasons (`SKIPS_KEPT` of them), for `inlet status`."""
    run_script(
        db,
        """
    CREATE TABLE IF NOT EXISTS run_skips (
        run_id INTEGER NOT NULL, n INTEGER NOT NULL, item_id TEXT NOT NULL, title TEXT, reason TEXT NOT NULL,
        failed INTEGER NOT NULL, PRIMARY KEY (run_id, n))
    """,
    )


@STATE.step
def m003_recent_window(db: sqlite3.Connection) -> None:
    """A backfill's completed recent window (the engine's recent pass): how far back a source is searchable."""
    run_script(db, "ALTER TABLE sources ADD COLUMN recent TEXT")


@STATE.step
def m004_scope_fingerprint(db: sqlite3.Connection) -> None:
    """The digest of the config keys that choose what a source reads (`SourceState.scope`)."""
    run_script(db, "ALTER TABLE sources ADD COLUMN scope TEXT")


@STATE.step
def m005_run_retry_at(db: sqlite3.Connection) -> None:
    """When the service that failed a run allows the next call (its Retry-After): the daemon waits."""
    run_script(db, "ALTER TABLE runs ADD COLUMN retry_at REAL")


@STATE.step
def m006_source_coverage(db: sqlite3.Connection) -> None:
    """How far back a source's completed passes reach (`SourceState.covered`), apart from the date
    the current pass loads from; a source past its backfill covers what its last pass did."""
    run_script(
        db,
        """
    ALTER TABLE sources ADD COLUMN covered TEXT;
    UPDATE sources SET covered = COALESCE(since, 'all') WHERE phase = 'incremental'
    """,
    )


@STATE.step
def m007_run_history(db: sqlite3.Connection) -> None:
    """The runs by source and kind, which each run's end trims to the newest `RUNS_KEPT`
    (`SqlState._trim_runs`), and the unfinished ones (`sources_with_unfinished_runs` reads these
    alone); the progress rows of finished runs, which nothing reads, go."""
    run_script(
        db,
        """
    CREATE INDEX runs_kind ON runs (source, kind, id);
    CREATE INDEX runs_unfinished ON runs (source) WHERE finished_at IS NULL;
    DELETE FROM run_progress WHERE run_id NOT IN (SELECT id FROM runs WHERE finished_at IS NULL)
    """,
    )


def refuse_newer(db: sqlite3.Connection, path: Path, migrations: Migrations) -> None:
    """`Migrations.check` for a connection opened read-only: a file holding steps this inlet does
    not know is refused (a file from before the record passes: its next writer migrates it)."""
    try:
        applied = {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
    except sqlite3.OperationalError:
        return
    migrations.check(applied, f"the index file {path}")


@contextmanager
def named_damage(path: Path) -> Iterator[None]:
    """Opening or using the index file `path`: SQLite finding no database there, or a damaged page
    (its `DatabaseError` proper: not a locked or busy file, which are `OperationalError`s, nor a
    constraint, an `IntegrityError`), is a `StorageError` naming the file and the way back."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if type(exc) is not sqlite3.DatabaseError:
            raise
        raise damaged(path, str(exc)) from exc


def damaged(path: Path, why: str) -> StorageError:
    """The error for the damaged index file `path`: what SQLite said and the way back."""
    return StorageError(
        f"the index file {path} is damaged ({why}): restore the index from a backup "
        f"(`inlet restore BACKUP --to {path.parent} --replace`), or move the folder aside and sync again"
    )


def connect(path: Path, migrations: Migrations, timeout: float = 10.0, synchronous: str = "FULL") -> sqlite3.Connection:
    """A writer connection to `path` (WAL, autocommit), its schema migrated in one transaction."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
    try:
        with named_damage(path):
            _wal(db, timeout)
            db.execute(f"PRAGMA synchronous = {synchronous}")
            db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            with transaction(db, "BEGIN IMMEDIATE"):
                migrations.apply(db, "?", f"the index file {path}", guard=_no_earlier_holder(path))
    except BaseException:
        db.close()
        raise
    return db


def _no_earlier_holder(path: Path) -> Callable[[sqlite3.Connection, list[str]], None]:
    """The guard of `Migrations.apply` for the index file `path`: an existing file (a new one is
    created, not upgraded) is not migrated while another live process holds its folder's index lock.
    Steps to apply mean no process of this inlet opened it since: that holder is an earlier one."""

    def guard(db: sqlite3.Connection, names: list[str]) -> None:
        tables = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name != 'schema_migrations'")
        if tables.fetchone() is None:
            return
        holder = other_holder(path.parent)
        if holder is not None:
            pid = holder.get("pid", "?")
            who = f"pid {pid} ({holder.get('command', 'inlet')})"
            raise blocked(f"the index at {path.parent}", who, names, f"Ctrl-C, `kill {pid}` or its service manager")

    return guard


def pending(path: Path, migrations: Migrations) -> list[str]:
    """The steps of `migrations` the existing file `path` lacks (read-only; [] when it is absent or
    new): what the next process of this inlet that writes to it applies."""
    if not path.is_file():
        return []
    db = sqlite3.connect(path, timeout=10)  # not mode=ro: closing it removes the -wal and -shm it made
    try:
        with named_damage(path):
            db.execute("PRAGMA query_only = ON")
            tables = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name != 'schema_migrations'")
            if tables.fetchone() is None:
                return []
            try:
                applied = {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
            except sqlite3.OperationalError:
                applied = set()
            migrations.check(applied, f"the index file {path}")
            return migrations.pending(applied)
    finally:
        db.close()


def _wal(db: sqlite3.Connection, timeout: float) -> None:
    """Puts the file in WAL mode, waiting up to `timeout` for another process doing the same: two
    commands opening a new index at once (`inlet status` beside a backfill) each read the empty
    file, and SQLite refuses one of them at once, without its busy handler, rather than let both
    wait for each other's read lock ("database is locked")."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                db.close()
                raise
        time.sleep(0.01)


@contextmanager
def transaction(db: sqlite3.Connection, begin: str = "BEGIN") -> Iterator[sqlite3.Connection]:
    """`begin` (BEGIN IMMEDIATE to take the write lock first), then COMMIT, or ROLLBACK on any
    exception; `db` is an autocommit connection, and the caller holds whatever lock guards it."""
    db.execute(begin)
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
