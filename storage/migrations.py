"""Named, ordered schema migrations, one list per database, the applied names recorded in it.

Each step is a function named for what it does (`m003_chunk_key_column`), registered in order by
`Migrations.step`; a database records each step it has applied in `schema_migrations`, so a step
runs once, and a step a database has but this code does not know means that a newer inlet wrote
it: such a database is refused (`SchemaTooNewError`, exit 2), never guessed at. Steps are applied
only while no process of an earlier inlet uses the database (`UpgradeBlockedError`, exit 2): a
step it does not know would leave it writing with its own rules beside data migrated to new ones.
A database with steps to apply is by that alone one that no process of this inlet has opened
since, so any live holder of it (the folder's index lock, a source's lease in PostgreSQL) runs an
earlier release: the `guard` each caller gives `apply` looks for one. Databases made
before the record existed are adopted: the folder's SQLite files (whose first steps are
`IF NOT EXISTS`, so they are simply run again) and PostgreSQL's numbered `schema_version`, whose
first N steps are recorded as applied.

What inlet stores also changes without a table changing: a connector's checkpoint shape, how
documents are numbered, what a parser keeps. An earlier release reading such data misreads it (a
crash on a checkpoint entry of a new shape, a document added again under its old id), and one
running beside a newer one undoes its work. So each such change is a step too: `FORMATS` names
them, and the databases that keep checkpoints and documents (the folder's state file, the
PostgreSQL database) record them after their own steps, as steps that change nothing. Recorded,
a format is what a schema step is to every check above: an earlier release refuses the index
(`SchemaTooNewError`), and no process of this inlet records it while one of an earlier release
uses the index (`UpgradeBlockedError`); the local channel's holder reports it (`folder_schema`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from inlet.errors import ConfigError

log = logging.getLogger(__name__)
Step = Callable[[Any], None]  # receives a connection inside the migration's transaction


class SchemaTooNewError(ConfigError):
    """The database holds schema steps this inlet does not know: a newer release wrote it."""


class UpgradeBlockedError(ConfigError):
    """The database's schema needs steps this inlet would apply, but a live process of an earlier
    inlet uses it: names that process and what to do (stop it first)."""


Guard = Callable[[Any, list[str]], None]  # (connection, the step names about to run): raises to refuse

FORMATS: tuple[str, ...] = ("f001_stable_mail_and_file_ids",)
"""The changes of what inlet stores that no schema step records, oldest first: append a name
(`fNNN_what_changed`) in the commit that changes a stored format an earlier release would misread
(a checkpoint's shape, document ids, a stored value's meaning) without changing a table, and say
in docs/operations/upgrades.md what the first run re-reads. Never remove or rename one: a database
recorded with it would be refused as a newer inlet's. `FORMATS[-1]` is this release's format.
- f001: a `mail_archive` mbox message's id is keyed by its Message-ID, not its position (messages
  sharing one keep theirs: the checkpoint records which holds the plain key), and its checkpoint
  entries hold the keys; a `files` source's hard links of one file are one document, and a
  backslash in a file's name is doubled in its id; Google Drive's checkpoint keeps My Drive's
  root and the files of drives the account is no member of."""


def _format(db: Any) -> None:
    """A format step (`FORMATS`): nothing to change; its record is what an earlier release refuses."""


class Migrations:
    """The ordered steps of one database; `step` registers a function (use it as a decorator)."""

    def __init__(self, name: str, formats: tuple[str, ...] = ()) -> None:
        self.name = name
        self.tables: list[tuple[str, Step]] = []
        self.formats = formats  # recorded after the steps that change tables (`FORMATS`)

    def step(self, fn: Step) -> Step:
        self.tables.append((fn.__name__, fn))
        return fn

    @property
    def steps(self) -> list[tuple[str, Step]]:
        """Every step in the order it is applied: those that change tables, then the formats."""
        return self.tables + [(name, _format) for name in self.formats]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.steps]

    @property
    def newest(self) -> str:
        """The newest step that changes tables (the formats are reported on their own)."""
        return self.tables[-1][0]

    def apply(
        self,
        db: Any,
        mark: str,
        where: str,
        adopted: Callable[[Any], int] | None = None,
        guard: Guard | None = None,
    ) -> list[str]:
        """Apply the steps `db` lacks, inside the caller's transaction; returns their names.

        `mark` is the driver's placeholder; `adopted(db)` says how many leading steps a database
        made before the record already has (called only when the record is empty); `guard(db,
        names)` is called before the first step runs, with the names of those about to, and
        refuses by raising (`UpgradeBlockedError`): nothing is applied then."""
        db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        applied = {r[0] for r in db.execute("SELECT name FROM schema_migrations").fetchall()}
        self.check(applied, where)
        if not applied and adopted is not None:
            for name in self.names[: adopted(db)]:
                db.execute(
                    f"INSERT INTO schema_migrations (name, applied_at) VALUES ({mark}, {mark})", (name, time.time())
                )
                applied.add(name)
        if guard is not None and (names := self.pending(applied)):
            guard(db, names)
        done = []
        for name, fn in self.steps:
            if name in applied:
                continue
            log.info("%s: applying %s schema step %s", where, self.name, name)
            fn(db)
            db.execute(f"INSERT INTO schema_migrations (name, applied_at) VALUES ({mark}, {mark})", (name, time.time()))
            done.append(name)
        return done

    def pending(self, applied: set[str]) -> list[str]:
        """The names of the steps a database that has `applied` lacks, in order."""
        return [name for name in self.names if name not in applied]

    def check(self, applied: set[str], where: str) -> None:
        """Refuse a database whose `applied` steps include one this inlet does not know (`apply`
        checks first; a reader that migrates nothing, its database opened read-only, calls it alone)."""
        unknown = sorted(applied - set(self.names))
        if unknown:
            raise SchemaTooNewError(
                f"{where}: its {self.name} schema has step(s) {', '.join(unknown)}, which this inlet does not know: "
                "a newer inlet wrote it. Run that version (or newer) of inlet against it; this one leaves it as it is"
            )


def blocked(where: str, holder: str, names: list[str], stop: str) -> UpgradeBlockedError:
    """The refusal to upgrade `where` while `holder` ("pid 4242 (inlet daemon)"), a process of an
    earlier inlet, uses it: `names` the steps it would apply, `stop` how to stop that process."""
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return UpgradeBlockedError(
        f"{where} is in use by {holder}, a process of an earlier inlet (its schema lacks step(s) {shown}, "
        "which this inlet would apply now): it would go on writing with its own rules beside what the upgrade "
        f"changed. Stop it first ({stop}), then run this command again, which upgrades the index, and start "
        "that process again with this inlet. Nothing was changed"
    )


def run_script(db: Any, script: str) -> None:
    """Each `;`-separated statement of `script` (constant DDL: no `;` inside a statement)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
