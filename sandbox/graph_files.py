"""The emulated Microsoft Graph files API: SharePoint sites, document libraries, OneDrives, permissions.

Served beside the mail API with the same app registration and tokens (`graph.py`):
- `GET /v1.0/sites/{hostname}:/sites/{path}`, `/sites/{id}`, `/sites/{id}/drives` (every library);
  `POST /sites/{id}/permissions` grants the site to an app (`Sites.Selected`);
- `GET /v1.0/users/{user}/drive` (a OneDrive), `/drives/{id}`;
- `GET /v1.0/drives/{id}/root/delta`: rounds of pages like the mail delta, `@odata.nextLink` with a
  `$skiptoken`, `@odata.deltaLink` with a `token`; an expired token is 410 `resyncRequired`;
  deleted items carry the `deleted` facet; delta omits `parentReference.path` and, on business
  drives and libraries, `cTag` (as Graph does);
  sharing-only changes come only with `Prefer: deltashowsharingchanges` (and, as Graph documents,
  `deltashowremovedasdeleted` and `deltatraversepermissiongaps` beside it)
  (`@microsoft.graph.sharedChanged`);
- `GET /drives/{id}/items/{id}` (with `parentReference.path`), `.../content` (302 to a
  pre-authenticated download URL that needs no token), `.../permissions` (inherited ones with
  `inheritedFrom`);
- `GET /v1.0/groups/{id}/transitiveMembers`, `/groups/{id}/owners`, `GET /v1.0/organization` (verified domains),
  `GET /v1.0/users/{id}` (a user a permission names by id: `mail`, `userPrincipalName`; 404 for a
  deleted one);
- `POST /v1.0/$batch`: up to 20 GETs of the routes above and of the Teams routes (`graph_teams.py`,
  mounted here), each answered on its own (a throttled one is a 429 inside a 200 batch).
A permission names a user the way `FilesState.identities` says: with `email`, with a `siteUser`
claims `loginName` only, or by id only (Graph's documented fields). A SharePoint site group is a
`siteGroup` alone (id, displayName, loginName: no Entra group beside it, as Graph sends it); the
drives of a group-connected site name the Microsoft 365 group as their `owner.group`, those of
another site `owner.user` "System Account".
With `FilesState.selected` set (a `Sites.Selected` app), a drive of a site not granted, and every
OneDrive, is 403 `accessDenied`.
"""

from __future__ import annotations

import base64

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from .graph_files_state import DeltaState, Drive, FilesState, Item, Perm, files_state, graph_guid
from .faults import BrokenAnswer
from .graph_seed import mail_state
from .graph_state import graph_id
from .graph_wire import directory_user, graph_error, iso, parse_prefer
from .graph_files_seed import seed_files
from .graph_files_seed import seed_files_generated
from .graph import api_guard
from .graph_teams import TeamsApi

__all__ = ["routes", "source", "files_state", "seed_sample", "seed_generated", "grant_site", "select_sites"]

_DEFAULT_PAGE = 200
_MAX_BATCH = 20


def select_sites(ws: Any, site_ids: list[str] | None) -> None:
    """Make the app a `Sites.Selected` app granted exactly `site_ids` (None: `Files.Read.All` again)."""
    with ws.lock:
        files_state(ws).selected = set(site_ids) if site_ids is not None else None


def grant_site(ws: Any, site_id: str) -> None:
    with ws.lock:
        state = files_state(ws)
        if state.selected is not None:
            state.selected.add(site_id)


# --- module interface ----------------------------------------------------------------------------
def source(ctx: Any, workdir: Path) -> tuple[str, dict[str, str]]:
    state, mail = files_state(ctx.ws), mail_state(ctx.ws)
    sites = ", ".join(f'"{s.hostname}:{s.path}"' for s in state.sites.values())
    users = ", ".join(f'"{d.owner}"' for d in state.drives.values() if d.owner)
    base = ctx.https_url or ctx.http_url
    block = (
        "[[sources]]\n"
        'name = "sandbox-files"\n'
        'type = "microsoft_files"\n'
        'every = "30m"\n'
        f'tenant_id = "{mail.tenant_id}"\n'
        f'client_id = "{mail.client_id}"\n'
        'client_secret_env = "INLET_SANDBOX_OUTLOOK_SECRET"\n'
        f"users = [{users}]\n"
        f"sites = [{sites}]\n"
        f'graph_url = "{base}/v1.0"\n'
        f'authority_url = "{ctx.https_url}"\n'
        f'ca_bundle = "{Path(ctx.ca_path).as_posix() if ctx.ca_path else ""}"\n'
    )
    return block, {"INLET_SANDBOX_OUTLOOK_SECRET": mail.client_secret}


