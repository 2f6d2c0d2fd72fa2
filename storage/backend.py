"""`open_backend`: the one place that chooses where an index lives, the folder or PostgreSQL.

Without `[index].database_url` everything stays in the index folder: `catalog.db` and `state.db`
(SQLite) beside embedded Chroma (or a Chroma server), `flock` files for leases and
`embedding.json` for the embedding record. With it, catalog, state, leases, event status and the
record are tables of one database that any number of daemons and API replicas share. Callers get
a `Backend` and open the stores they need from it; none of them asks which one it is. A reader
(`inlet status`) opens `read_state` and `read_record`, which never migrate the folder's files (an
earlier inlet may still use them; `upgrade_pending` names the steps its next writer applies).
Each store's module is imported when it is opened, inside the method: a folder index never loads
psycopg, and a database one never the SQLite stores.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from inlet.config import IndexConfig, Settings
from inlet.process import alive

from .protocols import CatalogStore, EventStatusWriter, Leases, RateBuckets, StateStore
from .migrations import FORMATS
from .reads import COUNTS
from .records import Record
from .sqlite.schema import CATALOG, STATE, pending, refuse_newer

DEFAULT_LEASE = 60.0  # seconds, when only the [index] table is known (`[daemon] lease` otherwise)


@dataclass
class Overview:
    """What `inlet status` shows beside each source's runs: (documents, chunks), the next run a
    live daemon planned, and who holds its lease (the database only)."""

    counts: dict[str, tuple[int, int]]
    planned: dict[str, float | None]
    holders: dict[str, dict[str, Any] | None]


class Backend(Protocol):
    config: IndexConfig
    shared: bool  # several processes on several hosts share the index (leases with fences, holders)

    @property
    def location(self) -> str: ...  # two backends with one location are the same index

    def open_folder(self, *, warn_open: bool = True) -> None: ...  # the local folder ready (none with a database)
    def catalog(self) -> CatalogStore: ...
    def state(self) -> StateStore: ...
    def read_state(self) -> StateStore: ...  # for a reader (`inlet status`): never migrates the folder
    def read_record(self) -> tuple[Record | None, str]: ...  # the embedding record and where it is kept
    def upgrade_pending(self) -> list[str]: ...  # the schema steps the next writer applies ("catalog m003_people")
    def leases(self) -> Leases: ...
    def rate_buckets(self) -> RateBuckets | None: ...  # None: each process keeps its own
    def event_writer(self) -> EventStatusWriter: ...
    def event_status(self) -> dict[str, dict[str, Any]]: ...
    def overview(self, state: StateStore) -> Overview: ...


def folder_schema() -> str:
    """The newest schema steps this inlet knows of the folder's files and its stored format
    (`FORMATS`): which release a process is, as far as the index can tell (the local channel's
    holder reports it; `LocalClient` compares). A release before the format was reported reports
    the steps alone, so it differs from every release after, as an earlier release's steps do."""
    return f"catalog {CATALOG.newest}, state {STATE.newest}, format {FORMATS[-1]}"


def open_backend(settings: Settings | IndexConfig) -> Backend:
    """The backend `settings` name (the whole configuration, or its `[index]` table alone)."""
    if isinstance(settings, Settings):
        from inlet.connectors.base import parse_duration

        index, lease = settings.index, parse_duration(settings.daemon.lease)
    else:
        index, lease = settings, DEFAULT_LEASE
    if index.database_url:
        return DatabaseBackend(index, lease)
    return FolderBackend(index)


