"""What `inlet status` and `GET /v1/sources` report, read from the state and the catalog's counts.

No vector store and no index lock: status works while a sync or the daemon holds the index. It reads
whichever backend `open_backend` opens (the folder's SQLite files, or PostgreSQL with every host's
daemons), and never upgrades the folder's schema: files an earlier inlet wrote are read as they are
(the state through a migrated copy in memory), and `upgrade` names the steps the next command that
opens the index applies (a read such as `inlet search` or `inlet mcp` too). Besides the configured
sources it lists, under `unconfigured`, the sources whose documents or sync state (checkpoint, runs)
the index still holds although the configuration no longer names them (removed or renamed: not
served, see `inlet.index.store`; sync state alone, `state_only`, is what an interrupted `inlet
forget` leaves), with the command that deletes them. A last run recorded more than a minute in this
host's future (`recorded_ahead_seconds`) was timed by another clock: the report says so, and the
schedule counts from now (`sync.schedule.counted_from`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any
from collections.abc import Mapping

from inlet.config import Settings
from inlet.process import alive, ended_here
from inlet.sync.schedule import ahead, next_run
from inlet.storage import ORPHANED, SYNC_KINDS, RunRecord, StateStore, open_backend


def iso(ts: float | None) -> str | None:
    """'2026-12-05T19:59:48.326Z': UTC, at most millisecond precision."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _gone(run: dict[str, Any], held: bool) -> bool:
    """Whether no process runs `run` (`StateStore.running`) any more: its process is dead, or on a
    shared index its source's lease is not `held` (a process on another host cannot be asked)."""
    return not held or (run["pid"] is not None and not alive(run["pid"]))


def _running(run: dict[str, Any] | None, held: bool) -> dict[str, Any] | None:
    """The run in flight, with its counts, its total and time left when known."""
    if run is None or _gone(run, held):
        return None
    now = time.time()
    done, total = run["done"], run["total"]
    eta = None
    if total is not None and done:
        eta = round((now - run["started_at"]) * (total - done) / done, 1)
    return {
        "kind": run["kind"],
        "started_at": iso(run["started_at"]),
        "items": run["seen"],
        "done": done,
        "total": total,
        "unit": run["unit"],
        "upserted": run["upserted"],
        "deleted": run["deleted"],
        "skipped": run["skipped"],
        "errors": run["errors"],
        "embedded": run["embedded"],
        "eta_seconds": eta,
        "updated_at": iso(run["updated"]),
    }


