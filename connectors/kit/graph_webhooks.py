"""Graph change notifications for any set of resources (Outlook mail folders, OneDrive/SharePoint
drives, Teams channels): subscriptions kept by the kit's `Renewals`, notifications received at the
source's hook URL. The resources are listed when the daemon starts it; with `watched` (the resources a
checkpoint names), they then follow each checkpoint the daemon hands over (`follow`): the next
`maintain()` subscribes to a container new in it and removes the subscription of one gone from it.

Each resource may be a `Resource`, a path with a `label` (what it is to a person: `Engineering/General`,
`a@b.com/Inbox`), by which `inlet status` and the log name its subscription when it fails.

Invariants: a notification counts only when it carries the `clientState` this process chose at
start (anything else did not come from Graph for us) and names a subscription we hold; it becomes a
`Hint` for the container (drive or channel id) its subscription watches, or for the finer one
`refine` reads from the notification's `resource` (a Teams thread). Lifecycle notifications:
`reauthorizationRequired` renews now, `subscriptionRemoved` subscribes again, `missed` is a hint.
Graph notifies only changes made after a subscription is created, so every subscription created
where none was held is a hint for its container (the kit's `Renewals`: `missed`): the first one at
start (a change made while the daemon was down or restarting), one after `subscriptionRemoved`, and
one replacing a subscription a renewal found gone (404). After `reauthorizationRequired` Graph may
pause the subscription's delivery until it is renewed, and the changes of the pause are never
notified (Graph sends `missed` for some Outlook resources only, never for drives or channel
messages); a renewal Graph refuses (401, 403) may mean the same. Either is a challenge (`Renewals`):
the subscription reads as not live, saying why, until a renewal succeeds, which is then followed by
the same catch-up hint for its container. At the first start, the subscriptions on
the source's hook URL that this process does not hold (a crashed daemon's) are deleted: they would
notify every change a second time, refused, until they expire. Validation requests
(`POST ?validationToken=`) are echoed. A request without one notification of ours is refused
(answered as a hook nobody registered; the reason is logged once by the server); notifications of
others beside ours are ignored, counted in one line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

from inlet.errors import InletError

from ..events import Emit, EventSource, Hint, WebhookRequest, WebhookResponse, refused
from .graph import GraphClient, GraphError, graph_time
from .renewal import Gone, Renewals, Subscription

log = logging.getLogger(__name__)

ACCEPTED = WebhookResponse(202)
# why a subscription is not live while Graph may hold its notifications back (`Renewals.challenge`)
REAUTHORIZE = "Graph asked to reauthorize it (reauthorizationRequired); its notifications may pause until it is renewed"
REFUSED = "Graph refused to renew it; its notifications may have stopped"


class Resource(str):
    """A Graph resource path a subscription watches, with `label`: what it is to a person
    (`Engineering/General`), how a failing subscription is named (the path itself when none)."""

    label: str

    def __new__(cls, path: str, label: str = "") -> "Resource":
        made = super().__new__(cls, path)
        made.label = label or path
        return made


Resources = dict[str, str]  # {container id: Graph resource path, or a `Resource` with its label}


def _label(resource: str) -> str:
    return resource.label if isinstance(resource, Resource) else resource


class GraphWebhooks(EventSource):
    """`resources()` -> {container id: Graph resource path}, read when the daemon starts it;
    `watched(checkpoint)` -> the same, of the containers a checkpoint names (optional)."""

    hook_key = "notifications_url"

    def __init__(
        self,
        *,
        source: str,
        url: str,
        lifetime: float,
        client: Callable[[], GraphClient],
        resources: Callable[[GraphClient], Resources],
        change_type: str,
        what: str = "Graph subscription",
        refine: Callable[[str, str], str] | None = None,
        watched: Callable[[dict[str, Any]], Resources] | None = None,
    ) -> None:
        """`refine(container, resource)`: the container a change notification's hint names."""
        super().__init__()
        self.refine = refine
        self._watched, self.follows = watched, watched is not None
        self._followed: Resources | None = None  # from the last checkpoint handed over, until maintain()
        self._follow_lock = threading.Lock()
        self.source, self.url, self.lifetime = source, url, lifetime
        self._new_client, self._resources, self.change_type = client, resources, change_type
        self.client_state = secrets.token_urlsafe(24)
        self.client: GraphClient | None = None
        self._swept = False  # the leftovers of an earlier process are removed at the first start
        self.renewals = Renewals(
            source=source,
            what=what,
            lifetime=lifetime,
            create=self._create,
            renew=self._renew,
            remove=self._remove,
            advice=f"is {url} served by `inlet daemon --serve`?",
            missed=lambda sub: self.missed(sub.key),
        )

    def start(self, emit: Emit) -> None:
        self.emit = emit
        self.client = self._new_client()
        for container, resource in self._resources(self.client).items():
            self.renewals.add(container, _label(resource), resource=str(resource))
        if not self._swept and self.sole:  # beside other daemons, theirs are live: never removed
            self._remove_leftovers()
        self.maintain()

    def _remove_leftovers(self) -> None:
        """Delete the subscriptions on this source's hook URL that this process does not hold: a
        crashed (or SIGKILLed) daemon's, which would otherwise notify every change a second time,
        refused, until they expire, and count against Graph's quotas. Best effort: one left behind
        expires by itself."""
        assert self.client is not None
        held = {sub.id for sub in self.renewals.subs.values() if sub.id}
        try:
            listed = [sub for page in self.client.pages("/subscriptions") for sub in page.get("value", [])]
            self._swept = True
            leftovers = [s for s in listed if s.get("notificationUrl") == self.url and s.get("id") not in held]
            for sub in leftovers:
                self.client.request("DELETE", f"/subscriptions/{sub['id']}")
        except InletError as exc:
            log.info(
                "source %r: could not remove leftover subscriptions (they expire by themselves): %s", self.source, exc
            )
            return
        if leftovers:
            log.info(
                "source %r: removed %d subscription(s) on %s left by a daemon that did not stop cleanly",
                self.source,
                len(leftovers),
                self.url,
            )

    def maintain(self) -> None:
        self._apply_followed()
        try:
            self.renewals.maintain()
        finally:
            self.live, self.reason = self.renewals.live, self.renewals.reason

    def follow(self, checkpoint: dict[str, Any]) -> None:
        if self._watched is not None:
            wanted = self._watched(checkpoint)
            with self._follow_lock:
                self._followed = wanted

    def _apply_followed(self) -> None:
        """Subscribe to the containers the last checkpoint handed over names anew; drop the gone."""
        with self._follow_lock:
            wanted, self._followed = self._followed, None
        if wanted is None:
            return
        gone = [key for key in self.renewals.subs if key not in wanted]
        new = {key: resource for key, resource in wanted.items() if key not in self.renewals.subs}
        for key in gone:
            self.renewals.drop(key)
        for key, resource in new.items():
            self.renewals.add(key, _label(resource), resource=str(resource))
        if gone or new:
            log.info(
                "source %r: after its last run, %d new %s(s), %d removed",
                self.source,
                len(new),
                self.renewals.what,
                len(gone),
            )

    def stop(self) -> None:
        self.live = False
        self.renewals.stop()
        if self.client is not None:
            self.client.close()
            self.client = None

    def _expiry(self) -> str:
        when = dt.datetime.fromtimestamp(self.renewals.clock() + self.lifetime, dt.timezone.utc)
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _create(self, sub: Subscription) -> None:
        assert self.client is not None
        answer = self.client.request(
            "POST",
            "/subscriptions",
            body={
                "changeType": self.change_type,
                "notificationUrl": self.url,
                "lifecycleNotificationUrl": self.url,
                "clientState": self.client_state,
                "resource": sub.data["resource"],
                "expirationDateTime": self._expiry(),
            },
        )
        sub.id, sub.expires = str(answer["id"]), _epoch(answer["expirationDateTime"])
        log.debug("source %r: subscribed to %s", self.source, sub.data["resource"])

    def _renew(self, sub: Subscription) -> None:
        assert self.client is not None
        try:
            answer = self.client.request(
                "PATCH", f"/subscriptions/{sub.id}", body={"expirationDateTime": self._expiry()}
            )
        except GraphError as exc:
            if exc.status == 404:  # expired or removed: subscribed again, and what was missed synced
                raise Gone(str(exc)) from exc
            if exc.refused:  # the app's authorization in question: Graph may hold its notifications back
                self.renewals.challenge(sub, REFUSED)
            raise
        sub.expires = _epoch(answer["expirationDateTime"])

    def _remove(self, sub: Subscription) -> None:
        assert self.client is not None
        self.client.request("DELETE", f"/subscriptions/{sub.id}")

    # --- the webhook ----------------------------------------------------------------------------
    def webhook(self, request: WebhookRequest) -> WebhookResponse:
        token = request.query.get("validationToken")
        if token is not None and request.method == "POST":  # Graph checks we own the URL before subscribing
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
        if len(ours) < len(notes):  # one line for the request, not one per notification
            return WebhookResponse(
                ACCEPTED.status,
                refused=f"{len(notes) - len(ours)} of {len(notes)} notification(s) without our clientState ignored",
            )
        return ACCEPTED

    def _ours(self, client_state: object) -> bool:
        given = client_state.encode("utf-8", "replace") if isinstance(client_state, str) else b""
        return secrets.compare_digest(given, self.client_state.encode())

    def _note(self, note: dict[str, Any]) -> None:
        held = list(self.renewals.subs.values())  # maintain() may add or drop one meanwhile
        sub = next((s for s in held if s.id and s.id == note.get("subscriptionId")), None)
        if sub is None:
            return
        event = note.get("lifecycleEvent")
        if event == "reauthorizationRequired":
            self.renewals.challenge(sub, REAUTHORIZE)
            return
        if event == "subscriptionRemoved":
            sub.id = None  # maintain() subscribes again, then catches up (`missed`)
            return
        resource = str(note.get("resource") or "")
        self.emit(Hint(self.refine(sub.key, resource) if self.refine and not event else sub.key))


def _epoch(value: str) -> float:
    """Seconds since the epoch of a Graph time (seven fractional digits, `Z` or an offset)."""
    when = graph_time(value)
    if when is None:
        raise ValueError(f"not a Graph timestamp: {value!r}")
    return when.timestamp()
