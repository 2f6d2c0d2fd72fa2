"""The emulated Microsoft Graph mail API (`/v1.0/users/...`) and Microsoft identity platform.

Wire formats follow the real services closely enough for msal and an httpx Graph client to run
unmodified: OIDC discovery and the client-credentials token endpoint (Entra's error JSON,
`AADSTS7000215` for a wrong secret), Graph's `{"error": {"code", "message"}}` envelope, absolute
`@odata.nextLink` / `@odata.deltaLink` URLs with opaque tokens, `@removed` entries, 410
`SyncStateNotFound`, `Prefer: odata.maxpagesize` and `Prefer: IdType="ImmutableId"`; attachments
of the three kinds (file, item, reference), listed with or without `$select`, read one by id, an item
attachment's message only with `$expand=microsoft.graph.itemattachment/item`.
Tests drive it through the functions below or the `/_admin/graph/...` routes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import graph_subscriptions
from .graph_delta import delta_page
from .graph_identity import identity_routes
from .faults import BrokenAnswer
from .graph_seed import mail_state, seed_generated, seed_sample, text_to_html
from .graph_state import Address, Attachment, MailState, Message, graph_id
from .graph_wire import (
    Prefer,
    attachment_json,
    directory_user,
    folder_json,
    graph_error,
    message_json,
    parse_prefer,
)

__all__ = [
    "routes",
    "source",
    "seed_sample",
    "seed_generated",
    "add_message",
    "edit_message",
    "delete_message",
    "move_message",
    "add_attachment",
    "attach_message",
    "rename_folder",
    "expire_delta_tokens",
    "expire_tokens",
    "rotate_secret",
]

_MAX_PAGE = 1000


# --- control (tests, benchmarks, admin routes) ---------------------------------------------------
def add_message(
    ws: Any,
    mailbox: str,
    folder: str = "inbox",
    subject: str = "",
    body: str = "",
    sender: str = "someone@example.com",
    to: list[str] | None = None,
    received: dt.datetime | None = None,
    html: str | None = None,
) -> Message:
    """Deliver a new message into `mailbox` (email or user id), folder id or well-known name."""
    state = mail_state(ws)
    with ws.lock:
        user_id = _mailbox_id(ws, mailbox)
        target = state.folder(user_id, folder)
        if target is None:
            raise KeyError(folder)
        when = received or dt.datetime.fromtimestamp(ws.clock(), dt.timezone.utc)
        n = len(state.messages) + state.seq
        return state.add_message(
            Message(
                id=graph_id("AAMkImm", "added", n, uuid.uuid4()),
                rest_id=state.new_rest_id(),
                mailbox=user_id,
                folder_id=target.id,
                subject=subject,
                body_html=html or text_to_html(body),
                sender=Address(sender, sender),
                to=[Address(a, a) for a in (to or [state.mailboxes[user_id].email])],
                received=when,
                sent=when,
                modified=when,
                conversation_id=graph_id("AAQkConv", user_id, subject),
            )
        )


def edit_message(ws: Any, message_id: str, **changes: Any) -> Message:
    with ws.lock:
        return mail_state(ws).edit_message(message_id, **changes)


def delete_message(ws: Any, message_id: str) -> None:
    with ws.lock:
        mail_state(ws).delete_message(message_id)


def move_message(ws: Any, message_id: str, folder: str) -> Message:
    with ws.lock:
        return mail_state(ws).move_message(message_id, folder)


def add_attachment(
    ws: Any, message_id: str, name: str, data: bytes = b"", content_type: str = "", *, link: str = ""
) -> Attachment:
    """Attach a file to a message (a change the folder's delta reports); with `link`, a reference
    attachment naming a cloud file (no bytes)."""
    with ws.lock:
        return _attach(mail_state(ws), message_id, Attachment("", name, content_type, data, link=link))


def attach_message(
    ws: Any, message_id: str, subject: str, body: str, sender: str = "someone@example.com"
) -> Attachment:
    """Attach a mail to a message, as Outlook does when a message is forwarded as an attachment."""
    state = mail_state(ws)
    with ws.lock:
        host = _host(state, message_id)
        when = dt.datetime.fromtimestamp(ws.clock(), dt.timezone.utc)
        inner = Message(
            id=graph_id("AAMkItem", host.id, subject, len(host.attachments)),
            rest_id="",
            mailbox=host.mailbox,
            folder_id="",
            subject=subject,
            body_html=text_to_html(body),
            sender=Address(sender, sender),
            received=when,
            sent=when,
            modified=when,
        )
        return _attach(state, message_id, Attachment("", subject, "", b"", item=inner))


def _host(state: MailState, message_id: str) -> Message:
    host = state.resolve(message_id)
    if host is None:
        raise KeyError(message_id)
    return host


def _attach(state: MailState, message_id: str, att: Attachment) -> Attachment:
    host = _host(state, message_id)
    att.id = graph_id("AAMkAtt", host.id, att.name, len(host.attachments), uuid.uuid4())
    state.edit_message(message_id, attachments=[*host.attachments, att])
    return att


def add_folder(ws: Any, mailbox: str, name: str, parent: str | None = None) -> str:
    state = mail_state(ws)
    with ws.lock:
        user_id = _mailbox_id(ws, mailbox)
        parent_id = state.folder(user_id, parent).id if parent else None  # type: ignore[union-attr]
        return state.add_folder(user_id, name, parent_id).id


def rename_folder(ws: Any, mailbox: str, folder: str, name: str) -> None:
    """A folder's new display name (its id, and its messages, are unchanged: no message change is logged)."""
    state = mail_state(ws)
    with ws.lock:
        user_id = _mailbox_id(ws, mailbox)
        state.rename_folder(user_id, state.folder(user_id, folder).id, name)  # type: ignore[union-attr]


def delete_folder(ws: Any, mailbox: str, folder: str) -> None:
    state = mail_state(ws)
    with ws.lock:
        user_id = _mailbox_id(ws, mailbox)
        state.delete_folder(user_id, state.folder(user_id, folder).id)  # type: ignore[union-attr]


def expire_delta_tokens(ws: Any) -> None:
    with ws.lock:
        mail_state(ws).expire_delta_tokens()


def expire_tokens(ws: Any) -> None:
    with ws.lock:
        mail_state(ws).expire_tokens()


def rotate_secret(ws: Any, new_secret: str | None = None) -> str:
    with ws.lock:
        return mail_state(ws).rotate_secret(new_secret)


def _mailbox_id(ws: Any, ref: str) -> str:
    state = mail_state(ws)
    if ref in state.mailboxes:
        return ref
    user = ws.user_by_email(ref)
    if user is None or user.id not in state.mailboxes:
        raise KeyError(ref)
    return user.id  # type: ignore[no-any-return]


# --- module interface ----------------------------------------------------------------------------
def source(ctx: Any, workdir: Path) -> tuple[str, dict[str, str]]:
    state = mail_state(ctx.ws)
    boxes = ", ".join(f'"{b.email}"' for b in state.mailboxes.values())
    base = ctx.https_url or ctx.http_url
    block = (
        "[[sources]]\n"
        'name = "sandbox-mail"\n'
        'type = "outlook"\n'
        'every = "10m"\n'
        f'tenant_id = "{state.tenant_id}"\n'
        f'client_id = "{state.client_id}"\n'
        'client_secret_env = "INLET_SANDBOX_OUTLOOK_SECRET"\n'
        f"mailboxes = [{boxes}]\n"
        f'graph_url = "{base}/v1.0"\n'
        f'authority_url = "{ctx.https_url}"\n'
        f'ca_bundle = "{Path(ctx.ca_path).as_posix() if ctx.ca_path else ""}"\n'
    )
    return block, {"INLET_SANDBOX_OUTLOOK_SECRET": state.client_secret}


def routes(ctx: Any) -> list[BaseRoute]:
    api = _GraphApi(ctx)
    user = "/v1.0/users/{user}"
    return (
        identity_routes(ctx)
        + [
            Route(f"{user}/mailFolders", api.folders),
            Route(f"{user}/mailFolders/{{folder}}", api.folder),
            Route(f"{user}/mailFolders/{{folder}}/childFolders", api.child_folders),
            Route(f"{user}/mailFolders/{{folder}}/messages/delta", api.delta),
            Route(f"{user}/messages/delta", api.root_delta),
            Route(f"{user}/messages/{{message}}", api.message),
            Route(f"{user}/messages/{{message}}/attachments", api.attachments),
            Route(f"{user}/messages/{{message}}/attachments/{{attachment}}", api.attachment),
            Route("/owa/", api.owa),
        ]
        + graph_subscriptions.routes(ctx, api._guard)
        + _admin_routes(ctx)
    )


def api_guard(ctx: Any) -> Any:
    """The fault and token check every Graph route runs first: `guard(request, route) -> Response | None`."""
    return _GraphApi(ctx)._guard


class _GraphApi:
    """Handlers of the Graph routes; each checks faults, then the bearer token, then serves."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    @property
    def state(self) -> MailState:
        return mail_state(self.ctx.ws)

    def _guard(self, request: Request, route: str) -> Response | None:
        fault = self.ctx.faults.check("graph", route, request.url.path)
        if fault is not None and fault.network:
            return BrokenAnswer(fault)
        if fault is not None:
            return graph_error(
                fault.status,
                fault.reason or _FAULT_CODES.get(fault.status, "ServiceError"),
                f"Injected fault on {route}",
                retry_after=fault.retry_after,
            )
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        if not token:
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        with self.ctx.ws.lock:
            valid = self.state.token_valid(token, self.ctx.ws.clock())
        if not valid:
            return graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        return None

    def _mailbox(self, ref: str) -> str | Response:
        ws = self.ctx.ws
        user = directory_user(ws, ref)
        if user is None:
            return graph_error(404, "ErrorInvalidUser", f"The requested user '{ref}' is invalid.")
        if user.id not in self.state.mailboxes:
            return graph_error(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        return user.id  # type: ignore[no-any-return]

    def _folder_of(self, request: Request) -> tuple[str, Any] | Response:
        user_id = self._mailbox(request.path_params["user"])
        if isinstance(user_id, Response):
            return user_id
        folder = self.state.folder(user_id, request.path_params["folder"])
        if folder is None:
            return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return user_id, folder

    async def folders(self, request: Request) -> Response:
        return self._folder_page(request, "mailFolders", None)

    async def child_folders(self, request: Request) -> Response:
        return self._folder_page(request, "childFolders", request.path_params["folder"])

    def _folder_page(self, request: Request, route: str, parent_ref: str | None) -> Response:
        if (denied := self._guard(request, route)) is not None:
            return denied
        with self.ctx.ws.lock:
            user_id = self._mailbox(request.path_params["user"])
            if isinstance(user_id, Response):
                return user_id
            parent = self.state.folder(user_id, parent_ref) if parent_ref else None
            if parent_ref and parent is None:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            parent_id = parent.id if parent else self.state.mailboxes[user_id].root_id
            folders = self.state.children(user_id, parent_id)
            try:
                top = min(int(request.query_params.get("$top", "10")), _MAX_PAGE)
                skip = int(request.query_params.get("$skip", "0"))
            except ValueError:
                return graph_error(400, "ErrorInvalidUrlQuery", "Invalid $top or $skip.")
            page = [folder_json(self.state, f) for f in folders[skip : skip + top]]
        body: dict[str, Any] = {"@odata.context": f"{request.base_url}v1.0/$metadata#users/mailFolders", "value": page}
        if skip + top < len(folders):
            body["@odata.nextLink"] = str(request.url.include_query_params(**{"$top": top, "$skip": skip + top}))
        return JSONResponse(body)

    async def folder(self, request: Request) -> Response:
        if (denied := self._guard(request, "mailFolder")) is not None:
            return denied
        with self.ctx.ws.lock:
            found = self._folder_of(request)
            if isinstance(found, Response):
                return found
            return JSONResponse(folder_json(self.state, found[1]))

    async def root_delta(self, request: Request) -> Response:
        if (denied := self._guard(request, "messages.delta")) is not None:
            return denied
        return graph_error(
            400,
            "ErrorInvalidRequest",
            "Change tracking is not supported on the mailbox root messages; use /mailFolders/{id}/messages/delta.",
        )

    async def delta(self, request: Request) -> Response:
        if (denied := self._guard(request, "messages.delta")) is not None:
            return denied
        prefer = parse_prefer(request)
        with self.ctx.ws.lock:
            found = self._folder_of(request)
            if isinstance(found, Response):
                return found
            user_id, folder = found
            return delta_page(self.state, request, user_id, folder, prefer)

    async def message(self, request: Request) -> Response:
        return self._on_message(
            request,
            "message",
            lambda msg, prefer: JSONResponse(
                message_json(self.state, msg, str(request.base_url), _select(request), prefer.immutable)
            ),
        )

    async def attachments(self, request: Request) -> Response:
        return self._on_message(
            request,
            "attachments",
            lambda msg, _: JSONResponse({"value": [attachment_json(a, _select(request)) for a in msg.attachments]}),
        )

    async def attachment(self, request: Request) -> Response:
        return self._on_message(request, "attachment", lambda msg, prefer: self._attachment(request, msg, prefer))

    def _on_message(self, request: Request, route: str, answer: Callable[[Message, Prefer], Response]) -> Response:
        """The guard, then `answer` for the message the path names (404 when the mailbox has none)."""
        if (denied := self._guard(request, route)) is not None:
            return denied
        prefer = parse_prefer(request)
        with self.ctx.ws.lock:
            msg = self._message(request)
            return msg if isinstance(msg, Response) else answer(msg, prefer)

    def _attachment(self, request: Request, msg: Message, prefer: Prefer) -> Response:
        """One attachment; `$expand=microsoft.graph.itemAttachment/item` adds an item attachment's message."""
        att = next((a for a in msg.attachments if a.id == request.path_params["attachment"]), None)
        if att is None:
            return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        item = None
        if request.query_params.get("$expand", "").lower() == "microsoft.graph.itemattachment/item" and att.item:
            item = message_json(self.state, att.item, str(request.base_url), None, prefer.immutable)
        return JSONResponse(attachment_json(att, _select(request), item))

    def _message(self, request: Request) -> Message | Response:
        user_id = self._mailbox(request.path_params["user"])
        if isinstance(user_id, Response):
            return user_id
        msg = self.state.resolve(request.path_params["message"])
        if msg is None or msg.mailbox != user_id:
            return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return msg

    async def owa(self, request: Request) -> Response:
        """What a webLink opens: the message body (no auth: a person's browser, not an app)."""
        with self.ctx.ws.lock:
            msg = self.state.resolve(request.query_params.get("ItemID", ""))
            if msg is None:
                return HTMLResponse("<h1>Item not found</h1>", status_code=404)
            return HTMLResponse(msg.body_html)


def _select(request: Request) -> list[str] | None:
    select = request.query_params.get("$select")
    return [s.strip() for s in select.split(",")] if select else None


_FAULT_CODES = {
    429: "TooManyRequests",
    503: "ServiceNotAvailable",
    504: "GatewayTimeout",
    500: "InternalServerError",
    401: "InvalidAuthenticationToken",
}


def _admin_routes(ctx: Any) -> list[BaseRoute]:
    ws = ctx.ws

    async def add(request: Request) -> Response:
        body = await request.json()
        received = dt.datetime.fromisoformat(body["received"]) if body.get("received") else None
        msg = add_message(
            ws,
            body["mailbox"],
            body.get("folder", "inbox"),
            body.get("subject", ""),
            body.get("body", ""),
            body.get("sender", "someone@example.com"),
            body.get("to"),
            received,
        )
        return JSONResponse({"id": msg.id})

    async def one(request: Request) -> Response:
        ref = request.path_params["message"]
        try:
            if request.method == "DELETE":
                delete_message(ws, ref)
                return JSONResponse({"ok": True})
            changes = await request.json()
            if "body" in changes:
                changes["body_html"] = text_to_html(changes.pop("body"))
            return JSONResponse({"id": edit_message(ws, ref, **changes).id})
        except KeyError as exc:
            return JSONResponse({"error": f"not found: {exc}"}, status_code=404)

    async def move(request: Request) -> Response:
        body = await request.json()
        try:
            msg = move_message(ws, request.path_params["message"], body["destinationId"])
        except KeyError as exc:
            return JSONResponse({"error": f"not found: {exc}"}, status_code=404)
        return JSONResponse({"id": msg.id, "restId": msg.rest_id})

    async def expire_delta(request: Request) -> Response:
        expire_delta_tokens(ws)
        return JSONResponse({"ok": True})

    async def expire_access(request: Request) -> Response:
        expire_tokens(ws)
        return JSONResponse({"ok": True})

    async def rotate(request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        return JSONResponse({"client_secret": rotate_secret(ws, body.get("client_secret"))})

    return [
        Route("/_admin/graph/messages", add, methods=["POST"]),
        Route("/_admin/graph/messages/{message}", one, methods=["PATCH", "DELETE"]),
        Route("/_admin/graph/messages/{message}/move", move, methods=["POST"]),
        Route("/_admin/graph/expire_delta_tokens", expire_delta, methods=["POST"]),
        Route("/_admin/graph/expire_tokens", expire_access, methods=["POST"]),
        Route("/_admin/graph/rotate_secret", rotate, methods=["POST"]),
    ]
