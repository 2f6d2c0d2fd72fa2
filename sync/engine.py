"""Runs a connector into the index: the only place documents, checkpoints and runs meet.

The engine knows no service. It batches what a connector yields, applies each batch to the index
(`pipeline.Pipeline`: chunking, embedding and writing of successive batches overlap), and saves a
checkpoint only once everything yielded before it is committed, so a crash anywhere resumes from
the last checkpoint and re-applies, idempotently, what came after it. A full pass (a backfill with
no `--since`) stamps every document it sees with a generation number; when the
pass completes, documents of the source it did not see are offered to the connector's `recheck`
(a listing paged by position passes over items when ones before them are deleted mid-pass), what
it yields applied as the pass's own items, and the rest are deleted; a prune by `live_ids` (and the
reconciling after a resumed run) keeps what `recheck` finds still there too. A completed pass records how
far back the source is searchable (`SourceState.covered`): "all" after a full pass, while a `--since`
pass, which deletes nothing, only ever extends it back to its date. A backfill resumes an
interrupted one only when that pass reads all it asks (a full pass, or a `--since` one from no
later a date): a plain backfill after an interrupted `--since` one starts the full pass anew, and a
run's result names the `--since` date of the pass it read. A skip deletes nothing by
itself (its id names an item, not always a document: `doc#body`, an attachment): a connector whose
item leaves the index by policy yields its `Deletion` too; a failed skip of an item that a later
`Document` of the same run reads after all is neither counted nor listed. A run changes its own
source's documents only: an item whose id is not `source:...` (or a document naming another source)
is a connector bug, never applied, and counted as a failed skip naming it. A document the index
cannot prepare (an exception while it is cleaned, hashed or chunked: `Index.prepare`) is that
item's failed skip too, naming it and the error, its earlier version kept; the rest of its batch is
indexed. A checkpoint the engine saves that is not JSON is a connector bug too, and fails the run
there, naming where in its state (the last good checkpoint stays saved). So is, failing the run
before any prune, anything yielded that is not an inlet item (a generator where `yield from` was
meant, a method not called, a dict for a `Checkpoint`), and a `live_ids()` listing ids not of the
source (a prune or reconciliation by it deletes nothing). A run starts with the connector's
`check_local()`: its `ConfigError` (the folder vanished since the command's preflight) or a bug in
it (any other exception, which preflight leaves to the run) fails this source's run alone, recorded
and logged as `load`'s. A run holds its source's lease (`leases.py`) throughout, and every commit
it makes (documents, checkpoint) carries the lease's fence: a run whose lease was taken over can
commit nothing more. What a run records and returns (its error, its skips' reasons and titles) is
redacted as the log is (`inlet.logs.redact`): a connector's error quoting a secret it read shows
`[redacted]` wherever it is shown.

Recent first: a fresh backfill of a connector that declares `recent_first` starts with a recent
pass, `load(None, since=now - window)` (`[index] recent_first`, per source too), whose documents are
committed as usual but whose checkpoints are never saved: the full pass that follows starts from
scratch as it always did, and finds the recent documents unchanged (not re-embedded). Only once the
recent pass is committed does the source record its window's start (`SourceState.recent`, how far
back it is searchable) and move to the next generation, so the full pass's prune also drops what
the recent pass indexed and the full pass no longer saw. A run that ends inside the recent pass
redoes it; one that ends inside the full pass resumes that pass from its checkpoint.

A change event can ask for a scoped run (`scope`: the containers its hints name): the connector's
`load_scope` reads just those, from the same checkpoint, and the run is recorded as kind "event",
so it never stands in for the scheduled sync that reconciles the whole source. A scoped run never
prunes by generation (it saw only part of the source); a source not yet past its backfill ignores
the scope and runs as asked.

A source's state records the digest of the config keys that choose what it reads
(`Connector.scope_keys`), as its last full pass found them. A sync of an incremental source whose
keys changed since then is a full pass like a backfill's (new generation, no checkpoint, the prune
at its end), recorded as a backfill: an incremental read cannot see that a channel left the scope,
or that a folder joined it. A scoped event run never starts one (the next sync does); a state with
no digest yet (a new source, an index made before digests) records the current one, and so does a
full pass that starts from scratch, but for a static ACL key (`StaticACLConfig.ACL_KEYS`): with no
digest of it, what ACL the indexed items carry is unknown, so the next sync reads the source whole
once and labels them as configured.

A run that fails with `NothingInScopeError` (every entry of a scope key matched nothing at the
service: a typo) has deleted nothing: the prune comes only at a full pass's end. During a full pass
it also forgets the pass's checkpoint, since what the pass read it read through a scope that
matched nothing: the run after the key is corrected starts the pass over, rather than resuming past
what the corrected scope holds and pruning it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from inlet.config import Settings
from inlet.connectors.base import Connector, LivePrefix, StaticACLConfig
from inlet.connectors.kit.retry import waits_end_when
from inlet.connectors.kit.transport import http_errors
from inlet.connectors.registry import origin
from inlet.connectors.model import (
    ACL,
    AclUpdate,
    Checkpoint,
    Deletion,
    Document,
    Progress,
    Skipped,
    not_an_item,
    not_json,
)
from inlet.errors import (
    CredentialsError,
    IncompleteListingError,
    IndexUnavailable,
    ConnectorBugError,
    InletError,
    NothingInScopeError,
    RetriableError,
    SourceBusyError,
)
from inlet.index.disk import storage_error
from inlet.logs import redact
from inlet.storage import ORPHANED, SKIPS_KEPT, SYNC_KINDS, Fence, Leases, RunRecord, SourceState, StateStore
from inlet.storage.sqlite.leases import FolderLeases
from inlet.index.store import ApplyStats, Index, Prepared

from .pipeline import Pipeline

log = logging.getLogger(__name__)

BATCH_DOCS = 64
BATCH_CHARS = 400_000
CHECKPOINT_SHARE = 0.05  # at most this share of a run's time goes to writing checkpoints
STOP_GRACE = 15.0  # the most a stop takes (the CLI promises it): STOP_WORK, then the unit of work under way
STOP_WORK = 10.0  # seconds a stopped run goes on towards its next checkpoint; then its chunking or embedding is cut
INTERRUPTED = "interrupted: progress up to the last checkpoint is kept; the next run resumes from it"
PROGRESS_EVERY = 0.5  # seconds between progress callbacks (the bar moves while one big file embeds)
PROGRESS_SAVE_EVERY = 2.0  # seconds between progress rows written for `inlet status`
# tries to record how a run ended while the index database cannot be reached (each waits for a
# connection as long as the pool does, 30 s): a restart or failover is over by then
RECORD_TRIES = 3
_STOPPED = object()  # `_feed`: the run was stopped before its end


@dataclass
class RunProgress:
    """How far a run is: items yielded, the connector's own count and total when it reports them
    (`Progress`), and chunks of the batch being embedded right now."""

    seen: int = 0
    done: int | None = None
    total: int | None = None
    unit: str | None = None
    embedding: int = 0

    def update(self, item: Progress) -> None:
        self.done = item.done if item.done is not None else self.done
        self.total = item.total if item.total is not None else self.total
        self.unit = item.unit or self.unit


ProgressCallback = Callable[[RunRecord, RunProgress], None]


@dataclass
class RunResult:
    source: str
    outcome: str
    upserted: int
    deleted: int
    skipped: int
    errors: int
    seconds: float
    error: str | None = None
    embedded: int = 0
    credentials_refused: bool = False
    # a failed run's service asked for no call for this many seconds (the Retry-After of its
    # `RetriableError`, longer than a call waits): the next run waits for it (`Daemon._after`)
    retry_after: float | None = None
    # the `--since` date (ISO) of the backfill pass the run read: only items modified since then;
    # None: the full history, or a sync
    since: str | None = None

    def __post_init__(self) -> None:
        self.error = redact(self.error) if self.error is not None else None

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "outcome": self.outcome,
            "upserted": self.upserted,
            "deleted": self.deleted,
            "skipped": self.skipped,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "embedded": self.embedded,
            "retry_after": self.retry_after,
            "since": self.since,
        }


def synced_unless_busy(name: str, sync: Callable[[], RunResult]) -> RunResult:
    """`sync()`, a sync of source `name` asked for now; while another process syncs it (the
    `SourceBusyError` of its lease: another host's daemon, the scheduled run of the daemon holding
    the index), a failed result whose error says so, naming the holder (and its lease's end). Of
    several sources asked for (`inlet sync`, run here or forwarded, the admin route), a busy one
    thus keeps none of the others from its sync, and every one is reported. Nothing is recorded
    for it: no run was made, and the holder's run is the source's."""
    try:
        return sync()
    except SourceBusyError as exc:
        log.info("sync of %r asked for now not run: %s", name, exc)
        return RunResult(name, "failed", 0, 0, 0, 1, 0.0, str(exc))


def _reads_all_of(saved: str | None, asked: datetime | None) -> bool:
    """Whether a backfill pass from `saved` (ISO; None: the full history) reads all that one from
    `asked` would."""
    if saved is None:
        return True
    if asked is None:
        return False
    start = datetime.fromisoformat(saved)
    return _aware(start) <= _aware(asked)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class _CheckpointWriter:
    """Writes a source's checkpoints (the caller commits what came before each one first), skipping
    a write when writing has taken more than CHECKPOINT_SHARE of the time since the last one.

    A Drive checkpoint listing 100k file ids takes ~45 ms to write, and one comes with every page of
    100 files. A skipped write only lengthens the re-read after a crash: the resumed run starts from
    an older checkpoint, and documents it sees again unchanged are not re-embedded. Checkpoints are
    copied, as JSON, while the connector is paused at them (their state may share objects the
    connector goes on changing) and written once every batch before them is (`Pipeline.after`); a
    state that is not JSON fails the run there, as a connector bug naming where in it (`stored`)."""

    def __init__(self, state: StateStore, source: SourceState) -> None:
        self.state = state
        self.source = source
        self.cost = 0.0
        self.written_at = time.monotonic()

    def offer(self, checkpoint: dict[str, Any], pipeline: Pipeline, *, now: bool = False) -> bool:
        """Queue `checkpoint` behind the batches before it, unless the budget says skip it (False)."""
        if not now and time.monotonic() - self.written_at < self.cost / CHECKPOINT_SHARE:
            return False
        started = time.monotonic()
        snapshot = self.stored(checkpoint)  # the connector goes on while the batches before it are written
        copied = time.monotonic() - started
        self.written_at = time.monotonic()  # no second snapshot before this one is written and timed
        self.cost = max(self.cost, copied)
        pipeline.after(lambda: self._write(snapshot, copied))
        return True

    def stored(self, checkpoint: dict[str, Any]) -> dict[str, Any]:
        """`checkpoint` as it is stored and read back (a copy); `ConnectorBugError` when it is not JSON."""
        try:
            return json.loads(json.dumps(checkpoint))  # type: ignore[no-any-return]
        except (TypeError, ValueError) as exc:
            why = not_json(checkpoint, exact=False) if isinstance(exc, TypeError) else None
            raise ConnectorBugError(
                f"connector bug: source {self.source.name!r} yielded a checkpoint that is not JSON: {why or exc}"
            ) from None

    def _write(self, checkpoint: dict[str, Any], copied: float) -> None:
        self.source.checkpoint = checkpoint
        started = time.monotonic()
        self.state.save_source(self.source)
        self.written_at = time.monotonic()
        self.cost = copied + self.written_at - started


class _NoCheckpoints:
    """A recent pass's checkpoints: never saved (they would make the full pass skip what is older)."""

    def offer(self, checkpoint: dict[str, Any], pipeline: Pipeline, *, now: bool = False) -> bool:
        return False

    def stored(self, checkpoint: dict[str, Any]) -> dict[str, Any]:
        return checkpoint


class _Reporter(RunProgress):
    """A run's progress, passed to `on_progress` at most every PROGRESS_EVERY seconds (also while a
    batch embeds) and saved for `inlet status` every PROGRESS_SAVE_EVERY seconds and after every
    written batch (the counts a killed run is closed with are those of what it committed)."""

    def __init__(self, engine: "Engine", run: RunRecord) -> None:
        super().__init__()
        self.engine = engine
        self.run = run
        self.shown = self.saved = 0.0
        self.lock = threading.Lock()  # counts change in the embedding and writing threads too

    def embedded(self, chunks: int) -> None:
        with self.lock:
            self.embedding += chunks
        self.tick()

    def tick(self, force: bool = False, save: bool = False) -> None:
        now = time.monotonic()
        with self.lock:
            show = self.engine.on_progress is not None and (force or now - self.shown >= PROGRESS_EVERY)
            save = save or force or now - self.saved >= PROGRESS_SAVE_EVERY
            if not (show or save):
                return
            self.shown = now if show else self.shown
            self.saved = now if save else self.saved
            live = RunRecord(**{**self.run.as_dict(), "embedded": self.run.embedded + self.embedding})
        if save:  # saved first: what the display shows, `inlet status` can already read
            try:
                self.engine.state.save_progress(live, self.seen, self.done, self.total, self.unit)
            except Exception:  # visibility must never stop a run
                log.debug("could not save progress", exc_info=True)
        if show and self.engine.on_progress is not None:
            self.engine.on_progress(live, RunProgress(self.seen, self.done, self.total, self.unit, self.embedding))


class _Batch:
    """Items yielded since the last flush."""

    def __init__(self) -> None:
        self.docs: list[Document] = []
        self.deletions: list[str] = []
        self.kept: dict[str, ACL | None] = {}  # failed skips, `AclUpdate`s: at the source, unread (`Index.prepare`)
        self.chars = 0

    def add(self, doc: Document) -> None:
        if doc.id in self.deletions:
            self.deletions.remove(doc.id)
        self.docs.append(doc)
        self.chars += len(doc.text)

    def delete(self, doc_id: str) -> None:
        """A deletion after a document in the same batch wins, as it would across batches."""
        self.docs = [d for d in self.docs if d.id != doc_id]
        self.deletions.append(doc_id)

    def full(self) -> bool:
        return len(self.docs) + len(self.deletions) >= BATCH_DOCS or self.chars >= BATCH_CHARS


class _Skips:
    """A run's skipped items as `inlet status` lists them: each counted (a failed one as an error),
    the first SKIPS_KEPT recorded. A failed skip that a later `Document` of the same id supersedes
    (the item was read after all in the same run: a replayed failure the change feed then reports
    again) is no longer counted nor listed: the run did not fail to read it."""

    def __init__(self, state: StateStore, run: RunRecord) -> None:
        self.state = state
        self.run = run
        self.recorded = 0  # rows written (numbers are never reused: a dropped row leaves a gap)
        self.failed: dict[str, list[int | None]] = {}  # failed skips of documents: id -> their rows

    def add(self, item: Skipped) -> None:
        """Count `item` (an unreadable one as an error) and record it while fewer than SKIPS_KEPT are."""
        run = self.run
        if item.failed:
            run.errors += 1
            log.warning("skipped %s: %s", item.id, item.reason)
        else:
            run.skipped += 1
            log.info("skipped %s: %s", item.id, item.reason)
        row: int | None = None
        if run.id is not None and self.recorded < SKIPS_KEPT:
            self.recorded += 1
            row = self.recorded
            title = redact(item.title) if item.title is not None else None  # as the log line shows them
            self.state.add_skip(run.id, row, item.id, title, redact(item.reason), item.failed)
        if item.failed and not item.folder:
            self.failed.setdefault(item.id, []).append(row)

    def read(self, doc_id: str) -> None:
        """`doc_id` was yielded as a `Document`: its earlier failed skips in this run are void."""
        for row in self.failed.pop(doc_id, ()):
            self.run.errors -= 1
            if row is not None and self.run.id is not None:
                self.state.drop_skip(self.run.id, row)


class _Stop:
    """What ends one run at its next checkpoint: the engine's `stop` (a signal, the daemon
    stopping) or the run's own `cancel` (a forwarded command's Ctrl-C)."""

    def __init__(self, *events: threading.Event | None) -> None:
        self._events = [e for e in events if e is not None]
        self._by: float | None = None  # when the work towards the next checkpoint ends

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)

    def overdue(self, work: float) -> bool:
        """Whether `work` seconds have passed since the stop was first noticed (asked between
        units of work, in every stage of the pipeline)."""
        if self._by is None:
            if not self.is_set():
                return False
            self._by = time.monotonic() + work
        return time.monotonic() >= self._by


