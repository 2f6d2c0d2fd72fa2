"""Emulated Graph change notifications: `/v1.0/subscriptions` for mail folders, and the posts they make.

`POST /subscriptions` first validates the `notificationUrl` the way Graph does (a POST with
`?validationToken=...` that must echo the token as text/plain with 200 within 10 s), refuses an
expiry beyond `max_lifetime`, and answers 201 with the subscription. `GET /subscriptions` lists the
unexpired ones (the app's, in the tenant), `PATCH` renews one, `DELETE` removes it. Every message
created, updated, moved or deleted in a subscribed folder (through the sandbox's API:
`MailState.listeners`) is posted to its `notificationUrl` with the `clientState` (from one
background thread, in order; `Faults.events("graph", ...)` may drop, delay or duplicate them); an
expired subscription posts nothing and disappears. A channel message's notification names the
message (a reply as `.../messages('ROOT')/replies('ID')`). `lifecycle()` posts a lifecycle
notification (`reauthorizationRequired`, `missed`, `subscriptionRemoved`) on demand. After
`reauthorizationRequired` the subscription's delivery pauses until a `PATCH` renews it, and what
changes meanwhile is never notified, as Graph documents (it may keep delivering for a while first:
the sandbox pauses at once, the worst case).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .graph_files_state import files_state
from .graph_seed import mail_state
from .graph_teams_state import teams_state
from .graph_wire import graph_error

log = logging.getLogger(__name__)

_RESOURCE = re.compile(r"^/?users/([^/]+)/mailFolders\('([^']+)'\)/messages$", re.IGNORECASE)
_DRIVE = re.compile(r"^/?drives/([^/]+)/root$", re.IGNORECASE)
_CHANNEL = re.compile(r"^/?teams/([^/]+)/channels/([^/]+)/messages$", re.IGNORECASE)
MAX_LIFETIME = 10070 * 60.0  # Graph's limit for mail, in seconds


@dataclass
class Subscription:
    id: str
    resource: str
    mailbox: str  # user id
    folder_id: str
    change_type: str
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires: float  # epoch seconds
    renewals: int = 0
    paused: bool = False  # reauthorization required: nothing is posted (and lost) until a PATCH

    def json(self) -> dict[str, Any]:
        return {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "changeType": self.change_type,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "clientState": self.client_state,
            "expirationDateTime": _iso(self.expires),
            "applicationId": "11111111-2222-4333-8444-555555555555",
            "latestSupportedTlsVersion": "v1_2",
        }


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _epoch(value: Any) -> float | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Subscriptions:
    """The tenant's subscriptions and the thread that posts their notifications."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.max_lifetime = MAX_LIFETIME  # tests shorten it to exercise renewals
        self.subs: dict[str, Subscription] = {}
        self.notifier = ctx.notifier("graph-notify")
        self._lock = threading.Lock()

    # --- notifications out ----------------------------------------------------------------------
    def changed(self, mailbox: str, folder_id: str, message_id: str, change: str) -> None:
        """MailState listener (under the workspace lock): queue a notification per matching subscription."""
        now = self.ctx.ws.clock()
        with self._lock:
            for sub in list(self.subs.values()):
                if sub.expires <= now:
                    del self.subs[sub.id]
                    continue
                if sub.paused or sub.mailbox != mailbox or sub.folder_id != folder_id or change not in sub.change_type:
                    continue
                copies, delay = self.ctx.faults.event_fate("graph")
                note = {
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": _iso(sub.expires),
                    "changeType": change,
                    "clientState": sub.client_state,
                    "resource": f"Users/{mailbox}/Messages/{message_id}",
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Message",
                        "@odata.id": f"Users/{mailbox}/Messages/{message_id}",
                        "id": message_id,
                    },
                    "tenantId": mail_state(self.ctx.ws).tenant_guid,
                }
                for _ in range(copies):
                    self._queue(sub.notification_url, {"value": [note]}, delay)

    def message_changed(self, team_id: str, channel_id: str, root_id: str, message_id: str) -> None:
        """TeamsState listener: a notification naming the changed message, a reply as Graph names one
        (`teams('T')/channels('C')/messages('ROOT')/replies('ID')`)."""
        resource = f"teams('{team_id}')/channels('{channel_id}')/messages('{root_id}')"
        if message_id != root_id:
            resource += f"/replies('{message_id}')"
        self.drive_changed(channel_id, root_id, resource)

    def drive_changed(self, drive_id: str, item_id: str, resource: str | None = None) -> None:
        """FilesState listener: a notification on the drive root watched as `drive_id` for any change
        below it (and, through `message_changed`, on a channel's messages, naming the message)."""
        now = self.ctx.ws.clock()
        with self._lock:
            for sub in list(self.subs.values()):
                if sub.expires <= now:
                    del self.subs[sub.id]
                    continue
                if sub.mailbox or sub.folder_id != drive_id or sub.paused:
                    continue
                copies, delay = self.ctx.faults.event_fate("graph")
                note = {
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": _iso(sub.expires),
                    "changeType": "updated",
                    "clientState": sub.client_state,
                    "resource": resource or sub.resource,
                    "resourceData": None,
                    "tenantId": mail_state(self.ctx.ws).tenant_guid,
                }
                for _ in range(copies):
                    self._queue(sub.notification_url, {"value": [note]}, delay)

    def lifecycle(self, sub_id: str, event: str) -> None:
        """Post a lifecycle notification; `subscriptionRemoved` also removes the subscription."""
        with self._lock:
            sub = self.subs[sub_id] if event != "subscriptionRemoved" else self.subs.pop(sub_id)
            sub.paused = sub.paused or event == "reauthorizationRequired"
        note = {
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": _iso(sub.expires),
            "lifecycleEvent": event,
            "clientState": sub.client_state,
            "tenantId": mail_state(self.ctx.ws).tenant_guid,
        }
        self._queue(sub.lifecycle_url or sub.notification_url, {"value": [note]}, 0.0)

    def _queue(self, url: str, body: dict[str, Any], delay: float) -> None:
        self.notifier.post(url, json.dumps(body).encode(), {"Content-Type": "application/json"}, delay)

    @property
    def posted(self) -> int:
        """Notifications delivered (2xx), for tests."""
        return self.notifier.posted

    # --- the API --------------------------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        body = await request.json()
        match = _RESOURCE.match(str(body.get("resource", "")))
        drive = _DRIVE.match(str(body.get("resource", "")))
        channel = _CHANNEL.match(str(body.get("resource", "")))
        state = mail_state(self.ctx.ws)
        if not match and not drive and not channel:
            return graph_error(
                400, "InvalidRequest", "Only mail folder messages and drive roots can be subscribed to here."
            )
        if drive:
            mailbox, container = "", drive[1] if drive[1] in files_state(self.ctx.ws).drives else None
        elif channel:
            mailbox, container = "", channel[2] if channel[2] in teams_state(self.ctx.ws).channels else None
        else:
            user = self.ctx.ws.users.get(match[1]) or self.ctx.ws.user_by_email(match[1])  # type: ignore[index]
            folder = state.folder(user.id, match[2]) if user and user.id in state.mailboxes else None  # type: ignore[index]
            mailbox, container = (user.id if user else ""), (folder.id if folder else None)
        if container is None:
            return graph_error(404, "ResourceNotFound", f"Resource not found: {body.get('resource')}")
        expires = _epoch(body.get("expirationDateTime"))
        refused = self._bad_expiry(expires)
        if refused:
            return refused
        assert expires is not None  # _bad_expiry refuses a missing one
        url = str(body.get("notificationUrl", ""))
        token = uuid.uuid4().hex
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                answer = await client.post(
                    url, params={"validationToken": token}, headers={"Content-Type": "text/plain"}
                )
        except httpx.HTTPError as exc:
            return graph_error(400, "ValidationError", f"Subscription validation request failed: {exc}")
        if answer.status_code != 200 or answer.text != token:
            return graph_error(
                400,
                "ValidationError",
                "Subscription validation request failed. Response must exactly match validationToken query parameter.",
            )
        sub = Subscription(
            str(uuid.uuid4()),
            str(body["resource"]),
            mailbox,
            container,
            str(body.get("changeType", "created,updated,deleted")),
            url,
            body.get("lifecycleNotificationUrl"),
            body.get("clientState"),
            expires,
        )
        with self._lock:
            self.subs[sub.id] = sub
        return JSONResponse(sub.json(), status_code=201)

    def _bad_expiry(self, expires: float | None) -> Response | None:
        now = self.ctx.ws.clock()
        if expires is None or expires <= now:
            return graph_error(400, "InvalidRequest", "expirationDateTime must be a future date and time.")
        if expires - now > self.max_lifetime + 60:
            return graph_error(
                400,
                "InvalidRequest",
                f"Subscription expiration can only be {self.max_lifetime / 60:.0f} minutes in the future.",
            )
        return None

    async def listing(self, request: Request) -> Response:
        now = self.ctx.ws.clock()
        with self._lock:
            live = [sub.json() for sub in self.subs.values() if sub.expires > now]
        for sub in live:
            sub.pop("@odata.context", None)
        return JSONResponse(
            {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions", "value": live}
        )

    async def one(self, request: Request) -> Response:
        with self._lock:
            sub = self.subs.get(request.path_params["sub"])
        if sub is None or sub.expires <= self.ctx.ws.clock():
            return graph_error(404, "ResourceNotFound", "The object was not found.")
        if request.method == "DELETE":
            with self._lock:
                self.subs.pop(sub.id, None)
            return Response(status_code=204)
        if request.method == "PATCH":
            expires = _epoch((await request.json()).get("expirationDateTime"))
            refused = self._bad_expiry(expires)
            if refused:
                return refused
            sub.expires, sub.renewals, sub.paused = expires, sub.renewals + 1, False  # type: ignore[assignment]
        return JSONResponse(sub.json())


def subscriptions(ctx: Any) -> Subscriptions:
    """The sandbox's subscriptions, created and wired to the mail state on first use."""
    state = mail_state(ctx.ws)
    with ctx.ws.lock:
        if ctx.state.get("graph_subscriptions") is None:
            subs = Subscriptions(ctx)
            ctx.state["graph_subscriptions"] = subs
            state.listeners.append(subs.changed)
            files_state(ctx.ws).listeners.append(subs.drive_changed)
            teams_state(ctx.ws).listeners.append(subs.message_changed)
        return ctx.state["graph_subscriptions"]  # type: ignore[no-any-return]


def routes(ctx: Any, guard: Any) -> list[BaseRoute]:
    """`guard(request, route)` is the Graph API's fault and token check."""
    subs = subscriptions(ctx)

    async def create(request: Request) -> Response:
        return guard(request, "subscriptions") or await subs.create(request)

    async def one(request: Request) -> Response:
        return guard(request, "subscriptions") or await subs.one(request)

    async def listing(request: Request) -> Response:
        return guard(request, "subscriptions.list") or await subs.listing(request)

    return [
        Route("/v1.0/subscriptions", create, methods=["POST"]),
        Route("/v1.0/subscriptions", listing, methods=["GET"]),
        Route("/v1.0/subscriptions/{sub}", one, methods=["GET", "PATCH", "DELETE"]),
    ]
