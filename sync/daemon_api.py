"""How a serving `inlet daemon` is reached over HTTP: its API thread and its keys.

The daemon binds its API socket before taking the index lock, so the lock records the API's URL;
it then writes `daemon-api.json` in the index folder (created 0600: only the user who can read the
index anyway can use it) with two keys generated for this run: an operator key (admin) and an agent
key (`on_behalf_of`), for local tools that prefer HTTP. Syncs can be triggered through the
admin-only `POST /v1/admin/sync`, added to the API app by the daemon. The `inlet` commands
themselves reach any holder of the index over the local channel (`local_channel.py`).
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inlet.config import ApiKey, Settings


if TYPE_CHECKING:
    from .daemon import Daemon

API_FILE = "daemon-api.json"
OPERATOR_KEY_ENV = "INLET_DAEMON_OPERATOR_KEY"
AGENT_KEY_ENV = "INLET_DAEMON_AGENT_KEY"


@dataclass
class ApiPlan:
    """The API of a serving daemon: its socket (bound before the index lock records the URL) and keys."""

    sock: socket.socket
    url: str
    operator_key: str
    agent_key: str

    @classmethod
    def bind(cls, settings: Settings) -> "ApiPlan":
        host, port = settings.server.host, settings.server.port
        from inlet.process import listen

        sock = listen(host, port, "[server]")
        local = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
        return cls(sock, f"http://{local}:{sock.getsockname()[1]}", secrets.token_urlsafe(32),
                   secrets.token_urlsafe(32))

    def with_keys(self, settings: Settings) -> tuple[Settings, dict[str, str]]:
        """`settings` plus this run's operator and agent keys, and the environment that holds them."""
        env = {**os.environ, OPERATOR_KEY_ENV: self.operator_key, AGENT_KEY_ENV: self.agent_key}
        keys = [*settings.server.api_keys,
                ApiKey(name="inlet-daemon-operator", key_env=OPERATOR_KEY_ENV, admin=True),
                ApiKey(name="inlet-daemon-agent", key_env=AGENT_KEY_ENV, on_behalf_of=True)]
        server = settings.server.model_copy(update={"api_keys": keys})
        return settings.model_copy(update={"server": server}), env

    def start(self, settings: Settings, index: Any, state: Any, daemon: Daemon) -> "ApiThread":
        from inlet.server.app import create_app
        from inlet.status import SourcesCollector

        from inlet.server.auth import warn_without_keys

        warn_without_keys(settings, os.environ)   # this run's own keys serve local commands only
        served, env = self.with_keys(settings)
        app = create_app(served, index=index, state=state, env=env)
        metrics = getattr(getattr(app.state, "metrics", None), "registry", None)
        if metrics is not None:
            metrics.register(SourcesCollector(settings, state))   # lag, next run, failure streak
        admin = {env[k.key_env]: k.admin for k in served.server.api_keys if env.get(k.key_env)}
        add_admin_routes(app, daemon, served, admin)
        app.state.daemon = daemon   # the console's run-now and restart-backfill actions
        app.state.hooks = lambda type_, name: daemon.events.receiver(type_, name) if daemon.events else None
        path = Path(settings.index.path) / API_FILE
        write_api_file(path, {"pid": os.getpid(), "api_url": self.url, "operator_key": self.operator_key,
                              "agent_key": self.agent_key})
        return ApiThread(app, self.sock, path)   # the socket listens already: early callers queue


class ApiThread:
    """uvicorn in a thread (signals stay with the main thread, which stops it)."""

    def __init__(self, app: Any, sock: socket.socket, api_file: Path | None = None) -> None:
        import uvicorn

        self.sock = sock
        self.api_file = api_file
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True,
                                       name="inlet-api")
        self.thread.start()

    def stop(self) -> None:
        if self.api_file:
            self.api_file.unlink(missing_ok=True)
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def write_api_file(path: Path, payload: dict[str, Any]) -> None:
    """Write the local-operator file readable by its owner only (created 0600, never widened)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle)


def add_admin_routes(app: Any, daemon: Daemon, settings: Settings, roles: dict[str, bool]) -> None:
    """`POST /v1/admin/sync {"sources": [...]}` (admin keys only) -> `{"runs": [...]}` once they ran.

    `roles` maps each valid key to whether it is an admin key.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    def error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)

    async def sync_route(request: Request) -> JSONResponse:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not given or not any(secrets.compare_digest(given, key) for key in roles):
            return error(401, "unauthorized", "missing or unknown API key")
        if not roles.get(given):
            return error(403, "forbidden", "triggering syncs needs an admin key")
        try:
            body = await request.json()
        except ValueError:
            body = None
        names = body.get("sources") if isinstance(body, dict) else None
        if names is None:
            names = [s.name for s in settings.sources]
        known = {s.name for s in settings.sources}
        if not isinstance(names, list) or not all(isinstance(n, str) and n in known for n in names):
            return error(400, "unknown_source", f"'sources' must list configured sources ({sorted(known)})")
        results = await run_in_threadpool(daemon.run_now, names)
        return JSONResponse({"runs": [{**r.as_json(), "credentials_refused": r.credentials_refused}
                                      for r in results]})

    app.add_route("/v1/admin/sync", sync_route, methods=["POST"], include_in_schema=False)
