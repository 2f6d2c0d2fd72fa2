"""An index made by the release before named schema steps opens, searches and syncs with this one;
a schema newer than the code is refused with exit 2 (folder and PostgreSQL)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from inlet.config import IndexConfig
from inlet.connectors.model import Document
from inlet.errors import ConfigError
from inlet.storage import StateStore
from inlet.storage.migrations import Migrations, SchemaTooNewError
from inlet.storage.postgres import pool
from inlet.storage.postgres.schema import DATABASE
from inlet.storage.sqlite.schema import CATALOG, STATE, connect

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "index-0.1.0"


def before(migrations: Migrations, step: str) -> Migrations:
    """The steps of `migrations` a release before `step` had: a database connected with them is as
    that release left it."""
    earlier = Migrations(migrations.name)
    for _, fn in migrations.steps[: migrations.names.index(step)]:
        earlier.step(fn)
    return earlier


def inlet(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "INLET_CONFIG": str(cwd / "config.toml")}
    return subprocess.run(
        [sys.executable, "-m", "inlet", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def old_folder(tmp_path: Path) -> Path:
    copy = tmp_path / "old"
    shutil.copytree(FIXTURE, copy)
    return copy


def applied(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
    finally:
        db.close()


def test_the_previous_release_s_folder_opens_searches_and_syncs(old_folder: Path) -> None:
    assert (
        "schema_migrations"
        not in sqlite3.connect(old_folder / "index" / "catalog.db")
        .execute("SELECT group_concat(name) FROM sqlite_master")
        .fetchone()[0]
    )
    found = inlet(old_folder, "search", "replica failover runbook", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["results"]
    assert hits and hits[0]["doc_id"] == "team:incident.md"
    hidden = json.loads(inlet(old_folder, "search", "replica failover", "--user", "bob@example.com", "--json").stdout)[
        "results"
    ]
    assert all(h["source"] != "team" for h in hidden)  # the old ACL rows still hold
    assert sorted(applied(old_folder / "index" / "catalog.db")) == sorted(CATALOG.names)

    (old_folder / "docs" / "handbook" / "laptops.md").write_text(
        "# Laptops\n\nLaptops are replaced every four years by the IT desk.\n"
    )
    synced = inlet(old_folder, "sync", "handbook", "--json")
    assert synced.returncode == 0, synced.stderr
    assert sorted(applied(old_folder / "index" / "state.db")) == sorted(STATE.names)
    status = json.loads(inlet(old_folder, "status", "--json").stdout)
    handbook = next(s for s in status["sources"] if s["name"] == "handbook")
    assert handbook["documents"] == 3 and handbook["last_run"]["kind"] == "sync"  # the old run record is kept
    new = json.loads(inlet(old_folder, "search", "when are laptops replaced", "--json").stdout)["results"]
    assert new[0]["doc_id"] == "handbook:laptops.md"


def test_a_folder_written_by_a_newer_inlet_is_refused_with_exit_2(old_folder: Path) -> None:
    connect(old_folder / "index" / "state.db", STATE).close()  # migrated, as any command writing to it does
    db = sqlite3.connect(old_folder / "index" / "state.db")
    db.execute("INSERT INTO schema_migrations VALUES ('m999_from_the_future', 0)")
    db.commit()
    db.close()
    refused = inlet(old_folder, "status")
    assert refused.returncode == 2
    assert "m999_from_the_future" in refused.stderr and "newer inlet" in refused.stderr


def test_search_and_backup_refuse_a_state_written_by_a_newer_inlet_naming_it(old_folder: Path, tmp_path: Path) -> None:
    """Commands that open only the catalog check state.db too (read-only): a backup is refused
    before it copies anything, naming the index's state.db, not a copy of it."""
    from click.testing import CliRunner

    from inlet.cli import cli

    connect(old_folder / "index" / "state.db", STATE).close()  # migrated, as any command run on it does
    db = sqlite3.connect(old_folder / "index" / "state.db")
    db.execute("INSERT INTO schema_migrations VALUES ('m999_from_the_future', 0)")
    db.commit()
    db.close()
    config = str(old_folder / "config.toml")
    searched = CliRunner().invoke(cli, ["search", "runbook", "--config", config])
    assert searched.exit_code == 2 and "m999_from_the_future" in searched.output, searched.output
    dest = tmp_path / "backup"
    backed_up = CliRunner().invoke(cli, ["backup", str(dest), "--config", config])
    assert backed_up.exit_code == 2, backed_up.output
    assert f"{old_folder / 'index' / 'state.db'}:" in " ".join(backed_up.output.split())
    assert "m999_from_the_future" in backed_up.output and not dest.exists()


