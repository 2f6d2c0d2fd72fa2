"""One connection pool per database URL and process, shared by catalog, state, leases and event
status, opened with the schema migrated (`schema.migrate`: refused while a process of an earlier
inlet holds a live lease).

A process frozen (SIGSTOP) inside a commit holds its lease row's lock: the server ends such a
session after IDLE_IN_TRANSACTION_MS, so a successor's takeover waits at most that long; frozen in
the middle of a statement, it is the successor that ends it, finding it by `session_name`.

A connection the server ended (a restart, a failover, `pg_terminate_backend`) or one the pool could
not get raises `IndexUnavailable` naming the server, with the server's own words: a run records
that as its failure, and the API answers 503. A server that accepts connections but never answers
(frozen, a stalled disk) is one too: every exchange with the server on a pool connection waits at
most `ANSWER_TIMEOUT` (the kernel acknowledges what is sent, so TCP settings never end the wait;
the server's own `statement_timeout` cannot act while it is frozen), the connection is then closed
and the pool replaces it. Only the schema migration at opening may take longer.

After an outage the pool reconnects within seconds of the server answering again: its back-off
between attempts to connect restarts every `RECONNECT_TIMEOUT` seconds (psycopg_pool's doubles up to
minutes).

How long a connection is waited for depends on who asks. A run (the daemon's work) waits up to the
pool's timeout, riding out a restart or a busy pool. A request (`storage.impatient`, around each
API request) does not wait for a database that cannot be reached: while the pool's last attempt to
connect failed it tries one connection of its own (at most one try per `RECHECK` seconds fails;
the others are told at once) and, the database answering again, is served on it while the pool
catches up; waiting for a busy pool, it gives up as soon as an attempt of the pool fails. So a
replica answers 503 within a few seconds of an outage instead of after the pool's timeout.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from inlet import logs
from inlet.errors import DatabaseError, IndexUnavailable

from ..migrations import SchemaTooNewError, UpgradeBlockedError
from ..patience import is_impatient
from .schema import migrate

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from inlet.config import IndexConfig

IDLE_IN_TRANSACTION_MS = 5000
# libpq: connecting, and sending what the server never acknowledges (a network that drops packets),
# fail within these instead of the kernel's own limits (many minutes); idle connections are probed
NETWORK: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # ms
}

ANSWER_TIMEOUT = 120.0  # seconds one exchange with the server may wait for its answer (as a Chroma server's)
RECONNECT_TIMEOUT = 8.0  # seconds of the pool's attempts to connect (1, 2, 4 s apart) before they start over
OPEN_TIMEOUT = 15.0  # seconds a process starting waits for the database's first connection
RECHECK = 2.0  # seconds a failed attempt to connect answers requests before one of them tries again
REQUEST_CONNECT_TIMEOUT = 3  # seconds a request's own attempt to connect may take (libpq's minimum is 2)
SLICE = 1.0  # a request waiting for a busy pool looks this often whether the pool's attempts fail

# sqlstates of a session the server ended or would not start: connection exceptions, an
# administrator's or a crash's shutdown, a server starting up (the client's own losses have none)
LOST = ("08", "57P01", "57P02", "57P03")

_pools: dict[str, tuple[ConnectionPool, int]] = {}
_pools_lock = threading.Lock()


def holder_name() -> str:
    """This process, as leases, run progress and event status name it: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def session_name(holder: str) -> str:
    """The `application_name` of a lease holder's database sessions: a successor finds them by it
    (`leases.PgLeases.acquire`). The server keeps 63 bytes of it."""
    return f"inlet {holder}".encode()[:63].decode(errors="ignore")


def server_name(url: str) -> str:
    """The database at `url` named by server and database (no user, no password)."""
    from psycopg.conninfo import conninfo_to_dict

    where = conninfo_to_dict(url)
    return f"{where.get('host', 'localhost')}:{where.get('port', 5432)}/{where.get('dbname', '')}"


def connect(config: IndexConfig) -> ConnectionPool:
    """The process's pool for `database_url`, the schema migrated. Release it with `disconnect`."""
    url = config.database_url or ""
    with _pools_lock:
        if url in _pools:
            pool, users = _pools[url]
            _pools[url] = (pool, users + 1)
            return pool
        pool = _open_pool(url, config.database_password_env)
        _pools[url] = (pool, 1)
        return pool


