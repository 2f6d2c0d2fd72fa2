"""Graph JSON shapes: messages, folders, attachments, the error envelope, `Prefer` parsing."""

from __future__ import annotations

import base64
import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse

from .graph_state import Attachment, Folder, MailState, Message


@dataclass
class Prefer:
    max_page_size: int | None = None
    immutable: bool = False


def parse_prefer(request: Request) -> Prefer:
    """`Prefer: odata.maxpagesize=50, IdType="ImmutableId"` (one header or several)."""
    raw = ",".join(request.headers.getlist("prefer"))
    size = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", raw, re.I)
    immutable = re.search(r'IdType\s*=\s*"?ImmutableId"?', raw, re.I) is not None
    return Prefer(int(size[1]) if size else None, immutable)


def directory_user(ws: Any, ref: str) -> Any:
    """The user a Graph path names by id (ids are GUIDs: case does not matter) or address; None."""
    return (
        ws.users.get(ref)
        or next((user for uid, user in ws.users.items() if uid.lower() == ref.lower()), None)
        or ws.user_by_email(ref)
    )


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def graph_error(status: int, code: str, message: str, retry_after: float | None = None) -> JSONResponse:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"date": now, "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())},
        }
    }
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    elif status == 429:
        headers["Retry-After"] = "1"
    return JSONResponse(body, status_code=status, headers=headers)


def folder_json(state: MailState, folder: Folder) -> dict[str, Any]:
    return {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "childFolderCount": len(state.children(folder.mailbox, folder.id)),
        "unreadItemCount": 0,
        "totalItemCount": sum(1 for m in state.messages.values() if m.folder_id == folder.id),
        "isHidden": False,
    }


def message_json(
    state: MailState, msg: Message, base_url: str, select: list[str] | None, immutable: bool
) -> dict[str, Any]:
    """The message as Graph serves it; with `select`, only those fields (plus id and etag)."""
    msg_id = msg.id if immutable else msg.rest_id
    full: dict[str, Any] = {
        "@odata.etag": f'W/"CQAAAB{msg.change_key:08d}"',
        "id": msg_id,
        "createdDateTime": iso(msg.received),
        "lastModifiedDateTime": iso(msg.modified),
        "changeKey": f"CQAAAB{msg.change_key:08d}",
        "receivedDateTime": iso(msg.received),
        "sentDateTime": iso(msg.sent),
        "hasAttachments": bool(msg.attachments),
        "internetMessageId": msg.internet_message_id,
        "subject": msg.subject,
        "bodyPreview": re.sub(r"<[^>]+>", " ", msg.body_html)[:255].strip(),
        "importance": "normal",
        "parentFolderId": msg.folder_id,
        "conversationId": msg.conversation_id,
        "isRead": True,
        "isDraft": False,
        "webLink": f"{base_url.rstrip('/')}/owa/?ItemID={quote(msg_id, safe='')}&exvsurl=1&viewmodel=ReadMessageItem",
        "body": {"contentType": "html", "content": msg.body_html},
        "sender": msg.sender.json(),
        "from": msg.sender.json(),
        "toRecipients": [a.json() for a in msg.to],
        "ccRecipients": [a.json() for a in msg.cc],
        "bccRecipients": [],
        "replyTo": [],
    }
    if not select:
        return full
    keep = {"@odata.etag", "id"} | set(select)
    return {k: v for k, v in full.items() if k in keep}


def attachment_json(
    att: Attachment, select: list[str] | None = None, item: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The attachment as Graph serves it: a file attachment with its `contentBytes`, an item attachment
    with its `item` only when expanded (`item`), a reference attachment with no bytes; with `select`,
    only those fields (plus `@odata.type` and id)."""
    full: dict[str, Any] = {
        "@odata.type": att.odata_type,
        "id": att.id,
        "name": att.name,
        "contentType": att.content_type,
        "size": att.size,
        "isInline": att.is_inline,
    }
    if att.item is None and not att.link:
        full.update(contentId=None, contentBytes=base64.b64encode(att.data).decode())
    if item is not None:
        full["item"] = item
    if not select:
        return full
    keep = {"@odata.type", "id"} | set(select)
    return {k: v for k, v in full.items() if k in keep}
