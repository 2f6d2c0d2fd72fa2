"""One connection pool per database URL and process, shared by catalog, state, leases and event
status, opened with the schema migrated (`schema.migrate`).

A process frozen (SIGSTOP) inside a commit holds its lease row's lock: the server ends such a
session after IDLE_IN_TRANSACTION_MS, so a successor's takeover waits at most that long; frozen in
the middle of a statement, it is the successor that ends it, finding it by `session_name`.

A connection the server ended (a restart, a failover, `pg_terminate_backend`) or one the pool could
not get raises `IndexUnavailable` naming the server, with the server's own words: a run records
that as its failure, and the API answers 503.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from inlet.errors import DatabaseError, IndexUnavailable

from ..migrations import SchemaTooNewError
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
    from psycopg_pool import ConnectionPool

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
        kwargs["password"] = os.environ[password_env]
    server = server_name(url)
    _refused_for_good(url, kwargs, server)
    # check: a connection the server dropped while idle (a restart, a failover) is replaced on
    # checkout, not handed to a run that then fails on its first statement
    pool = _pool_type(server)(
        url, kwargs=kwargs, min_size=1, max_size=8, open=False, name="inlet", check=ConnectionPool.check_connection
    )
    try:
        pool.open(wait=True, timeout=15)
        with pool.connection() as db:
            migrate(db, f"the index database at {server}")
    except SchemaTooNewError:
        pool.close()
        raise
    except Exception as exc:
        pool.close()
        raise DatabaseError(f"cannot use the index database at {server}: {exc}") from exc
    return pool


def lost(exc: BaseException) -> bool:
    """Whether `exc` is the database gone away (or no connection to be had), not a refused statement."""
    import psycopg

    return isinstance(exc, psycopg.OperationalError) and (exc.sqlstate is None or exc.sqlstate.startswith(LOST))


def _pool_type(server: str) -> type[ConnectionPool]:
    """The class of a pool of the database `server` (made here: psycopg_pool is imported only
    with a database)."""
    from psycopg_pool import ConnectionPool

    class Pool(ConnectionPool):
        @contextmanager
        def connection(self, timeout: float | None = None) -> Iterator[Any]:
            try:
                with super().connection(timeout) as db:
                    yield db
            except Exception as exc:
                if not lost(exc):
                    raise
                words = " ".join(str(exc).split())
                raise IndexUnavailable(
                    f"the index database at {server} ([index] database_url) cannot be reached "
                    f"({type(exc).__name__}: {words}); nothing committed is lost: the next run resumes "
                    "from its last checkpoint once it answers"
                ) from exc

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