def seed_sample(ws: Any, path: Path | None = None) -> None:
    seed_files(ws)


def seed_generated(ws: Any, *, files: int = 200, **_: Any) -> None:
    seed_files_generated(ws, files)


def routes(ctx: Any) -> list[BaseRoute]:
    api = FilesApi(ctx, api_guard(ctx))
    teams = TeamsApi(ctx, api.guard)
    batchable = api.routes() + teams.routes()
    return batchable + [
        Route("/v1.0/$batch", Batch(ctx, api.guard, Starlette(routes=batchable)).handle, methods=["POST"]),
        Route("/_graph_download/{token}", api.download),
        Route("/sp/items/{item}", api.page),
        Route("/l/message/{channel}/{message}", teams.page),
    ]


# --- JSON shapes -----------------------------------------------------------------------------------
def drive_json(state: FilesState, drive: Drive, base: str) -> dict[str, Any]:
    site = state.sites.get(drive.site_id or "")
    group = state.groups.get(site.group or "") if site else None
    owner: dict[str, Any] = (
        {"user": {"email": drive.owner, "displayName": drive.owner}}
        if drive.owner
        else {"group": {"id": group.id, "displayName": group.name, "email": group.mail}}
        if group is not None
        else {"user": {"displayName": "System Account"}}  # a site not connected to a group
    )
    return {
        "id": drive.id,
        "name": drive.name,
        "driveType": drive.kind,
        "owner": owner,
        "webUrl": f"{base}/sp/drives/{drive.id}",
        "description": "",
        "createdDateTime": "2024-01-02T09:00:00Z",
        "lastModifiedDateTime": "2024-01-02T09:00:00Z",
    }


def _shows_sharing(prefer: str) -> bool:
    """Whether a delta request's `Prefer` asks for sharing changes the way Graph requires."""
    asked = {p.strip().lower() for p in prefer.split(",")}
    return {"deltashowsharingchanges", "deltashowremovedasdeleted", "deltatraversepermissiongaps"} <= asked


def quick_xor(data: bytes) -> str:
    """OneDrive's QuickXorHash: the bytes XORed into a 160-bit cell, each 11 bits further round,
    the length XORed into its last 64 bits, base64 of the 20 little-endian bytes."""
    cell, width = 0, 160
    for n, byte in enumerate(data):
        bit = n * 11 % width
        cell ^= (byte << bit | byte >> (width - bit)) & ((1 << width) - 1)
    raw = bytearray(cell.to_bytes(20, "little"))
    for n, byte in enumerate(len(data).to_bytes(8, "little")):
        raw[12 + n] ^= byte
    return base64.b64encode(bytes(raw)).decode()


def item_json(
    state: FilesState, item: Item, base: str, with_path: bool = True, sharing: bool = False
) -> dict[str, Any]:
    drive = state.drives[item.drive_id]
    if item.deleted:
        return {
            "id": item.id,
            "name": item.name,
            "deleted": {"state": "deleted"},
            "parentReference": {"driveId": drive.id, "driveType": drive.kind, "id": item.parent_id},
        }
    ref: dict[str, Any] = {"driveId": drive.id, "driveType": drive.kind}
    if item.parent_id is not None:
        ref["id"] = item.parent_id
        if with_path:
            ref["path"] = state.path_of(item)
    if drive.site_id:
        ref["siteId"] = drive.site_id
    who = {"user": {"email": item.author, "displayName": item.author}} if item.author else {}
    out: dict[str, Any] = {
        "id": item.id,
        "name": item.name,
        "eTag": f'"{{{item.id}}},{item.etag}"',
        "cTag": f'"c:{{{item.id}}},{item.ctag}"',
        "createdDateTime": iso(item.created),
        "lastModifiedDateTime": item.modified.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "size": len(item.data),
        "parentReference": ref,
        "webUrl": f"{base}/sp/items/{item.id}",
        "createdBy": who,
        "lastModifiedBy": who,
    }
    if item.parent_id is None:
        out["root"] = {}
        out["name"] = "root"
    if item.folder:
        out["folder"] = {"childCount": len(state.children(item.id))}
    else:
        out["file"] = {
            "mimeType": item.mime or "application/octet-stream",
            "hashes": {"quickXorHash": quick_xor(item.data)},
        }
    if not with_path and drive.kind in ("business", "documentLibrary"):
        del out["cTag"]  # delta leaves it out on OneDrive for Business and SharePoint (driveItem: delta)
    if sharing:
        out["@microsoft.graph.sharedChanged"] = "True"
    return out