def tables(path: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        db.close()


def test_status_reads_a_folder_an_earlier_inlet_wrote_without_upgrading_it(old_folder: Path) -> None:
    """`inlet status` is a look, not an upgrade: the earlier release can still open the folder after
    it. It shows what the folder holds (its runs read through a migrated copy in memory) and says
    that the next command that opens it upgrades it, a read too (`inlet search`, an agent's `inlet
    mcp`): an operator who checks the index with a search before deciding has upgraded it."""
    from click.testing import CliRunner

    from inlet.cli import cli

    index = old_folder / "index"
    before_ = {name: tables(index / name) for name in ("catalog.db", "state.db")}
    config = str(old_folder / "config.toml")
    shown = CliRunner().invoke(cli, ["status", "--json", "--config", config])
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.output)
    handbook = next(s for s in payload["sources"] if s["name"] == "handbook")
    assert handbook["documents"] == 2 and handbook["last_run"]["outcome"] == "ok"
    assert "catalog m003_people" in payload["upgrade"] and "state m004_scope_fingerprint" in payload["upgrade"]
    prose = CliRunner().invoke(cli, ["status", "--config", config])
    assert prose.exit_code == 0 and "index written by an earlier inlet" in prose.output, prose.output
    said = " ".join(prose.output.split())
    assert "the next command that opens it, to read or to write (search, mcp," in said
    assert "all but status and audit), upgrades its schema" in said
    assert {name: tables(index / name) for name in ("catalog.db", "state.db")} == before_  # nothing migrated

    connect(index / "catalog.db", CATALOG).close()  # as a read (`inlet search`) opens it
    after = json.loads(CliRunner().invoke(cli, ["status", "--json", "--config", config]).output)
    assert after["upgrade"] == ["state " + name for name in STATE.names]


