"""State of the emulated Microsoft Graph mail service: mailboxes, folders, messages, change log.

Every mutation goes through a method here (tests, admin routes and seeding alike) so the change log
that `messages/delta` reads stays consistent. Messages carry two ids like Exchange does: an
immutable id (stable across moves, served when the client sends `Prefer: IdType="ImmutableId"`)
and a REST id that changes whenever the message moves to another folder.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

WELL_KNOWN = {
    "inbox": "Inbox",
    "sentitems": "Sent Items",
    "deleteditems": "Deleted Items",
    "junkemail": "Junk Email",
    "drafts": "Drafts",
}


def graph_id(prefix: str, *parts: object) -> str:
    """A deterministic, Graph-looking opaque id (base64url-ish, long, case-sensitive)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()
    return f"{prefix}{digest[:40]}"


@dataclass
class Address:
    name: str
    email: str

    def json(self) -> dict[str, Any]:
        return {"emailAddress": {"name": self.name, "address": self.email}}


@dataclass
class Attachment:
    id: str
    name: str
    content_type: str
    data: bytes  # a file attachment's bytes (none for the other kinds)
    is_inline: bool = False
    item: Message | None = None  # an itemAttachment: the attached message
    link: str = ""  # a referenceAttachment: the URL of the cloud file it names

    @property
    def odata_type(self) -> str:
        kind = "item" if self.item is not None else "reference" if self.link else "file"
        return f"#microsoft.graph.{kind}Attachment"

    @property
    def size(self) -> int:
        return len(self.item.body_html.encode()) if self.item is not None else len(self.data)


@dataclass
class Folder:
    id: str
    mailbox: str  # owner user id
    display_name: str
    parent_id: str  # the mailbox's msgfolderroot for top-level folders
    well_known: str | None = None


@dataclass
class Message:
    id: str  # immutable id
    rest_id: str  # changes on move
    mailbox: str
    folder_id: str
    subject: str
    body_html: str
    sender: Address
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    received: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    sent: dt.datetime | None = None
    conversation_id: str = ""
    internet_message_id: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    modified: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    change_key: int = 1


@dataclass
class Mailbox:
    user_id: str
    email: str
    root_id: str
    folders: dict[str, Folder] = field(default_factory=dict)  # insertion order = display order


@dataclass
class SyncState:
    """Server side of one delta token or skip token: what the next page of a round serves."""

    mailbox: str
    folder_id: str
    watermark: int  # change-log sequence the round was computed at
    pending: list[str]  # immutable ids still to serve in this round
    initial: bool
    select: list[str] | None
    since: dt.datetime | None