def perm_json(state: FilesState, perm: Perm, source: Item | None, base: str, ws: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": perm.id, "roles": list(perm.roles), "shareId": perm.id}
    if perm.link is not None:
        out["link"] = {
            "scope": perm.link,
            "type": perm.link_type or ("view" if "read" in perm.roles else "edit"),
            "webUrl": f"{base}/sp/share/{perm.id}",
            "preventsDownload": False,
        }
        out["hasPassword"] = perm.password
        out["grantedToIdentitiesV2"] = [user_identity(state, ws, perm.user)] if perm.user else []
    elif perm.site_group is not None:  # alone, as Graph names a site group (no Entra group beside it)
        site_group_id = perm.site_group_id or str(int(graph_id("", perm.site_group)[:4], 16) % 100)
        out["grantedToV2"] = {
            "siteGroup": {"id": site_group_id, "displayName": perm.site_group, "loginName": perm.site_group}
        }
        out["grantedTo"] = {"user": {"displayName": perm.site_group}}
    elif perm.claim is not None:
        out["grantedToV2"] = {
            "siteUser": {"id": str(len(perm.claim)), "displayName": perm.claim, "loginName": perm.claim}
        }
    elif perm.group is not None:
        group = state.groups[perm.group]
        out["grantedToV2"] = {"group": {"id": group.id, "displayName": group.name, "email": group.mail}}
    elif perm.user is not None:
        out["grantedToV2"] = user_identity(state, ws, perm.user)
        out["grantedTo"] = {"user": dict(out["grantedToV2"]["user"])}
    if perm.expires is not None:
        out["expirationDateTime"] = iso(perm.expires)
    if source is not None:
        out["inheritedFrom"] = {
            "driveId": source.drive_id,
            "id": source.id,
            "path": state.path_of(source) if source.parent_id else f"/drives/{source.drive_id}/root:",
        }
    return out


def user_id(ws: Any, email: str) -> str:
    """A user's Entra object id: the workspace user's, or one derived from the address."""
    user = ws.user_by_email(email)
    return user.id if user else graph_guid("user", email.lower())


def user_identity(state: FilesState, ws: Any, email: str) -> dict[str, Any]:
    """The `sharePointIdentitySet` naming a user, in the shape `state.identities` sets."""
    user = ws.user_by_email(email)
    name = user.real_name if user else email.split("@")[0]
    identity: dict[str, Any] = {"id": user_id(ws, email), "displayName": name}
    if state.identities == "email":
        return {"user": {**identity, "email": email}}
    if state.identities == "login":
        login = f"i:0#.f|membership|{email}"
        return {"user": identity, "siteUser": {"id": str(len(email)), "displayName": name, "loginName": login}}
    return {"user": identity}


# --- handlers --------------------------------------------------------------------------------------
_NOT_FOUND = ("itemNotFound", "The resource could not be found.")


class FilesApi:
    """Handlers of the files routes; each checks faults and the token (`guard`), then serves."""

    def __init__(self, ctx: Any, guard: Any) -> None:
        self.ctx = ctx
        self.guard = guard

    @property
    def state(self) -> FilesState:
        return files_state(self.ctx.ws)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1.0/sites/{ref:path}", self.sites, methods=["GET", "POST"]),
            Route("/v1.0/users/{user}/drive", self.user_drive),
            Route("/v1.0/drives/{drive}", self.drive),
            Route("/v1.0/drives/{drive}/root/delta", self.delta),
            Route("/v1.0/drives/{drive}/items/{item}", self.item),
            Route("/v1.0/drives/{drive}/items/{item}/content", self.content),
            Route("/v1.0/drives/{drive}/items/{item}/permissions", self.permissions),
            Route("/v1.0/groups/{group}/transitiveMembers", self.members),
            Route("/v1.0/groups/{group}/owners", self.owners),
            Route("/v1.0/organization", self.organization),
            Route("/v1.0/users/{user}", self.directory_user),
        ]

    @staticmethod
    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def _drive(self, drive_id: str) -> Drive | Response:
        drive = self.state.drives.get(drive_id)
        if drive is None:
            return graph_error(404, *_NOT_FOUND)
        if not self.state.readable(drive):
            return graph_error(403, "accessDenied", "Access denied. The application is not granted this site.")
        return drive

    async def sites(self, request: Request) -> Response:
        ref: str = request.path_params["ref"]
        if (denied := self.guard(request, "sites")) is not None:
            return denied
        with self.ctx.ws.lock:
            state = self.state
            if ":" in ref:  # hostname:/server-relative/path[:/segment]
                host, _, rest = ref.partition(":")
                path, _, tail = rest.partition(":")
                site, tail = state.site_by_path(host, path), tail.strip("/")
            else:
                head, _, tail = ref.partition("/")
                site = state.sites.get(head)
            if site is None:
                return graph_error(404, "itemNotFound", f"Requested site could not be found: {ref}")
            if request.method == "POST" and tail == "permissions":
                if state.selected is not None:
                    state.selected.add(site.id)
                body = await request.json()
                return JSONResponse(
                    {
                        "id": f"aTowaS50fG1zLnNwLmV4dHw{len(state.selected or ())}",
                        "roles": body.get("roles", ["read"]),
                        "grantedToIdentitiesV2": body.get("grantedToIdentities", []),
                    },
                    status_code=201,
                )
            if state.selected is not None and site.id not in state.selected:
                return graph_error(403, "accessDenied", "Access denied. The application is not granted this site.")
            base = self.base(request)
            if tail == "drives":
                return JSONResponse({"value": [drive_json(state, state.drives[d], base) for d in site.drive_ids]})
            if tail:
                return graph_error(400, "invalidRequest", f"Unsupported segment {tail!r}.")
            return JSONResponse(
                {
                    "id": site.id,
                    "name": site.path.rsplit("/", 1)[-1],
                    "displayName": site.name,
                    "webUrl": f"{base}/sp{site.path}",
                    "siteCollection": {"hostname": site.hostname},
                }
            )

    async def user_drive(self, request: Request) -> Response:
        if (denied := self.guard(request, "drive")) is not None:
            return denied
        with self.ctx.ws.lock:
            state = self.state
            drive = state.onedrive(request.path_params["user"])
            if drive is None:
                return graph_error(404, "itemNotFound", "User's mysite not found.")
            if not state.readable(drive):
                return graph_error(403, "accessDenied", "Access denied.")
            return JSONResponse(drive_json(state, drive, self.base(request)))

    async def drive(self, request: Request) -> Response:
        if (denied := self.guard(request, "drive")) is not None:
            return denied
        with self.ctx.ws.lock:
            found = self._drive(request.path_params["drive"])
            if isinstance(found, Response):
                return found
            return JSONResponse(drive_json(self.state, found, self.base(request)))

    async def delta(self, request: Request) -> Response:
        if (denied := self.guard(request, "delta")) is not None:
            return denied
        with self.ctx.ws.lock:
            found = self._drive(request.path_params["drive"])
            if isinstance(found, Response):
                return found
            return self._delta_page(request, found)

    def _delta_page(self, request: Request, drive: Drive) -> Response:
        state, params = self.state, request.query_params
        token = params.get("$skiptoken") or params.get("token")
        prefer = ",".join(request.headers.getlist("prefer")).lower()
        if token is not None:
            sync = state.deltas.get(token)
            if sync is None or sync.drive_id != drive.id:
                return graph_error(
                    410,
                    "resyncRequired",
                    "Resync required. Replace any local items with the "
                    "server's version (including deletes) if you're sure that the service was up to "
                    "date with your local changes when you last sync'd.",
                )
            if "$skiptoken" not in params:  # a deltaLink: what changed since its round
                changed, shared = state.changed_since(drive.id, sync.watermark, sync.sharing)
                sync = DeltaState(drive.id, state.seq, changed, False, sync.sharing, sync.top, shared)
        else:
            live = [i.id for i in state.items.values() if i.drive_id == drive.id and not i.deleted]
            top = parse_prefer(request).max_page_size or int(params.get("$top", _DEFAULT_PAGE))
            sync = DeltaState(drive.id, state.seq, _parents_first(state, live), True, _shows_sharing(prefer), top)
        page, rest = sync.pending[: sync.top], sync.pending[sync.top :]
        base = self.base(request)
        values = []
        for item_id in page:
            item = state.items[item_id]
            if item.deleted and sync.initial:
                continue
            sharing = item_id in sync.shared
            values.append(item_json(state, item, base, with_path=False, sharing=sharing))
        body: dict[str, Any] = {"@odata.context": f"{base}/v1.0/$metadata#Collection(driveItem)", "value": values}
        link = f"{base}/v1.0/drives/{drive.id}/root/delta?"
        if rest:
            body["@odata.nextLink"] = (
                link
                + "$skiptoken="
                + state.store_delta(
                    DeltaState(drive.id, sync.watermark, rest, sync.initial, sync.sharing, sync.top, sync.shared)
                )
            )
        else:
            body["@odata.deltaLink"] = (
                link
                + "token="
                + state.store_delta(DeltaState(drive.id, sync.watermark, [], False, sync.sharing, sync.top))
            )
        return JSONResponse(body)

    async def item(self, request: Request) -> Response:
        if (denied := self.guard(request, "item")) is not None:
            return denied
        with self.ctx.ws.lock:
            found = self._item(request)
            if isinstance(found, Response):
                return found
            return JSONResponse(item_json(self.state, found, self.base(request)))

    def _item(self, request: Request) -> Item | Response:
        drive = self._drive(request.path_params["drive"])
        if isinstance(drive, Response):
            return drive
        ref = request.path_params["item"]
        item = self.state.items.get(drive.root_id if ref == "root" else ref)
        if item is None or item.deleted or item.drive_id != drive.id:
            return graph_error(404, *_NOT_FOUND)
        return item

    async def content(self, request: Request) -> Response:
        if (denied := self.guard(request, "content")) is not None:
            return denied
        with self.ctx.ws.lock:
            found = self._item(request)
            if isinstance(found, Response):
                return found
            if found.folder:
                return graph_error(400, "invalidRequest", "A folder has no content.")
            token = self.state.download_url_token(found.id)
        return RedirectResponse(f"{self.base(request)}/_graph_download/{token}", status_code=302)

    async def download(self, request: Request) -> Response:
        """The pre-authenticated download URL: no token needed, as on SharePoint."""
        fault = self.ctx.faults.check("graph", "download", request.url.path)
        if fault is not None and not fault.network:
            return graph_error(
                fault.status,
                fault.reason or "serviceNotAvailable",
                "Injected fault on download",
                retry_after=fault.retry_after,
            )
        if fault is not None:
            return BrokenAnswer(fault)
        with self.ctx.ws.lock:
            item = self.state.items.get(self.state.downloads.get(request.path_params["token"], ""))
            if item is None or item.deleted:
                return graph_error(404, *_NOT_FOUND)
            return Response(item.data, media_type=item.mime or "application/octet-stream")

    async def page(self, request: Request) -> Response:
        """What a webUrl opens in a browser."""
        with self.ctx.ws.lock:
            item = self.state.items.get(request.path_params["item"])
            if item is None or item.deleted:
                return HTMLResponse("<h1>File not found</h1>", status_code=404)
            return HTMLResponse(f"<h1>{item.name}</h1>")

    async def permissions(self, request: Request) -> Response:
        if (denied := self.guard(request, "permissions")) is not None:
            return denied
        with self.ctx.ws.lock:
            found = self._item(request)
            if isinstance(found, Response):
                return found
            base = self.base(request)
            return JSONResponse(
                {"value": [perm_json(self.state, p, src, base, self.ctx.ws) for p, src in self.state.effective(found)]}
            )

    async def members(self, request: Request) -> Response:
        return self._group_list(request, "transitiveMembers")

    async def owners(self, request: Request) -> Response:
        """`/groups/{id}/owners`: a Microsoft 365 group's owners (users)."""
        return self._group_list(request, "owners")

    def _group_list(self, request: Request, what: str) -> Response:
        if (denied := self.guard(request, what)) is not None:
            return denied
        with self.ctx.ws.lock:
            state = self.state
            group = state.groups.get(request.path_params["group"])
            if group is None:
                return graph_error(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{request.path_params['group']}' "
                    "does not exist or one of its queried reference-property objects are not present.",
                )
            values: list[dict[str, Any]] = []
            if what == "owners":
                values = [_user_json(self.ctx.ws, email) for email in group.owners]
            else:
                _walk(state, group.id, values, set(), self.ctx.ws)
            skip = int(request.query_params.get("$skiptoken", "0") or 0)
            top = int(request.query_params.get("$top", "100"))
            body: dict[str, Any] = {"value": values[skip : skip + top]}
            if skip + top < len(values):
                body["@odata.nextLink"] = str(
                    request.url.include_query_params(**{"$skiptoken": skip + top, "$top": top})
                )
            return JSONResponse(body)

    async def directory_user(self, request: Request) -> Response:
        if (denied := self.guard(request, "users")) is not None:
            return denied
        ref = request.path_params["user"]
        with self.ctx.ws.lock:
            ws = self.ctx.ws
            known = directory_user(ws, ref)
            email = (
                known.email
                if known is not None
                else next((e for e in self.state.user_emails() if ref in (e, user_id(ws, e))), None)
            )
            user = ws.user_by_email(email) if email else None
            if email is None or (user is not None and user.deleted):
                return graph_error(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{ref}' does not exist or one of its queried "
                    "reference-property objects are not present.",
                )
            return JSONResponse({"id": user_id(ws, email), "mail": email, "userPrincipalName": email})

    async def organization(self, request: Request) -> Response:
        if (denied := self.guard(request, "organization")) is not None:
            return denied
        with self.ctx.ws.lock:
            mail = mail_state(self.ctx.ws)
            domains = self.state.domains or [self.ctx.ws.domain]
            return JSONResponse(
                {
                    "value": [
                        {
                            "id": mail.tenant_guid,
                            "displayName": self.ctx.ws.team_name,
                            "verifiedDomains": [
                                {
                                    "name": d,
                                    "isDefault": n == 0,
                                    "isInitial": d.endswith(".onmicrosoft.com"),
                                    "type": "Managed",
                                    "capabilities": "Email, OfficeCommunicationsOnline",
                                }
                                for n, d in enumerate(domains)
                            ],
                        }
                    ]
                }
            )