def disconnect(pool: ConnectionPool) -> None:
    with _pools_lock:
        for url, (known, users) in list(_pools.items()):
            if known is pool:
                if users > 1:
                    _pools[url] = (known, users - 1)
                else:
                    del _pools[url]
                    pool.close()


def _open_pool(url: str, password_env: str | None) -> ConnectionPool:
    from psycopg_pool import ConnectionPool, PoolTimeout

    # Statements psycopg has prepared (run 5 times on a connection) keep one generic plan: the BM25
    # statement's custom plans, which the server otherwise keeps choosing for its array parameters,
    # were the same plan re-made each time (0.4 ms, about 5% of a search's p50 at 100k chunks).
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "options": f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS} "
        "-c plan_cache_mode=force_generic_plan",
        "application_name": session_name(holder_name()),
        **NETWORK,
    }
    if password_env:
        if password_env not in os.environ:
            raise DatabaseError(f"[index].database_password_env names {password_env}, which is not set")
        kwargs["password"] = logs.secret(os.environ[password_env])
    server = server_name(url)
    _refused_for_good(url, kwargs, server)
    # check: a connection the server dropped while idle (a restart, a failover) is replaced on
    # checkout, not handed to a run that then fails on its first statement
    # reconnect_failed: the attempts start over at once, their back-off from 1 s again
    pool = _pool_type(server, url, kwargs)(
        url,
        kwargs=kwargs,
        min_size=1,
        max_size=8,
        open=False,
        name="inlet",
        check=ConnectionPool.check_connection,
        reconnect_timeout=RECONNECT_TIMEOUT,
        reconnect_failed=ConnectionPool.check,
    )
    try:
        pool.open(wait=True, timeout=OPEN_TIMEOUT)
        with pool.connection() as db:
            db.answer_timeout = None  # type: ignore[attr-defined]  # a migration may rewrite every row
            try:
                migrate(db, f"the index database at {server}", holder_name())
            finally:
                db.answer_timeout = ANSWER_TIMEOUT  # type: ignore[attr-defined]
    except (SchemaTooNewError, UpgradeBlockedError):
        pool.close()
        raise
    except Exception as exc:
        pool.close()
        reach: Reach | None = getattr(pool, "reach", None)
        why = reach.down if isinstance(exc, PoolTimeout) and reach is not None and reach.down else exc
        raise DatabaseError(f"cannot use the index database at {server} ([index] database_url): {why}") from exc
    return pool


def lost(exc: BaseException) -> bool:
    """Whether `exc` is the database gone away (or no connection to be had), not a refused statement."""
    import psycopg

    return isinstance(exc, psycopg.OperationalError) and (exc.sqlstate is None or exc.sqlstate.startswith(LOST))