def sources_status(
    settings: Settings, state: StateStore | None = None, unrecorded: Mapping[str, RunRecord] | None = None
) -> dict[str, Any]:
    """The report; `unrecorded`: the runs that ended in this process (a daemon answering) but whose
    end the index folder could not take (full: `Engine.unrecorded`), shown as the last runs they
    are rather than as running."""
    kept = unrecorded or {}
    backend = open_backend(settings)
    own = state is None
    state = state or backend.read_state()
    try:
        # The runs in flight first, then the leases: a run is started under its lease, so one read
        # before the leases were shows its lease held; read after, a run that began between the
        # two reads would have looked like one whose process had gone.
        in_flight = {source.name: state.running(source.name) for source in settings.sources}
        overview = backend.overview(state)
        counts, planned, holders = overview.counts, overview.planned, overview.holders
        paused = state.paused()
        events = backend.event_status()
        out = []
        for source in settings.sources:
            lease = holders.get(source.name)
            # a lease of a process of this host that has ended (killed) holds nothing any more
            held = not backend.shared or bool(lease and not ended_here(str(lease.get("holder", ""))))
            unfinished = in_flight[source.name]
            # a prune is no sync: the last run, the last success (so the lag) and the failure streak are
            # the syncs' (`SYNC_KINDS`), the last prune beside them; a failure the daemon could not
            # record yet (a full disk) is its last run (`kept`)
            orphan = _orphaned(state, source.name, unfinished, held)
            pruned = orphan is not None and orphan.kind not in SYNC_KINDS
            last = kept.get(source.name) or (
                orphan if orphan is not None and not pruned else state.last_run(source.name, kinds=SYNC_KINDS)
            )
            prune = orphan if pruned else state.last_run(source.name, kinds=("prune",))
            ok = state.last_run(source.name, successful=True, kinds=SYNC_KINDS)
            newest = orphan or state.last_run(source.name)
            now = time.time()  # this host's clock, which the state gives its times in
            if source.name in planned:
                ts = planned[source.name]
                due = _utc(ts) if ts is not None else None
            else:
                due = next_run(source, last.finished_at if last else None, _utc(now))
            # the service that failed the last run asked for no call before this: no run starts earlier
            wait = newest.waits_until(now) if newest else None
            if due is not None and wait is not None and due.timestamp() < wait:
                due = _utc(wait)
            docs, chunks = counts.get(source.name, (0, 0))
            skew = ahead(last.finished_at or last.started_at, now) if last else None
            out.append(
                {
                    "name": source.name,
                    "type": source.type,
                    "documents": docs,
                    "chunks": chunks,
                    # how far back it is searchable: "all", an RFC 3339 time (a backfill's recent window
                    # while it goes further back, or its --since), or None (nothing complete yet)
                    "indexed_since": _indexed_since(state, source.name),
                    "last_run": None
                    if last is None
                    else {
                        "started_at": iso(last.started_at),
                        "finished_at": iso(last.finished_at),
                        "outcome": last.outcome,
                        "upserted": last.upserted,
                        "deleted": last.deleted,
                        "skipped": last.skipped,
                        "errors": last.errors,
                        "error": last.error,
                        "kind": last.kind,
                        "skipped_items": state.skipped_items(last.id) if last.id is not None else [],
                    },
                    "last_prune": None
                    if prune is None
                    else {
                        "finished_at": iso(prune.finished_at),
                        "outcome": prune.outcome,
                        "deleted": prune.deleted,
                        "error": prune.error,
                    },
                    "next_run": iso(due.timestamp()) if due else None,
                    "retry_not_before": iso(wait),
                    # the last run's time lies this far in this host's future: timed by another clock
                    "recorded_ahead_seconds": round(skew) if skew is not None else None,
                    # True: a running daemon has the source on its schedule; False: next_run is only when
                    # the schedule would run it, as no daemon runs it now (`inlet serve` alone runs nothing)
                    "scheduled": source.name in planned,
                    "last_success": iso(ok.finished_at) if ok else None,
                    "lag_seconds": round(now - ok.finished_at, 1) if ok and ok.finished_at else None,
                    "failure_streak": state.failure_streak(source.name) + (source.name in kept),
                    "paused": source.name in paused,
                    "events": _events(events.get(source.name)),
                    **({"holder": holders.get(source.name)} if backend.shared else {}),
                    "running": None if source.name in kept else _running(unfinished, held),
                    "recent_skips": recent_skips(state, source.name),
                }
            )
        configured = {s.name for s in settings.sources}
        left = {name: counts.get(name, (0, 0)) for name in {*counts, *state.known_sources()} - configured}
        unconfigured = [
            {
                "name": name,
                "documents": docs,
                "chunks": chunks,
                "remove": forget_command(name),
                "state_only": name not in counts,
            }
            for name, (docs, chunks) in sorted(left.items())
        ]
        # a process holding its own state opened (so upgraded) the index: nothing is pending then
        return {"sources": out, "unconfigured": unconfigured, "upgrade": backend.upgrade_pending() if own else []}
    finally:
        if own:
            state.close()


def forget_command(name: str) -> str:
    """The command deleting what the index holds of source `name` (not configured any more)."""
    return f"inlet forget {name}"


def _orphaned(state: StateStore, name: str, unfinished: dict[str, Any] | None, held: bool) -> RunRecord | None:
    """The newest run of `name` when it is `unfinished` and no process runs it any more (killed, or
    its lease lapsed), as the next run will record it when it takes over: failed, ended at its last
    saved progress. (A run with no progress saved yet is a run starting: not judged.)"""
    newest = state.recent_runs(name, 1)
    if unfinished is None or not _gone(unfinished, held) or not newest or newest[0].finished_at is not None:
        return None
    if newest[0].started_at != unfinished["started_at"]:  # a newer run is starting
        return None
    run = newest[0]
    return replace(run, finished_at=unfinished["updated"], outcome="failed", errors=run.errors + 1, error=ORPHANED)


