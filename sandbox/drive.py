"""The emulated Google Drive v3 API and Google's OAuth token endpoint.

Serves what a sync client uses: files.list/get/export (with `alt=media` and Range), changes
(startPageToken, list), permissions.list (of a file, or of a shared drive: its members),
drives.list, about.get (who the caller is: its `user`), with each user's My Drive root folder
(`files.get` of its id or of `root`, by its user only; never listed), shared drives the caller is
not a member of (their files shared with the caller directly: `drive_state.readable`; "not found"
for the drive itself; their sharing shown to a writer only), items whose parent the caller may not
read answered without `parents`, with the `fields` projection, a useful subset
of `q`, shared drives, and errors in Google's envelope. Each shared drive keeps its own change log
(`driveId`); the user's log carries the changes to shared drives themselves (`changeType: "drive"`,
no `fileId`) and, unless `drive_items_in_user_log` is off (Drive does not promise them), its
drives' items' changes. A file moved between logs leaves a `removed` change in the old one, with
the file under `includeCorpusRemovals`. A Sheet exports as CSV or TSV of its first sheet only, or
as an XLSX workbook of every sheet. State lives in `drive_state` (mutations
are plain functions, also exposed under `/_admin/drive/...`), auth in `drive_auth`, wire details in
`drive_wire`, sample and generated content in `drive_seed`, the Admin SDK Directory API's group
members (who a group permission reaches) in `drive_directory`.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import drive_channels
from . import drive_state as ds
from . import drive_directory
from .drive_auth import (
    DRIVE_SCOPES,
    TOKEN_PATH,
    auth,
    authorized_user_info,
    expire_tokens,
    has_scope,
    revoke,
    service_account_info,
    token_route,
    token_user,
    token_valid,
)
from .documents import make_xlsx
from .drive_seed import markdown_to_html, markdown_to_plain, seed_generated, seed_sample
from .faults import BrokenAnswer
from .drive_wire import DriveError, error_response, file_resource, matches, parse_fields, parse_q, project

__all__ = ["routes", "source", "seed_sample", "seed_generated", "write_credentials"]

API = "/drive/v3"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_EXPORTS = {
    ds.DOC: {"text/plain", "text/markdown", "text/html"},
    ds.SHEET: {"text/csv", "text/tab-separated-values", XLSX},
    ds.SLIDES: {"text/plain"},
}
Handler = Callable[[Any, Request], Awaitable[Response]]


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def _page_size(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("pageSize", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise DriveError(
            400, f"Invalid value '{raw}'. Values must be within the range: [1, {maximum}]", "invalid", "pageSize"
        )
    return int(raw)


def _fields(request: Request, default: str) -> Any:
    return parse_fields(request.query_params.get("fields", default))


def _guarded(
    ctx: Any, name: str, handler: Handler, scopes: frozenset[str] = DRIVE_SCOPES, service: str = "drive"
) -> Callable[[Request], Awaitable[Response]]:
    """Count the call (as `service:name`), apply injected faults, check the bearer token and its
    scopes, render DriveError."""

    async def endpoint(request: Request) -> Response:
        try:
            fault = ctx.faults.check(service, name)
            if fault and fault.network:
                return BrokenAnswer(fault)
            if fault:
                reason = "rateLimitExceeded" if fault.reason == "ratelimited" else fault.reason
                raise DriveError(
                    fault.status, _fault_message(fault.status, reason), reason, retry_after=fault.retry_after
                )
            if not token_valid(ctx.ws, ctx.faults, request.headers.get("authorization", "")):
                raise DriveError(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 "
                    "access token, login cookie or other valid authentication credential.",
                )
            if not has_scope(ctx.ws, request.headers.get("authorization", ""), scopes):
                raise DriveError(403, "Request had insufficient authentication scopes.", "insufficientPermissions")
            return await handler(ctx, request)
        except DriveError as err:
            return error_response(err)

    return endpoint


def _fault_message(status: int, reason: str) -> str:
    if "RateLimit" in reason or status == 429:
        return "Rate Limit Exceeded"
    return {500: "Internal Error", 503: "Service Unavailable", 404: "File not found."}.get(status, reason or "Error")


def _caller(ctx: Any, request: Request) -> str:
    """The address of the user the request's (valid) token reads as."""
    return token_user(ctx.ws, request.headers.get("authorization", ""))