def _walk(state: FilesState, group_id: str, out: list[dict[str, Any]], seen: set[str], ws: Any) -> None:
    for member in state.groups[group_id].members:
        if member in seen:
            continue
        seen.add(member)
        if member in state.groups:
            nested = state.groups[member]
            out.append(
                {
                    "@odata.type": "#microsoft.graph.group",
                    "id": nested.id,
                    "displayName": nested.name,
                    "mail": nested.mail,
                }
            )
            _walk(state, member, out, seen, ws)
        else:
            out.append(_user_json(ws, member))


def _user_json(ws: Any, email: str) -> dict[str, Any]:
    user = ws.user_by_email(email)
    return {
        "@odata.type": "#microsoft.graph.user",
        "id": user.id if user else email,
        "displayName": user.real_name if user else email,
        "mail": email,
        "userPrincipalName": email,
    }


def _parents_first(state: FilesState, ids: list[str]) -> list[str]:
    """A first round lists each folder before what it holds (Graph's order), the root first."""

    def depth(item_id: str) -> int:
        n, item = 0, state.items[item_id]
        while item.parent_id is not None:
            n, item = n + 1, state.items[item.parent_id]
        return n

    return sorted(ids, key=lambda i: (depth(i), state.items[i].created, i))


class Batch:
    """`POST /v1.0/$batch`: each request answered by the routes it names, in order."""

    def __init__(self, ctx: Any, guard: Any, app: Starlette) -> None:
        self.ctx, self.guard, self.app = ctx, guard, app

    async def handle(self, request: Request) -> Response:
        if (denied := self.guard(request, "batch")) is not None:
            return denied
        try:
            requests = (await request.json())["requests"]
        except (ValueError, KeyError, TypeError):
            return graph_error(400, "BadRequest", "Invalid batch payload format.")
        if not isinstance(requests, list) or len(requests) > _MAX_BATCH:
            return graph_error(400, "BadRequest", f"A batch holds at most {_MAX_BATCH} requests.")
        auth = {"Authorization": request.headers.get("authorization", "")}
        out = []
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url=str(request.base_url).rstrip("/")) as client:
            for sub in requests:
                url = "/v1.0/" + str(sub.get("url", "")).lstrip("/")
                answer = await client.request(
                    str(sub.get("method", "GET")), url, headers={**auth, **(sub.get("headers") or {})}
                )
                headers = {
                    k: v for k, v in answer.headers.items() if k.lower() in ("retry-after", "location", "content-type")
                }
                body = (
                    json.loads(answer.content) if answer.content and "json" in headers.get("content-type", "") else None
                )
                out.append({"id": str(sub.get("id")), "status": answer.status_code, "headers": headers, "body": body})
        return JSONResponse({"responses": out})
