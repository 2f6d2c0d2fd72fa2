"""What differs between SQLite and PostgreSQL in the statements both backends share, and nothing else.

Shared statements are written once, with `?` placeholders and `IN` lists built here; everything
else (upserts with `excluded`, `RETURNING`) both servers speak alike (SQLite since 3.35). The
statements that are really different stay in their backend's module: FTS5 against the postings
BM25, `COPY`/`unnest` bulk writes, `FOR SHARE` fencing, `flock` files against lease rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dialect:
    name: str
    mark: str  # the driver's placeholder
    any_array: bool  # `col = ANY(%s)` with one array parameter, instead of `col IN (?, ?, ...)`

    def sql(self, text: str) -> str:
        """`text` with its `?` placeholders in this driver's style (shared statements hold no `?` literal)."""
        return text if self.mark == "?" else text.replace("?", self.mark)

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`column` is one of `values`: the condition and its parameters."""
        if self.any_array:
            return f"{column} = ANY(?)", [list(values)]
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def bytewise(self, column: str) -> str:
        """`column` compared in byte order, whatever the database's collation: a range of it is a
        prefix (PostgreSQL's `COLLATE "C"`, which the index searched must have too; SQLite's text
        compares so already)."""
        return f'{column} COLLATE "C"' if self.name == "postgresql" else column

    def upsert(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        update: Sequence[str] | None = None,
        keep: bool = False,
    ) -> str:
        """INSERT of one row, updating `update` (default: every column not in `key`) on a key conflict;
        `keep` leaves an existing row as it is."""
        marks = ",".join("?" * len(columns))
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) DO "
        if keep:
            return head + "NOTHING"
        sets = [c for c in columns if c not in key] if update is None else list(update)
        return head + "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in sets)


SQLITE = Dialect("sqlite", "?", any_array=False)
POSTGRES = Dialect("postgresql", "%s", any_array=True)