def _file(ctx: Any, request: Request, all_drives_param: bool = True) -> ds.DriveFile:
    """The file of the path, if the caller may read it (`drive_state.readable`); shared-drive items
    need supportsAllDrives where the method has it."""
    file_id = request.path_params["file_id"]
    with ctx.ws.lock:
        st = ds.state(ctx.ws)
        f = st.files.get(file_id)
        hidden = f is not None and not ds.readable(st, f, _caller(ctx, request))
    if f is None or hidden or (f.drive_id and all_drives_param and not _flag(request, "supportsAllDrives")):
        raise DriveError(404, f"File not found: {file_id}.", "notFound", "fileId")
    return f


def _member_drive(ctx: Any, drive_id: str | None) -> None:
    """A shared drive's own log or listing: 404 unless the caller is a member of `drive_id`."""
    with ctx.ws.lock:
        drive = ds.state(ctx.ws).drives.get(drive_id or "")
    if drive_id and (drive is None or not drive.member):
        raise DriveError(404, f"Shared drive not found: {drive_id}", "notFound", "driveId")


# --- files -----------------------------------------------------------------------------------
def _visible(ctx: Any, request: Request) -> Callable[[ds.DriveFile], bool]:
    """Which files the listing holds: its corpora's, those the caller may read."""
    corpus = _corpus(ctx, request)
    caller, st = _caller(ctx, request), ds.state(ctx.ws)
    return lambda f: corpus(f) and ds.readable(st, f, caller)


def _corpus(ctx: Any, request: Request) -> Callable[[ds.DriveFile], bool]:
    all_drives = _flag(request, "includeItemsFromAllDrives")
    if all_drives and not _flag(request, "supportsAllDrives"):
        raise DriveError(
            403,
            "The includeItemsFromAllDrives parameter can only be set to true when supportsAllDrives is also true.",
            "teamDrivesParameterNotSupported",
        )
    corpora = request.query_params.get("corpora", "user")
    drive_id = request.query_params.get("driveId")
    if corpora == "drive" or drive_id:
        if corpora != "drive" or not drive_id or not all_drives:
            raise DriveError(
                400,
                "The driveId parameter requires corpora=drive and includeItemsFromAllDrives=true.",
                "invalid",
                "driveId",
            )
        _member_drive(ctx, drive_id)
        return lambda f: f.drive_id == drive_id
    if corpora not in ("user", "allDrives", "domain"):
        raise DriveError(400, f"Invalid value for corpora: {corpora}", "invalid", "corpora")
    return lambda f: all_drives or f.drive_id is None


def _page_token(request: Request, st: ds.DriveState, key: str) -> int:
    raw = request.query_params.get("pageToken")
    if not raw:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode()))
        if data["e"] == st.page_epoch and data["k"] == key:
            return int(data["o"])
    except (ValueError, KeyError, TypeError):
        pass
    raise DriveError(400, "Invalid Value", "invalid", "pageToken")


