"""Token buckets in the index database, shared by every process that uses it (`inlet serve`
replicas): one row per bucket name holding its theoretical arrival time (GCRA, the token bucket's
equivalent form that needs one number per bucket).

Invariant: a take is one transaction that locks the bucket's row, so replicas racing for the last
token grant it once; time is the database's clock, never a replica's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .pool import connect, disconnect

if TYPE_CHECKING:
    from inlet.config import IndexConfig

# The row is created (or locked, by the no-op update) and read in one statement.
LOCK = (
    "INSERT INTO rate_buckets AS b (name, tat) VALUES (%s, 0) ON CONFLICT (name) DO UPDATE SET tat = b.tat "
    "RETURNING b.tat, extract(epoch FROM clock_timestamp())::float8"
)


class PgRateBuckets:
    """`take(name, rate, burst)`: 0 and one token spent, or the seconds until one is there."""

    def __init__(self, config: IndexConfig) -> None:
        self.pool = connect(config)

    def take(self, name: str, rate: float, burst: float) -> float:
        interval = 1.0 / rate
        tolerance = (burst - 1.0) * interval
        with self.pool.connection() as db, db.transaction():
            row = db.execute(LOCK, (name,)).fetchone()
            assert row is not None
            tat, now = max(float(row[0]), float(row[1])), float(row[1])
            if tat - now > tolerance:
                return tat - now - tolerance
            db.execute("UPDATE rate_buckets SET tat = %s WHERE name = %s", (tat + interval, name))
            return 0.0

    def close(self) -> None:
        disconnect(self.pool)