class MailState:
    """All mailboxes of the sandbox tenant plus its app registration and issued tokens."""

    def __init__(
        self,
        tenant_id: str = "sandbox.onmicrosoft.com",
        tenant_guid: str = "8b1c2d3e-0000-4000-8000-5a4db0c5e001",
        client_id: str = "11111111-2222-4333-8444-555555555555",
        client_secret: str = "sandbox-outlook-secret",
    ) -> None:
        self.tenant_id = tenant_id
        self.tenant_guid = tenant_guid
        self.client_id = client_id
        self.client_secret = client_secret
        self.mailboxes: dict[str, Mailbox] = {}
        self.messages: dict[str, Message] = {}
        self.rest_ids: dict[str, str] = {}  # REST id -> immutable id
        self.left: dict[tuple[str, str], str] = {}  # (folder, immutable id) -> REST id it left with
        self.log: dict[str, list[tuple[int, str]]] = {}  # folder id -> [(seq, immutable id)]
        self.seq = 0
        self.sync_states: dict[str, SyncState] = {}
        self.tokens: dict[str, float] = {}  # access token -> expiry (epoch seconds)
        # change listeners (graph_subscriptions.py): (mailbox user id, folder id, message id, change type)
        self.listeners: list[Callable[[str, str, str, str], None]] = []
        self._counter = 0

    # --- mailboxes and folders ----------------------------------------------------------------
    def add_mailbox(self, user_id: str, email: str) -> Mailbox:
        if user_id in self.mailboxes:
            return self.mailboxes[user_id]
        box = Mailbox(user_id, email.lower(), graph_id("AAMkRoot", user_id))
        self.mailboxes[user_id] = box
        for key, name in WELL_KNOWN.items():
            self.add_folder(user_id, name, well_known=key)
        return box

    def add_folder(
        self, user_id: str, name: str, parent_id: str | None = None, well_known: str | None = None
    ) -> Folder:
        box = self.mailboxes[user_id]
        parent = parent_id or box.root_id
        for folder in box.folders.values():
            if folder.parent_id == parent and folder.display_name.lower() == name.lower():
                return folder
        folder = Folder(graph_id("AAMkFolder", user_id, parent, name), user_id, name, parent, well_known)
        box.folders[folder.id] = folder
        self.log[folder.id] = []
        return folder

    def folder(self, user_id: str, ref: str) -> Folder | None:
        """A folder by id or well-known name (`inbox`, `sentitems`, ...), as Graph resolves it."""
        box = self.mailboxes.get(user_id)
        if box is None:
            return None
        if ref in box.folders:
            return box.folders[ref]
        return next((f for f in box.folders.values() if f.well_known == ref.lower()), None)

    def children(self, user_id: str, parent_id: str) -> list[Folder]:
        return [f for f in self.mailboxes[user_id].folders.values() if f.parent_id == parent_id]

    def rename_folder(self, user_id: str, folder_id: str, name: str) -> Folder:
        folder = self.mailboxes[user_id].folders[folder_id]
        folder.display_name = name
        return folder

    def delete_folder(self, user_id: str, folder_id: str) -> None:
        box = self.mailboxes[user_id]
        for child in self.children(user_id, folder_id):
            self.delete_folder(user_id, child.id)
        for msg in [m for m in self.messages.values() if m.folder_id == folder_id]:
            self.delete_message(msg.id)
        del box.folders[folder_id]

    # --- messages -----------------------------------------------------------------------------
    def _touch(self, folder_id: str, msg_id: str, change: str = "updated") -> None:
        self.seq += 1
        self.log[folder_id].append((self.seq, msg_id))
        mailbox = next((b.user_id for b in self.mailboxes.values() if folder_id in b.folders), None)
        for listener in list(self.listeners) if mailbox else []:
            listener(mailbox, folder_id, msg_id, change)  # type: ignore[arg-type]

    def new_rest_id(self) -> str:
        self._counter += 1
        return graph_id("AAMkRest", self._counter, secrets.token_hex(4))

    def add_message(self, msg: Message) -> Message:
        self.messages[msg.id] = msg
        self.rest_ids[msg.rest_id] = msg.id
        self._touch(msg.folder_id, msg.id, "created")
        return msg

    def resolve(self, ref: str) -> Message | None:
        """A message by immutable or current REST id."""
        msg = self.messages.get(ref)
        if msg is None and ref in self.rest_ids:
            msg = self.messages.get(self.rest_ids[ref])
        return msg

    def edit_message(self, ref: str, **changes: Any) -> Message:
        msg = self._get(ref)
        for key, value in changes.items():
            if not hasattr(msg, key) or key in {"id", "rest_id", "mailbox", "folder_id"}:
                raise KeyError(key)
            setattr(msg, key, value)
        msg.modified = dt.datetime.now(dt.timezone.utc)
        msg.change_key += 1
        self._touch(msg.folder_id, msg.id)
        return msg

    def move_message(self, ref: str, folder_ref: str) -> Message:
        msg = self._get(ref)
        target = self.folder(msg.mailbox, folder_ref)
        if target is None:
            raise KeyError(folder_ref)
        old = msg.folder_id
        self.left[(old, msg.id)] = msg.rest_id
        msg.folder_id = target.id
        self.rest_ids.pop(msg.rest_id, None)
        msg.rest_id = self.new_rest_id()
        self.rest_ids[msg.rest_id] = msg.id
        msg.modified = dt.datetime.now(dt.timezone.utc)
        self._touch(old, msg.id, "deleted")
        self._touch(target.id, msg.id, "created")
        return msg

    def delete_message(self, ref: str) -> None:
        msg = self._get(ref)
        del self.messages[msg.id]
        self.left[(msg.folder_id, msg.id)] = msg.rest_id
        self.rest_ids.pop(msg.rest_id, None)
        self._touch(msg.folder_id, msg.id, "deleted")

    def _get(self, ref: str) -> Message:
        msg = self.resolve(ref)
        if msg is None:
            raise KeyError(ref)
        return msg

    def in_folder(self, folder_id: str) -> list[Message]:
        """Messages in a folder, newest first (Graph's default order for a delta round)."""
        msgs = [m for m in self.messages.values() if m.folder_id == folder_id]
        return sorted(msgs, key=lambda m: m.received, reverse=True)

    def changed_since(self, folder_id: str, seq: int) -> list[str]:
        """Ids touched in the folder after `seq`, each once, in order of their last change."""
        order: dict[str, int] = {}
        for n, msg_id in reversed(self.log.get(folder_id, [])):
            if n <= seq:
                break
            order.setdefault(msg_id, n)
        return sorted(order, key=order.__getitem__)

    # --- tokens -------------------------------------------------------------------------------
    def issue_token(self, now: float, lifetime: float = 3599) -> str:
        """A JWT-shaped token as Entra issues one, naming the tenant's id (`tid`), unsigned."""
        claims = {"aud": "https://graph.microsoft.com", "tid": self.tenant_guid, "nonce": secrets.token_urlsafe(18)}
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        token = f"eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.{payload}." + secrets.token_urlsafe(24)
        self.tokens[token] = now + lifetime
        return token

    def token_valid(self, token: str, now: float) -> bool:
        return self.tokens.get(token, 0) > now

    def expire_tokens(self) -> None:
        """Every issued access token is refused from now on (401 InvalidAuthenticationToken)."""
        for token in self.tokens:
            self.tokens[token] = 0

    def expire_delta_tokens(self) -> None:
        """Every delta and skip token answers 410 SyncStateNotFound from now on."""
        self.sync_states.clear()

    def rotate_secret(self, new_secret: str | None = None) -> str:
        self.client_secret = new_secret or secrets.token_urlsafe(18)
        return self.client_secret