class Engine:
    def __init__(
        self,
        settings: Settings,
        index: Index,
        state: StateStore,
        *,
        env: Mapping[str, str] | None = None,
        stop: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
        leases: Leases | None = None,
        stop_work: float = STOP_WORK,
        on_recent: Callable[[str, datetime], None] | None = None,
    ) -> None:
        self.settings = settings
        self.stop_work = stop_work
        self.index = index
        self.state = state
        self.leases: Leases = leases or FolderLeases(Path(index.path) / "locks")
        self.env = env
        self.stop = stop or threading.Event()
        self.on_progress = on_progress
        self.on_recent = on_recent  # (source, window start) once a recent pass is committed
        self._write_lock = threading.Lock()  # one batch at a time into the index (daemon threads)
        # source -> its last run, ended, whose end could not be recorded (a full or read-only index
        # folder): recorded by the source's next run here before anything else (`_record_pending`)
        self.unrecorded: dict[str, RunRecord] = {}

    def connector(self, name: str, env: Mapping[str, str] | None = None) -> Connector:
        """Source `name`'s connector, reading its secrets in `env` first, then in the engine's."""
        base = self.env if self.env is not None else os.environ
        return self.settings.connector(name, {**base, **env} if env else base)

    def run(
        self,
        name: str,
        kind: str = "sync",
        since: datetime | None = None,
        restart: bool = False,
        scope: frozenset[str] | None = None,
        cancel: threading.Event | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RunResult:
        """One backfill or incremental sync of a source (of the containers in `scope` only, when
        given); never raises for the source's own failures. Setting `cancel` ends this run alone
        at its next checkpoint, as `stop` ends every run (a forwarded command's Ctrl-C); `env` holds
        secrets read before the engine's own environment (a forwarded command's)."""
        with self.leases.hold(name) as fence:
            return self._unwritable(
                name, lambda: self._run_locked(name, kind, since, restart, fence, scope, _Stop(self.stop, cancel), env)
            )

    def run_if(self, name: str, due: Callable[[], bool]) -> RunResult | None:
        """A sync that `due`, asked once the source's lease is held, may decline (None): with
        shared leases, another daemon may have run the source a moment ago."""
        with self.leases.hold(name) as fence:
            if not due():
                return None
            return self._unwritable(
                name, lambda: self._run_locked(name, "sync", None, False, fence, None, _Stop(self.stop))
            )

    def _unwritable(self, name: str, run: Callable[[], RunResult]) -> RunResult:
        """`run()`; a full or read-only index folder that refuses the state's own writes before the
        run could start (recording a run kept by `_finish`, closing orphans, starting the run) is the
        `StorageError` naming `[index] path`, the folder and the cause: no run is recorded (the
        folder cannot hold one), and the caller says it in one line."""
        try:
            return run()
        except Exception as exc:
            full = storage_error(exc, self.index.path)
            if full is None or full is exc:
                raise
            raise full from exc

    def _record_pending(self, name: str) -> None:
        """Record how the last run of `name` here ended, when that could not be written then (the
        folder was full): with its own end and error, not as a run whose process stopped."""
        pending = self.unrecorded.get(name)
        if pending is None:
            return
        self.state.finish_run(pending)
        del self.unrecorded[name]
        log.info("source %r: recorded how its run that could not be recorded ended: %s", name, pending.error)

    def _run_locked(
        self,
        name: str,
        kind: str,
        since: datetime | None,
        restart: bool,
        fence: Fence | None,
        scope: frozenset[str] | None,
        stop: "_Stop",
        env: Mapping[str, str] | None = None,
    ) -> RunResult:
        self._record_pending(name)  # first: the run it names is ours, not one a stopped process left
        if self.state.close_orphan_runs(name, ORPHANED):  # the lease is ours: nobody runs them
            log.warning("source %r: taking over a run a stopped process left unfinished", name)
        source = self.state.source(name)
        source.fence = fence
        connector = self.connector(name, env)
        reads = connector.scope_fingerprint()
        rescope = kind == "sync" and scope is None and self._scope_changed(source, reads)
        # A backfill resumes the interrupted one only when that pass reads at least what this one asks
        # (`_reads_all_of`): a plain backfill after an interrupted `--since` one starts the full pass
        # instead of finishing the narrower one (what that indexed is kept, and not embedded again).
        narrower = kind == "backfill" and source.phase == "backfill" and not _reads_all_of(source.since, since)
        fresh = (
            kind == "backfill"
            and (restart or source.phase != "backfill" or narrower)
            or source.phase == "new"
            or rescope
        )
        if narrower and not restart:
            log.warning(
                "source %r: the interrupted backfill read only items modified since %s; this one reads %s, so it "
                "starts anew (what the interrupted one indexed is kept)",
                name,
                source.since,
                f"those since {since.isoformat()}" if since else "the full history",
            )
        elif kind == "backfill" and source.phase == "backfill" and not fresh and since is not None:
            if source.since != since.isoformat():
                log.warning(
                    "source %r: resuming the interrupted backfill of %s, which holds all --since %s asks "
                    "(--restart starts that one instead)",
                    name,
                    f"items since {source.since}" if source.since else "the full history",
                    since.isoformat(),
                )
        if fresh:
            source = SourceState(
                name,
                None,
                "backfill",
                source.generation + 1,
                since.isoformat() if since else None,
                source.last_prune,
                fence,
                scope=reads,
                covered=source.covered,  # a new pass deletes nothing older by itself: what was covered stays
            )
            self.state.save_source(source)
            kind = "backfill"  # a first sync of a new source, or a changed scope's, is a backfill: record it as one
        elif source.phase == "backfill":
            kind = "backfill"  # an interrupted backfill resumes, whatever was asked
        # a key with no digest yet (an index made before digests, a key a newer inlet added): as configured now;
        # so are all of them for a full pass about to start from scratch (after one that matched nothing)
        scratch = source.phase == "backfill" and source.checkpoint is None and source.since is None
        kept = {} if scratch else (source.scope or {})
        source.scope = {key: kept.get(key, digest) for key, digest in reads.items()}
        if kind != "sync" or source.checkpoint is None:
            scope = None
        elif scope is not None:
            kind = "event"
        # the sync before this one (a prune, whatever its outcome, says nothing of how that ended)
        previous = next((r for r in self.state.recent_runs(name, 20) if r.kind in SYNC_KINDS), None)
        unclean = previous is not None and previous.outcome not in ("ok", "partial")  # killed, stopped or failed
        run = self.state.start_run(name, kind)
        started = time.monotonic()
        reads_since = source.since if kind == "backfill" else None  # what this run's pass reads, said in its result
        try:
            # a wait between a call's tries ends when the run stops; an httpx error leaves as inlet's
            with waits_end_when(stop.is_set), http_errors(name):
                connector.check_local()  # preflight stops a command on its ConfigError; a bug in it fails this run
                self._drive(
                    connector,
                    source,
                    run,
                    stop,
                    scope,
                    resumed=not fresh and (kind == "backfill" or unclean and kind == "sync"),
                    after_crash=not fresh and unclean,
                )
        except CredentialsError as exc:
            log.error("%s", exc)  # names the source; stderr is where an operator looks first
            return self._finish(run, started, "failed", str(exc), credentials=True, since=reads_since)
        except InletError as exc:
            if stop.is_set() and isinstance(exc, RetriableError):  # a call gave up waiting: the run stops
                return self._finish(run, started, "interrupted", INTERRUPTED, since=reads_since)
            if isinstance(exc, NothingInScopeError) and source.phase == "backfill" and source.checkpoint is not None:
                source.checkpoint = None  # what the pass read, it read through a scope that matched nothing
                self.state.save_source(source)
            log.error("source %r failed: %s", name, exc)
            return self._finish(run, started, "failed", str(exc), retry_after=_retry_after(exc), since=reads_since)
        except Exception as exc:  # a connector bug must not take the daemon down
            full = storage_error(exc, self.index.path)
            if full is not None:  # a full or read-only index folder: its name and cause, no traceback
                log.error("source %r failed: %s", name, full)
                return self._finish(run, started, "failed", str(full), since=reads_since)
            log.exception("source %r (type %r, %s) failed", name, connector.type, origin(connector.type))
            return self._finish(run, started, "failed", f"{type(exc).__name__}: {exc}", since=reads_since)
        if stop.is_set():
            return self._finish(run, started, "interrupted", INTERRUPTED, since=reads_since)
        return self._finish(run, started, "partial" if run.errors else "ok", None, since=reads_since)

    def _scope_changed(self, source: SourceState, reads: dict[str, str]) -> bool:
        """Whether the config keys that choose what an incremental source reads changed since its
        last full pass (logged once: the run that follows reads it whole). A static ACL key with no
        digest yet (a state an earlier inlet wrote) counts as changed: what ACL the indexed items
        carry is not known (they may have been indexed public), so they are labelled again."""
        if source.phase != "incremental":
            return False
        recorded = source.scope or {}
        unknown = sorted(key for key in reads if key in StaticACLConfig.ACL_KEYS and key not in recorded)
        if unknown:
            log.warning(
                "source %r: its state has no record of the access settings (%s) its documents were indexed "
                "with (an earlier inlet wrote it); reading it whole once to label them as configured now",
                source.name,
                ", ".join(unknown),
            )
            return True
        changed = [key for key, digest in reads.items() if key in recorded and recorded[key] != digest]
        if changed:
            log.warning(
                "source %r: its configuration changed what it reads (keys %s); reading it whole",
                source.name,
                ", ".join(changed),
            )
        return bool(changed)

    def _drive(
        self,
        connector: Connector,
        source: SourceState,
        run: RunRecord,
        stop: "_Stop",
        scope: frozenset[str] | None = None,
        resumed: bool = False,
        after_crash: bool = False,
    ) -> None:
        since = datetime.fromisoformat(source.since) if source.since and source.phase == "backfill" else None
        # A run that follows an unfinished one without any checkpoint of it starts the source's
        # change feed anew (a history id, a delta round taken now): what the unfinished run indexed
        # and the source deleted since is in no feed, whatever the connector.
        blank = after_crash and source.checkpoint is None
        resumed_from = source.checkpoint  # what the unfinished run saved last: `_reconcile` asks about the rest
        progress = _Reporter(self, run)
        progress.tick(force=True)  # `inlet status` sees the run (and, killed, closes it) before any call of it
        with self._write_lock:  # what a killed run of this source left half-written, before any new write
            run.embedded += self.index.repair(source.name, source.fence).embedded_chunks
        unlisted: list[str] = []  # folders the source could not list: the prune keeps what is under them
        window = self._recent_window(connector, source, since, scope)
        if window is not None and not self._recent_pass(connector, source, run, progress, window, stop):
            return
        full = source.phase == "backfill" and source.since is None  # a full pass: its end prunes
        with self._pipeline(run, progress, stop) as pipeline:
            skips = _Skips(self.state, run)
            last_checkpoint = self._feed(
                connector, since, scope, source, run, progress, pipeline, stop, unlisted, skips
            )
            pipeline.drain()
            ended = last_checkpoint is not _STOPPED and not pipeline.abandoned
            unseen = self.index.unseen(source.name, source.generation, tuple(unlisted)) if full and ended else []
            if unseen:
                # before the prune, the connector reads again what its listing passed over (`Connector.recheck`)
                source.checkpoint = last_checkpoint
                last_checkpoint = self._feed(
                    connector, None, None, source, run, progress, pipeline, stop, unlisted, skips, unseen
                )
                pipeline.drain()
        if last_checkpoint is _STOPPED or pipeline.abandoned:
            return
        source.checkpoint = last_checkpoint
        if source.phase == "backfill":
            source.recent = None  # everything (or all since `--since`) is in now
            if source.since is None:
                with self._write_lock:
                    run.deleted += self.index.prune(source.name, source.generation, source.fence, tuple(unlisted))
            source.phase = "incremental"
            source.last_prune = time.time() if source.since is None else source.last_prune
            source.pass_completed()
        if resumed and (connector.deletions_from_checkpoint or blank):
            self._reconcile(connector, source, run, resumed_from)
        self.state.save_source(source)
        progress.tick(force=True)

    def _recent_window(
        self, connector: Connector, source: SourceState, since: datetime | None, scope: frozenset[str] | None
    ) -> datetime | None:
        """The start of the recent window to index first, or None: not a backfill at its start,
        a connector that cannot list by time, the pass turned off, or `--since` inside the window."""
        if (
            source.phase != "backfill"
            or source.checkpoint is not None
            or source.recent is not None
            or scope is not None
            or not connector.recent_first
        ):
            return None
        seconds = self.settings.recent_window(source.name)
        start = datetime.now(timezone.utc) - timedelta(seconds=seconds)
        if seconds <= 0 or since is not None and since.astimezone(timezone.utc) >= start:
            return None
        return start

    def _recent_pass(
        self,
        connector: Connector,
        source: SourceState,
        run: RunRecord,
        progress: "_Reporter",
        start: datetime,
        stop: "_Stop",
    ) -> bool:
        """Index what changed since `start`, checkpoints unsaved; record the window once it is
        committed. False when `stop` ended it (the next run redoes it)."""
        log.info("source %r: indexing what changed since %s first", source.name, start.isoformat(timespec="seconds"))
        with self._pipeline(run, progress, stop) as pipeline:
            ended = self._feed(connector, start, None, source, run, progress, pipeline, stop, [], skips=None)
            pipeline.drain()
        if ended is _STOPPED or pipeline.abandoned:
            return False
        source.recent = start.isoformat()
        source.generation += 1  # the full pass's prune drops recent documents it no longer sees
        self.state.save_source(source)
        progress.done = progress.total = None  # the full pass counts afresh
        progress.tick(force=True)
        log.info(
            "source %r: searchable back to %s; the backfill goes further back",
            source.name,
            start.isoformat(timespec="seconds"),
        )
        if self.on_recent is not None:
            self.on_recent(source.name, start)
        return True

    def _pipeline(self, run: RunRecord, progress: "_Reporter", stop: "_Stop") -> Pipeline:
        """A pipeline for `run`'s batches, which cuts what it chunks or embeds short once `stop`
        has been noticed for `stop_work` seconds."""
        return Pipeline(
            self.index,
            self._write_lock,
            on_embedded=progress.embedded,
            on_written=lambda batch, stats: self._written(batch, stats, run, progress),
            stopping=lambda: stop.overdue(self.stop_work),
        )

    def _reconcile(
        self, connector: Connector, source: SourceState, run: RunRecord, resumed_from: dict[str, Any] | None
    ) -> None:
        """After a run that followed an unfinished one (killed, stopped or failed), delete what the
        source no longer has.

        The unfinished run may have committed documents after its last saved checkpoint
        (`resumed_from`, where this run started; None: it saved none). In a full pass they carry
        its generation, so if they vanished before the resume, the prune keeps them; and a
        connector that finds deletions by its checkpoint's memory (files, mail archives, Slack)
        never learns of them. Asking the source what exists settles it, once per crash: the
        connector's `live_ids_after(resumed_from)`, which may list only what came after that
        checkpoint and vouch for the rest. A change feed (Drive, Gmail, Outlook) reports them once
        it resumes from a saved position; when the unfinished run saved none, the feed starts anew
        after them, and the source is asked whatever the connector."""
        try:
            live = _live_ids(connector.live_ids_after(resumed_from), source.name)
        except NotImplementedError:
            return
        except IncompleteListingError as exc:  # what it could not list is not known to be gone
            log.warning("deletions not reconciled: %s", exc)
            return
        gone = _unvouched(connector, source.checkpoint, _gone(self.index.catalog.source_doc_ids(source.name), live))
        if gone:
            with self._write_lock:
                run.deleted += self.index.apply([], gone, fence=source.fence).deleted

    def _feed(
        self,
        connector: Connector,
        since: datetime | None,
        scope: frozenset[str] | None,
        source: SourceState,
        run: RunRecord,
        progress: "_Reporter",
        pipeline: Pipeline,
        stop: "_Stop",
        unlisted: list[str],
        skips: _Skips | None,
        recheck: list[str] | None = None,
    ) -> Any:
        """Hands the connector's items (`load`'s, or with `recheck` those of `Connector.recheck` of
        these ids) to `pipeline` in batches, each checkpoint behind the batch it
        follows (saved, and skips counted in `skips`, unless `skips` is None: a recent pass, whose
        skips the full pass meets and counts again); returns the last checkpoint's state, or
        _STOPPED when `stop` ended the run early. The ids of folder skips (`Skipped.folder`) are
        added to `unlisted`. An item naming another source's document (`_foreign`) is a connector
        bug: never applied, counted as a failed skip naming it. Anything yielded that is not an
        inlet item (`model.not_an_item`) is a connector bug that fails the run (`ConnectorBugError`): what the
        pass yielded is then unknown, so it must not end, and its prune must not run."""
        batch = _Batch()
        checkpoints: _CheckpointWriter | _NoCheckpoints = (
            _CheckpointWriter(self.state, source) if skips is not None else _NoCheckpoints()
        )
        last_checkpoint: dict[str, Any] | None = source.checkpoint
        saved: dict[str, Any] | None = None  # the last checkpoint queued (the budget may skip one)
        items: Iterator[Any] = iter(())
        try:
            if recheck is not None:
                items = connector.recheck(source.checkpoint, recheck)
            elif scope is None or source.checkpoint is None:
                items = connector.load(source.checkpoint, since=since)
            else:
                items = connector.load_scope(source.checkpoint, scope)
            for item in items:
                if (what := not_an_item(item)) is not None:  # before anything of the pass is pruned by it
                    raise ConnectorBugError(
                        f"connector bug: source {source.name!r} yielded {what}; the run stopped without deleting "
                        "anything by it"
                    )
                progress.seen += 1
                if stop.overdue(self.stop_work) and not isinstance(item, Checkpoint):
                    return _STOPPED  # the batch under way is dropped: re-read on resume
                if isinstance(item, (Document, Deletion, Skipped, AclUpdate)) and (why := _foreign(item, source.name)):
                    if skips is not None:
                        skips.add(Skipped(id=item.id, reason=why))
                elif isinstance(item, Document):
                    batch.add(item)
                    if skips is not None:
                        skips.read(item.id)
                elif isinstance(item, Deletion):
                    batch.delete(item.id)
                elif isinstance(item, Skipped) and skips is not None:  # a recent pass's skips come again
                    skips.add(item)
                    if item.failed:  # unreadable, not gone: a full pass must not prune what was indexed
                        if item.folder:
                            unlisted.append(item.id)
                        else:
                            batch.kept[item.id] = item.acl
                elif isinstance(item, AclUpdate):  # new permissions, same content: no re-embedding
                    batch.kept[item.id] = item.acl
                elif isinstance(item, Progress):
                    progress.update(item)
                elif isinstance(item, Checkpoint):
                    self._flush(batch, source, pipeline, skips)
                    batch = _Batch()
                    if checkpoints.offer(item.state, pipeline, now=stop.is_set()):  # not JSON: raises
                        saved = item.state
                    last_checkpoint = item.state
                    if stop.is_set():
                        return _STOPPED
                if batch.full():
                    self._flush(batch, source, pipeline, skips)
                    batch = _Batch()
                progress.tick()
        except Exception:  # the source failed: save its last checkpoint, after what came before it
            if last_checkpoint is not None and last_checkpoint is not saved and pipeline.failure is None:
                checkpoints.offer(last_checkpoint, pipeline, now=True)
            raise
        finally:
            # The connector's generator ends here, whatever ended the feed, running its `finally`
            # blocks (its worker threads, its clients): left to the collector, a failure's traceback
            # kept it suspended, and the threads of a fan-in went on, holding the process's exit.
            close = getattr(items, "close", None)
            if close is not None:
                close()
        if last_checkpoint is not None and last_checkpoint is not saved:  # the budget skipped it: saved below
            checkpoints.stored(last_checkpoint)
        self._flush(batch, source, pipeline, skips)
        return last_checkpoint

    def _flush(self, batch: _Batch, source: SourceState, pipeline: Pipeline, skips: _Skips | None) -> None:
        """Hand `batch` to `pipeline`; a document the index could not prepare is that item's failed
        skip, counted in `skips` (unless None: a recent pass, whose items the full pass reads again)."""
        if not (batch.docs or batch.deletions or batch.kept):
            return
        prepared = pipeline.submit(batch.docs, batch.deletions, source.generation, source.fence, batch.kept)
        if prepared is None or skips is None:
            return
        for bad in prepared.unprepared:
            skips.add(Skipped(id=bad.doc_id, reason=bad.reason, title=bad.title or None))

    def _written(self, batch: Prepared, stats: ApplyStats, run: RunRecord, progress: "_Reporter") -> None:
        """A batch is in the index: count it (in the writing thread)."""
        with progress.lock:
            progress.embedding -= len(batch.inputs)  # now counted in run.embedded (reused ones are not)
            run.upserted += stats.upserted
            run.deleted += stats.deleted
            run.embedded += stats.embedded_chunks
        progress.tick(save=True)

    def _finish(
        self,
        run: RunRecord,
        started: float,
        outcome: str,
        error: str | None,
        credentials: bool = False,
        retry_after: float | None = None,
        since: str | None = None,
    ) -> RunResult:
        error = redact(error) if error is not None else None  # recorded and shown as the log shows it
        run.outcome = outcome
        run.error = error
        run.retry_at = time.time() + retry_after if retry_after is not None else None
        if outcome == "failed":
            run.errors += 1  # the error that ended it
        try:
            self._record(run)
        except Exception as exc:
            full = storage_error(exc, self.index.path)
            if full is None:
                raise
            self.unrecorded[run.source] = run  # ended now: the time it is recorded with later
            log.error(
                "source %r: how its run ended (%s) cannot be recorded now: %s; it is recorded by the source's next run",
                run.source,
                outcome,
                full,
            )
        if outcome != "failed":  # a failure was logged where it was caught
            log.info(
                "%s of %r %s: %d upserted, %d deleted, %d skipped, %d errors, %d chunks embedded in %.1fs",
                run.kind,
                run.source,
                outcome,
                run.upserted,
                run.deleted,
                run.skipped,
                run.errors,
                run.embedded,
                time.monotonic() - started,
            )
        return RunResult(
            run.source,
            outcome,
            run.upserted,
            run.deleted,
            run.skipped,
            run.errors,
            time.monotonic() - started,
            error,
            run.embedded,
            credentials,
            retry_after,
            since,
        )

    def record_unrun(self, name: str, kind: str, why: str) -> RunResult:
        """Record a run of `name` that was asked for but could not start, the engine stopping, as
        `interrupted` with `why`: like a run the stop cut short, a restarted daemon runs it at once
        (`daemon.due_at_start`). Nothing is read or written but the record."""
        run = self.state.start_run(name, kind)
        return self._finish(run, time.monotonic(), "interrupted", why)

    def _record(self, run: RunRecord) -> None:
        """Record how `run` ended, trying again (unless stopped) while the index database cannot be
        reached: the run's failure is then often that same outage, and unrecorded, `inlet status`
        would show the run running until its lease lapsed, then interrupted, the cause nowhere."""
        for attempt in range(1, RECORD_TRIES + 1):
            try:
                return self.state.finish_run(run)
            except IndexUnavailable as exc:
                if attempt == RECORD_TRIES or self.stop.is_set():
                    raise
                log.warning("source %r: could not record how its run ended, trying again: %s", run.source, exc)

    def prune(self, name: str) -> RunResult:
        """Reconcile deletions: drop indexed documents the source no longer has. Its listing
        (`live_ids`) is called as `load` is in a run: a wait between a call's tries ends when the
        engine stops, an httpx error leaves as inlet's typed error naming the source, and any other
        exception is a connector bug, logged with its traceback naming the source. A failed listing,
        or one naming an id not of the source (`_live_ids`), deletes nothing and is recorded as a
        failed prune (`inlet status` shows it; a prune is no sync: `SYNC_KINDS`) and returned as a
        failed result (the caller logs an inlet error). So is a prune whose deletions fail (its lease
        lost, the Chroma server or the database out of reach, a full index folder): its run is
        recorded as ended then, with that error, never left open for the next run to close as one a
        stopped process left."""
        connector = self.connector(name)
        try:
            with waits_end_when(self.stop.is_set), http_errors(name):
                live = _live_ids(connector.live_ids(), name)
                gone = _gone(self.index.catalog.source_doc_ids(name), live)
                gone = _unvouched(connector, self.state.source(name).checkpoint, gone)
        except NotImplementedError:
            return self.run(name, "backfill", restart=True)  # a full pass reconciles too
        except InletError as exc:  # e.g. the folder vanished, a refused token: nothing is deleted
            if self.stop.is_set() and isinstance(exc, RetriableError):  # a call gave up waiting: stopped
                return RunResult(name, "interrupted", 0, 0, 0, 0, 0.0, INTERRUPTED)
            return self._prune_failed(
                name, str(exc), credentials=isinstance(exc, CredentialsError), retry_after=_retry_after(exc)
            )
        except Exception as exc:  # a connector bug (as in `load`): this source's prune fails, nothing else
            log.exception("source %r: prune failed: a bug in its connector's live_ids", name)
            return self._prune_failed(name, f"{type(exc).__name__}: {exc}")
        with self.leases.hold(name) as fence:
            run = self.state.start_run(name, "prune")
            started = time.monotonic()
            try:
                with self._write_lock:
                    run.embedded += self.index.repair(name, fence).embedded_chunks
                    run.deleted = self.index.apply([], gone, fence=fence).deleted
                source = self.state.source(name)
                source.last_prune = time.time()
                source.fence = fence
                self.state.save_source(source)
            except InletError as exc:  # the lease lost, the Chroma server or the database out of reach
                return self._finish(run, started, "failed", str(exc))
            except Exception as exc:
                full = storage_error(exc, self.index.path)
                if full is None:
                    raise
                return self._finish(run, started, "failed", str(full))  # a full or read-only index folder
            return self._finish(run, started, "ok", None)

    def _prune_failed(
        self, name: str, error: str, credentials: bool = False, retry_after: float | None = None
    ) -> RunResult:
        """A prune whose listing failed, recorded as a failed prune run (deleting nothing)."""
        with self.leases.hold(name):
            run = self.state.start_run(name, "prune")
            return self._finish(run, time.monotonic(), "failed", error, credentials, retry_after)


def _retry_after(exc: Exception) -> float | None:
    """The seconds a failure's service asked to wait before the next call (a `RetriableError`'s
    Retry-After), or None."""
    return exc.retry_after if isinstance(exc, RetriableError) else None


def _foreign(item: Document | Deletion | Skipped | AclUpdate, source: str) -> str | None:
    """Why `item` is not `source`'s to apply (its id is not `source:...`, a document's `source`
    field names another), or None. The reason names the source and the id: `inlet status` lists it."""
    kind = type(item).__name__
    if not item.id.startswith(f"{source}:"):
        return (
            f"connector bug: a {kind} whose id {item.id!r} is not of source {source!r} "
            f"(ids start with '{source}:', Connector.doc_id); not applied"
        )
    if isinstance(item, Document) and item.source != source:
        return f"connector bug: a Document of source {source!r} says its source is {item.source!r}; not applied"
    return None


def _live_ids(listing: Iterable[str], source: str) -> set[str]:
    """A connector's `listing` (`live_ids`, `live_ids_after`), every id checked to be `source`'s: a
    listing naming ids of no document of it (native ids without `Connector.doc_id`) would have every
    document pruned, so it is a connector bug (`ConnectorBugError`) and nothing is deleted."""
    live = set(listing)
    foreign = sorted(str(i) for i in live if not (isinstance(i, str) and i.startswith(f"{source}:")))
    if foreign:
        shown = ", ".join(repr(i) for i in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConnectorBugError(
            f"connector bug: live_ids() of source {source!r} listed {len(foreign)} id(s) not of this source "
            f"({shown}; ids start with '{source}:', Connector.doc_id); nothing was deleted"
        )
    return live


def _gone(ids: Iterable[str], live: set[str]) -> list[str]:
    """The indexed `ids` that `live` neither names nor vouches for with a `LivePrefix`."""
    prefixes = tuple(p for p in live if isinstance(p, LivePrefix))
    return [d for d in ids if d not in live and not d.startswith(prefixes)]


def _unvouched(connector: Connector, checkpoint: dict[str, Any] | None, gone: list[str]) -> list[str]:
    """The documents of `gone` (a listing did not name them) that the connector's `recheck` does
    not find still there: a listing paged by position passes over items when ones before them
    are deleted while it runs. What `recheck` reads is not applied here: the source's change feed
    (its checkpoint) still follows those documents."""
    if not gone:
        return gone
    there = {
        item.id
        for item in connector.recheck(checkpoint, gone)
        if isinstance(item, (Document, AclUpdate)) or isinstance(item, Skipped) and item.failed
    }
    return [d for d in gone if d not in there]
