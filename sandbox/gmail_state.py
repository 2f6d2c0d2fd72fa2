"""The emulated Gmail's data: mailboxes of RFC 822 messages with labels, threads and a history log.

Invariant: every mutation (`add_message`, `delete_message`, `modify_labels`, `trash`) bumps the
mailbox's `history_id` and appends one history record, so `users.history.list` from any id at or
above `history_floor` replays exactly what changed; ids below the floor answer 404 (`expire_history`).
Messages are stored as the raw bytes Gmail keeps; every response format is derived from them.
All access happens under `ws.lock`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

SYSTEM_LABELS = (
    "INBOX",
    "SENT",
    "DRAFT",
    "SPAM",
    "TRASH",
    "UNREAD",
    "STARRED",
    "IMPORTANT",
    "CATEGORY_PERSONAL",
    "CATEGORY_SOCIAL",
    "CATEGORY_PROMOTIONS",
    "CATEGORY_UPDATES",
    "CATEGORY_FORUMS",
    "CHAT",
)
FIRST_HISTORY_ID = 1000


@dataclass
class GmailMessage:
    id: str  # 16 hex digits, as Gmail's
    thread_id: str
    raw: bytes  # the RFC 822 message
    internal_date: int  # epoch milliseconds
    labels: list[str] = field(default_factory=list)
    history_id: int = 0  # the last history record that touched it


@dataclass
class Label:
    id: str
    name: str
    type: str = "user"  # system | user


@dataclass
class HistoryRecord:
    id: int
    kind: str  # messagesAdded | messagesDeleted | labelsAdded | labelsRemoved
    message_id: str
    thread_id: str
    labels: list[str]  # the message's labels after the change
    changed: list[str] = field(default_factory=list)  # labels added or removed


@dataclass
class Mailbox:
    email: str
    messages: dict[str, GmailMessage] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)
    history: list[HistoryRecord] = field(default_factory=list)
    history_id: int = FIRST_HISTORY_ID
    history_floor: int = 0  # history.list refuses start ids below this (404)
    threads: dict[str, str] = field(default_factory=dict)  # thread key (topic) -> thread id


@dataclass
class GmailState:
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)  # by email
    units_per_second: float = 250.0  # per-user quota (0: unlimited)
    usage: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # email -> [(time, units)]
    units: dict[str, int] = field(default_factory=dict)  # email -> units spent, all time
    throttled: int = 0  # calls answered 429 for the quota
    counter: int = 0


def state(ws: Any) -> GmailState:
    """The workspace's Gmail state, created on first use."""
    with ws.lock:
        if ws.gmail is None:
            ws.gmail = GmailState()
        return ws.gmail  # type: ignore[no-any-return]


def new_id(ws: Any, *parts: object) -> str:
    st = state(ws)
    st.counter += 1
    return hashlib.sha256("\x1f".join(map(str, (*parts, st.counter))).encode()).hexdigest()[:16]


def mailbox(ws: Any, email: str, create: bool = False) -> Mailbox:
    st = state(ws)
    key = email.lower()
    if key not in st.mailboxes:
        if not create:
            raise KeyError(f"no Gmail mailbox {email!r}")
        box = Mailbox(key)
        for name in SYSTEM_LABELS:
            box.labels[name] = Label(name, name, "system")
        st.mailboxes[key] = box
    return st.mailboxes[key]


def label_id(ws: Any, email: str, name: str) -> str:
    """The id of the label called `name` (a system id as is), created as a user label if new."""
    box = mailbox(ws, email)
    if name.upper() in box.labels and box.labels[name.upper()].type == "system":
        return name.upper()
    for label in box.labels.values():
        if label.name.lower() == name.lower():
            return label.id
    label = Label(f"Label_{len(box.labels) - len(SYSTEM_LABELS) + 1}", name)
    box.labels[label.id] = label
    return label.id


def _record(box: Mailbox, kind: str, msg: GmailMessage, changed: list[str] | None = None) -> None:
    box.history_id += 1
    msg.history_id = box.history_id
    box.history.append(
        HistoryRecord(box.history_id, kind, msg.id, msg.thread_id, list(msg.labels), list(changed or []))
    )


def add_message(
    ws: Any,
    email: str,
    raw: bytes,
    labels: list[str],
    internal_date: int,
    thread_key: str = "",
    message_id: str | None = None,
) -> GmailMessage:
    """Deliver `raw` into the mailbox with these label ids; messages with the same `thread_key`
    (a normalised subject) share a thread."""
    with ws.lock:
        box = mailbox(ws, email, create=True)
        mid = message_id or new_id(ws, email, len(raw))
        thread = box.threads.setdefault(thread_key, mid) if thread_key else mid
        msg = GmailMessage(mid, thread, raw, internal_date, list(dict.fromkeys(labels)))
        box.messages[mid] = msg
        _record(box, "messagesAdded", msg)
        return msg


def get(ws: Any, email: str, message_id: str) -> GmailMessage:
    msg = mailbox(ws, email).messages.get(message_id)
    if msg is None:
        raise KeyError(f"no message {message_id!r} in {email}")
    return msg


def delete_message(ws: Any, email: str, message_id: str) -> None:
    """Delete permanently (not trash): history reports `messagesDeleted`."""
    with ws.lock:
        box = mailbox(ws, email)
        msg = get(ws, email, message_id)
        del box.messages[message_id]
        _record(box, "messagesDeleted", msg)


def modify_labels(
    ws: Any, email: str, message_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()
) -> GmailMessage:
    """Add and remove label ids: one history record per direction that changed something."""
    with ws.lock:
        box = mailbox(ws, email)
        msg = get(ws, email, message_id)
        added = [x for x in add if x not in msg.labels]
        removed = [x for x in remove if x in msg.labels and x not in added]
        if removed:
            msg.labels = [x for x in msg.labels if x not in removed]
            _record(box, "labelsRemoved", msg, removed)
        if added:
            msg.labels = [*msg.labels, *added]
            _record(box, "labelsAdded", msg, added)
        return msg


def trash(ws: Any, email: str, message_id: str) -> GmailMessage:
    """Move to the trash as Gmail does: TRASH added (INBOX and the rest stay, hidden)."""
    return modify_labels(ws, email, message_id, add=["TRASH"])


def expire_history(ws: Any, email: str | None = None) -> None:
    """Every history id handed out so far (of one mailbox, or all) answers 404 from now on."""
    with ws.lock:
        for box in state(ws).mailboxes.values():
            if email is None or box.email == email.lower():
                box.history_floor = box.history_id  # the current id stays valid, as getProfile gives it
                box.history.clear()
