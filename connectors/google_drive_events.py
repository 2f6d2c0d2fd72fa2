"""Google Drive change events: a `changes.watch` push channel to the API's `/hooks/google_drive/{source}`.

Drive posts a `sync` message when the channel opens, then a `change` message (headers only) after
changes; each `change` is a hint, and the sync it triggers reads `changes.list` from the page token
saved in the checkpoint, so a message carries nothing that must be trusted. A message is named by its
channel and `X-Goog-Message-Number` (each message of a channel has its own): one already heard (Drive
redelivering it, or a captured one replayed) is answered 200 and runs nothing (`first_time`). Each shared drive keeps
its own change log, and some of its changes never reach the user's (Drive's documentation says so),
so besides the user's log every shared drive the source syncs gets a channel of its own; the drives
are listed again every `DRIVES_EVERY` seconds, a channel opened for a new one and removed for one
left. A message must carry the channel token this process chose and name a channel it holds, else
it is refused (answered as a hook nobody registered). A channel is held from before its
`changes.watch` (Drive may post its `sync` and first `change` before that call answers) until its
`channels.stop`; a channel Drive refuses because the address's domain is not verified for the
project is a `WebhookNotVerifiedError` (configuration, not a refused credential). Channels cannot be
extended: the kit's `Renewals` opens a new one in the last third of the current one's lifetime,
then stops the old (both are held meanwhile); `stop()` stops them (`channels.stop`) in bounded time.
A channel is opened only where none is held: a start tried again after a failure (one shared drive's
`changes.watch` refused) opens what is missing, never a second channel beside a held one, and the
daemon stops a source's channels on exit whether or not its start succeeded. A channel notifies only
changes made after `changes.watch`, so each channel opened where none was held (at start: changes made
while the daemon was down) is followed by a hint: one incremental sync reads what it did not hear.

Drive never checks the address it is given, so a channel opened is not yet a channel heard: Drive
posts its `sync` message right after `changes.watch`, and a channel none of whose messages reached
the hook within `SYNC_WAIT` seconds of its opening (`push_url` names another hook, or a proxy routes
it elsewhere) makes the source's events read down, saying so (logged once a channel), until one of
its messages arrives; a channel opened after that (a renewal, to the same address) reads down at
once, until heard. The wait is measured on `renewals.clock`.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from typing import TYPE_CHECKING

from inlet.errors import InletError, WebhookNotVerifiedError

from .events import Emit, EventSource, Hint, WebhookRequest, WebhookResponse, refused
from .kit import Renewals, Subscription
from .kit.google import WEBHOOK_NOT_VERIFIED, GoogleApiError

if TYPE_CHECKING:
    from .google_drive import GoogleDriveConnector

log = logging.getLogger(__name__)

DRIVES_EVERY = 600.0  # seconds between two listings of the shared drives that get a channel each
USER_LOG = "changes"  # the key of the user's log's channel; a shared drive's is "drive:<id>"
SYNC_WAIT = 15.0  # seconds a new channel's `sync` message may take to reach the hook before it reads deaf


class DrivePushChannels(EventSource):
    hook_key = "push_url"

    def __init__(self, connector: GoogleDriveConnector, url: str, lifetime: float) -> None:
        super().__init__()
        self.connector = connector
        self.url = url
        self.token = secrets.token_urlsafe(24)
        self.renewals = Renewals(
            source=connector.name,
            what="push channel",
            lifetime=lifetime,
            create=self._open,
            remove=self._stop,
            missed=lambda sub: self.missed(),
        )
        self.channel = self.renewals.add(USER_LOG)  # the user's log's; shared drives' are added as found
        self.held: set[str] = set()  # ids of the channels whose messages are accepted
        self.opened: dict[str, float] = {}  # channel id -> when its `changes.watch` was sent (renewals.clock)
        self.heard: set[str] = set()  # ids of the channels a message of which reached the hook
        self.unheard = False  # a channel was found deaf: new ones read down too until heard (logged once)
        self._drives_listed: float | None = None  # time.monotonic() of the last listing

    def start(self, emit: Emit) -> None:
        self.emit = emit
        self._follow_drives()
        self._renew()
        if self.renewals.refused is not None:  # e.g. an unverified domain: said once, by the daemon
            raise self.renewals.refused

    def _follow_drives(self) -> None:
        """A channel for each shared drive the source syncs (added, or dropped once left)."""
        self._drives_listed = time.monotonic()
        if not self.connector.config.shared_drives:
            return
        drives = set(self.connector.client.drives())
        for key in [k for k in self.renewals.subs if k != USER_LOG and k.removeprefix("drive:") not in drives]:
            self.renewals.drop(key)
        for drive in sorted(drives - {k.removeprefix("drive:") for k in self.renewals.subs}):
            self.renewals.add(f"drive:{drive}", drive=drive)

    def _open(self, sub: Subscription) -> None:
        client = self.connector.client
        drive = sub.data.get("drive")
        expires = time.time() + self.renewals.lifetime
        channel = str(uuid.uuid4())
        self.held.add(channel)
        self.opened[channel] = self.renewals.clock()
        try:
            answer = client.watch_changes(
                client.start_page_token(drive),
                {
                    "id": channel,
                    "type": "web_hook",
                    "address": self.url,
                    "token": self.token,
                    "expiration": int(expires * 1000),
                },
                self.connector.config.shared_drives,
                drive,
            )
        except BaseException as exc:
            self._forget(channel)
            if isinstance(exc, GoogleApiError) and exc.reason == WEBHOOK_NOT_VERIFIED:
                raise WebhookNotVerifiedError(
                    self.connector.name,
                    f"Drive refuses push channels to {self.url} (key 'push_url') until its domain is "
                    "verified for the Google Cloud project of credentials_file (Search Console, then the "
                    f"project's APIs & Services > Domain verification); Drive said: {exc.message}",
                ) from exc
            raise
        sub.id, sub.data["resource_id"] = answer["id"], answer["resourceId"]
        sub.expires = int(answer.get("expiration") or 0) / 1000 or expires

    def _stop(self, sub: Subscription) -> None:
        assert sub.id is not None
        self._forget(sub.id)
        self.connector.client.stop_channel(sub.id, sub.data["resource_id"])

    def _forget(self, channel: str) -> None:
        self.held.discard(channel)
        self.opened.pop(channel, None)
        self.heard.discard(channel)

    def maintain(self) -> None:
        if self._drives_listed is None or time.monotonic() - self._drives_listed >= DRIVES_EVERY:
            try:
                self._follow_drives()
            except InletError as exc:  # the channels held stay; listed again next time
                log.warning(
                    "source %r: listing the shared drives for push channels failed: %s", self.connector.name, exc
                )
        self._renew()

    def _renew(self) -> None:
        """Open what is missing, replace what expires (the kit's `Renewals`); a `ConfigError` raised."""
        try:
            self.renewals.maintain()
        finally:
            self.live, self.reason = self.renewals.live, self.renewals.reason
            deaf = self._deaf()
            if self.live and deaf:
                self.live = False
                self.reason = (
                    f"Drive's sync message for the channel never reached /hooks/google_drive/{self.connector.name}: "
                    "is push_url routed to this hook?"
                )
                if not self.unheard:
                    log.warning(
                        "source %r: change events down: %s (push_url = %s); the schedule still syncs it",
                        self.connector.name,
                        self.reason,
                        self.url,
                    )
            self.unheard = deaf

    def _deaf(self) -> bool:
        """Whether a held channel has had none of its messages reach the hook `SYNC_WAIT` s after it
        opened (at once, for a channel opened after one was found so: a renewal, the same address)."""
        now = self.renewals.clock()
        for sub in list(self.renewals.subs.values()):
            channel = sub.id
            if channel and channel not in self.heard:
                if self.unheard or now - self.opened.get(channel, now) >= SYNC_WAIT:
                    return True
        return False

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
        self.heard.add(channel)  # the address reaches this hook: the channel is heard
        if request.headers.get("x-goog-resource-state") != "sync":
            number = request.headers.get("x-goog-message-number", "")
            key = f"{channel}:{number}"
            if not number or self.first_time(key):  # a copy of a message heard: nothing new
                self.emit(Hint(None, key=key))
        return WebhookResponse(200)