async def files_list(ctx: Any, request: Request) -> Response:
    size = _page_size(request, 100, 1000)
    visible, clauses = _visible(ctx, request), parse_q(request.query_params.get("q", ""))
    clauses = [("parents", "in", _caller_root(ctx, request)) if c == ("parents", "in", "root") else c for c in clauses]
    spec = _fields(request, "kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)")
    key = json.dumps([request.query_params.get(k) for k in ("q", "corpora", "driveId", "includeItemsFromAllDrives")])
    with ctx.ws.lock:
        st = ds.state(ctx.ws)
        offset = _page_token(request, st, key)
        incomplete = st.incomplete_search and request.query_params.get("corpora") == "allDrives"
        hits = [f for f in st.files.values() if visible(f) and matches(f, clauses) and not (incomplete and f.drive_id)]
        caller = _caller(ctx, request)
        page = [file_resource(ctx.ws, f, caller) for f in hits[offset : offset + size]]
        body: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": incomplete, "files": page}
        if offset + size < len(hits):
            token = {"o": offset + size, "e": st.page_epoch, "k": key}
            body["nextPageToken"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
    return JSONResponse(project(body, spec))


def _caller_root(ctx: Any, request: Request) -> str:
    """The id of the caller's own My Drive root folder (what the alias `root` names)."""
    token = request.headers.get("authorization", "")[7:].strip()
    with ctx.ws.lock:
        issued = auth(ctx.ws).tokens.get(token)
    return ds.root_id(ctx.ws, issued.principal if issued else "")


def _root(ctx: Any, request: Request) -> str | None:
    """The My Drive root folder the path names (its id, or `root`: the caller's own), else None."""
    file_id = request.path_params["file_id"]
    if file_id == "root":
        return _caller_root(ctx, request)
    with ctx.ws.lock:
        user = ds.state(ctx.ws).roots.get(file_id)
    if user is not None and user != _caller(ctx, request).lower():
        raise DriveError(404, f"File not found: {file_id}.", "notFound", "fileId")  # another user's
    return file_id if user is not None else None


async def files_get(ctx: Any, request: Request) -> Response:
    rid = _root(ctx, request)
    if rid is not None:
        if request.query_params.get("alt") == "media":
            raise DriveError(403, "Only files with binary content can be downloaded.", "fileNotDownloadable", "alt")
        return JSONResponse(project(ds.root_resource(rid), _fields(request, "kind,id,name,mimeType")))
    f = _file(ctx, request)
    if request.query_params.get("alt") == "media":
        return _download(f, request)
    return JSONResponse(
        project(file_resource(ctx.ws, f, _caller(ctx, request)), _fields(request, "kind,id,name,mimeType"))
    )


def _download(f: ds.DriveFile, request: Request) -> Response:
    if f.mime_type == ds.FOLDER or f.is_google:
        raise DriveError(
            403,
            "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
            "fileNotDownloadable",
            "alt",
        )
    if f.not_downloadable:
        raise DriveError(
            403, "The user does not have sufficient permissions to download this file.", "cannotDownloadFile"
        )
    data, total = f.content, len(f.content)
    headers = {"Content-Type": f.mime_type, "Accept-Ranges": "bytes"}
    rng = request.headers.get("range", "")
    if not rng.startswith("bytes="):
        return Response(data, headers=headers)
    first, _, last = rng[6:].partition("-")
    try:
        start = int(first) if first else max(total - int(last), 0)
        end = min(int(last), total - 1) if first and last else total - 1
    except ValueError:
        start, end = total, 0
    if start >= total or start > end:
        return Response(b"", status_code=416, headers={"Content-Range": f"bytes */{total}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{total}"
    return Response(data[start : end + 1], status_code=206, headers=headers)


async def files_export(ctx: Any, request: Request) -> Response:
    f = _file(ctx, request, all_drives_param=False)
    mime = request.query_params.get("mimeType", "")
    if not mime:
        raise DriveError(400, "Required parameter: mimeType", "required", "mimeType")
    if f.mime_type not in _EXPORTS and not f.is_google:
        raise DriveError(403, "Export only supports Docs Editors files.", "fileNotExportable")
    if mime not in _EXPORTS.get(f.mime_type, set()):
        raise DriveError(400, "The requested conversion is not supported.", "badRequest", "convertTo")
    if len(f.content) + sum(len(sheet) for sheet in f.sheets.values()) > ds.state(ctx.ws).export_limit:
        raise DriveError(403, "This file is too large to be exported.", "exportSizeLimitExceeded")
    return Response(_convert(f, mime), media_type=mime)


def _convert(f: ds.DriveFile, mime: str) -> bytes:
    if mime == XLSX:
        return make_xlsx(
            f.name, {name: _rows(text) for name, text in {"Sheet1": f.content.decode(), **f.sheets}.items()}
        )
    text = f.content.decode("utf-8")
    if f.mime_type == ds.DOC and mime == "text/plain":
        text = markdown_to_plain(text)
    elif f.mime_type == ds.DOC and mime == "text/html":
        text = markdown_to_html(f.name, text)
    elif mime == "text/tab-separated-values":
        text = "\n".join("\t".join(row) for row in _rows(text))
    return text.encode("utf-8")


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


async def permissions_list(ctx: Any, request: Request) -> Response:
    """A file's permissions, or (the id of a shared drive the caller is a member of, with
    supportsAllDrives) its members. A file of a shared drive the caller is not a member of shows
    them its permissions (the drive's members among them) only if its own sharing lets them share
    it (writer or above); to a reader or commenter 403 `insufficientFilePermissions`."""
    spec = _fields(request, "kind,nextPageToken,permissions(kind,id,type,role,emailAddress,domain)")
    with ctx.ws.lock:
        drive = ds.state(ctx.ws).drives.get(request.path_params["file_id"])
    if drive is not None and drive.member and _flag(request, "supportsAllDrives"):
        members = list(drive.members)
    else:
        f = _file(ctx, request)
        with ctx.ws.lock:
            outside = not ds.state(ctx.ws).drives[f.drive_id].member if f.drive_id else False
        if outside and ds.direct_role(f, _caller(ctx, request)) in ("reader", "commenter"):
            raise DriveError(
                403, "The user does not have sufficient permissions for this file.", "insufficientFilePermissions"
            )
        members = ds.effective_permissions(ctx.ws, f)
    perms = [p.resource() for p in members]
    return JSONResponse(project({"kind": "drive#permissionList", "permissions": perms}, spec))


async def drives_list(ctx: Any, request: Request) -> Response:
    size = _page_size(request, 10, 100)
    raw = request.query_params.get("pageToken", "0")
    if not raw.isdigit():
        raise DriveError(400, "Invalid Value", "invalid", "pageToken")
    offset = int(raw)
    with ctx.ws.lock:
        drives = [d for d in ds.state(ctx.ws).drives.values() if d.member]
    body: dict[str, Any] = {"kind": "drive#driveList", "drives": [_drive(d) for d in drives[offset : offset + size]]}
    if offset + size < len(drives):
        body["nextPageToken"] = str(offset + size)
    return JSONResponse(project(body, _fields(request, "kind,nextPageToken,drives(kind,id,name)")))


def _drive(d: ds.SharedDrive) -> dict[str, Any]:
    return {"kind": "drive#drive", "id": d.id, "name": d.name, "createdTime": ds.rfc3339(d.created), "hidden": False}


async def about_get(ctx: Any, request: Request) -> Response:
    """Who the caller is (`user`): Drive asks for `fields`, as Google's about.get does."""
    if not request.query_params.get("fields"):
        raise DriveError(400, "The 'fields' parameter is required for this method.", "required", "fields")
    email = token_user(ctx.ws, request.headers.get("authorization", ""))
    user = {"kind": "drive#user", "displayName": email.split("@")[0], "emailAddress": email, "me": True}
    return JSONResponse(project({"kind": "drive#about", "user": user}, _fields(request, "")))


# --- changes ---------------------------------------------------------------------------------
async def start_page_token(ctx: Any, request: Request) -> Response:
    with ctx.ws.lock:
        st = ds.state(ctx.ws)
        _member_drive(ctx, request.query_params.get("driveId"))
        token = str(st.next_seq)
    return JSONResponse(
        project({"kind": "drive#startPageToken", "startPageToken": token}, _fields(request, "kind,startPageToken"))
    )


async def changes_list(ctx: Any, request: Request) -> Response:
    raw = request.query_params.get("pageToken", "")
    if not raw:
        raise DriveError(400, "Required parameter: pageToken", "required", "pageToken")
    size = _page_size(request, 100, 1000)
    spec = _fields(
        request,
        "kind,nextPageToken,newStartPageToken,changes(kind,type,changeType,time,"
        "removed,fileId,file(kind,id,name,mimeType),driveId,drive(kind,id,name))",
    )
    all_drives = _flag(request, "includeItemsFromAllDrives") and _flag(request, "supportsAllDrives")
    drive_id = request.query_params.get("driveId")
    include_removed = request.query_params.get("includeRemoved", "true").lower() == "true"
    still_there = _flag(request, "includeCorpusRemovals")
    caller = _caller(ctx, request)
    with ctx.ws.lock:
        st = ds.state(ctx.ws)
        _member_drive(ctx, drive_id)
        if not raw.isdigit() or not st.change_floor <= int(raw) <= st.next_seq:
            raise DriveError(400, "Invalid Value", "invalid", "pageToken")
        latest: dict[str, ds.Change] = {}
        for change in st.changes[int(raw) - 1 :]:  # seq n sits at index n - 1
            if not ds.in_log(st, change, drive_id, all_drives):
                continue
            f = st.files.get(change.file_id)
            if f is not None and not ds.readable(st, f, caller):
                continue  # a file of a shared drive the caller is not a member of, not shared with them
            item = change.file_id or f"drive:{change.drive_id}"
            latest.pop(item, None)
            latest[item] = change
        pending = sorted(latest.values(), key=lambda c: c.seq)
        if not include_removed:
            pending = [c for c in pending if not c.removed]
        page = [_change(ctx.ws, st, c, still_there, caller) for c in pending[:size]]
        body: dict[str, Any] = {"kind": "drive#changeList", "changes": page}
        if len(pending) > size:
            body["nextPageToken"] = str(pending[size].seq)
        else:
            body["newStartPageToken"] = str(st.next_seq)
    return JSONResponse(project(body, spec))


def _change(ws: Any, st: ds.DriveState, change: ds.Change, still_there: bool, caller: str) -> dict[str, Any]:
    """`still_there` (includeCorpusRemovals): a removed change carries the file while it exists."""
    if change.kind == "drive":
        return _drive_change(st, change)
    f = st.files.get(change.file_id)
    out: dict[str, Any] = {
        "kind": "drive#change",
        "type": "file",
        "changeType": "file",
        "time": ds.rfc3339(change.time),
        "fileId": change.file_id,
        "removed": change.removed or f is None,
    }
    if change.drive_id:
        out["driveId"] = change.drive_id
    if f is not None and (still_there or not out["removed"]):
        out["file"] = file_resource(ws, f, caller)
    return out


def _drive_change(st: ds.DriveState, change: ds.Change) -> dict[str, Any]:
    """A change to a shared drive itself: no fileId, and `drive` only while the user may see it."""
    drive = st.drives.get(change.drive_id or "")
    drive = drive if drive is not None and drive.member else None
    out: dict[str, Any] = {
        "kind": "drive#change",
        "type": "drive",
        "changeType": "drive",
        "time": ds.rfc3339(change.time),
        "removed": change.removed or drive is None,
        "driveId": change.drive_id,
    }
    if drive is not None and not out["removed"]:
        out["drive"] = _drive(drive)
    return out


# --- admin -----------------------------------------------------------------------------------
def _permissions(ws: Any, items: list[dict[str, Any]]) -> list[ds.Permission]:
    out = []
    for item in items:
        kind, role = item.get("type", "user"), item.get("role", "reader")
        if kind == "anyone":
            out.append(ds.anyone_permission(role))
        elif kind == "domain":
            out.append(ds.domain_permission(ws, item["domain"], role))
        else:
            out.append(ds.user_permission(ws, item["emailAddress"], role, kind))
            out[-1].deleted = bool(item.get("deleted"))
    return out


def _content(body: dict[str, Any]) -> bytes | None:
    if "content_b64" in body:
        return base64.b64decode(body["content_b64"])
    return body["content"].encode() if "content" in body else None


def _admin_routes(ctx: Any) -> list[BaseRoute]:
    ws = ctx.ws

    async def add(request: Request) -> Response:
        b = await request.json()
        f = ds.add_file(
            ws,
            b["name"],
            b.get("mimeType", "text/plain"),
            _content(b) or b"",
            parent=b.get("parent"),
            owner=b.get("owner", ""),
            drive_id=b.get("driveId"),
            permissions=_permissions(ws, b.get("permissions", [])),
            sheets=b.get("sheets"),
        )
        return JSONResponse(file_resource(ws, f))

    async def shared_drive(request: Request) -> Response:
        drive_id = request.path_params["drive_id"]
        try:
            if request.method == "PUT":  # its members: {"members": [permission, ...]}
                ds.set_members(ws, drive_id, _permissions(ws, (await request.json()).get("members", [])))
            elif request.method == "DELETE":
                ds.leave_drive(ws, drive_id)  # the user loses membership
            else:
                ds.rename_drive(ws, drive_id, (await request.json())["name"])
        except KeyError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"ok": True})

    async def change(request: Request) -> Response:
        file_id = request.path_params["file_id"]
        b = await request.json() if request.method != "DELETE" else {}
        try:
            action = request.path_params.get("action", "")
            if request.method == "DELETE":
                ds.delete(ws, file_id)
            elif action == "trash":
                ds.trash(ws, file_id, b.get("trashed", True))
            elif action == "move":
                ds.move(ws, file_id, b["parent"])
            elif action == "permissions":
                ds.set_permissions(ws, file_id, _permissions(ws, b.get("permissions", [])))
            else:
                ds.edit(
                    ws,
                    file_id,
                    name=b.get("name"),
                    content=_content(b),
                    mime_type=b.get("mimeType"),
                    not_downloadable=b.get("not_downloadable"),
                )
        except KeyError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"ok": True})

    async def control(request: Request) -> Response:
        what = request.path_params["what"]
        if what == "expire_tokens":
            return JSONResponse({"expired": expire_tokens(ws)})
        if what == "revoke":
            revoke(ws, (await request.json()).get("revoked", True))
        elif what == "invalidate_page_tokens":
            ds.expire_page_tokens(ws)
        elif what == "drive_items_in_user_log":
            ds.state(ws).drive_items_in_user_log = bool((await request.json()).get("shown", True))
        elif what == "incomplete_search":
            ds.set_incomplete_search(ws, (await request.json()).get("incomplete", True))
        elif what == "credentials":
            token_uri = ctx.http_url + TOKEN_PATH
            return JSONResponse(
                {
                    "service_account": service_account_info(ws, token_uri),
                    "authorized_user": authorized_user_info(ws, token_uri),
                }
            )
        else:
            return JSONResponse({"error": f"unknown control {what}"}, status_code=404)
        return JSONResponse({"ok": True})

    return [
        Route("/_admin/drive/files", add, methods=["POST"]),
        Route("/_admin/drive/files/{file_id}", change, methods=["PATCH", "DELETE"]),
        Route("/_admin/drive/files/{file_id}/{action}", change, methods=["POST", "PUT"]),
        Route("/_admin/drive/drives/{drive_id}", shared_drive, methods=["PATCH", "DELETE"]),
        Route("/_admin/drive/drives/{drive_id}/members", shared_drive, methods=["PUT"]),
        Route("/_admin/drive/{what}", control, methods=["GET", "POST"]),
    ]