def _indexed_since(state: StateStore, name: str) -> str | None:
    since = state.source(name).indexed_since()
    if since is None or since == "all":
        return since
    return iso(datetime.fromisoformat(since).timestamp())


SKIPS_LOOKBACK = 20  # runs searched back for the newest one that skipped items


def recent_skips(state: StateStore, name: str) -> dict[str, Any] | None:
    """The items skipped by the newest finished run of `name` that skipped any, with its kind, end
    and how many it skipped in all: a backfill's skips stay in view after incremental syncs that
    skipped nothing (`last_run.skipped_items` is the last run's alone)."""
    for run in state.recent_runs(name, SKIPS_LOOKBACK):
        if run.id is not None and run.finished_at is not None and run.items_not_indexed():
            items = state.skipped_items(run.id)
            if items:
                return {
                    "kind": run.kind,
                    "finished_at": iso(run.finished_at),
                    "items": items,
                    "total": run.items_not_indexed(),
                }
    return None


def _events(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """A running daemon's change-event state of a source (None: no daemon hears its events)."""
    if report is None:
        return None
    return {**report, "last_event_at": iso(report.get("last_event_at"))}


class SourcesCollector:
    """Prometheus gauges of the sync schedule, read from SQLite at scrape time, labelled by source:
    inlet_source_lag_seconds (since the last successful sync), inlet_source_last_run_timestamp_seconds,
    inlet_source_next_run_timestamp_seconds (only for a source a running daemon has on its schedule:
    under a plain `inlet serve` nothing runs it), inlet_source_failure_streak and inlet_source_last_run_ok
    (1 when the last finished run was ok or partial). Documents, chunks and the last success are the
    server's own `IndexCollector`; register both: `registry.register(SourcesCollector(settings))`.
    """

    def __init__(self, settings: Settings, state: StateStore | None = None) -> None:
        self.settings = settings
        self.state = state

    def describe(self) -> list[Any]:
        return []  # collected lazily: nothing touches SQLite at registration

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        report = sources_status(self.settings, self.state)["sources"]
        gauges = {
            name: GaugeMetricFamily(f"inlet_source_{name}", doc, labels=["source"])
            for name, doc in (
                ("lag_seconds", "Seconds since the last successful sync"),
                ("last_run_timestamp_seconds", "End of the last finished run (unix seconds)"),
                ("next_run_timestamp_seconds", "Next scheduled sync (unix seconds)"),
                ("failure_streak", "Failed syncs since the last successful one (prunes not counted)"),
                ("last_run_ok", "1 if the last finished sync was ok or partial, else 0"),
                ("events_live", "1 if the daemon hears the source's change events now, else 0"),
                ("last_event_timestamp_seconds", "Time of the last change event (unix seconds)"),
                ("event_latency_seconds", "From the last change event to its sync's end (searchable)"),
                ("event_latency_p50_seconds", "Median event-to-searchable latency of recent events"),
            )
        }
        for s in report:
            last = s["last_run"]
            values = {
                "lag_seconds": s["lag_seconds"],
                "last_run_timestamp_seconds": _epoch(last["finished_at"]) if last else None,
                "next_run_timestamp_seconds": _epoch(s["next_run"]) if s["scheduled"] else None,
                "failure_streak": s["failure_streak"],
                "last_run_ok": (1 if last["outcome"] in ("ok", "partial") else 0) if last else None,
                **_event_values(s["events"]),
            }
            for name, value in values.items():
                if value is not None:
                    gauges[name].add_metric([s["name"]], float(value))
        yield from gauges.values()


def _event_values(events: dict[str, Any] | None) -> dict[str, Any]:
    if events is None:
        return {}
    return {
        "events_live": 1 if events["live"] else 0,
        "last_event_timestamp_seconds": _epoch(events["last_event_at"]),
        "event_latency_seconds": events.get("latency_seconds"),
        "event_latency_p50_seconds": events.get("latency_p50_seconds"),
    }


def _epoch(stamp: str | None) -> float | None:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None
