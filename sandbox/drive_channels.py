"""Emulated Drive push notifications: `changes.watch` channels and `channels.stop`.

`POST /drive/v3/changes/watch` opens a `web_hook` channel (id, token, address and expiration chosen
by the client; an expiration beyond `max_lifetime` is cut to it, as Drive does) on one change log:
a shared drive's (`driveId`) or the user's (`includeItemsFromAllDrives` as `changes.list` takes it),
and posts its `sync` message; every change logged afterwards in that log (`DriveState.listeners`,
`drive_state.in_log`) posts a `change` message to the channel, with Google's `X-Goog-*` headers and
no body: a change only a shared drive's log holds reaches only that drive's channels.
`POST /drive/v3/channels/stop` closes a channel (404 for one it does not know). Expired channels
post nothing. With `verified_domains` set, an address on any other host is refused as Drive refuses
one whose domain the project has not verified (401 `push.webhookUrlUnauthorized`).
`Faults.events("drive")` may drop, delay or duplicate change messages (a duplicate is a redelivery:
the same `X-Goog-Message-Number`, as Drive retries a message); a fault armed on
`changes.watch:drive` fails only the shared drives' `changes.watch` (one drive's backend in trouble
while the user's log answers).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import drive_state as ds
from .drive_wire import DriveError

MAX_LIFETIME = 7 * 86400.0  # seconds: Drive's longest changes channel
WEBHOOK_NOT_VERIFIED = "push.webhookUrlUnauthorized"  # Drive's reason for an address on an unverified domain


@dataclass
class Channel:
    id: str
    resource_id: str
    address: str
    token: str | None
    expires: float  # epoch seconds
    drive_id: str | None = None  # the shared drive whose log it watches; None: the user's
    all_drives: bool = False  # includeItemsFromAllDrives (and supportsAllDrives)
    number: int = 0  # X-Goog-Message-Number of the last message

    def json(self, resource_uri: str) -> dict[str, Any]:
        return {
            "kind": "api#channel",
            "id": self.id,
            "resourceId": self.resource_id,
            "resourceUri": resource_uri,
            "token": self.token,
            "expiration": str(int(self.expires * 1000)),
        }


class Channels:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.max_lifetime = MAX_LIFETIME
        self.verified_domains: set[str] | None = None  # hosts a channel may post to; None: any
        self.open: dict[str, Channel] = {}
        self.stopped: list[str] = []
        self.notifier = ctx.notifier("drive-push")

    def changed(self, change: ds.Change) -> None:
        """DriveState listener (under the workspace lock)."""
        now = self.ctx.ws.clock()
        st = ds.state(self.ctx.ws)
        for channel in list(self.open.values()):
            if channel.expires <= now:
                del self.open[channel.id]
                continue
            if not ds.in_log(st, change, channel.drive_id, channel.all_drives):
                continue
            copies, delay = self.ctx.faults.event_fate("drive")
            channel.number += 1
            for _ in range(copies):
                self._message(channel, "change", delay)

    def _message(self, channel: Channel, state: str, delay: float = 0.0) -> None:
        """Post the channel's message number `channel.number`."""
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel.number),
            "X-Goog-Resource-URI": f"{self.ctx.http_url}/drive/v3/changes",
            "X-Goog-Channel-Expiration": ds.rfc3339(channel.expires),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        self.notifier.post(channel.address, b"", headers, delay)

    async def watch(self, ctx: Any, request: Request) -> Response:
        body = await request.json()
        if body.get("type") not in ("web_hook", "webhook") or not str(body.get("address", "")).startswith("http"):
            raise DriveError(400, "Invalid Value", "invalid", "type")
        address = str(body["address"])
        if self.verified_domains is not None and urlsplit(address).hostname not in self.verified_domains:
            raise DriveError(401, f"Unauthorized WebHook callback channel: {address}", WEBHOOK_NOT_VERIFIED)
        if not body.get("id") or body["id"] in self.open:
            raise DriveError(400, "Channel id not unique", "channelIdNotUnique", "id")
        now = ctx.ws.clock()
        wanted = float(body["expiration"]) / 1000 if body.get("expiration") else now + 3600
        params = request.query_params
        drive_id = params.get("driveId")
        fault = ctx.faults.check("drive", "changes.watch:drive", drive_id or "") if drive_id else None
        if fault is not None:
            raise DriveError(
                fault.status, "Backend Error", fault.reason or "backendError", retry_after=fault.retry_after
            )
        with ctx.ws.lock:
            drive = ds.state(ctx.ws).drives.get(drive_id or "")
            if drive_id and (drive is None or not drive.member):
                raise DriveError(404, f"Shared drive not found: {drive_id}", "notFound", "driveId")
            channel = Channel(
                str(body["id"]),
                uuid.uuid4().hex[:27],
                address,
                body.get("token"),
                min(wanted, now + self.max_lifetime),
                drive_id=drive_id,
                all_drives=all(
                    params.get(k, "").lower() == "true" for k in ("includeItemsFromAllDrives", "supportsAllDrives")
                ),
            )
            self.open[channel.id] = channel
        channel.number = 1  # a sync message is always number 1
        self._message(channel, "sync")
        return JSONResponse(
            channel.json(f"{ctx.http_url}/drive/v3/changes?pageToken={request.query_params.get('pageToken', '')}")
        )

    async def stop(self, ctx: Any, request: Request) -> Response:
        body = await request.json()
        with ctx.ws.lock:
            channel = self.open.get(str(body.get("id")))
            if channel is None or channel.resource_id != body.get("resourceId"):
                raise DriveError(404, f"Channel '{body.get('id')}' not found for project", "notFound")
            del self.open[channel.id]
            self.stopped.append(channel.id)
        return Response(status_code=204)


def channels(ctx: Any) -> Channels:
    """The sandbox's push channels, created and wired to the drive state on first use."""
    with ctx.ws.lock:
        if ctx.state.get("drive_channels") is None:
            chans = Channels(ctx)
            ctx.state["drive_channels"] = chans
            ds.state(ctx.ws).listeners.append(chans.changed)
        return ctx.state["drive_channels"]  # type: ignore[no-any-return]


def routes(ctx: Any, guarded: Any, api: str) -> list[BaseRoute]:
    """`guarded(ctx, name, handler)` applies the Drive API's faults and token check."""
    chans = channels(ctx)
    return [
        Route(api + "/changes/watch", guarded(ctx, "changes.watch", chans.watch), methods=["POST"]),
        Route(api + "/channels/stop", guarded(ctx, "channels.stop", chans.stop), methods=["POST"]),
    ]
