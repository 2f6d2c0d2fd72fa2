"""The emulated Slack Socket Mode: `apps.connections.open` and the WebSocket it hands out.

Speaks what slack_sdk's `SocketModeClient` expects: `apps.connections.open` (with the app-level
token, `xapp-...`) returns a one-time `ws://` URL on loopback; the socket sends `hello`, then one
`events_api` envelope per event (`envelope_id`, `payload.event_id`, `payload.event`); an envelope
not acknowledged (`{"envelope_id": ...}` sent back) within `redeliver_after` seconds is sent again
with `retry_attempt` + 1, as Slack does. `disconnect()` sends `{"type": "disconnect"}` to every
connection, after which clients open a new one; `lose()` ends every connection as a lost network
does (no close frame: the client's socket just closes) and refuses new ones until `restore()`.
Events come from the mutation functions of `slack.py` (through `SlackState.listeners`), so a change
made through the sandbox's API fires its event; `Faults.events` can drop, delay or duplicate them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from .faults import Faults
from .workspace import Workspace

log = logging.getLogger(__name__)

APP_TOKEN = "xapp-1-A0SANDBOX1-0000000001-inlet"
APP_ID = "A0SANDBOX1"


@dataclass
class _Envelope:
    envelope_id: str
    payload: dict[str, Any]
    attempt: int = 0
    sent_at: float = 0.0

    def wire(self) -> str:
        return json.dumps(
            {
                "envelope_id": self.envelope_id,
                "payload": self.payload,
                "type": "events_api",
                "accepts_response_payload": False,
                "retry_attempt": self.attempt,
                "retry_reason": "timeout" if self.attempt else "",
            }
        )


@dataclass
class _Connection:
    socket: WebSocket
    loop: asyncio.AbstractEventLoop
    outbox: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


class SocketHub:
    """Connections, tickets and unacknowledged envelopes of the emulated Socket Mode."""

    def __init__(self, ws: Workspace, faults: Faults, redeliver_after: float = 3.0) -> None:
        self.ws = ws
        self.faults = faults
        self.redeliver_after = redeliver_after
        self.tickets: set[str] = set()
        self.connections: list[_Connection] = []
        self.unacked: dict[str, _Envelope] = {}
        self.delivered = 0  # envelopes sent, redeliveries included
        self.opened = 0  # connections accepted
        self.lost = False  # connections are refused (`lose`, until `restore`)
        self._lock = threading.Lock()

    # --- events in ------------------------------------------------------------------------------
    def publish(self, event: dict[str, Any]) -> None:
        """Queue one event (any thread); faults may drop, delay or duplicate it."""
        copies, delay = self.faults.event_fate("slack")
        payload = {
            "token": "sandbox-verification",
            "team_id": self.ws.team_id,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:12].upper()}",
            "event_time": int(self.ws.clock()),
        }
        for _ in range(copies):
            envelope = _Envelope(str(uuid.uuid4()), payload)
            if delay:
                threading.Timer(delay, self._send, args=(envelope,)).start()
            else:
                self._send(envelope)

    def _send(self, envelope: _Envelope) -> None:
        with self._lock:
            self.unacked[envelope.envelope_id] = envelope
            conn = self.connections[-1] if self.connections else None
        if conn is not None:
            envelope.sent_at = time.monotonic()
            self.delivered += 1
            conn.loop.call_soon_threadsafe(conn.outbox.put_nowait, envelope.wire())

    def disconnect(self, reason: str = "refresh_requested") -> int:
        """Ask every client to reconnect (Slack does so every few hours); returns how many were asked."""
        with self._lock:
            conns = list(self.connections)
        message = json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "sandbox-socket"}})
        for conn in conns:
            conn.loop.call_soon_threadsafe(conn.outbox.put_nowait, message)
        return len(conns)

    def lose(self) -> int:
        """End every connection without a close frame, as a lost network or host does, and refuse new
        ones until `restore()`; returns how many were ended."""
        with self._lock:
            self.lost = True
            conns = list(self.connections)
        for conn in conns:
            conn.loop.call_soon_threadsafe(_transport(conn.socket).abort)
        return len(conns)

    def restore(self) -> None:
        """Accept connections again (after `lose`)."""
        with self._lock:
            self.lost = False

    # --- the wire ---------------------------------------------------------------------------------
    def open_url(self, base_http_url: str) -> str:
        ticket = secrets.token_urlsafe(16)
        with self._lock:
            self.tickets.add(ticket)
        return base_http_url.replace("http://", "ws://", 1) + f"/_socket/slack/link?ticket={ticket}"

    async def serve(self, socket: WebSocket) -> None:
        ticket = socket.query_params.get("ticket", "")
        with self._lock:
            valid = ticket in self.tickets and not self.lost
            self.tickets.discard(ticket)
        if not valid:
            await socket.close(code=1008)
            return
        await socket.accept()
        conn = _Connection(socket, asyncio.get_running_loop())
        with self._lock:
            self.connections.append(conn)
            self.opened += 1
            pending = sorted(self.unacked.values(), key=lambda e: e.sent_at)
        await socket.send_text(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self.connections),
                    "debug_info": {"host": "sandbox-socket", "approximate_connection_time": 3600},
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        for envelope in pending:  # what a lost connection left unacknowledged
            self._resend(envelope)
        tasks = [
            asyncio.create_task(self._pump(conn)),
            asyncio.create_task(self._receive(conn)),
            asyncio.create_task(self._redeliver(conn)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            with self._lock:
                if conn in self.connections:
                    self.connections.remove(conn)

    def _resend(self, envelope: _Envelope) -> None:
        envelope.attempt += 1
        self._send(envelope)

    async def _pump(self, conn: _Connection) -> None:
        while True:
            message = await conn.outbox.get()
            await conn.socket.send_text(message)
            if message.startswith('{"type": "disconnect"'):
                await asyncio.sleep(1.0)  # let the client open its next connection first
                await conn.socket.close()
                return

    async def _receive(self, conn: _Connection) -> None:
        try:
            while True:
                raw = await conn.socket.receive_text()
                try:
                    envelope_id = json.loads(raw).get("envelope_id")
                except (ValueError, AttributeError):
                    continue
                with self._lock:
                    self.unacked.pop(str(envelope_id), None)
        except (WebSocketDisconnect, RuntimeError):
            return

    async def _redeliver(self, conn: _Connection) -> None:
        while True:
            await asyncio.sleep(min(0.5, self.redeliver_after / 2))
            now = time.monotonic()
            with self._lock:
                late = [e for e in self.unacked.values() if e.sent_at and now - e.sent_at >= self.redeliver_after]
            for envelope in late:
                self._resend(envelope)


def _transport(socket: WebSocket) -> asyncio.Transport:
    """The TCP connection under `socket` (its `receive` is a method of uvicorn's protocol, which
    holds it): ASGI can only end a WebSocket with a close frame, and a lost one sends none."""
    return socket._receive.__self__.transport  # type: ignore[attr-defined,no-any-return]
