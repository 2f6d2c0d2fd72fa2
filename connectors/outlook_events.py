"""Outlook change events: one Graph subscription per synced mail folder, notifications by webhook.

Graph posts to `notifications_url` (the API's `/hooks/outlook/{source}`): first a validation
request (`?validationToken=...`, answered by echoing the token), then notifications carrying the
`clientState` this process chose at start (anything else is ignored: it did not come from Graph
for us). Each notification is a hint for its folder, whose next delta round reads the change.
Lifecycle notifications: `reauthorizationRequired` renews the subscription now, `missed` is a
hint (a delta round catches up), `subscriptionRemoved` re-creates the subscription and is a hint.
`maintain()` renews subscriptions in the last third of their lifetime and re-creates lost ones;
`stop()` deletes them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inlet.errors import InletError

from .events import Emit, EventSource, Hint, Retry, WebhookRequest, WebhookResponse, refused
from .outlook_client import GraphClient, GraphError

if TYPE_CHECKING:
    from .outlook import OutlookConnector

log = logging.getLogger(__name__)

RENEW_AT = 1 / 3     # renew when less than this share of the lifetime is left
ACCEPTED = WebhookResponse(202)


@dataclass
class _Sub:
    mailbox: str
    folder_id: str
    id: str | None = None
    expires: float = 0.0
    renew_now: bool = False
    retry: Retry = field(default_factory=Retry)


class GraphSubscriptions(EventSource):
    """The subscriptions of one outlook source and the webhook that receives their notifications."""

    def __init__(self, connector: OutlookConnector, url: str, lifetime: float) -> None:
        super().__init__()
        self.connector = connector
        self.url = url
        self.lifetime = lifetime
        self.client_state = secrets.token_urlsafe(24)
        self.client: GraphClient | None = None
        self.subs: dict[tuple[str, str], _Sub] = {}

    # --- life cycle -----------------------------------------------------------------------------
    def start(self, emit: Emit) -> None:
        self.emit = emit
        self.client = self.connector.client()
        for mailbox, folder_id in self.connector.synced_folders(self.client):
            self.subs[(mailbox, folder_id)] = _Sub(mailbox, folder_id)
        self.maintain()

    def maintain(self) -> None:
        now = time.time()
        for sub in list(self.subs.values()):
            if not sub.retry.due():
                continue
            try:
                if sub.id is None:
                    self._create(sub)
                elif sub.renew_now or sub.expires - now < self.lifetime * RENEW_AT:
                    self._renew(sub)
                sub.retry.succeeded()
            except (GraphError, InletError) as exc:   # tried again later; the schedule covers the gap
                log.warning("source %r: subscription for folder %s of %s: %s (is %s served by `inlet daemon "
                            "--serve`?); next try in %.0fs", self.connector.name, sub.folder_id[-12:], sub.mailbox,
                            exc, self.url, sub.retry.failed())
        self.live = bool(self.subs) and all(s.id for s in self.subs.values())

    def _expiry(self) -> str:
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.lifetime)
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _create(self, sub: _Sub) -> None:
        assert self.client is not None
        answer = self.client.request("POST", "/subscriptions", body={
            "changeType": "created,updated,deleted", "notificationUrl": self.url,
            "lifecycleNotificationUrl": self.url, "clientState": self.client_state,
            "resource": f"/users/{sub.mailbox}/mailFolders('{sub.folder_id}')/messages",
            "expirationDateTime": self._expiry()})
        sub.id, sub.expires, sub.renew_now = answer["id"], _epoch(answer["expirationDateTime"]), False
        log.debug("source %r: subscribed to folder %s of %s", self.connector.name, sub.folder_id[-12:], sub.mailbox)

    def _renew(self, sub: _Sub) -> None:
        assert self.client is not None
        try:
            answer = self.client.request("PATCH", f"/subscriptions/{sub.id}",
                                         body={"expirationDateTime": self._expiry()})
        except GraphError as exc:
            if exc.status != 404:
                raise
            sub.id = None   # expired or removed: subscribe again (and sync: changes may have been missed)
            self._create(sub)
            self.emit(Hint(sub.folder_id))
            return
        sub.expires, sub.renew_now = _epoch(answer["expirationDateTime"]), False

    def stop(self) -> None:
        self.live = False
        if self.client is None:
            return
        for sub in self.subs.values():
            if sub.id:
                try:
                    self.client.request("DELETE", f"/subscriptions/{sub.id}")
                except (GraphError, InletError) as exc:   # it expires by itself
                    log.info("source %r: could not delete subscription %s: %s", self.connector.name, sub.id, exc)
        self.client.close()
        self.client = None

    # --- the webhook ----------------------------------------------------------------------------
    def webhook(self, request: WebhookRequest) -> WebhookResponse:
        token = request.query.get("validationToken")
        if token is not None and request.method == "POST":   # Graph checks we own the URL before subscribing
            return WebhookResponse(200, token, "text/plain")
        if request.method != "POST":
            return refused(f"method {request.method}")
        try:
            notes = json.loads(request.body or b"{}").get("value", [])
        except (ValueError, AttributeError):
            return refused("not a notification")
        notes = notes if isinstance(notes, list) else []
        ours = [n for n in notes if isinstance(n, dict) and self._ours(n.get("clientState"))]
        for note in ours:
            self._note(note)
        if not ours:
            return refused(f"{len(notes)} notification(s), none with our clientState")
        if len(ours) < len(notes):   # one line for the request, not one per notification
            return WebhookResponse(ACCEPTED.status, refused=f"{len(notes) - len(ours)} of {len(notes)} "
                                   "notification(s) without our clientState ignored")
        return ACCEPTED

    def _ours(self, client_state: object) -> bool:
        given = client_state.encode("utf-8", "replace") if isinstance(client_state, str) else b""
        return secrets.compare_digest(given, self.client_state.encode())

    def _note(self, note: dict[str, Any]) -> None:
        sub = next((s for s in self.subs.values() if s.id and s.id == note.get("subscriptionId")), None)
        if sub is None:
            return   # a subscription we no longer hold
        event = note.get("lifecycleEvent")
        if event == "reauthorizationRequired":
            sub.renew_now = True
            return
        if event == "subscriptionRemoved":
            sub.id = None   # maintain() subscribes again
        self.emit(Hint(sub.folder_id))


def _epoch(value: str) -> float:
    """Graph's UTC times carry seven fractional digits, one more than `fromisoformat` takes."""
    head, _, frac = value.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(head).replace(tzinfo=dt.timezone.utc).timestamp() + float("0." + (frac or "0"))
