"""Named, ordered schema migrations, one list per database, the applied names recorded in it.

Each step is a function named for what it does (`m003_chunk_key_column`), registered in order by
`Migrations.step`; a database records each step it has applied in `schema_migrations`, so a step
runs once, and a step a database has but this code does not know means that a newer inlet wrote
it: such a database is refused (`SchemaTooNewError`, exit 2), never guessed at. Databases made
before the record existed are adopted: the folder's SQLite files (whose first steps are
`IF NOT EXISTS`, so they are simply run again) and PostgreSQL's numbered `schema_version`, whose
first N steps are recorded as applied.
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


class Migrations:
    """The ordered steps of one database; `step` registers a function (use it as a decorator)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.steps: list[tuple[str, Step]] = []

    def step(self, fn: Step) -> Step:
        self.steps.append((fn.__name__, fn))
        return fn

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.steps]

    def apply(self, db: Any, mark: str, where: str, adopted: Callable[[Any], int] | None = None) -> list[str]:
        """Apply the steps `db` lacks, inside the caller's transaction; returns their names.

        `mark` is the driver's placeholder; `adopted(db)` says how many leading steps a database
        made before the record already has (called only when the record is empty)."""
        db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        applied = {r[0] for r in db.execute("SELECT name FROM schema_migrations").fetchall()}
        self.check(applied, where)
        if not applied and adopted is not None:
            for name in self.names[: adopted(db)]:
                db.execute(
                    f"INSERT INTO schema_migrations (name, applied_at) VALUES ({mark}, {mark})", (name, time.time())
                )
                applied.add(name)
        done = []
        for name, fn in self.steps:
            if name in applied:
                continue
            log.info("%s: applying %s schema step %s", where, self.name, name)
            fn(db)
            db.execute(f"INSERT INTO schema_migrations (name, applied_at) VALUES ({mark}, {mark})", (name, time.time()))
            done.append(name)
        return done

    def check(self, applied: set[str], where: str) -> None:
        """Refuse a database whose `applied` steps include one this inlet does not know (`apply`
        checks first; a reader that migrates nothing, its database opened read-only, calls it alone)."""
        unknown = sorted(applied - set(self.names))
        if unknown:
            raise SchemaTooNewError(
                f"{where}: its {self.name} schema has step(s) {', '.join(unknown)}, which this inlet does not know: "
                "a newer inlet wrote it. Run that version (or newer) of inlet against it; this one leaves it as it is"
            )


def run_script(db: Any, script: str) -> None:
    """Each `;`-separated statement of `script` (constant DDL: no `;` inside a statement)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
