"""Change-event status in the index database: what `sqlite/event_status.py` keeps in SQLite, shared
by every host, so `inlet status` anywhere and `/metrics` of any API replica show it.

Each daemon writes its own rows (source, holder = host:pid). A reader on another host cannot ask
whether that pid lives, so the writer refreshes its rows every `heartbeat` seconds and a reader
counts only rows refreshed within `STALE_AFTER` heartbeats (the database's clock, as for leases): a
killed daemon's events read as off within that. Several daemons may hear one source's events;
the reader shows the one that heard the latest event, and `live` if any of them is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..dialect import POSTGRES
from ..event_status import SqlEventStatus, merge_reports
from .pool import connect, disconnect, holder_name

if TYPE_CHECKING:
    import psycopg

    from inlet.config import IndexConfig

log = logging.getLogger(__name__)
HEARTBEAT = 15.0  # seconds between refreshes of a daemon's rows
STALE_AFTER = 3  # heartbeats missed before a daemon's rows read as "events off"


class PgEventStatus(SqlEventStatus):
    """One daemon's writer: its rows carry the database's clock, refreshed every `heartbeat`."""

    dialect = POSTGRES
    owner_column = "holder"
    key = "source, holder"
    now = "now()"

    def __init__(self, config: IndexConfig, heartbeat: float = HEARTBEAT, holder: str | None = None) -> None:
        self.pool = connect(config)
        self.holder = holder or holder_name()
        self.heartbeat = heartbeat
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._beat_loop, name="inlet-event-status", daemon=True)
        self._beat.start()

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self.pool.connection() as db:
            yield db

    def _owner(self) -> str:
        return self.holder

    def close(self) -> None:
        self._stop.set()
        self._beat.join(timeout=5)
        disconnect(self.pool)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                with self.pool.connection() as db:
                    db.execute("UPDATE daemon_events SET updated = now() WHERE holder = %s", (self.holder,))
            except Exception:  # the database is away: the rows go stale, which readers show as "off"
                log.debug("could not refresh the event status rows", exc_info=True)


def read_database_event_status(config: IndexConfig, heartbeat: float = HEARTBEAT) -> dict[str, dict[str, Any]]:
    """source -> the report of the live daemon that heard its latest event; absent when none is live."""
    pool = connect(config)
    try:
        with pool.connection() as db:
            rows = db.execute(
                "SELECT source, report FROM daemon_events WHERE updated > now() - make_interval(secs => %s)",
                (heartbeat * STALE_AFTER,),
            ).fetchall()
    finally:
        disconnect(pool)
    return merge_reports(rows)
