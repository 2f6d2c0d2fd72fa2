"""The values every storage backend and every caller share: no SQL, no I/O.

A chunk's id is its document's id, `#`, and its position (`chunk_id`), on every backend: vectors
in Chroma and rows in the catalog name each other by it. A `Commit` is one transaction of the
catalog; its `Fence` is the lease the committing run holds (None: no lease to check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from inlet.connectors.model import Document


@dataclass(frozen=True)
class StoredDoc:
    doc_id: str
    content_hash: str
    meta_hash: str
    chunks: int
    source: str = ""


@dataclass(frozen=True)
class Filters:
    """Search filters; `principals` None means an operator (no ACL filter). `unserved`: sources whose
    documents are never returned (indexed, but no longer configured: see `Index.unserved`)."""

    sources: tuple[str, ...] = ()
    source_types: tuple[str, ...] = ()
    after: float | None = None
    before: float | None = None
    principals: tuple[str, ...] | None = None
    unserved: tuple[str, ...] = ()


def visible_only(
    found: dict[str, int], filters: Filters, passing: Callable[[list[str], Filters], set[str]]
) -> dict[str, int]:
    """`found` (chunk id -> count) without the chunks `filters` exclude (ACL, source, time)."""
    if not found or filters == Filters():
        return found
    keep = passing(list(found), filters)
    return {cid: n for cid, n in found.items() if cid in keep}


def doc_ts(doc: Document) -> float:
    when = doc.updated_at or doc.created_at
    return when.timestamp() if when else 0.0


def people_rows(docs: Iterable[Document]) -> list[tuple[str, str, str | None]]:
    """The people table's rows of `docs`: (person, document id, identity) for each of a document's
    `people`, with the identifier of the person that name is one of (`Document.identities`: an
    address, else a handle), else None. Every writer of the table (both backends, their
    migrations) writes these."""
    rows: list[tuple[str, str, str | None]] = []
    for doc in docs:
        identities = doc.identities()
        rows += [(person, doc.id, identities.get(person)) for person in doc.people()]
    return rows


def chunk_id(doc_id: str, n: int) -> str:
    return f"{doc_id}#{n}"


def chunk_doc_id(chunk: str) -> str:
    return chunk.rpartition("#")[0]


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
    keys: list[tuple[str, str]] = field(default_factory=list)  # (chunk id, vector key): see index/dedup.py
    # Documents whose vectors a write is about to touch, as (doc id, source, chunk ids it may leave),
    # and the documents a commit settles: see `Index.repair`.
    marked: list[tuple[str, str, int]] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)


@dataclass
class SourceState:
    name: str
    checkpoint: dict[str, Any] | None = None
    phase: str = "new"
    generation: int = 0
    since: str | None = None
    last_prune: float | None = None
    fence: Fence | None = field(default=None, compare=False)  # the lease a run holds; not stored
    # During a backfill: the start (RFC 3339) of the recent window whose pass has completed, so
    # everything modified since then is searchable (the engine's recent pass); None before that pass.
    recent: str | None = None
    # The digest of the config keys that choose what the source reads (`Connector.scope_fingerprint`)
    # as its last full pass started with them; None: not recorded yet (a new source, or an index made
    # before digests, whose next run records the keys it runs with).
    scope: dict[str, str] | None = None
    # How far back the completed passes have indexed the source: "all" after a full pass, else the
    # earliest `--since` date of the passes since then (a later `--since` pass deletes nothing, so
    # it never narrows it); None before any pass completed. `since` is only the current pass's date.
    covered: str | None = None

    def indexed_since(self) -> str | None:
        """How far back the source is searchable: what its completed passes covered ("all" after a
        full backfill, else the earliest `--since` date) or, while a backfill runs, the earlier of
        that and the recent window's start; None when neither exists yet."""
        if self.phase == "incremental":
            return self.covered or "all"  # a state written without one: as before coverage was recorded
        if self.phase == "backfill":
            return widest(self.covered, self.recent)
        return None

    def pass_completed(self) -> None:
        """Record a completed backfill pass: a full one covers "all"; a `--since` one extends the
        coverage back to its date, and narrows nothing an earlier pass covered."""
        self.covered = "all" if self.since is None else widest(self.covered, self.since)


def widest(a: str | None, b: str | None) -> str | None:
    """The coverage reaching further back of `a` and `b`: "all" over any time, the earlier of two
    times (RFC 3339, compared as instants), either one over None."""
    if a is None or b is None:
        return a or b
    if "all" in (a, b):
        return "all"
    return min(a, b, key=lambda when: datetime.fromisoformat(when).timestamp())


ORPHANED = (  # the error of a run whose process stopped before finishing it (closed by the next run)
    "interrupted: the process running it stopped (killed, or its lease lapsed); the next run resumes from its "
    "last checkpoint"
)


SYNC_KINDS = ("backfill", "sync", "event")
"""The kinds of run that read the source into the index: a source's failure streak, last success and
lag are of these (`SqlState.failure_streak`, `last_run(kinds=SYNC_KINDS)`). The other kind, "prune",
only deletes what the source no longer lists: a prune that succeeds while every sync fails leaves
the source failing."""


@dataclass
class RunRecord:
    source: str
    kind: str
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None
    upserted: int = 0
    deleted: int = 0
    skipped: int = 0
    errors: int = 0
    embedded: int = 0
    error: str | None = None
    # A failed run's service asked for no call before this time (epoch seconds: its Retry-After,
    # longer than a call waits); None when it named no such wait.
    retry_at: float | None = None
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def moved(self, by: float) -> RunRecord:
        """The same run with its times moved `by` seconds: from one clock to another (the state
        keeps times in the database's clock, and shows them in this host's: `SqlState`)."""
        if not by:
            return self
        return replace(
            self,
            started_at=self.started_at + by,
            finished_at=None if self.finished_at is None else self.finished_at + by,
            retry_at=None if self.retry_at is None else self.retry_at + by,
        )

    def items_not_indexed(self) -> int:
        """The items this run skipped or could not read (its `run_skips` rows, of which only the first
        `SKIPS_KEPT` are kept): its skips and errors, less the error that ended it when it failed
        (counted in `errors` too, and no item)."""
        return self.skipped + self.errors - (1 if self.outcome == "failed" and self.errors else 0)

    def waits_until(self, now: float) -> float | None:
        """When the service that failed this run allows the next call, if that is after `now`: the
        next run of the source (the daemon's, on any host) waits for it; else None."""
        if self.outcome == "failed" and self.retry_at is not None and self.retry_at > now:
            return self.retry_at
        return None


RUN_COLUMNS = ", ".join(f.name for f in fields(RunRecord) if f.name != "id")


def streak_of(outcomes: list[tuple[Any, ...]]) -> int:
    """Failed runs at the head of `outcomes` (rows of one outcome, newest first)."""
    streak = 0
    for (outcome,) in outcomes:
        if outcome != "failed":
            break
        streak += 1
    return streak


SKIPS_KEPT = 50
"""Skipped items recorded per run (the counts cover them all)."""

RUNS_KEPT = 1000
"""Finished runs of each kind (`backfill`, `sync`, `event`, `prune`) kept per source; older ones are
deleted as each run ends (`SqlState.finish_run`), except the newest successful one of the kind.
What anything reads of the history is within it: the newest run (of a kind, or successful),
the last 20 or 30 (`inlet status`, the console), the failure streak (its last 100 syncs)."""


def skip_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """A `run_skips` row (item_id, title, reason, failed) as `inlet status` shows it."""
    item_id, title, reason, failed = row
    return {"id": item_id, "title": title or item_id, "reason": reason, "failed": bool(failed)}
