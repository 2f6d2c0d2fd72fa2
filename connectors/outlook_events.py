"""Outlook change events: one Graph subscription per synced mail folder, notifications by webhook.

Graph posts to `notifications_url` (the API's `/hooks/outlook/{source}`): first a validation
request (`?validationToken=...`, answered by echoing the token), then notifications carrying the
`clientState` this process chose at start (anything else is ignored: it did not come from Graph
for us). Each notification is a hint for its folder, whose next delta round reads the change.
Lifecycle notifications: `reauthorizationRequired` renews the subscription now, `missed` is a
hint (a delta round catches up), `subscriptionRemoved` re-creates the subscription and is a hint.
The kit's `Renewals` renews subscriptions in the last third of their lifetime and re-creates lost
ones (`maintain()`); `stop()` deletes them in bounded time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from .events import Emit, EventSource, Hint, WebhookRequest, WebhookResponse, refused
from .kit import Renewals, Subscription
from .kit.graph import GraphClient, GraphError

if TYPE_CHECKING:
    from .outlook import OutlookConnector

log = logging.getLogger(__name__)

ACCEPTED = WebhookResponse(202)


class GraphSubscriptions(EventSource):
    """The subscriptions of one outlook source and the webhook that receives their notifications."""

    def __init__(self, connector: OutlookConnector, url: str, lifetime: float) -> None:
        super().__init__()
        self.connector = connector
        self.url = url
        self.client_state = secrets.token_urlsafe(24)
        self.client: GraphClient | None = None
        self.renewals = Renewals(source=connector.name, what="subscription for folder", lifetime=lifetime,
                                 create=self._create, renew=self._renew, remove=self._delete,
                                 advice=f"is {url} served by `inlet daemon --serve`?")

    # --- life cycle -----------------------------------------------------------------------------
    def start(self, emit: Emit) -> None:
        self.emit = emit
        self.client = self.connector.client()
        for mailbox, folder_id in self.connector.synced_folders(self.client):
            self.renewals.add(folder_id, mailbox=mailbox)
        self.maintain()

    def maintain(self) -> None:
        self.renewals.maintain()
        self.live = self.renewals.live

    def _expiry(self) -> str:
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.renewals.lifetime)
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _create(self, sub: Subscription) -> None:
        assert self.client is not None
        mailbox = sub.data["mailbox"]
        answer = self.client.request("POST", "/subscriptions", body={
            "changeType": "created,updated,deleted", "notificationUrl": self.url,
            "lifecycleNotificationUrl": self.url, "clientState": self.client_state,
            "resource": f"/users/{mailbox}/mailFolders('{sub.key}')/messages",
            "expirationDateTime": self._expiry()})
        sub.id, sub.expires = answer["id"], _epoch(answer["expirationDateTime"])
        log.debug("source %r: subscribed to folder %s of %s", self.connector.name, sub.key[-12:], mailbox)

    def _renew(self, sub: Subscription) -> None:
        assert self.client is not None
        try:
            answer = self.client.request("PATCH", f"/subscriptions/{sub.id}",
                                         body={"expirationDateTime": self._expiry()})
        except GraphError as exc:
            if exc.status != 404:
                raise
            sub.id = None   # expired or removed: subscribe again (and sync: changes may have been missed)
            self._create(sub)
            self.emit(Hint(sub.key))
            return
        sub.expires = _epoch(answer["expirationDateTime"])

    def _delete(self, sub: Subscription) -> None:
        if self.client is not None:
            self.client.request("DELETE", f"/subscriptions/{sub.id}")

    def stop(self) -> None:
        self.live = False
        if self.client is None:
            return
        self.renewals.stop()
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
        sub = next((s for s in self.renewals.subs.values() if s.id and s.id == note.get("subscriptionId")), None)
        if sub is None:
            return   # a subscription we no longer hold
        event = note.get("lifecycleEvent")
        if event == "reauthorizationRequired":
            sub.renew_now = True
            return
        if event == "subscriptionRemoved":
            sub.id = None   # maintain() subscribes again
        self.emit(Hint(sub.key))



def _epoch(value: str) -> float:
    """Graph's UTC times carry seven fractional digits, one more than `fromisoformat` takes."""
    head, _, frac = value.rstrip("Z").partition(".")
    return dt.datetime.fromisoformat(head).replace(tzinfo=dt.timezone.utc).timestamp() + float("0." + (frac or "0"))
