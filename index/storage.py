"""Where an index lives: the small protocol the engine, daemon and server use, and its two homes.

An index is three stores: the catalog (documents, chunks, ACL principals, the lexical index), the
state (checkpoints, runs, the daemon's schedule) and the leases (which process syncs which source).
Each has two implementations that behave the same to their callers:
- the folder (default): `catalog.db` and `state.db` (SQLite) beside embedded Chroma, and `flock`
  files for leases, exactly as inlet has always stored it;
- PostgreSQL (`[index].database_url`, with a Chroma server at `chroma_url`): catalog, state and
  leases in one database, shared by any number of daemons and API replicas (`pg_catalog.py`,
  `inlet/sync/pg_state.py`, `inlet/sync/leases.py`).

The invariant a lease adds to the engine's ("a checkpoint is saved only once everything before it
is committed") is: a commit (a batch of documents, a checkpoint) carries the `Fence` of the lease
its run holds, and is refused unless that fence is still current, checked in the commit's own
transaction. A process that paused past its lease and was replaced therefore cannot overwrite its
successor's work, whatever it believes about time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from inlet.connectors.model import Document

if TYPE_CHECKING:
    from inlet.config import IndexConfig, Settings
    from inlet.sync.state import RunRecord, SourceState

    from .catalog import Filters, StoredDoc


@dataclass(frozen=True)
class Fence:
    """A lease on `source` as granted: `number` grows by one at every grant, so a stale holder's
    number is always smaller than the current one."""

    source: str
    number: int


@dataclass
class Commit:
    """One batch for the catalog, written in one transaction: `embedded` documents with their new
    chunk texts, `relabelled` ones (metadata or ACL changed, chunks kept), `seen` ones (unchanged)
    and `gone` ones (deleted)."""

    generation: int = 0
    embedded: list[tuple[Document, list[str]]] = field(default_factory=list)
    relabelled: list[Document] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    fence: Fence | None = None
    keys: list[tuple[str, str]] = field(default_factory=list)   # (chunk id, vector key): see dedup.py
    # Documents whose vectors a write is about to touch, as (doc id, source, chunk ids it may leave),
    # and the documents a commit settles: see `Index.repair`.
    marked: list[tuple[str, str, int]] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)


class CatalogStore(Protocol):
    """Documents, chunks, ACL principals and the lexical index (the commit record of the index)."""

    def commit(self, batch: Commit) -> None: ...
    def stored(self, doc_ids: list[str]) -> dict[str, StoredDoc]: ...
    def document(self, doc_id: str) -> Document | None: ...
    def documents(self, doc_ids: Iterable[str]) -> dict[str, Document]: ...
    def doc_times(self, doc_ids: Iterable[str]) -> dict[str, float]: ...
    def chunk_texts(self, chunk_ids: Iterable[str]) -> dict[str, str]: ...
    def visible(self, doc_id: str, principals: tuple[str, ...] | None) -> bool: ...
    def source_doc_ids(self, source: str) -> list[str]: ...
    def unseen(self, source: str, generation: int) -> list[str]: ...
    def counts(self) -> dict[str, tuple[int, int]]: ...
    def passing(self, chunk_ids: list[str], filters: Filters) -> set[str]: ...
    def lexical(self, query: str, filters: Filters, limit: int) -> list[tuple[str, float]]: ...
    def keyed_chunks(self, keys: list[str]) -> dict[str, str]: ...
    def unsettled(self, source: str) -> list[tuple[str, int]]: ...
    def exact_matches(self, query: str, filters: Filters) -> dict[str, int]: ...
    def close(self) -> None: ...


class StateStore(Protocol):
    """Checkpoints (fenced by `SourceState.fence`), runs and the daemon's schedule."""

    def source(self, name: str) -> SourceState: ...
    def save_source(self, state: SourceState) -> None: ...
    def start_run(self, source: str, kind: str) -> RunRecord: ...
    def finish_run(self, run: RunRecord) -> None: ...
    def last_run(self, source: str, *, successful: bool = False,
                 kinds: tuple[str, ...] | None = None) -> RunRecord | None: ...
    def failure_streak(self, source: str) -> int: ...
    def runs(self, source: str) -> list[RunRecord]: ...
    def recent_runs(self, source: str, limit: int = 20) -> list[RunRecord]: ...
    def save_progress(self, run: RunRecord, seen: int, done: int | None, total: int | None,
                      unit: str | None) -> None: ...
    def running(self, source: str) -> dict[str, Any] | None: ...
    def set_paused(self, source: str, paused: bool) -> None: ...
    def paused(self) -> dict[str, float]: ...
    def add_run(self, run: RunRecord) -> None: ...
    def set_next_runs(self, pid: int, next_runs: dict[str, float | None]) -> None: ...
    def clear_next_runs(self, pid: int) -> None: ...
    def daemon_next_runs(self) -> dict[str, tuple[float | None, int]]: ...
    def close_orphan_runs(self, source: str, error: str) -> int: ...
    def add_skip(self, run_id: int, n: int, item_id: str, title: str | None, reason: str, failed: bool) -> None: ...
    def skipped_items(self, run_id: int) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class Leases(Protocol):
    """Who syncs which source. `hold` raises SourceBusyError when another holder has it."""

    shared: bool   # True when other processes on other hosts hold leases of the same sources

    def hold(self, source: str) -> AbstractContextManager[Fence | None]: ...
    def holders(self) -> dict[str, dict[str, Any]]: ...
    def close(self) -> None: ...


def uses_database(config: IndexConfig) -> bool:
    return bool(config.database_url)


def open_catalog(config: IndexConfig) -> CatalogStore:
    if config.database_url:
        from .pg_catalog import PgCatalog

        return PgCatalog(config)
    from .catalog import Catalog

    return Catalog(config.path / "catalog.db")


def open_state(config: IndexConfig) -> StateStore:
    if config.database_url:
        from inlet.sync.pg_state import PgState

        return PgState(config)
    from inlet.sync.state import StateDB

    return StateDB(config.path / "state.db")


def open_leases(settings: Settings) -> Leases:
    from inlet.connectors.base import parse_duration
    from inlet.sync.leases import FolderLeases, PgLeases

    if settings.index.database_url:
        return PgLeases(settings.index, parse_duration(settings.daemon.lease))
    return FolderLeases(settings.index.path / "locks")


def chunk_ids(doc_id: str, chunks: int) -> Iterator[str]:
    from .catalog import chunk_id

    return (chunk_id(doc_id, n) for n in range(chunks))
