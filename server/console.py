"""The operator's console: `/console`, a page of three static files, and the admin routes it reads.

The page itself holds no data, so it is served without a key; everything it shows comes from
admin-only JSON routes called with the key the operator types in (kept in the tab's
sessionStorage, sent as `Authorization: Bearer`). A non-admin key gets 403 and the page says so.
No build step and no framework: the files work offline, and the page sets no inline script, so a
strict Content-Security-Policy applies.

- `GET /v1/admin/console`: every source as `inlet status --json` reports it (skipped items with
  reasons included), plus its run history (newest first), recent errors with their times, the
  current error (none once a later run succeeded), since when it is paused, and whether this
  process can run sources (a daemon with `--serve`; a plain `inlet serve` can only pause and resume).
- `POST /v1/admin/sources/{name}/{action}`: `run` (a sync now), `backfill` (restart the backfill),
  `pause` / `resume` (the schedule; persisted in the state database, so it survives restarts and
  every daemon on the index sees it). Runs are queued, not awaited: 202.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from inlet.config import Settings
from inlet.status import iso, sources_status
from inlet.storage import RunRecord, StateStore, open_backend

from .auth import require_admin
from .errors import ApiError, error_responses
from .models import ConsoleData, SourcePaused, SourceQueued

STATIC = Path(__file__).with_name("console_static")
FILES = {"console.js": "text/javascript", "console.css": "text/css"}
HISTORY = 30  # runs per source in the history chart
ACTIONS = ("run", "backfill", "pause", "resume")
ERRORS = error_responses(
    (403, "not an admin key"),
    (404, "no such source or action"),
    (409, "this process runs no sources (run and backfill need `inlet daemon --serve`)"),
    (503, "the state database cannot be reached for a moment"),
)
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "form-action 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def is_console_path(path: str) -> bool:
    """The page and its files need no key (they hold no data)."""
    return path == "/console" or path.startswith("/console/")


def run_json(run: RunRecord) -> dict[str, Any]:
    seconds = None if run.finished_at is None else round(run.finished_at - run.started_at, 1)
    return {
        "kind": run.kind,
        "outcome": run.outcome or "running",
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "seconds": seconds,
        "upserted": run.upserted,
        "deleted": run.deleted,
        "skipped": run.skipped,
        "errors": run.errors,
        "error": run.error,
    }


def _run_errors(run: RunRecord) -> str:
    """What went wrong in `run`: its own error, and how many items it could not read (those are
    listed, with their reasons, among the items not indexed)."""
    unread = f"{run.errors} item(s) could not be read: see the items not indexed" if run.errors else ""
    return "; ".join(part for part in (run.error, unread) if part)


def overview(settings: Settings, state: StateStore) -> dict[str, Any]:
    """`sources_status` (with `recent_skips`) plus, per source: its run history (newest first), its
    recent errors with their times (a run's own error, and the count of items it could not read),
    `current_error` (the last run's, only while that run failed: a recovered source has none) and
    `paused_since`."""
    report = sources_status(settings, state)
    paused = state.paused()
    for source in report["sources"]:
        runs = state.recent_runs(source["name"], HISTORY)
        source["history"] = [run_json(r) for r in runs]
        source["recent_errors"] = [
            {"at": iso(r.finished_at or r.started_at), "kind": r.kind, "error": _run_errors(r)}
            for r in runs
            if r.error or r.errors
        ][:10]
        last = source["last_run"]
        failed = last is not None and last["outcome"] == "failed" and last["error"]
        source["current_error"] = {"at": last["finished_at"], "error": last["error"]} if failed else None
        source["paused_since"] = iso(paused.get(source["name"]))
    return report


def add_console(app: FastAPI, settings: Settings, state: StateStore | None) -> None:
    """Mount the page and its admin routes. `app.state.daemon` (set by `inlet daemon --serve`) runs
    sources; without it only pause and resume are possible."""
    app.state.daemon = None

    @contextmanager
    def state_db() -> Iterator[StateStore]:
        if state is not None:
            yield state
            return
        own = open_backend(settings).state()
        try:
            yield own
        finally:
            own.close()

    def with_state(func: Callable[[StateStore], Any]) -> Callable[[], Any]:
        def call() -> Any:
            with state_db() as db:
                return func(db)

        return call

    @app.get("/console", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)

    @app.get("/console/{name}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        if name not in FILES:
            raise ApiError(404, "not_found", f"no console file {name!r}")
        return FileResponse(STATIC / name, media_type=FILES[name], headers=HEADERS)

    @app.get(
        "/v1/admin/console",
        tags=["operations"],
        responses={**ERRORS, 200: {"model": ConsoleData, "description": "every source's status and history"}},
    )
    async def console_data(request: Request) -> Any:
        """Sources, their run history and recent errors, for the console (admin keys only)."""
        request.state.caller = require_admin(request.state.key, "the console")
        data = await run_in_threadpool(with_state(lambda db: overview(settings, db)))
        return {**data, "can_run": app.state.daemon is not None}

    @app.post(
        "/v1/admin/sources/{name}/{action}",
        status_code=202,
        tags=["operations"],
        responses={
            **ERRORS,
            200: {"model": SourcePaused, "description": "the source's schedule was paused or resumed"},
            202: {"model": SourceQueued, "description": "the run or backfill was queued"},
        },
    )
    async def source_action(name: str, action: str, request: Request) -> Any:
        """`run` a sync now, restart the `backfill`, `pause` or `resume` the schedule (admin keys only)."""
        request.state.caller = require_admin(request.state.key, "the console")  # named in the access log
        if name not in {s.name for s in settings.sources}:
            raise ApiError(404, "not_found", f"no source {name!r} is configured")
        if action not in ACTIONS:
            raise ApiError(404, "not_found", f"no action {action!r}; one of {', '.join(ACTIONS)}")
        if action in ("pause", "resume"):
            await run_in_threadpool(with_state(lambda db: db.set_paused(name, action == "pause")))
            return JSONResponse({"source": name, "paused": action == "pause"}, 200)
        daemon = app.state.daemon
        if daemon is None:
            raise ApiError(
                409,
                "no_daemon",
                "this process does not run sources: use `inlet daemon --serve`, "
                "or `inlet sync` / `inlet backfill --restart` from a shell",
            )
        daemon.start_now(name, restart_backfill=action == "backfill")
        return {"source": name, "queued": action}
