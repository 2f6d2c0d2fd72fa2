"""Leases: which process syncs which source, and the fence that keeps a replaced one from writing.

The invariant, before any code: at any moment at most one run's commits for a source can succeed.
- A run syncs a source only while holding its lease. `hold()` grants it with a fencing number one
  higher than any granted before, or refuses (SourceBusyError) while another holder's lease is live.
- Every commit of the run (a batch of documents, a checkpoint) names that fence and is refused
  unless it is still the current, unexpired one: the check happens in the commit's own transaction
  (`SELECT ... FOR SHARE` on the lease row), so a takeover waits for a commit in flight and a
  commit after a takeover fails. Time is the database's clock, never the daemon's (`holders` gives
  each lease's end in this host's clock, as the time left by the database's clock from now).
- A live holder renews its leases every `lease / 3`; a holder that stops renewing (killed, frozen,
  cut off) loses them after `lease`, and the next daemon that asks takes the source over and
  resumes from its last fenced checkpoint. A refused commit raises LeaseLostError: the run ends as
  failed and writes nothing more; what it committed before is valid, because it held the lease then.

Vectors go to Chroma, which has no transactions, before the catalog commit: `Index.apply` checks
the fence just before writing them too, so a replaced holder writes no vectors unless it froze in
the moment between that check and the write (chunk ids are deterministic, so what it could write
is a vector of an older text under the same id; the next change of that document rewrites it).

The folder's leases are `flock` files (`storage/sqlite/leases.py`): the kernel drops them when the
process dies and never while it lives, so they need no fence.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from inlet.errors import LeaseLostError, SourceBusyError
from inlet.process import ended_here

from ..types import Fence
from .pool import connect, disconnect, holder_name, session_name

if TYPE_CHECKING:
    import psycopg

    from inlet.config import IndexConfig

log = logging.getLogger(__name__)
TAKEOVER_WAIT_MS = 2000  # a lease row locked longer than this by a holder whose lease is over: cut it off


class PgLeases:
    """Leases in the `leases` table of the index database; a background thread renews held ones."""

    shared = True

    def __init__(self, config: IndexConfig, lease_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.pool = connect(config)
        self.clock = clock  # this host's (epoch seconds): what `holders` gives times in
        self.seconds = lease_seconds
        self.holder = holder_name()
        self._held: dict[str, Fence] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, name="inlet-leases", daemon=True)
        self._renewer.start()

    def close(self) -> None:
        self._stop.set()
        self._renewer.join(timeout=5)
        disconnect(self.pool)

    @contextmanager
    def hold(self, source: str) -> Iterator[Fence | None]:
        fence = self.acquire(source)
        try:
            yield fence
        finally:
            self.release(fence)

    def acquire(self, source: str) -> Fence:
        with self.pool.connection() as db:
            row = self._take(db, source)
            if row is None:
                held = db.execute(
                    "SELECT holder, to_char(expires AT TIME ZONE 'UTC', 'HH24:MI:SS') FROM leases WHERE source = %s",
                    (source,),
                ).fetchone()
                raise SourceBusyError(_busy(source, *(held or ("?", None))))
        fence = Fence(source, int(row[0]))
        with self._lock:
            self._held[source] = fence
        return fence

    def _take(self, db: psycopg.Connection[Any], source: str) -> tuple[Any, ...] | None:
        """The new fence, or None while another holder's lease is live.

        A holder frozen in the middle of a commit's statement (a COPY, say: the server is waiting
        for its data, not idle, so `idle_in_transaction_session_timeout` never fires) keeps the
        lease row share-locked (`check_fence`) however long its lease has been over. Waiting on it
        could last forever, so the wait is short, and a holder whose lease is over is then cut off:
        its sessions inside a transaction are ended (their work rolls back), and the row is free."""
        import psycopg

        for attempt in range(2):
            try:
                with db.transaction():
                    db.execute(f"SET LOCAL lock_timeout = {TAKEOVER_WAIT_MS}")
                    return db.execute(
                        "INSERT INTO leases (source, holder, fence, expires) "
                        "VALUES (%s, %s, 1, now() + make_interval(secs => %s)) "
                        "ON CONFLICT (source) DO UPDATE SET holder = excluded.holder, fence = leases.fence + 1, "
                        "expires = excluded.expires WHERE leases.expires <= now() RETURNING fence",
                        (source, self.holder, self.seconds),
                    ).fetchone()
            except psycopg.errors.LockNotAvailable:
                if attempt or not _end_stuck_holder(db, source):
                    return None  # a live holder's commit in flight
        return None

    def release(self, fence: Fence) -> None:
        with self._lock:
            if self._held.get(fence.source) == fence:
                del self._held[fence.source]
        with self.pool.connection() as db:
            db.execute(
                "UPDATE leases SET expires = now() WHERE source = %s AND fence = %s", (fence.source, fence.number)
            )

    def renew(self) -> None:
        """Extend every lease still ours; forget those taken over (their commits will be refused)."""
        with self._lock:
            held = list(self._held.values())
        if not held:
            return
        with self.pool.connection() as db:
            for fence in held:
                ok = db.execute(
                    "UPDATE leases SET expires = now() + make_interval(secs => %s) "
                    "WHERE source = %s AND fence = %s RETURNING 1",
                    (self.seconds, fence.source, fence.number),
                ).fetchone()
                if ok is None:
                    log.warning("lost the lease of source %r to another daemon", fence.source)
                    with self._lock:
                        self._held.pop(fence.source, None)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.renew()
            except Exception as exc:  # the database is away: commits will say so; keep trying
                log.warning("could not renew leases (tried again in %.0fs): %s", self.seconds / 3, exc)

    def holders(self) -> dict[str, dict[str, Any]]:
        """source -> {holder, expires (epoch seconds of this host's clock)} for live leases: a host
        whose clock is wrong waits as long as the lease has left, not until the database's time."""
        with self.pool.connection() as db:
            rows = db.execute(
                "SELECT source, holder, extract(epoch FROM expires - clock_timestamp()) FROM leases "
                "WHERE expires > now()"
            ).fetchall()
            now = self.clock()
        return {r[0]: {"holder": r[1], "expires": now + float(r[2])} for r in rows}


def _busy(source: str, holder: str, until: str | None) -> str:
    """Why `source` cannot be synced now: who holds its lease, and until when. A holder of this host
    whose process has ended (killed: it could not release the lease) is said to be gone, and the
    time its lease lapses is when a run may start."""
    lapses = f" until {until} UTC" if until else ""
    if ended_here(holder):
        return (
            f"source {source!r} is still leased to {holder}, a process of this host that has ended "
            f"(killed before it could release the lease){lapses}: run again after that, it resumes "
            "from the last checkpoint"
        )
    return f"source {source!r} is already being synced (by {holder}{', lease' + lapses if until else ''})"


def _end_stuck_holder(db: psycopg.Connection[Any], source: str) -> bool:
    """End the in-transaction sessions of `source`'s holder if its lease is over; False if it is not."""
    import psycopg

    row = db.execute("SELECT holder FROM leases WHERE source = %s AND expires <= now()", (source,)).fetchone()
    if row is None:
        return False
    try:
        ended = db.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
            (session_name(row[0]),),
        ).fetchone()
    except psycopg.errors.InsufficientPrivilege as exc:
        log.error(
            "source %r: its holder %s let its lease run out in the middle of a commit, and this daemon "
            "may not end its sessions (%s): connect every daemon as one role, or grant this one "
            "pg_signal_backend",
            source,
            row[0],
            str(exc).strip(),
        )
        return False
    log.warning(
        "source %r: its holder %s let its lease run out in the middle of a commit; ended %d of its "
        "database sessions to take the source over",
        source,
        row[0],
        ended[0] if ended else 0,
    )
    return True


def check_fence(db: psycopg.Connection[Any], fence: Fence | None) -> None:
    """Inside a commit's transaction: refuse unless `fence` is the source's current live lease.
    The row is share-locked until the commit ends, so no takeover can slip in between."""
    if fence is None:
        return
    row = db.execute(
        "SELECT 1 FROM leases WHERE source = %s AND fence = %s AND expires > now() FOR SHARE",
        (fence.source, fence.number),
    ).fetchone()
    if row is None:
        raise LeaseLostError(
            f"source {fence.source!r}: this daemon's lease (fence {fence.number}) expired or "
            "was taken over by another daemon; its commit was refused and the run stops"
        )
