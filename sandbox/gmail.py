"""The emulated Gmail API v1 (`/gmail/v1/users/{userId}/...`) and its batch endpoint.

Serves what a sync client uses, with the paths and fields of the discovery document the Google
client ships: users.getProfile, labels.list, messages.list (labelIds, q, pageToken, maxResults,
includeSpamTrash, resultSizeEstimate), messages.get (full, raw, metadata, minimal),
messages.attachments.get, history.list (startHistoryId, historyTypes, labelId; 404 below the
mailbox's history floor) and the batch endpoint (`/batch/gmail/v1`, multipart/mixed).

Each mailbox is a user reached through domain-wide delegation: a token is issued for one subject by
the shared Google token endpoint (`drive_auth`) and serves that user only (`me` or its address).
Quota is Gmail's per-user one: `units_per_second` (250) quota units a second, each method costing
its documented units (a batch costs what its requests cost); over it, 429 `rateLimitExceeded` with
Retry-After. State lives in `gmail_state` (mutations also under `/_admin/gmail/...`). The source
block it writes for a config paces the connector at the quota the sandbox enforces.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import gmail_state as gs
from .drive_auth import TOKEN_PATH, auth, service_account_info, token_valid
from .faults import BrokenAnswer
from .gmail_seed import compose, seed_generated, seed_sample, thread_key
from .gmail_wire import (
    GmailError,
    batch_body,
    error_body,
    error_response,
    find_attachment,
    message_resource,
    parse_batch,
    parse_q,
)

__all__ = [
    "routes",
    "source",
    "seed_sample",
    "seed_generated",
    "compose",
    "add_mailbox",
    "add_message",
    "delete_message",
    "trash",
    "relabel",
    "expire_history",
    "refuse_delegation",
    "API",
    "BATCH_PATH",
    "UNITS",
]

API = "/gmail/v1/users"
BATCH_PATH = "/batch/gmail/v1"
SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
UNITS = {
    "users.getProfile": 1,
    "labels.list": 1,
    "messages.list": 5,
    "messages.get": 5,
    "messages.attachments.get": 5,
    "history.list": 2,
}
MAX_BATCH = 100
HISTORY_TYPES = {
    "messageAdded": "messagesAdded",
    "messageDeleted": "messagesDeleted",
    "labelAdded": "labelsAdded",
    "labelRemoved": "labelsRemoved",
}
Params = list[tuple[str, str]]


# --- control (tests, benchmarks, admin routes) -------------------------------------------------
def add_mailbox(ws: Any, email: str, real_name: str = "") -> gs.Mailbox:
    """A workspace user with an (empty) Gmail mailbox."""
    with ws.lock:
        ws.add_user(email, email.split("@")[0], real_name)
        return gs.mailbox(ws, email, create=True)


def add_message(
    ws: Any,
    mailbox: str,
    subject: str,
    body: str = "",
    *,
    sender: str = "someone@example.com",
    labels: list[str] | None = None,
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> gs.GmailMessage:
    """Deliver a new message (labels by id or name; default INBOX and UNREAD)."""
    with ws.lock:
        ids = [gs.label_id(ws, mailbox, name) for name in (labels or ["INBOX", "UNREAD"])]
        import datetime as dt

        when = dt.datetime.fromtimestamp(ws.clock(), dt.timezone.utc)
        raw = compose(
            sender,
            [mailbox],
            subject,
            text=body if html is None else None,
            html_body=html,
            attachments=attachments or [],
            when=when,
        )
        return gs.add_message(ws, mailbox, raw, ids, int(ws.clock() * 1000), thread_key(subject))


def delete_message(ws: Any, mailbox: str, message_id: str) -> None:
    gs.delete_message(ws, mailbox, message_id)


def trash(ws: Any, mailbox: str, message_id: str) -> None:
    gs.trash(ws, mailbox, message_id)


def relabel(ws: Any, mailbox: str, message_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
    """Add / remove labels by id or name (a new name becomes a user label)."""
    with ws.lock:
        gs.modify_labels(
            ws,
            mailbox,
            message_id,
            [gs.label_id(ws, mailbox, x) for x in add],
            [gs.label_id(ws, mailbox, x) for x in remove],
        )


def expire_history(ws: Any, mailbox: str | None = None) -> None:
    gs.expire_history(ws, mailbox)


def refuse_delegation(ws: Any, mailbox: str, refused: bool = True) -> None:
    """The domain-wide delegation does not cover `mailbox`: its token requests get unauthorized_client."""
    with ws.lock:
        undelegated = auth(ws).undelegated
        undelegated.add(mailbox.lower()) if refused else undelegated.discard(mailbox.lower())


# --- the API ---------------------------------------------------------------------------------------
class _Api:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    @property
    def ws(self) -> Any:
        return self.ctx.ws

    def principal(self, authorization: str) -> str:
        if not token_valid(self.ws, self.ctx.faults, authorization):
            raise GmailError(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
                "authError",
            )
        token = authorization[7:].strip()
        return auth(self.ws).tokens[token].principal  # type: ignore[no-any-return]

    def mailbox(self, principal: str, user_id: str) -> gs.Mailbox:
        email = principal if user_id == "me" else unquote(user_id).lower()
        if email != principal:
            raise GmailError(403, f"Delegation denied for {principal}", "forbidden")
        try:
            return gs.mailbox(self.ws, email)
        except KeyError:
            raise GmailError(400, "Mail service not enabled", "failedPrecondition") from None

    def charge(self, email: str, method: str) -> None:
        """Spend the method's quota units, or answer 429 when the user's last second is full."""
        st = gs.state(self.ws)
        now = self.ws.clock()
        units = UNITS.get(method, 5)
        window = [(t, u) for t, u in st.usage.get(email, []) if t > now - 1.0]
        if st.units_per_second and sum(u for _, u in window) + units > st.units_per_second:
            st.usage[email] = window
            st.throttled += 1
            wait = window[0][0] + 1.0 - now if window else 1.0
            raise GmailError(
                429,
                "User-rate limit exceeded.  Retry after a second.",
                "rateLimitExceeded",
                retry_after=max(wait, 0.001),
            )
        st.usage[email] = [*window, (now, units)]
        st.units[email] = st.units.get(email, 0) + units

    def call(self, method: str, authorization: str, path: dict[str, str], params: Params) -> dict[str, Any]:
        """One API call after its fault check: auth, quota, then the method."""
        with self.ws.lock:
            box = self.mailbox(self.principal(authorization), path["user"])
            self.charge(box.email, method)
            return _METHODS[method](self, box, path, params)

    # --- methods ---------------------------------------------------------------------------------
    def profile(self, box: gs.Mailbox, path: dict[str, str], params: Params) -> dict[str, Any]:
        threads = {m.thread_id for m in box.messages.values()}
        return {
            "emailAddress": box.email,
            "messagesTotal": len(box.messages),
            "threadsTotal": len(threads),
            "historyId": str(box.history_id),
        }

    def labels(self, box: gs.Mailbox, path: dict[str, str], params: Params) -> dict[str, Any]:
        out = []
        for label in box.labels.values():
            item: dict[str, Any] = {"id": label.id, "name": label.name, "type": label.type}
            if label.type == "user":
                item.update(messageListVisibility="show", labelListVisibility="labelShow")
            out.append(item)
        return {"labels": out}

    def list_messages(self, box: gs.Mailbox, path: dict[str, str], params: Params) -> dict[str, Any]:
        size = _int(params, "maxResults", 100, 500)
        wanted = [v for k, v in params if k == "labelIds"]
        spam_trash = _one(params, "includeSpamTrash", "false").lower() == "true"
        query = parse_q(_one(params, "q", ""))
        names = {lid: label.name for lid, label in box.labels.items()}
        now = self.ws.clock()
        hits = [
            m
            for m in box.messages.values()
            if all(w in m.labels for w in wanted)
            and (spam_trash or not ({"SPAM", "TRASH"} & set(m.labels)) or {"SPAM", "TRASH"} & set(wanted))
            and query.matches(m, names, now)
        ]
        hits.sort(key=lambda m: (-m.internal_date, m.id))
        token = _one(params, "pageToken", "")
        if token:
            after = _decode_token(token)
            hits_after = [m for m in hits if (-m.internal_date, m.id) > (-after[0], after[1])]
        else:
            hits_after = hits
        page = hits_after[:size]
        body: dict[str, Any] = {"resultSizeEstimate": len(hits)}
        if page:
            body["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
        if len(hits_after) > size:
            last = page[-1]
            body["nextPageToken"] = _encode_token(last.internal_date, last.id)
        return body

    def get_message(self, box: gs.Mailbox, path: dict[str, str], params: Params) -> dict[str, Any]:
        fmt = _one(params, "format", "full")
        if fmt not in ("full", "raw", "metadata", "minimal"):
            raise GmailError(400, f"Invalid value at 'format' ({fmt})", "invalidArgument")
        msg = self._message(box, path["id"])
        headers = [v for k, v in params if k == "metadataHeaders"]
        return message_resource(msg, fmt, headers or None)

    def attachment(self, box: gs.Mailbox, path: dict[str, str], params: Params) -> dict[str, Any]:
        msg = self._message(box, path["message"])
        data = find_attachment(msg, path["id"])
        if data is None:
            raise GmailError(400, "Invalid attachment token", "invalidArgument")
        return {"size": len(data), "data": base64.urlsafe_b64encode(data).decode()}

    def history(self, box: gs.Mailbox, path: dict[str, str], params: Params) -> dict[str, Any]:
        raw = _one(params, "startHistoryId", "")
        if not raw:
            raise GmailError(400, "Missing required field: startHistoryId", "invalidArgument")
        if not raw.isdigit():
            raise GmailError(400, f"Invalid startHistoryId: {raw}", "invalidArgument")
        start = int(raw)
        if start < box.history_floor:
            raise GmailError(404, "Requested entity was not found.", "notFound")
        size = _int(params, "maxResults", 100, 500)
        types = {HISTORY_TYPES.get(v, "?") for k, v in params if k == "historyTypes"}
        if "?" in types:
            raise GmailError(400, "Invalid value at 'history_types'", "invalidArgument")
        label = _one(params, "labelId", "")
        token = _one(params, "pageToken", "")
        after = int(token) if token.isdigit() else start
        records = [
            r
            for r in box.history
            if r.id > after
            and (not types or r.kind in types)
            and (not label or label in r.labels or label in r.changed)
        ]
        body: dict[str, Any] = {"historyId": str(box.history_id)}
        if records[:size]:
            body["history"] = [_history(r) for r in records[:size]]
        if len(records) > size:
            body["nextPageToken"] = str(records[size - 1].id)
        return body

    def _message(self, box: gs.Mailbox, message_id: str) -> gs.GmailMessage:
        msg = box.messages.get(message_id)
        if msg is None:
            raise GmailError(404, "Requested entity was not found.", "notFound")
        return msg

    # --- HTTP -------------------------------------------------------------------------------------
    def endpoint(self, method: str) -> Callable[[Request], Any]:
        async def serve(request: Request) -> Response:
            fault = self.ctx.faults.check("gmail", method, request.url.path)
            if fault and fault.network:
                return BrokenAnswer(fault)
            try:
                if fault:
                    raise _fault_error(fault)
                body = self.call(
                    method,
                    request.headers.get("authorization", ""),
                    dict(request.path_params),
                    list(request.query_params.multi_items()),
                )
            except GmailError as err:
                return error_response(err)
            return JSONResponse(body)

        return serve

    async def batch(self, request: Request) -> Response:
        fault = self.ctx.faults.check("gmail", "batch", request.url.path)
        if fault and fault.network:
            return BrokenAnswer(fault)
        try:
            if fault:
                raise _fault_error(fault)
            inner = parse_batch(request.headers.get("content-type", ""), await request.body())
            if len(inner) > MAX_BATCH:
                raise GmailError(400, f"Too many requests in batch (limit {MAX_BATCH}).", "badRequest")
        except GmailError as err:
            return error_response(err)
        outer_auth = request.headers.get("authorization", "")
        answers = []
        for part in inner:
            answers.append((part.content_id, *self._inner(part, outer_auth)))
        body, content_type = batch_body(answers)
        return Response(body, media_type=None, headers={"Content-Type": content_type})

    def _inner(self, part: Any, outer_auth: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        url = urlsplit(part.target)
        route = _match(part.method, url.path)
        try:
            if route is None:
                raise GmailError(404, f"Not Found: {url.path}", "notFound")
            method, path = route
            fault = self.ctx.faults.check("gmail", method, url.path)
            if fault:
                raise _fault_error(fault) if not fault.network else GmailError(503, "Backend Error")
            body = self.call(
                method,
                part.headers.get("authorization", outer_auth),
                path,
                parse_qsl(url.query, keep_blank_values=True),
            )
        except GmailError as err:
            error, headers = error_body(err)
            return err.status, error, headers
        return 200, body, {}


_METHODS: dict[str, Callable[[_Api, gs.Mailbox, dict[str, str], Params], dict[str, Any]]] = {
    "users.getProfile": _Api.profile,
    "labels.list": _Api.labels,
    "messages.list": _Api.list_messages,
    "messages.get": _Api.get_message,
    "messages.attachments.get": _Api.attachment,
    "history.list": _Api.history,
}
_PATHS = [
    (
        "messages.attachments.get",
        re.compile(
            r"/gmail/v1/users/(?P<user>[^/]+)/messages/(?P<message>[^/]+)"
            r"/attachments/(?P<id>[^/]+)"
        ),
    ),
    ("messages.get", re.compile(r"/gmail/v1/users/(?P<user>[^/]+)/messages/(?P<id>[^/]+)")),
    ("messages.list", re.compile(r"/gmail/v1/users/(?P<user>[^/]+)/messages")),
    ("labels.list", re.compile(r"/gmail/v1/users/(?P<user>[^/]+)/labels")),
    ("history.list", re.compile(r"/gmail/v1/users/(?P<user>[^/]+)/history")),
    ("users.getProfile", re.compile(r"/gmail/v1/users/(?P<user>[^/]+)/profile")),
]


def _match(verb: str, path: str) -> tuple[str, dict[str, str]] | None:
    if verb != "GET":
        return None
    for method, pattern in _PATHS:
        found = pattern.fullmatch(path)
        if found:
            return method, {k: unquote(v) for k, v in found.groupdict().items()}
    return None


def _fault_error(fault: Any) -> GmailError:
    if fault.status == 429 or "RateLimit" in fault.reason or fault.reason == "ratelimited":
        reason = fault.reason if "RateLimit" in fault.reason else "rateLimitExceeded"
        return GmailError(fault.status, "User-rate limit exceeded.", reason, retry_after=fault.retry_after)
    return GmailError(
        fault.status,
        fault.reason
        or {500: "Internal error encountered.", 503: "The service is currently unavailable."}.get(
            fault.status, "Error"
        ),
        retry_after=fault.retry_after,
    )


def _one(params: Params, name: str, default: str) -> str:
    return next((v for k, v in params if k == name), default)


def _int(params: Params, name: str, default: int, maximum: int) -> int:
    raw = _one(params, name, str(default))
    if not raw.isdigit():
        raise GmailError(400, f"Invalid value at '{name}' ({raw})", "invalidArgument")
    return max(1, min(int(raw), maximum))


def _encode_token(internal_date: int, message_id: str) -> str:
    return base64.urlsafe_b64encode(f"{internal_date}:{message_id}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[int, str]:
    try:
        date, _, mid = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().partition(":")
        return int(date), mid
    except (ValueError, UnicodeDecodeError):
        raise GmailError(400, "Invalid pageToken", "invalidArgument") from None


def _history(record: gs.HistoryRecord) -> dict[str, Any]:
    ref = {"id": record.message_id, "threadId": record.thread_id}
    out: dict[str, Any] = {"id": str(record.id), "messages": [ref]}
    if record.kind in ("messagesAdded", "messagesDeleted"):
        out[record.kind] = [{"message": {**ref, "labelIds": list(record.labels)}}]
    else:
        out[record.kind] = [{"message": {**ref, "labelIds": list(record.labels)}, "labelIds": list(record.changed)}]
    return out


# --- admin -------------------------------------------------------------------------------------------
def _admin_routes(ctx: Any) -> list[BaseRoute]:
    ws = ctx.ws

    async def add(request: Request) -> Response:
        b = await request.json()
        attachments = [(a["name"], a["mimeType"], base64.b64decode(a["content_b64"])) for a in b.get("attachments", [])]
        msg = add_message(
            ws,
            b["mailbox"],
            b.get("subject", ""),
            b.get("body", ""),
            sender=b.get("from", "someone@example.com"),
            labels=b.get("labels"),
            html=b.get("html"),
            attachments=attachments,
        )
        return JSONResponse({"id": msg.id, "threadId": msg.thread_id})

    async def change(request: Request) -> Response:
        mailbox, mid = request.path_params["mailbox"], request.path_params["id"]
        action = request.path_params.get("action", "")
        try:
            if request.method == "DELETE":
                delete_message(ws, mailbox, mid)
            elif action == "trash":
                trash(ws, mailbox, mid)
            else:
                b = await request.json()
                relabel(ws, mailbox, mid, b.get("add", []), b.get("remove", []))
        except KeyError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({"ok": True})

    async def control(request: Request) -> Response:
        what = request.path_params["what"]
        body = await request.json() if request.method == "POST" else {}
        if what == "expire_history":
            expire_history(ws, body.get("mailbox"))
        elif what == "refuse_delegation":
            refuse_delegation(ws, body["mailbox"], body.get("refused", True))
        elif what == "quota":
            gs.state(ws).units_per_second = float(body["units_per_second"])
        elif what == "usage":
            return JSONResponse({"units": dict(gs.state(ws).units)})
        else:
            return JSONResponse({"error": f"unknown control {what}"}, status_code=404)
        return JSONResponse({"ok": True})

    return [
        Route("/_admin/gmail/messages", add, methods=["POST"]),
        Route("/_admin/gmail/{mailbox}/messages/{id}", change, methods=["DELETE", "PATCH"]),
        Route("/_admin/gmail/{mailbox}/messages/{id}/{action}", change, methods=["POST"]),
        Route("/_admin/gmail/{what}", control, methods=["GET", "POST"]),
    ]


# --- module interface ----------------------------------------------------------------------------------
def routes(ctx: Any) -> list[BaseRoute]:
    gs.state(ctx.ws)
    api = _Api(ctx)
    user = API + "/{user}"
    out: list[BaseRoute] = [
        Route(f"{user}/profile", api.endpoint("users.getProfile")),
        Route(f"{user}/labels", api.endpoint("labels.list")),
        Route(f"{user}/messages", api.endpoint("messages.list")),
        Route(f"{user}/messages/{{id}}", api.endpoint("messages.get")),
        Route(f"{user}/messages/{{message}}/attachments/{{id}}", api.endpoint("messages.attachments.get")),
        Route(f"{user}/history", api.endpoint("history.list")),
        Route(BATCH_PATH, api.batch, methods=["POST"]),
        Route("/batch", api.batch, methods=["POST"]),
    ]
    return out + _admin_routes(ctx)


def write_credentials(ctx: Any, path: Path) -> Path:
    """A service-account key the sandbox's Google token endpoint trusts (delegation enabled)."""
    path.write_text(json.dumps(service_account_info(ctx.ws, ctx.http_url + TOKEN_PATH), indent=2))
    path.chmod(0o600)
    return path


def source(ctx: Any, workdir: Path) -> tuple[str, dict[str, str]]:
    creds = write_credentials(ctx, Path(workdir) / "gmail-service-account.json")
    with ctx.ws.lock:
        boxes = ", ".join(json.dumps(email) for email in gs.state(ctx.ws).mailboxes)
        quota = float(gs.state(ctx.ws).units_per_second)
    block = (
        "[[sources]]\n"
        'name = "sandbox-gmail"\n'
        'type = "gmail"\n'
        'every = "5m"\n'
        f"credentials_file = {json.dumps(creds.as_posix())}\n"
        f"mailboxes = [{boxes}]\n"
        f"api_endpoint = {json.dumps(ctx.http_url + '/')}\n"
        f"quota_units_per_second = {quota}\n"  # the quota this sandbox enforces, so none of it is a surprise
    )
    return block, {}
