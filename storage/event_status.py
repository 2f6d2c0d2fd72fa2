"""Change-event status: what each running daemon hears per source, for `inlet status` and `/metrics`.

Written once over a `Dialect` (`SqlEventStatus`): a daemon upserts one `daemon_events` row per source
it hears, named by its owner (the folder: its pid; the database: host and pid), and deletes its
rows when it stops. Readers count only the rows of live owners (the folder asks whether the pid
lives; the database, whose readers may be on other hosts, counts rows refreshed recently) and
merge them with `merge_reports`: several daemons may hear one source's events, and the one that
heard the latest is shown, `live` if any of them is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

from .dialect import Dialect


class SqlEventStatus:
    """One daemon's writer; subclasses give the connection, the owner and the clock."""

    dialect: Dialect
    owner_column: str  # the column naming the writing daemon
    key: str  # the table's primary key
    now = "?"  # the `updated` value: a parameter (this process's clock) or the server's clock

    def _connection(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _owner(self) -> Any:
        raise NotImplementedError

    def _clock(self) -> tuple[Any, ...]:
        """The parameter `now` takes, if it is one."""
        return ()

    def save(self, source: str, report: dict[str, Any]) -> None:
        sql = (
            f"INSERT INTO daemon_events (source, {self.owner_column}, report, updated) VALUES (?, ?, ?, {self.now}) "
            f"ON CONFLICT ({self.key}) DO UPDATE SET {self.owner_column} = excluded.{self.owner_column}, "
            "report = excluded.report, updated = excluded.updated"
        )
        with self._connection() as db:
            db.execute(self.dialect.sql(sql), (source, self._owner(), json.dumps(report), *self._clock()))

    def clear(self) -> None:
        with self._connection() as db:
            db.execute(self.dialect.sql(f"DELETE FROM daemon_events WHERE {self.owner_column} = ?"), (self._owner(),))


def merge_reports(rows: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """source -> one report from (source, report JSON) rows of live daemons: the latest event's,
    `live` if any daemon hears the source live."""
    out: dict[str, dict[str, Any]] = {}
    for source, text in rows:
        report = json.loads(text)
        seen = out.get(source)
        if seen is None:
            out[source] = report
            continue
        live = bool(seen.get("live") or report.get("live"))
        if (report.get("last_event_at") or 0) > (seen.get("last_event_at") or 0):
            seen = report
        out[source] = {**seen, "live": live}
    return out
