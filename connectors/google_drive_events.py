"""Google Drive change events: a `changes.watch` push channel to the API's `/hooks/google_drive/{source}`.

Drive posts a `sync` message when the channel opens, then a `change` message (headers only) after
changes; each `change` is a hint, and the sync it triggers reads `changes.list` from the page token
saved in the checkpoint, so a message carries nothing that must be trusted. A message must carry
the channel token this process chose and name a channel it holds, else it is refused (answered as a
hook nobody registered). A channel is held from before its `changes.watch` (Drive may post its
`sync` and first `change` before that call answers) until its `channels.stop`. Channels cannot be
extended: the kit's `Renewals` opens a new one in the last third of the current one's lifetime,
then stops the old (both are held meanwhile); `stop()` stops it (`channels.stop`) in bounded time.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from typing import TYPE_CHECKING

from .events import Emit, EventSource, Hint, WebhookRequest, WebhookResponse, refused
from .kit import Renewals, Subscription

if TYPE_CHECKING:
    from .google_drive import GoogleDriveConnector

log = logging.getLogger(__name__)


class DrivePushChannels(EventSource):
    def __init__(self, connector: GoogleDriveConnector, url: str, lifetime: float) -> None:
        super().__init__()
        self.connector = connector
        self.url = url
        self.token = secrets.token_urlsafe(24)
        self.renewals = Renewals(
            source=connector.name, what="push channel", lifetime=lifetime, create=self._open, remove=self._stop
        )
        self.channel = self.renewals.add("changes")
        self.held: set[str] = set()  # ids of the channels whose messages are accepted

    def start(self, emit: Emit) -> None:
        self.emit = emit
        self._open(self.channel)
        self.live = True

    def _open(self, sub: Subscription) -> None:
        client = self.connector.client
        expires = time.time() + self.renewals.lifetime
        channel = str(uuid.uuid4())
        self.held.add(channel)
        try:
            answer = client.watch_changes(
                client.start_page_token(),
                {
                    "id": channel,
                    "type": "web_hook",
                    "address": self.url,
                    "token": self.token,
                    "expiration": int(expires * 1000),
                },
                self.connector.config.shared_drives,
            )
        except BaseException:
            self.held.discard(channel)
            raise
        sub.id, sub.data["resource_id"] = answer["id"], answer["resourceId"]
        sub.expires = int(answer.get("expiration") or 0) / 1000 or expires

    def _stop(self, sub: Subscription) -> None:
        assert sub.id is not None
        self.held.discard(sub.id)
        self.connector.client.stop_channel(sub.id, sub.data["resource_id"])

    def maintain(self) -> None:
        self.renewals.maintain()
        self.live = self.renewals.live

    def stop(self) -> None:
        self.live = False
        self.renewals.stop()

    def webhook(self, request: WebhookRequest) -> WebhookResponse:
        if request.method != "POST":
            return refused(f"method {request.method}")
        channel = request.headers.get("x-goog-channel-id")
        if not channel or channel not in self.held:
            return refused("not a channel of ours")
        given = request.headers.get("x-goog-channel-token", "").encode("utf-8", "replace")
        if not secrets.compare_digest(given, self.token.encode()):
            return refused("wrong channel token")
        if request.headers.get("x-goog-resource-state") != "sync":
            number = request.headers.get("x-goog-message-number", "")
            self.emit(Hint(None, key=f"{channel}:{number}"))
        return WebhookResponse(200)
