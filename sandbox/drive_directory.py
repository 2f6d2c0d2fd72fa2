"""The emulated Admin SDK Directory API: the members of the workspace's Google Groups.

Serves `members.list` (`GET /admin/directory/v1/groups/{groupKey}/members`) as Google does: the
group's direct members (`email`, `type` USER/GROUP, `status`, `role`), `maxResults` (1 to 200,
default 200) a page, `nextPageToken` while more remain (an opaque token, refused with 400 when it
is not one this listing gave), and the `fields` projection. A token must carry a Directory group
scope (`admin.directory.group.member.readonly` or a wider one), else 403
`insufficientPermissions`, as every Drive endpoint checks its own. The caller must be allowed to
read the directory: the service account itself (a service account given an admin role), or a
delegated user listed in `DriveState.directory_admins`; anyone else, and a group of a domain other
than the workspace's, gets Google's 403 "Not Authorized to access this resource/api"; a group of
the workspace's domain it does not hold gets 404 "Resource Not Found: groupKey". Groups live in
`drive_state` (`set_group`; `/_admin/drive/groups/{group}` replaces a group's members).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import drive_state as ds
from .drive_auth import auth, token_principal
from .drive_wire import DriveError, parse_fields, project

PATH = "/admin/directory/v1/groups/{group_key}/members"
SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/admin.directory.group",
        "https://www.googleapis.com/auth/admin.directory.group.readonly",
        "https://www.googleapis.com/auth/admin.directory.group.member",
        "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
    }
)
MAX_RESULTS = 200
_NOT_AUTHORIZED = "Not Authorized to access this resource/api"


def _token(group: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"g": group, "o": offset}).encode()).decode()


def _offset(raw: str | None, group: str) -> int:
    if not raw:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
        if data["g"] == group:
            return int(data["o"])
    except (ValueError, KeyError, TypeError):
        pass
    raise DriveError(400, "Invalid Input: pageToken", "invalid", "pageToken")


async def members_list(ctx: Any, request: Request) -> Response:
    group = unquote(request.path_params["group_key"]).lower()
    raw = request.query_params.get("maxResults", str(MAX_RESULTS))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_RESULTS:
        raise DriveError(400, "Invalid Input: maxResults", "invalid", "maxResults")
    size = int(raw)
    ws = ctx.ws
    principal = token_principal(ws, request.headers.get("authorization", ""))
    with ws.lock:
        st = ds.state(ws)
        if principal != auth(ws).client_email and principal.lower() not in st.directory_admins:
            raise DriveError(403, _NOT_AUTHORIZED, "forbidden")
        if group.rpartition("@")[2] != ws.domain:
            raise DriveError(403, _NOT_AUTHORIZED, "forbidden")
        if group not in st.groups:
            raise DriveError(404, "Resource Not Found: groupKey", "notFound", "groupKey")
        members = [m.resource() for m in st.groups[group]]
    start = _offset(request.query_params.get("pageToken"), group)
    body: dict[str, Any] = {"kind": "admin#directory#members", "etag": f'"{len(members)}"'}
    page = members[start : start + size]
    if page:
        body["members"] = page
    if start + size < len(members):
        body["nextPageToken"] = _token(group, start + size)
    return JSONResponse(project(body, parse_fields(request.query_params.get("fields", ""))))


def routes(ctx: Any, guarded: Any) -> list[BaseRoute]:
    """`guarded(ctx, name, handler, scopes, service)` applies the faults (`directory:members.list`),
    the token and its scope check."""

    async def set_members(request: Request) -> Response:  # {"members": [{"email", "type", "status"}]}
        body = await request.json()
        members = [
            ds.GroupMember(m["email"], m.get("type", "USER"), m.get("status", "ACTIVE"))
            for m in body.get("members", [])
        ]
        ds.set_group(ctx.ws, unquote(request.path_params["group"]), members)
        return JSONResponse({"ok": True})

    return [
        Route(PATH, guarded(ctx, "members.list", members_list, SCOPES, "directory"), methods=["GET"]),
        Route("/_admin/drive/groups/{group}", set_members, methods=["PUT"]),
    ]