# --- module interface ------------------------------------------------------------------------
def routes(ctx: Any) -> list[BaseRoute]:
    ds.state(ctx.ws)
    api = [
        ("files.list", "/files", files_list),
        ("files.get", "/files/{file_id}", files_get),
        ("files.export", "/files/{file_id}/export", files_export),
        ("permissions.list", "/files/{file_id}/permissions", permissions_list),
        ("drives.list", "/drives", drives_list),
        ("about.get", "/about", about_get),
        ("changes.getStartPageToken", "/changes/startPageToken", start_page_token),
        ("changes.list", "/changes", changes_list),
    ]
    out: list[BaseRoute] = [
        Route(API + path, _guarded(ctx, name, handler), methods=["GET"]) for name, path, handler in api
    ]
    out.append(Route(TOKEN_PATH, token_route(ctx), methods=["POST"]))
    out += drive_directory.routes(ctx, _guarded)
    return out + drive_channels.routes(ctx, _guarded, API) + _admin_routes(ctx)


def write_credentials(ctx: Any, path: Path, kind: str = "service_account") -> Path:
    """A credentials JSON the sandbox trusts: `service_account` or `authorized_user`."""
    token_uri = ctx.http_url + TOKEN_PATH
    info = (
        service_account_info(ctx.ws, token_uri)
        if kind == "service_account"
        else authorized_user_info(ctx.ws, token_uri)
    )
    path.write_text(json.dumps(info, indent=2))
    path.chmod(0o600)
    return path


def source(ctx: Any, workdir: Path) -> tuple[str, dict[str, str]]:
    creds = write_credentials(ctx, Path(workdir) / "drive-service-account.json")
    block = (
        "[[sources]]\n"
        'name = "sandbox-drive"\n'
        'type = "google_drive"\n'
        'every = "30m"\n'
        f"credentials_file = {json.dumps(creds.as_posix())}\n"
        f"api_endpoint = {json.dumps(ctx.http_url + API + '/')}\n"
    )
    return block, {}
