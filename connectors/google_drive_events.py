"""Google Drive change events: a `changes.watch` push channel to the API's `/hooks/google_drive/{source}`.

Drive posts a `sync` message when the channel opens, then a `change` message (headers only) after
changes; each `change` is a hint, and the sync it triggers reads `changes.list` from the page token
saved in the checkpoint, so a message carries nothing that must be trusted. A message must carry
the channel token this process chose (else 403) and name one of its channels (else 404). Channels
cannot be extended: `maintain()` opens a new one in the last third of the current one's lifetime,
then stops the old; `stop()` stops them all (`channels.stop`).
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inlet.errors import InletError

from .events import Emit, EventSource, Hint, Retry, WebhookRequest, WebhookResponse, refused

if TYPE_CHECKING:
    from .google_drive import GoogleDriveConnector

log = logging.getLogger(__name__)

RENEW_AT = 1 / 3     # replace the channel when less than this share of its lifetime is left


@dataclass
class _Channel:
    id: str
    resource_id: str
    expires: float   # epoch seconds


class DrivePushChannels(EventSource):
    def __init__(self, connector: GoogleDriveConnector, url: str, lifetime: float) -> None:
        super().__init__()
        self.connector = connector
        self.url = url
        self.lifetime = lifetime
        self.token = secrets.token_urlsafe(24)
        self.channels: dict[str, _Channel] = {}
        self.current: _Channel | None = None
        self.retry = Retry()

    def start(self, emit: Emit) -> None:
        self.emit = emit
        self._open()

    def _open(self) -> None:
        client = self.connector.client
        expires = time.time() + self.lifetime
        answer = client.watch_changes(client.start_page_token(), {
            "id": str(uuid.uuid4()), "type": "web_hook", "address": self.url, "token": self.token,
            "expiration": int(expires * 1000)}, self.connector.config.shared_drives)
        channel = _Channel(answer["id"], answer["resourceId"], int(answer.get("expiration") or 0) / 1000 or expires)
        self.channels[channel.id] = channel
        self.current = channel
        self.live = True

    def maintain(self) -> None:
        current = self.current
        try:
            if self.retry.due() and (current is None or current.expires - time.time() < self.lifetime * RENEW_AT):
                self._open()
                self.retry.succeeded()
                if current is not None:
                    self._stop(current)
        except InletError as exc:   # tried again later; the schedule covers the gap
            log.warning("source %r: push channel: %s; next try in %.0fs", self.connector.name, exc,
                        self.retry.failed())
        self.live = self.current is not None and self.current.expires > time.time()

    def _stop(self, channel: _Channel) -> None:
        self.channels.pop(channel.id, None)
        try:
            self.connector.client.stop_channel(channel.id, channel.resource_id)
        except InletError as exc:   # it expires by itself
            log.info("source %r: could not stop push channel %s: %s", self.connector.name, channel.id, exc)

    def stop(self) -> None:
        self.live = False
        for channel in list(self.channels.values()):
            self._stop(channel)
        self.current = None

    def webhook(self, request: WebhookRequest) -> WebhookResponse:
        if request.method != "POST":
            return refused(f"method {request.method}")
        if request.headers.get("x-goog-channel-id") not in self.channels:
            return refused("not one of our channels")
        given = request.headers.get("x-goog-channel-token", "").encode("utf-8", "replace")
        if not secrets.compare_digest(given, self.token.encode()):
            return refused("wrong channel token")
        if request.headers.get("x-goog-resource-state") != "sync":
            number = request.headers.get("x-goog-message-number", "")
            self.emit(Hint(None, key=f"{request.headers.get('x-goog-channel-id')}:{number}"))
        return WebhookResponse(200)
