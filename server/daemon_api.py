"""How a serving `inlet daemon` is reached over HTTP: its API listener and its keys.

The daemon binds its API socket before taking the index lock, so the lock records the API's URL; it
then writes `daemon-api.json` in the index folder (created 0600: only the user who can read the
index anyway can use it; the folder is created 0700 if missing, as on a host of a several-hosts
setup, where the index lives in PostgreSQL and nothing else is kept there) with two keys generated
for this run: an operator key (admin) and an agent key (`on_behalf_of`), for local tools that prefer
HTTP. The app is `create_app`'s, served by the one listener configuration (`listener.ServerThread`)
that `inlet serve` uses too; syncs are triggered through its admin-only `POST /v1/admin/sync`
(`admin.py`). The `inlet` commands themselves reach any holder of the index over the local channel
(`local_channel.py`).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inlet.config import ApiKey, Settings
from inlet.process import listen
from inlet.storage.private import private_folder

from .app import create_app
from .auth import warn_without_keys
from .listener import ServerThread, local_url

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
    api_file_name: str = API_FILE

    @classmethod
    def bind(cls, settings: Settings) -> "ApiPlan":
        host, port = settings.server.host, settings.server.port
        sock = listen(host, port, "[server]")
        return cls(sock, local_url(host, sock.getsockname()[1]), secrets.token_urlsafe(32), secrets.token_urlsafe(32))

    def with_keys(self, settings: Settings) -> tuple[Settings, dict[str, str]]:
        """`settings` plus this run's operator and agent keys, and the environment that holds them."""
        env = {**os.environ, OPERATOR_KEY_ENV: self.operator_key, AGENT_KEY_ENV: self.agent_key}
        keys = [
            *settings.server.api_keys,
            ApiKey(name="inlet-daemon-operator", key_env=OPERATOR_KEY_ENV, admin=True),
            ApiKey(name="inlet-daemon-agent", key_env=AGENT_KEY_ENV, on_behalf_of=True),
        ]
        server = settings.server.model_copy(update={"api_keys": keys})
        return settings.model_copy(update={"server": server}), env

    def start(self, settings: Settings, index: Any, state: Any, daemon: Any) -> "ApiThread":
        warn_without_keys(settings, os.environ)  # this run's own keys serve local commands only
        served, env = self.with_keys(settings)
        app = create_app(served, index=index, state=state, env=env, listening=self.sock.getsockname())
        app.state.daemon = daemon  # POST /v1/admin/sync, the console's run-now and restart-backfill
        app.state.hooks = lambda type_, name: daemon.events.receiver(type_, name) if daemon.events else None
        path = Path(settings.index.path) / API_FILE
        write_api_file(
            path,
            {"pid": os.getpid(), "api_url": self.url, "operator_key": self.operator_key, "agent_key": self.agent_key},
        )
        return ApiThread(app, self.sock, settings, path)  # the socket listens already: early callers queue


class ApiThread(ServerThread):
    """The daemon's listener; stopping it removes the local-operator file."""

    def __init__(self, app: Any, sock: socket.socket, settings: Settings, api_file: Path | None = None) -> None:
        super().__init__(app, sock, settings.server)
        self.api_file = api_file

    def stop(self, timeout: float = 10.0) -> None:
        if self.api_file:
            self.api_file.unlink(missing_ok=True)
        super().stop(timeout)


def write_api_file(path: Path, payload: dict[str, Any]) -> None:
    """Write the local-operator file readable by its owner only (created 0600, never widened), in a
    folder created 0700 if it does not exist yet."""
    if not path.parent.is_dir():
        private_folder(path.parent)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle)