@dataclass
class FolderBackend:
    config: IndexConfig
    shared = False

    @property
    def path(self) -> Path:
        return Path(self.config.path)

    @property
    def location(self) -> str:
        return f"folder {self.path.resolve()}"

    def catalog(self) -> CatalogStore:
        """The catalog; the whole folder refused, as every command refuses it, when its state.db
        holds schema steps this inlet does not know (a command that reads only the catalog, such
        as `inlet search` or `inlet backup`, checks it here, read-only)."""
        from .sqlite.catalog import SqliteCatalog

        self._folder()
        self._refuse_newer(self.path / "state.db", STATE)
        return SqliteCatalog(self.path / "catalog.db")

    @staticmethod
    def _refuse_newer(path: Path, migrations: Any) -> None:
        pending(path, migrations)  # read-only; refuses steps this inlet does not know

    def _folder(self) -> None:
        """The index folder, created (0700) when missing; an error naming `[index] path` when it
        cannot be (one open to others is warned of by `Index`, once)."""
        self.open_folder(warn_open=False)

    def open_folder(self, *, warn_open: bool = True) -> None:
        """The index folder: a restore's verified copy put in place when a crash left it beside a
        missing folder (`finish_swap`), else created (0700) when missing; an error naming
        `[index] path` when it cannot be; one open to others warned of unless not `warn_open`."""
        from .private import private_folder
        from .swap import finish_swap

        finish_swap(self.path)
        private_folder(self.path, "[index] path", warn_open=warn_open)

    def state(self) -> StateStore:
        from .sqlite.state import SqliteState

        self._folder()
        return SqliteState(self.path / "state.db")

    def read_state(self) -> StateStore:
        """The state as `state`, but a file an earlier inlet wrote is read through a migrated copy
        in memory (`SqliteState.copy`): `inlet status` never upgrades the folder, its next writer does."""
        from .sqlite.state import SqliteState

        if pending(self.path / "state.db", STATE):
            return SqliteState.copy(self.path / "state.db")
        return self.state()

    def read_record(self) -> tuple[Record | None, str]:
        """The embedding record (`embedding.json`), read without opening the catalog; the folder
        refused, as `catalog` refuses it, when a file holds schema steps this inlet does not know."""
        from .records import FolderRecords

        self._refuse_newer(self.path / "state.db", STATE)
        self._refuse_newer(self.path / "catalog.db", CATALOG)
        records = FolderRecords(self.path)
        return records.read(), records.where

    def upgrade_pending(self) -> list[str]:
        return [
            f"{name} {step}"
            for name, migrations in (("catalog", CATALOG), ("state", STATE))
            for step in pending(self.path / f"{name}.db", migrations)
        ]

    def leases(self) -> Leases:
        from .sqlite.leases import FolderLeases

        return FolderLeases(self.path / "locks")

    def rate_buckets(self) -> RateBuckets | None:
        return None

    def event_writer(self) -> EventStatusWriter:
        from .sqlite.event_status import EventStatusDB

        return EventStatusDB(self.path / "state.db")

    def event_status(self) -> dict[str, dict[str, Any]]:
        from .sqlite.event_status import read_event_status

        return read_event_status(self.path / "state.db")

    def overview(self, state: StateStore) -> Overview:
        """Read from the files alone, no lock: works while a sync or the daemon holds the index."""
        living: dict[int, bool] = {}
        planned = {}
        for name, (ts, pid) in state.daemon_next_runs().items():
            if pid not in living:
                living[pid] = alive(pid)
            if living[pid]:
                planned[name] = ts
        return Overview(self._counts(), planned, {})

    def _counts(self) -> dict[str, tuple[int, int]]:
        catalog = self.path / "catalog.db"
        if not catalog.exists():
            return {}
        db = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True)
        try:
            refuse_newer(db, catalog, CATALOG)
            return {r[0]: (r[1], r[2]) for r in db.execute(COUNTS)}
        except sqlite3.OperationalError:
            return {}
        finally:
            db.close()


@dataclass
class DatabaseBackend:
    config: IndexConfig
    lease: float = DEFAULT_LEASE
    shared = True

    @property
    def location(self) -> str:
        return f"database {_without_password(self.config.database_url or '')}"

    def open_folder(self, *, warn_open: bool = True) -> None:
        """Nothing: with a database nothing is kept on local disk."""

    def catalog(self) -> CatalogStore:
        from .postgres.catalog import PgCatalog

        return PgCatalog(self.config)

    def state(self) -> StateStore:
        from .postgres.state import PgState

        return PgState(self.config)

    def read_state(self) -> StateStore:
        return self.state()

    def read_record(self) -> tuple[Record | None, str]:
        catalog = self.catalog()
        try:
            records = catalog.records()
            return records.read(), records.where
        finally:
            catalog.close()

    def upgrade_pending(self) -> list[str]:
        return []  # every process migrates the database when it first connects (unless refused)

    def leases(self) -> Leases:
        from .postgres.leases import PgLeases

        return PgLeases(self.config, self.lease)

    def rate_buckets(self) -> RateBuckets | None:
        from .postgres.rate_buckets import PgRateBuckets

        return PgRateBuckets(self.config)

    def event_writer(self) -> EventStatusWriter:
        from .postgres.event_status import PgEventStatus

        return PgEventStatus(self.config)

    def event_status(self) -> dict[str, dict[str, Any]]:
        from .postgres.event_status import read_database_event_status

        return read_database_event_status(self.config)

    def overview(self, state: StateStore) -> Overview:
        """Counts, every daemon's plans and the live leases, read in one connection."""
        from datetime import datetime, timezone

        from .postgres.pool import connect, disconnect

        offset = state.clock_offset()  # the database's times, shown in this host's clock
        pool = connect(self.config)
        try:
            with pool.connection() as db:
                counts = {r[0]: (int(r[1]), int(r[2])) for r in db.execute(COUNTS)}
                planned: dict[str, float | None] = {
                    source: None if ts is None else ts - offset
                    for source, ts in db.execute("SELECT source, next_run FROM daemon_schedule")
                }
                holders: dict[str, dict[str, Any] | None] = {
                    r[0]: {
                        "holder": r[1],
                        "lease_expires": datetime.fromtimestamp(float(r[2]) - offset, timezone.utc)
                        .isoformat(timespec="milliseconds")
                        .replace("+00:00", "Z"),  # as every time in `inlet status`
                    }
                    for r in db.execute(
                        "SELECT source, holder, extract(epoch FROM expires) FROM leases WHERE expires > now()"
                    )
                }
        finally:
            disconnect(pool)
        return Overview(counts, planned, holders)


def _without_password(url: str) -> str:
    """A database URL (or "key=value" connection string) as it may be shown: a password written
    into it (instead of `database_password_env`) reads `***`."""
    return re.sub(
        r"\bpassword\s*=\s*('[^']*'|\S+)", "password=***", re.sub(r"^(\w+://[^:/@]*):[^@/]*@", r"\1:***@", url)
    )
