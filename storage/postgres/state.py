"""The state in PostgreSQL: the shared statements of `storage/state.py`, shared by every daemon.

A checkpoint is saved only while the saving run's lease fence is still current, checked in the
save's own transaction (`leases.check_fence`): a daemon that lost its lease cannot move a source's
checkpoint past (or back behind) its successor's. Processes are named by host and pid (`holder`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..dialect import POSTGRES
from ..state import SqlState
from ..types import Fence
from .leases import check_fence
from .pool import connect, disconnect, holder_name

if TYPE_CHECKING:
    import psycopg

    from inlet.config import IndexConfig


class PgState(SqlState):
    dialect = POSTGRES

    def __init__(self, config: IndexConfig) -> None:
        self.pool = connect(config)

    def close(self) -> None:
        disconnect(self.pool)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self.pool.connection() as db, db.transaction():
            yield db

    def _check_fence(self, db: psycopg.Connection[Any], fence: Fence | None) -> None:
        check_fence(db, fence)

    def _progress_owner(self) -> tuple[str, Any]:
        return "holder", holder_name()

    def set_next_runs(self, pid: int, next_runs: dict[str, float | None]) -> None:
        """Every daemon plans every source; the row shows the earliest plan of a live daemon."""
        # One statement, not `executemany`: a pipeline's rows stay locked until its end, and a process
        # frozen in the middle of one would hold them past any timeout of the server's.
        self._exec(
            "INSERT INTO daemon_schedule (source, next_run, pid, holder, updated) "
            "SELECT s, n, ?, ?, ? FROM unnest(?::text[], ?::float8[]) AS u(s, n) "
            "ON CONFLICT (source) DO UPDATE SET next_run = excluded.next_run, pid = excluded.pid, "
            "holder = excluded.holder, updated = excluded.updated",
            (pid, holder_name(), time.time(), list(next_runs), list(next_runs.values())),
        )

    def clear_next_runs(self, pid: int) -> None:
        self._exec("DELETE FROM daemon_schedule WHERE holder = ?", (holder_name(),))
