"""How long storage waits for a database that cannot be reached, by who is waiting.

A run of the daemon waits for a database connection up to the pool's timeout: a restart or a busy
pool is ridden out. A caller waiting for an answer (an API request) marks its work `impatient()`:
inside, a database that cannot be reached is an `IndexUnavailable` within seconds, not after that
timeout (`postgres/pool.py` says how). The mark is a context variable, so it follows the request
into the worker threads that serve it and into no other work. A folder index never waits for a
server, so there it changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_impatient: ContextVar[bool] = ContextVar("inlet_storage_impatient", default=False)


@contextmanager
def impatient() -> Iterator[None]:
    """Storage used inside does not wait for a database that cannot be reached."""
    token = _impatient.set(True)
    try:
        yield
    finally:
        _impatient.reset(token)


def is_impatient() -> bool:
    return _impatient.get()


__all__ = ["impatient", "is_impatient"]
