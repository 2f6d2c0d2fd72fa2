"""The emulated Microsoft Graph Teams API: teams, channels, members, channel messages and replies.

- `GET /v1.0/teams` and `GET /v1.0/groups?$filter=resourceProvisioningOptions/Any(x:x eq 'Team')`;
- `GET /teams/{id}/channels` (`membershipType` standard, private or shared), `/teams/{id}/members`,
  `/teams/{id}/channels/{id}/members` (`aadUserConversationMember` with `email`; a shared
  channel's direct members only) and `.../allMembers` (also those of the teams it is shared with);
- `GET /teams/{id}/channels/{id}/messages` (root messages, newest first, `$top` and nextLink),
  `.../messages/{id}` and `.../messages/{id}/replies`;
- `GET /l/message/{channel}/{id}`: what a message's `webUrl` opens in a browser (its thread);
- `GET /teams/{id}/channels/{id}/messages/delta`: rounds like the mail delta (`$skiptoken` in
  nextLinks, `$deltatoken` in the deltaLink; expired: 410 `SyncStateNotFound`); a round lists the
  root messages created, edited or deleted since, "without the replies", as Graph documents it (a
  reply's change lists its root only with `TeamsState.replies_move_root`); a deleted message has
  `deletedDateTime` and an empty body; a purged one (`TeamsState.purge`) is listed as
  `{"id": ..., "@removed": {"reason": "deleted"}}` and its reads answer 404. With
  `TeamsState.delta_window` set (Graph: eight months), delta leaves out the roots last modified
  before it; `.../messages` still lists them.
Bodies are HTML with `<at id="n">` mentions (and a `mentions` list) and reference attachments
(files) with a `contentUrl`; a workflow's Adaptive Card is an attachment whose `content` is the
card's JSON as a string; a system event (`messageType: systemEventMessage`) has no sender.
The routes are mounted (and batchable) by `graph_files.routes`.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .graph_seed import mail_state
from .graph_teams_state import Channel, DeltaState, Message, TeamsState, teams_state
from .graph_wire import graph_error, iso
from .graph_teams_seed import seed_teams
from .graph_teams_seed import seed_teams_generated

__all__ = ["TeamsApi", "routes", "source", "teams_state", "seed_sample", "seed_generated"]

_DEFAULT_PAGE = 20


CONNECTOR_CARD = "application/vnd.microsoft.teams.card.o365connector"  # an incoming webhook's card (sections)


def routes(ctx: Any) -> list[BaseRoute]:
    return []  # mounted by graph_files.routes, which also makes them batchable


def source(ctx: Any, workdir: Path) -> tuple[str, dict[str, str]]:
    mail = mail_state(ctx.ws)
    base = ctx.https_url or ctx.http_url
    block = (
        "[[sources]]\n"
        'name = "sandbox-teams"\n'
        'type = "teams"\n'
        'every = "15m"\n'
        f'tenant_id = "{mail.tenant_id}"\n'
        f'client_id = "{mail.client_id}"\n'
        'client_secret_env = "INLET_SANDBOX_OUTLOOK_SECRET"\n'
        f'graph_url = "{base}/v1.0"\n'
        f'authority_url = "{ctx.https_url}"\n'
        f'ca_bundle = "{Path(ctx.ca_path).as_posix() if ctx.ca_path else ""}"\n'
    )
    return block, {"INLET_SANDBOX_OUTLOOK_SECRET": mail.client_secret}


def seed_sample(ws: Any, path: Path | None = None) -> None:
    seed_teams(ws)


def seed_generated(ws: Any, *, threads: int = 200, **_: Any) -> None:
    seed_teams_generated(ws, threads)


def message_json(state: TeamsState, msg: Message, base: str, ws: Any) -> dict[str, Any]:
    channel = state.channels[msg.channel_id]
    user = ws.user_by_email(msg.author)
    out: dict[str, Any] = {
        "id": msg.id,
        "replyToId": msg.reply_to,
        "etag": str(int(msg.modified.timestamp() * 1000)),
        "messageType": msg.kind,
        "createdDateTime": iso(msg.created),
        "lastModifiedDateTime": msg.modified.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "lastEditedDateTime": None,
        "deletedDateTime": iso(msg.deleted),
        "subject": msg.subject,
        "summary": None,
        "importance": "normal",
        "locale": "en-us",
        "webUrl": f"{base}/l/message/{channel.id}/{msg.id}?groupId={channel.team_id}&parentMessageId="
        f"{msg.reply_to or msg.id}",
        "from": {
            "user": {
                "id": user.id if user else msg.author,
                "displayName": user.real_name if user else msg.author,
                "userIdentityType": "aadUser",
            },
            "application": None,
            "device": None,
        },
        "body": {"contentType": "html", "content": msg.html},
        "channelIdentity": {"teamId": channel.team_id, "channelId": channel.id},
        "attachments": [
            {
                "id": f"att{n}",
                "contentType": "reference",
                "contentUrl": url,
                "name": name,
                "content": None,
                "thumbnailUrl": None,
            }
            for n, (name, url) in enumerate(msg.files)
        ]
        + [
            {
                "id": f"card{n}",
                "contentType": CONNECTOR_CARD if "sections" in card else "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "name": None,
                "content": json.dumps(card),  # Graph sends a card as a JSON string
                "thumbnailUrl": None,
            }
            for n, card in enumerate(msg.cards)
        ]
        + (
            [
                {
                    "id": "forwarded",
                    "contentType": "forwardedMessageReference",
                    "contentUrl": None,
                    "name": None,
                    "content": json.dumps(msg.forwarded),  # a JSON string, as cards
                    "thumbnailUrl": None,
                }
            ]
            if msg.forwarded
            else []
        ),
        "mentions": [],
        "reactions": [],
        "policyViolation": msg.policy,
    }
    if msg.kind == "systemEventMessage":  # no sender; what happened is in eventDetail
        out.update({"from": None, "eventDetail": {"@odata.type": "#microsoft.graph.membersAddedEventMessageDetail"}})
    for n, email in enumerate(msg.mentions):
        who = ws.user_by_email(email)
        out["mentions"].append(
            {
                "id": n,
                "mentionText": who.real_name if who else email,
                "mentioned": {"user": {"id": who.id if who else email, "displayName": who.real_name if who else email}},
            }
        )
    if msg.deleted:
        out["body"]["content"], out["attachments"], out["mentions"] = "", [], []
    if msg.policy and msg.policy["dlpAction"] == "BlockAccess" and msg.policy["userAction"] != "Override":
        out["body"] = {"contentType": "text", "content": ""}  # hidden from the Teams UI, and from Graph
    return out


def member_json(email: str, ws: Any) -> dict[str, Any]:
    """A member as Graph lists one: a guest with the `guest` role; `tenantId` its home tenant's id
    (another tenant's for a shared channel's member from outside: `TeamsState.outsiders`)."""
    user, teams = ws.user_by_email(email), teams_state(ws)
    return {
        "@odata.type": "#microsoft.graph.aadUserConversationMember",
        "id": f"MCMj{email}",
        "roles": ["guest"] if email in teams.guests else [],
        "tenantId": teams.outsiders.get(email, mail_state(ws).tenant_guid),
        "displayName": user.real_name if user else email,
        "userId": user.id if user else email,
        "email": email,
    }


class TeamsApi:
    def __init__(self, ctx: Any, guard: Any) -> None:
        self.ctx, self.guard = ctx, guard

    @property
    def state(self) -> TeamsState:
        return teams_state(self.ctx.ws)

    def routes(self) -> list[BaseRoute]:
        t, c = "/v1.0/teams/{team}", "/v1.0/teams/{team}/channels/{channel}"
        return [
            Route("/v1.0/teams", self.teams),
            Route("/v1.0/groups", self.teams),
            Route(f"{t}/channels", self.channels),
            Route(f"{t}/members", self.team_members),
            Route(f"{c}/members", self.channel_members),
            Route(f"{c}/allMembers", self.channel_all_members),
            Route(f"{c}/messages", self.messages),
            Route(f"{c}/messages/delta", self.delta),
            Route(f"{c}/messages/{{message}}", self.message),
            Route(f"{c}/messages/{{message}}/replies", self.replies),
        ]

    @staticmethod
    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def _page(self, request: Request, values: list[dict[str, Any]], default: int = 100) -> Response:
        skip = int(request.query_params.get("$skiptoken", "0") or 0)
        top = int(request.query_params.get("$top", str(default)))
        body: dict[str, Any] = {"value": values[skip : skip + top]}
        if skip + top < len(values):
            body["@odata.nextLink"] = str(request.url.include_query_params(**{"$skiptoken": skip + top, "$top": top}))
        return JSONResponse(body)

    def _channel(self, request: Request) -> Channel | Response:
        team = self.state.teams.get(request.path_params["team"])
        channel = self.state.channels.get(request.path_params.get("channel", ""))
        if team is None or channel is None or channel.team_id != team.id:
            return graph_error(404, "NotFound", "Resource not found.")
        return channel

    async def teams(self, request: Request) -> Response:
        if (denied := self.guard(request, "teams")) is not None:
            return denied
        if request.url.path.endswith("/groups") and "resourceProvisioningOptions" not in request.query_params.get(
            "$filter", ""
        ):
            return graph_error(400, "Request_UnsupportedQuery", "Only the Team filter is served here.")
        with self.ctx.ws.lock:
            return self._page(
                request,
                [
                    {"id": t.id, "displayName": t.name, "description": "", "resourceProvisioningOptions": ["Team"]}
                    for t in self.state.teams.values()
                ],
            )

    async def channels(self, request: Request) -> Response:
        if (denied := self.guard(request, "channels")) is not None:
            return denied
        with self.ctx.ws.lock:
            team = self.state.teams.get(request.path_params["team"])
            if team is None:
                return graph_error(404, "NotFound", "No team found with Group Id " + request.path_params["team"])
            return JSONResponse(
                {
                    "value": [
                        {
                            "id": c.id,
                            "displayName": c.name,
                            "membershipType": c.kind,
                            "description": None,
                            "webUrl": f"{self.base(request)}/l/channel/{c.id}/{c.name}?groupId={team.id}",
                        }
                        for c in (self.state.channels[cid] for cid in team.channels)
                    ]
                }
            )

    async def team_members(self, request: Request) -> Response:
        if (denied := self.guard(request, "members")) is not None:
            return denied
        with self.ctx.ws.lock:
            team = self.state.teams.get(request.path_params["team"])
            if team is None:
                return graph_error(404, "NotFound", "Resource not found.")
            return self._page(request, [member_json(e, self.ctx.ws) for e in team.members])

    async def channel_members(self, request: Request) -> Response:
        return await self._members(request, self.state.members_of)

    async def channel_all_members(self, request: Request) -> Response:
        return await self._members(request, self.state.all_members_of)

    async def _members(self, request: Request, members: Callable[[Channel], list[str]]) -> Response:
        if (denied := self.guard(request, "members")) is not None:
            return denied
        with self.ctx.ws.lock:
            channel = self._channel(request)
            if isinstance(channel, Response):
                return channel
            return self._page(request, [member_json(e, self.ctx.ws) for e in members(channel)])

    async def messages(self, request: Request) -> Response:
        if (denied := self.guard(request, "messages")) is not None:
            return denied
        with self.ctx.ws.lock:
            channel = self._channel(request)
            if isinstance(channel, Response):
                return channel
            roots = list(reversed(self.state.roots(channel.id)))
            return self._page(
                request, [message_json(self.state, m, self.base(request), self.ctx.ws) for m in roots], _DEFAULT_PAGE
            )

    async def message(self, request: Request) -> Response:
        if (denied := self.guard(request, "message")) is not None:
            return denied
        with self.ctx.ws.lock:
            channel = self._channel(request)
            if isinstance(channel, Response):
                return channel
            msg = self.state.messages.get(request.path_params["message"])
            if msg is None or msg.channel_id != channel.id:
                return graph_error(404, "NotFound", "Resource not found.")
            return JSONResponse(message_json(self.state, msg, self.base(request), self.ctx.ws))

    async def page(self, request: Request) -> Response:
        """What a message's webUrl opens in a browser (no auth: a person's browser, not an app): its
        thread, the root first and the replies after it; 404 for a message gone or deleted."""
        with self.ctx.ws.lock:
            msg = self.state.messages.get(request.path_params["message"])
            if msg is None or msg.channel_id != request.path_params["channel"] or msg.deleted:
                return HTMLResponse("<h1>Message not found</h1>", status_code=404)
            root = self.state.messages.get(msg.reply_to) if msg.reply_to else msg
            thread = [root, *self.state.replies(root.id)] if root is not None else [msg]
            title = f"<h1>{html.escape(root.subject)}</h1>" if root is not None and root.subject else ""
            return HTMLResponse(title + "".join(f"<div>{m.html}</div>" for m in thread if not m.deleted))

    async def replies(self, request: Request) -> Response:
        if (denied := self.guard(request, "replies")) is not None:
            return denied
        with self.ctx.ws.lock:
            channel = self._channel(request)
            if isinstance(channel, Response):
                return channel
            root = self.state.messages.get(request.path_params["message"])
            if root is None or root.channel_id != channel.id:
                return graph_error(404, "NotFound", "Resource not found.")
            replies = list(reversed(self.state.replies(root.id)))
            return self._page(
                request, [message_json(self.state, m, self.base(request), self.ctx.ws) for m in replies], 50
            )

    async def delta(self, request: Request) -> Response:
        if (denied := self.guard(request, "messages.delta")) is not None:
            return denied
        with self.ctx.ws.lock:
            channel = self._channel(request)
            if isinstance(channel, Response):
                return channel
            state, params = self.state, request.query_params
            token = params.get("$skiptoken") or params.get("$deltatoken")
            if token is not None:
                sync = state.deltas.get(token)
                if sync is None or sync.channel_id != channel.id:
                    return graph_error(
                        410,
                        "SyncStateNotFound",
                        "The sync state generation is not found. Please restart the sync from scratch.",
                    )
                if "$deltatoken" in params:
                    changed = [m for m in state.changed_since(channel.id, sync.watermark) if state.in_delta_window(m)]
                    sync = DeltaState(channel.id, state.seq, changed, False, sync.top)
            else:
                roots = [m.id for m in state.roots(channel.id) if not m.deleted and state.in_delta_window(m.id)]
                sync = DeltaState(channel.id, state.seq, roots, True, int(params.get("$top", _DEFAULT_PAGE)))
            page, rest = sync.pending[: sync.top], sync.pending[sync.top :]
            base = self.base(request)
            body: dict[str, Any] = {
                "value": [
                    message_json(state, state.messages[m], base, self.ctx.ws)
                    if m in state.messages
                    else {"id": m, "@removed": {"reason": "deleted"}}  # purged
                    for m in page
                ]
            }
            link = f"{base}/v1.0/teams/{channel.team_id}/channels/{channel.id}/messages/delta?"
            if rest:
                body["@odata.nextLink"] = (
                    link
                    + "$skiptoken="
                    + state.store_delta(DeltaState(channel.id, sync.watermark, rest, sync.initial, sync.top))
                )
            else:
                body["@odata.deltaLink"] = (
                    link
                    + "$deltatoken="
                    + state.store_delta(DeltaState(channel.id, sync.watermark, [], False, sync.top))
                )
            return JSONResponse(body)
