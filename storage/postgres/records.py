"""The embedding record (`storage/records.py`) of an index kept in PostgreSQL: one versioned row.

Several processes write it: `inlet reindex` after every batch, and daemons on any host whose syncs
send sources back to the reindex's queue. Each write names the version its writer last read and
is refused (`RecordChanged`) if another write landed in between, so no update is silently lost;
the refused writer reads the record again and redoes its step from there.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from ..records import Record, RecordChanged, parse

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool


class PgRecords:
    """The record in the `embedding_record` table; remembers the version it last read or wrote."""

    def __init__(self, pool: ConnectionPool, where: str) -> None:
        self.pool = pool
        self.where = where
        self.version: int | None = None  # None: this process has seen no row

    def read(self) -> Record | None:
        with self.pool.connection() as db:
            row = db.execute("SELECT record, version FROM embedding_record WHERE id = 1").fetchone()
        if row is None:
            self.version = None
            return None
        self.version = int(row[1])
        return parse(row[0])

    def write(self, record: Record) -> None:
        text = json.dumps(asdict(record))
        with self.pool.connection() as db:
            if self.version is None:
                row = db.execute(
                    "INSERT INTO embedding_record VALUES (1, %s, 1) ON CONFLICT (id) DO NOTHING RETURNING version",
                    (text,),
                ).fetchone()
            else:
                row = db.execute(
                    "UPDATE embedding_record SET record = %s, version = version + 1 "
                    "WHERE id = 1 AND version = %s RETURNING version",
                    (text, self.version),
                ).fetchone()
        if row is None:
            raise RecordChanged(f"{self.where}: the embedding record changed since it was read")
        self.version = int(row[0])

    def changed(self) -> Record | None:
        """The record, read again, if another process wrote it since; else None (one small query)."""
        with self.pool.connection() as db:
            row = db.execute("SELECT version FROM embedding_record WHERE id = 1").fetchone()
        if row is None or int(row[0]) == self.version:
            return None
        return self.read()
