"""`POST /v1/admin/sync`: run sources now and answer once they ran (admin keys only).

The route is part of every API app, so it has the same key check, body limits and error shape as
the others; it runs sources through `app.state.daemon` (set by `inlet daemon --serve`) and is a
409 in a process that runs none (`inlet serve`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from inlet.config import Settings

from .auth import require_admin
from .errors import ApiError, error_responses
from .models import RunsResponse

ERRORS = error_responses(
    (400, "a name that is not a configured source"),
    (403, "not an admin key"),
    (409, "this process runs no sources (`inlet daemon --serve` does)"),
    (503, "the state database cannot be reached for a moment"),
    (415, "body not JSON"),
    (422, 'a body that is not `{"sources": [names]}`'),
)


class SyncRequest(BaseModel):
    """Which sources to run now; no body, or no `sources`, runs every configured source."""

    model_config = ConfigDict(extra="forbid")
    sources: list[str] | None = Field(None, description="configured source names (default: all)")


def add_admin_sync(app: FastAPI, settings: Settings) -> None:
    """`{"sources": [...]}` (default: every configured source) -> `{"runs": [...]}` once they ran."""

    @app.post(
        "/v1/admin/sync",
        tags=["operations"],
        responses={**ERRORS, 200: {"model": RunsResponse, "description": "the runs, once they ended"}},
    )
    async def admin_sync(request: Request, body: SyncRequest | None = None) -> Any:
        """Sync the named sources now and answer with their runs (admin keys only)."""
        request.state.caller = require_admin(request.state.key, "POST /v1/admin/sync")
        daemon = request.app.state.daemon
        if daemon is None:
            raise ApiError(409, "no_daemon", "this process does not run sources: use `inlet daemon --serve`")
        known = [s.name for s in settings.sources]
        names = known if body is None or body.sources is None else body.sources
        if not all(n in known for n in names):
            raise ApiError(400, "unknown_source", f"'sources' must list configured sources ({sorted(known)})")
        results = await run_in_threadpool(daemon.run_now, names)
        return {"runs": [{**r.as_json(), "credentials_refused": r.credentials_refused} for r in results]}
