"""The state in PostgreSQL: the shared statements of `storage/state.py`, shared by every daemon.

A checkpoint is saved only while the saving run's lease fence is still current, checked in the
save's own transaction (`leases.check_fence`): a daemon that lost its lease cannot move a source's
checkpoint past (or back behind) its successor's. Processes are named by host and pid (`holder`).

Its times are kept in the database's clock, as the leases' are (`storage/state.py`): `clock_offset`
is how far the server's clock runs ahead of this host's, measured by asking the server its time
(half a round trip of error). It is measured again every `OFFSET_RECHECK` seconds and kept unless
it moved by more than `CLOCK_STEP` (a clock set or stepped since), so the times one process reads
twice compare equal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
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

OFFSET_RECHECK = 60.0  # seconds between measures of the server's clock against this host's
CLOCK_STEP = 1.0  # seconds a new measure must differ by to replace the offset in use


class PgState(SqlState):
    dialect = POSTGRES

    def __init__(self, config: IndexConfig, clock: Callable[[], float] = time.time) -> None:
        self.pool = connect(config)
        self.clock = clock
        self._offset: float | None = None
        self._measured = 0.0  # time.monotonic() of the last measure
        self._offset_lock = threading.Lock()

    def clock_offset(self) -> float:
        """Seconds the database's clock runs ahead of this host's `clock` (negative: behind). Call
        it outside `_connection` (a measure takes a connection of its own)."""
        with self._offset_lock:
            if self._offset is None or time.monotonic() - self._measured >= OFFSET_RECHECK:
                with self.pool.connection() as db:
                    before = self.clock()
                    row = db.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()
                    after = self.clock()
                measured = float(row[0]) - (before + after) / 2 if row else 0.0
                if self._offset is None or abs(measured - self._offset) > CLOCK_STEP:
                    self._offset = measured
                self._measured = time.monotonic()
            return self._offset

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
        offset = self.clock_offset()
        self._exec(
            "INSERT INTO daemon_schedule (source, next_run, pid, holder, updated) "
            "SELECT s, n, ?, ?, ? FROM unnest(?::text[], ?::float8[]) AS u(s, n) "
            "ON CONFLICT (source) DO UPDATE SET next_run = excluded.next_run, pid = excluded.pid, "
            "holder = excluded.holder, updated = excluded.updated",
            (
                pid,
                holder_name(),
                self.clock() + offset,
                list(next_runs),
                [None if ts is None else ts + offset for ts in next_runs.values()],
            ),
        )

    def clear_next_runs(self, pid: int) -> None:
        self._exec("DELETE FROM daemon_schedule WHERE holder = ?", (holder_name(),))