@pytest.fixture
def held(old_folder: Path) -> Iterator[int]:
    """The folder's index lock held by another process (as a daemon of an earlier inlet holds it:
    its pid and command written in the lock file); yields its pid."""
    script = (
        "import fcntl, json, os, sys\n"
        "f = open(sys.argv[1], 'a+')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\n"
        "f.truncate(0); f.write(json.dumps({'pid': os.getpid(), 'command': 'inlet daemon'})); f.flush()\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(old_folder / "index" / "index.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


def test_no_command_upgrades_a_folder_an_earlier_inlet_holds(old_folder: Path, held: int) -> None:
    """A process of an earlier inlet holding the folder would go on writing with its own rules
    beside a migrated schema: opening either file for writing is refused with exit 2, naming that
    process's pid and to stop it first; nothing is changed. `inlet status` still reads."""
    from click.testing import CliRunner

    from inlet.cli import cli

    index = old_folder / "index"
    before_ = {name: tables(index / name) for name in ("catalog.db", "state.db")}
    for name, migrations in (("catalog.db", CATALOG), ("state.db", STATE)):
        with pytest.raises(ConfigError) as refused:  # UpgradeBlockedError
            connect(index / name, migrations)
        assert refused.value.exit_code == 2
        message = " ".join(str(refused.value).split())
        assert f"pid {held} (inlet daemon)" in message and "earlier inlet" in message and "Stop it first" in message
    config = str(old_folder / "config.toml")
    shown = CliRunner().invoke(cli, ["status", "--json", "--config", config])
    assert shown.exit_code == 0 and json.loads(shown.output)["upgrade"], shown.output
    assert {name: tables(index / name) for name in ("catalog.db", "state.db")} == before_


def test_status_refuses_a_catalog_written_by_a_newer_inlet_too(old_folder: Path) -> None:
    """`status` reads the catalog read-only (beside a running daemon) and still checks its steps."""
    assert inlet(old_folder, "search", "runbook").returncode == 0  # migrates the catalog
    db = sqlite3.connect(old_folder / "index" / "catalog.db")
    db.execute("INSERT INTO schema_migrations VALUES ('m999_from_the_future', 0)")
    db.commit()
    db.close()
    refused = inlet(old_folder, "status", "--json")
    assert refused.returncode == 2 and not refused.stdout
    assert "catalog.db" in refused.stderr and "m999_from_the_future" in refused.stderr


def test_the_people_of_documents_written_before_their_table_are_read_into_it(tmp_path: Path) -> None:
    db = connect(tmp_path / "catalog.db", before(CATALOG, "m003_people"))
    mail = Document(
        id="m:1", source="m", source_type="outlook", text="hi", author="Ann@Example.com", metadata={"sender": "x@y.org"}
    )
    db.execute(
        "INSERT INTO documents (doc_id, source, source_type, content_hash, meta_hash, chunks, body) "
        "VALUES (?, ?, ?, '', '', 0, ?)",
        [mail.id, mail.source, mail.source_type, mail.model_dump_json()],
    )
    db.close()
    db = connect(tmp_path / "catalog.db", CATALOG)
    try:
        assert db.execute("SELECT person, doc_id FROM people ORDER BY person").fetchall() == [
            ("ann@example.com", "m:1"),
            ("x@y.org", "m:1"),
        ]
    finally:
        db.close()


THREAD = Document(  # a Slack thread: its member "hamza" is also Hamza Faran, hamza@example.com
    id="s:1",
    source="s",
    source_type="slack",
    text="hi",
    author="hamza",
    metadata={
        "participants": ["hamza"],
        "participant_full_names": ["Hamza Faran"],
        "participant_emails": ["hamza@example.com"],
    },
)
LINKED = [
    ("hamza", "hamza@example.com"),
    ("hamza faran", "hamza@example.com"),
    ("hamza@example.com", "hamza@example.com"),
]


def test_the_names_of_one_person_written_before_they_were_linked_are_linked(tmp_path: Path) -> None:
    db = connect(tmp_path / "catalog.db", before(CATALOG, "m006_people_identity"))
    db.execute(
        "INSERT INTO documents (doc_id, source, source_type, content_hash, meta_hash, chunks, body) "
        "VALUES (?, ?, ?, '', '', 0, ?)",
        [THREAD.id, THREAD.source, THREAD.source_type, THREAD.model_dump_json()],
    )
    db.executemany("INSERT INTO people (person, doc_id) VALUES (?, ?)", [(p, THREAD.id) for p in THREAD.people()])
    db.commit()
    db.close()
    db = connect(tmp_path / "catalog.db", CATALOG)
    try:
        assert db.execute("SELECT person, identity FROM people ORDER BY person").fetchall() == LINKED
    finally:
        db.close()


def test_the_names_of_one_person_in_a_database_are_linked_on_migration(database_url: str) -> None:
    with database_before(database_url, "m020_people_identity") as db:
        db.execute(
            "INSERT INTO documents (doc_id, source, source_type, content_hash, meta_hash, chunks, body) "
            "VALUES (%s, %s, %s, '', '', 0, %s)",
            (THREAD.id, THREAD.source, THREAD.source_type, THREAD.model_dump_json()),
        )
        for person in THREAD.people():
            db.execute("INSERT INTO people (person, doc_id) VALUES (%s, %s)", (person, THREAD.id))
    config = IndexConfig(path=Path("unused"), database_url=database_url, chroma_url="http://127.0.0.1:1")
    connection = pool.connect(config)
    try:
        with connection.connection() as db:
            assert db.execute("SELECT person, identity FROM people ORDER BY person").fetchall() == LINKED
    finally:
        pool.disconnect(connection)


def test_a_database_of_numbered_migrations_is_adopted_and_migrated_on(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as db, db.transaction():  # as the release left it at 5
        for _, step in DATABASE.steps[:5]:
            step(db)
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema_version SELECT generate_series(1, 5)")
    config = IndexConfig(path=Path("unused"), database_url=database_url, chroma_url="http://127.0.0.1:1")
    connection = pool.connect(config)
    try:
        with connection.connection() as db:
            names = [r[0] for r in db.execute("SELECT name FROM schema_migrations ORDER BY name")]
            assert names == sorted(DATABASE.names)
            assert db.execute("SELECT to_regclass('vector_writes')").fetchone()[0] == "vector_writes"  # step 9 ran
            db.execute("INSERT INTO schema_migrations VALUES ('m999_from_the_future', 0)")
    finally:
        pool.disconnect(connection)
    with pytest.raises(SchemaTooNewError, match="m999_from_the_future") as refused:
        pool.connect(config)
    assert refused.value.exit_code == 2


def keeps_a_source_with_no_scope_digest_yet(state: StateStore) -> None:
    """The source row written before the step reads with no digest, and one saved is kept."""
    try:
        source = state.source("s")
        assert source.phase == "incremental" and source.checkpoint == {"n": 1} and source.scope is None
        source.scope = {"channels": "0123456789abcdef"}
        state.save_source(source)
        assert state.source("s").scope == {"channels": "0123456789abcdef"}
    finally:
        state.close()


def test_a_folder_s_sources_gain_an_unrecorded_scope_digest(tmp_path: Path) -> None:
    from inlet.storage.sqlite.state import SqliteState

    db = connect(tmp_path / "state.db", before(STATE, "m004_scope_fingerprint"))
    db.execute("INSERT INTO sources (name, checkpoint, phase, generation) VALUES ('s', '{\"n\": 1}', 'incremental', 2)")
    db.commit()
    db.close()
    keeps_a_source_with_no_scope_digest_yet(SqliteState(tmp_path / "state.db"))


@contextmanager
def database_before(database_url: str, step: str) -> Iterator[Any]:
    """A connection, in a transaction, to the database as the release before `step` left it."""
    import psycopg

    before = DATABASE.names.index(step)
    with psycopg.connect(database_url, autocommit=True) as db, db.transaction():
        for _, earlier in DATABASE.steps[:before]:
            earlier(db)
        db.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        for name in DATABASE.names[:before]:
            db.execute("INSERT INTO schema_migrations VALUES (%s, 0)", (name,))
        yield db


def test_a_database_s_sources_gain_an_unrecorded_scope_digest(database_url: str) -> None:
    from inlet.storage.postgres.state import PgState

    with database_before(database_url, "m015_scope_fingerprint") as db:
        db.execute(
            "INSERT INTO sources (name, checkpoint, phase, generation) VALUES ('s', '{\"n\": 1}', 'incremental', 2)"
        )
    config = IndexConfig(path=Path("unused"), database_url=database_url, chroma_url="http://127.0.0.1:1")
    keeps_a_source_with_no_scope_digest_yet(PgState(config))  # which applies the steps it lacks


OLD_TEXTS = {"zh": "負責人是王小明。", "lig": "The ﬁnance team", "en": "Deploy of billing finished"}


def test_a_folder_s_keyword_index_is_rewritten_with_the_index_s_words(tmp_path: Path) -> None:
    """A catalog whose FTS table holds chunks as the release before wrote them (raw text, FTS5's own
    tokenizer) finds a word inside Chinese text and a ligature's word once it is opened."""
    from inlet.storage import Filters
    from inlet.storage.sqlite.catalog import SqliteCatalog

    db = connect(tmp_path / "catalog.db", before(CATALOG, "m005_fts_words"))
    for n, (key, text) in enumerate(OLD_TEXTS.items()):
        doc = Document(id=f"t:{key}", source="t", source_type="files", title=f"note {key}", text=text)
        db.execute(
            "INSERT INTO documents (doc_id, source, source_type, content_hash, meta_hash, chunks, body) "
            "VALUES (?, 't', 'files', '', '', 1, ?)",
            [doc.id, doc.model_dump_json()],
        )
        db.execute(
            "INSERT INTO chunks (rowid, chunk_id, doc_id, n, text) VALUES (?, ?, ?, 0, ?)",
            [n + 1, f"{doc.id}#0", doc.id, text],
        )
        db.execute("INSERT INTO chunks_fts (rowid, title, text) VALUES (?, ?, ?)", [n + 1, doc.title, text])
    assert not db.execute("SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH '\"王小\"'").fetchall()  # as it was
    db.close()
    catalog = SqliteCatalog(tmp_path / "catalog.db")
    try:
        assert [c for c, _ in catalog.lexical("王小明", Filters(), 5)] == ["t:zh#0"]
        assert [c for c, _ in catalog.lexical("finance", Filters(), 5)] == ["t:lig#0"]
        assert [c for c, _ in catalog.lexical("billing", Filters(), 5)] == ["t:en#0"]
        assert [c for c, _ in catalog.lexical("note zh", Filters(), 5)][0] == "t:zh#0"  # titles too
    finally:
        catalog.close()


def test_a_database_s_postings_are_rewritten_with_the_index_s_words(database_url: str) -> None:
    from inlet.storage import Filters
    from inlet.storage.postgres.catalog import PgCatalog

    with database_before(database_url, "m017_repost_words") as db:
        for key, text in OLD_TEXTS.items():
            doc = Document(id=f"t:{key}", source="t", source_type="files", title=f"note {key}", text=text)
            db.execute(
                "INSERT INTO documents (doc_id, source, source_type, content_hash, meta_hash, chunks, body) "
                "VALUES (%s, 't', 'files', '', '', 1, %s)",
                (doc.id, doc.model_dump_json()),
            )
            db.execute(  # postings as the tokenizer before made them: none for the Chinese line's words
                "INSERT INTO chunks (chunk_id, doc_id, n, text, length) VALUES (%s, %s, 0, %s, 0)",
                (f"{doc.id}#0", doc.id, text),
            )
    catalog = PgCatalog(IndexConfig(path=Path("unused"), database_url=database_url, chroma_url="http://unused"))
    try:
        assert [c for c, _ in catalog.lexical("王小明", Filters(), 5)] == ["t:zh#0"]
        assert [c for c, _ in catalog.lexical("finance", Filters(), 5)] == ["t:lig#0"]
        assert [c for c, _ in catalog.lexical("billing", Filters(), 5)] == ["t:en#0"]
    finally:
        catalog.close()


SOURCES_BEFORE_COVERAGE = (  # (name, phase, since) as a release before `covered` left them
    ("full", "incremental", None),
    ("limited", "incremental", "2024-01-01T00:00:00+00:00"),
    ("running", "backfill", "2025-01-01T00:00:00+00:00"),
)


def covers_what_its_last_pass_did(state: StateStore) -> None:
    """A source past its backfill covers what its last pass did; one in a backfill, nothing known
    yet; a later `--since` pass saved on top keeps the wider coverage (probe 23a F6)."""
    try:
        assert {name: state.source(name).covered for name, _, _ in SOURCES_BEFORE_COVERAGE} == {
            "full": "all",
            "limited": "2024-01-01T00:00:00+00:00",
            "running": None,
        }
        full = state.source("full")
        full.phase, full.since = "backfill", "2024-06-01T00:00:00+00:00"
        state.save_source(full)
        assert state.source("full").indexed_since() == "all"
    finally:
        state.close()


def test_a_folder_s_sources_gain_the_coverage_of_their_last_pass(tmp_path: Path) -> None:
    from inlet.storage.sqlite.state import SqliteState

    db = connect(tmp_path / "state.db", before(STATE, "m006_source_coverage"))
    db.executemany("INSERT INTO sources (name, phase, generation, since) VALUES (?, ?, 1, ?)", SOURCES_BEFORE_COVERAGE)
    db.close()
    covers_what_its_last_pass_did(SqliteState(tmp_path / "state.db"))
    assert "m006_source_coverage" in applied(tmp_path / "state.db")


def test_a_database_s_sources_gain_the_coverage_of_their_last_pass(database_url: str) -> None:
    from inlet.storage.postgres.state import PgState

    with database_before(database_url, "m018_source_coverage") as db:
        for row in SOURCES_BEFORE_COVERAGE:
            db.execute("INSERT INTO sources (name, phase, generation, since) VALUES (%s, %s, 1, %s)", row)
    config = IndexConfig(path=Path("unused"), database_url=database_url, chroma_url="http://127.0.0.1:1")
    covers_what_its_last_pass_did(PgState(config))


def test_a_database_is_not_upgraded_while_a_daemon_of_an_earlier_inlet_holds_a_lease(database_url: str) -> None:
    """A rolling upgrade with an earlier daemon still syncing: the first process of this inlet would
    migrate the database under it, and it would go on writing with its own rules. Refused with
    exit 2 naming the lease holder; nothing applied. Once its lease lapses (the daemon stopped), the
    same command upgrades the database."""
    import psycopg

    from inlet.storage.postgres.state import PgState

    with database_before(database_url, "m020_people_identity") as db:
        db.execute("INSERT INTO leases VALUES ('gmail', 'oldhost:17894', 7, now() + interval '60 seconds')")
    config = IndexConfig(path=Path("unused"), database_url=database_url, chroma_url="http://127.0.0.1:1")
    with pytest.raises(ConfigError) as refused:  # UpgradeBlockedError
        PgState(config)
    message = " ".join(str(refused.value).split())
    assert refused.value.exit_code == 2
    assert "oldhost:17894" in message and "'gmail'" in message and "m020_people_identity" in message
    with psycopg.connect(database_url, autocommit=True) as db:
        assert "m020_people_identity" not in {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
        db.execute("UPDATE leases SET expires = now() - interval '1 second'")
    PgState(config).close()
    with psycopg.connect(database_url, autocommit=True) as db:
        assert "m020_people_identity" in {r[0] for r in db.execute("SELECT name FROM schema_migrations")}


def test_an_index_this_inlet_opened_is_refused_by_a_release_that_knows_its_tables_but_not_its_formats(
    old_folder: Path,
) -> None:
    """The release before the stored formats were recorded had the same table steps, but read the
    mbox checkpoints and ids this one writes wrongly (it crashed on them, or added a document
    again): the format is recorded as a step of the state file, which that release refuses, as any
    step it does not know, before it reads anything."""
    from inlet.storage.migrations import FORMATS

    state = old_folder / "index" / "state.db"
    connect(state, STATE).close()  # as every command of this inlet that opens the state
    assert FORMATS[-1] in applied(state)
    earlier = before(STATE, FORMATS[0])  # every table step of this inlet, no format
    assert earlier.names and earlier.names[-1] == STATE.newest
    with pytest.raises(SchemaTooNewError, match=FORMATS[0]) as refused:
        connect(state, earlier)
    assert refused.value.exit_code == 2 and "a newer inlet wrote it" in str(refused.value)


def test_a_database_is_not_given_a_new_format_while_an_earlier_daemon_idle_between_runs_is_connected(
    database_url: str,
) -> None:
    """A rolling upgrade from the release with the same tables but other stored formats (mbox ids,
    checkpoints): its daemon, idle between two runs, holds no lease but keeps its connection and its
    plans. The first process of this inlet would record the format and run beside it, each undoing
    the other's documents: refused with exit 2 naming it, nothing recorded. A daemon that stopped
    (killed: its plans left behind, its session gone) blocks nothing."""
    import psycopg

    from inlet.storage.migrations import FORMATS
    from inlet.storage.postgres.state import PgState

    with database_before(database_url, FORMATS[0]) as db:
        db.execute("INSERT INTO daemon_schedule VALUES ('mail', NULL, 17894, 'oldhost:17894', 0)")
    config = IndexConfig(path=Path("unused"), database_url=database_url, chroma_url="http://127.0.0.1:1")
    with psycopg.connect(database_url, autocommit=True, application_name="inlet oldhost:17894"):
        with pytest.raises(ConfigError) as refused:  # UpgradeBlockedError
            PgState(config)
    message = " ".join(str(refused.value).split())
    assert refused.value.exit_code == 2
    assert "oldhost:17894" in message and "'mail'" in message and FORMATS[0] in message
    with psycopg.connect(database_url, autocommit=True) as db:
        assert FORMATS[0] not in {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
    PgState(config).close()  # its session ended, its plan left behind: upgraded
    with psycopg.connect(database_url, autocommit=True) as db:
        assert FORMATS[0] in {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