class Reach:
    """What this process last learnt of the database's answer to a new connection: `down` holds the
    words of the pool's last failed attempt until one of its attempts succeeds; `failures` counts
    them; `tried_at` and `answered` are the last attempt of anyone (the pool or a request)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down: str | None = None
        self.failures = 0
        self.tried_at = -RECHECK
        self.answered = True
        self.trying = False

    def pool_tried(self, error: BaseException | None) -> None:
        with self.lock:
            if error is None:
                self.down, self.answered = None, True
                return
            self.down, self.answered, self.tried_at = _words(error), False, time.monotonic()
            self.failures += 1

    def may_try(self) -> str | None:
        """None when a request may connect now; else the reason it is answered at once."""
        with self.lock:
            if self.answered:
                return None
            if self.trying or time.monotonic() - self.tried_at < RECHECK:
                return self.down or "no connection"
            self.trying = True
            return None

    def request_tried(self, error: BaseException | None) -> None:
        with self.lock:
            self.trying = False
            self.answered = error is None
            if error is not None:
                self.down, self.tried_at = _words(error), time.monotonic()


def _words(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _pool_type(server: str, url: str, kwargs: dict[str, Any]) -> type[ConnectionPool]:
    """The class of a pool of the database `server` at `url`, connected with `kwargs` (made here:
    psycopg_pool is imported only with a database)."""
    import psycopg
    from psycopg_pool import ConnectionPool, PoolTimeout

    WAIT_TIMEOUT = psycopg.errors._WaitTimeout  # what `Connection.wait` raises past its timeout
    reach = Reach()

    class Connection(psycopg.Connection):  # type: ignore[type-arg]
        """The pool's connections: each attempt of the pool to connect is noted in `reach`; each
        exchange with the server waits at most `answer_timeout` seconds (None: no limit)."""

        answer_timeout: float | None = ANSWER_TIMEOUT

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            limit = self.answer_timeout if timeout is None else timeout
            try:
                return super().wait(gen, interval=interval, timeout=limit)
            except WAIT_TIMEOUT:
                if timeout is not None:  # psycopg's own limit (a cancel, a notification wait)
                    raise
                self.pgconn.finish()  # half-way through an exchange: never usable again
                raise psycopg.OperationalError(f"the server did not answer within {limit:.0f} s") from None

        @classmethod
        def connect(cls, *args: Any, **options: Any) -> Any:
            try:
                conn = super().connect(*args, **options)
            except Exception as exc:
                reach.pool_tried(exc)
                raise
            reach.pool_tried(None)
            return conn

    def unreachable(words: str, cause: BaseException | None = None) -> IndexUnavailable:
        error = IndexUnavailable(
            f"the index database at {server} ([index] database_url) cannot be reached "
            f"({words}); nothing committed is lost: the next run resumes from its last checkpoint "
            "once it answers"
        )
        error.__cause__ = cause
        return error

    class Pool(ConnectionPool):
        reach: Reach

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, connection_class=Connection, **kwargs)
            self.reach = reach

        @contextmanager
        def connection(self, timeout: float | None = None) -> Iterator[Any]:
            try:
                if is_impatient():
                    with self._for_a_request(timeout) as db:
                        yield db
                else:
                    with super().connection(timeout) as db:
                        yield db
            except IndexUnavailable:
                raise
            except Exception as exc:
                if not lost(exc):
                    raise
                raise unreachable(_words(exc), exc) from exc

        @contextmanager
        def _for_a_request(self, timeout: float | None) -> Iterator[Any]:
            if reach.down is None:
                conn = self._sliced(self.timeout if timeout is None else timeout)
                try:
                    with conn:
                        yield conn
                finally:
                    self.putconn(conn)
                return
            # the pool cannot connect: one try of this request's own, then its connection
            why = reach.may_try()
            if why is not None:
                raise unreachable(why)
            try:
                conn = psycopg.connect(url, **{**kwargs, "connect_timeout": REQUEST_CONNECT_TIMEOUT})
            except Exception as exc:
                reach.request_tried(exc)
                raise
            reach.request_tried(None)
            self.check()  # the database answers: the pool tries again now, not after its backoff
            with conn:
                yield conn

        def _sliced(self, timeout: float) -> Any:
            """A connection of the pool, waited for at most `timeout`, or no longer once one of the
            pool's attempts to connect fails meanwhile."""
            failures = reach.failures
            deadline = time.monotonic() + timeout
            while True:
                try:
                    return self.getconn(max(0.01, min(SLICE, deadline - time.monotonic())))
                except PoolTimeout:
                    if reach.failures != failures and reach.down is not None:
                        raise unreachable(reach.down) from None
                    if time.monotonic() >= deadline:
                        raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec") from None

    return Pool


def _refused_for_good(url: str, kwargs: dict[str, Any], server: str) -> None:
    """One connection tried before the pool's: a refusal no retry mends (a wrong password, an
    unknown role or database) is a `DatabaseError` saying so at once, where the pool would retry
    for its whole timeout and then report only that it timed out. A server not up yet is left to
    the pool's retries."""
    import psycopg

    try:
        psycopg.connect(url, **{**kwargs, "connect_timeout": 5}).close()
    except psycopg.OperationalError as exc:
        if exc.sqlstate in _FOR_GOOD or any(words in str(exc) for words in _FOR_GOOD_WORDS):
            raise DatabaseError(f"cannot use the index database at {server}: {str(exc).strip()}") from exc


# invalid password, invalid authorization, unknown database / role: no retry changes these
_FOR_GOOD = {"28P01", "28000", "3D000"}
_FOR_GOOD_WORDS = ("password authentication failed", "does not exist", "no password supplied")
