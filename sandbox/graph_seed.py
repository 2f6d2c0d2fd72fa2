"""Mailboxes for the emulated Graph service: the shipped Enron sample, or a generated set.

The sample turns each Enron mailbox folder into a mail folder (standard ones onto the well-known
folders), plain-text bodies into HTML the way Outlook wraps them, and gives a few messages real
attachments (text, PDF, DOCX) so attachment extraction has something to read.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import tarfile
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.parser import BytesParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from .documents import make_docx, make_pdf
from .graph_state import Address, Attachment, MailState, Message, graph_id

OWNERS = {  # Enron mailbox folder -> owner
    "allen-p": ("phillip.allen@enron.com", "Phillip Allen"),
    "arnold-j": ("john.arnold@enron.com", "John Arnold"),
    "arora-h": ("harry.arora@enron.com", "Harry Arora"),
    "badeer-r": ("robert.badeer@enron.com", "Robert Badeer"),
}
FOLDER_MAP = {
    "inbox": "inbox",
    "sent_items": "sentitems",
    "sent": "sentitems",
    "_sent_mail": "sentitems",
    "deleted_items": "deleteditems",
    "drafts": "drafts",
}
_PARSER = BytesParser(policy=compat32)


def mail_state(ws: Any) -> MailState:
    with ws.lock:
        if ws.mail is None:
            ws.mail = MailState()
        return ws.mail  # type: ignore[no-any-return]


def text_to_html(text: str) -> str:
    """Outlook's wrapping of a plain-text body: escaped lines joined by <br>."""
    lines = "<br>\n".join(html.escape(line) for line in text.splitlines())
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>'
        f'<body><div style="font-family:Calibri">{lines}</div></body></html>'
    )


def conversation_id(mailbox: str, subject: str) -> str:
    topic = re.sub(r"^((re|fw|fwd)\s*:\s*)+", "", subject.strip(), flags=re.I).lower()
    return graph_id("AAQkConv", mailbox, topic)


def seed_sample(ws: Any, path: Path) -> None:
    """Seed the four Enron mailboxes from the shipped tarball."""
    state = mail_state(ws)
    with tarfile.open(path, "r:gz") as tar:  # read in stream order: seeking a gzip is slow
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    with ws.lock:
        for name in sorted(files, key=_sort_key):
            parts = name.split("/")
            if len(parts) < 4 or parts[1] not in OWNERS:
                continue
            box, folder_path = parts[1], parts[2:-1]
            email, real = OWNERS[box]
            user = ws.add_user(email, box, real)
            state.add_mailbox(user.id, user.email)
            folder = _sample_folder(state, user.id, folder_path)
            _add_rfc822(state, user.id, folder, "/".join(parts[1:]), files[name])
        _attach_samples(state)


def _sort_key(name: str) -> tuple[str, int]:
    head, _, tail = name.rpartition("/")
    number = tail.rstrip(".")
    return head, int(number) if number.isdigit() else 0


def _sample_folder(state: MailState, user_id: str, path: list[str]) -> str:
    """`inbox/hist_vols` -> the child folder "Hist Vols" of the well-known Inbox."""
    parent_id: str | None = None
    for depth, name in enumerate(path):
        known = state.folder(user_id, FOLDER_MAP[name]) if depth == 0 and name in FOLDER_MAP else None
        if known is not None:
            parent_id = known.id
            continue
        display = name.strip("_").replace("_", " ").title()
        parent_id = state.add_folder(user_id, display, parent_id).id
    assert parent_id is not None
    return parent_id


def _add_rfc822(state: MailState, user_id: str, folder_id: str, key: str, raw: bytes) -> None:
    msg = _PARSER.parsebytes(raw)
    payload = msg.get_payload(decode=True) if not msg.is_multipart() else None
    if payload is None:
        part = next((p for p in msg.walk() if p.get_content_type() == "text/plain"), None)
        payload = part.get_payload(decode=True) if part is not None else b""
    body = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    try:
        when = parsedate_to_datetime(msg.get("Date", "")).astimezone(dt.timezone.utc)
    except (TypeError, ValueError):
        when = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)
    sender_email = next(iter(_EMAIL.findall(msg.get("From", ""))), "")
    sender_name = _x_name(msg.get("X-From", "")) or sender_email
    subject = " ".join(_decoded(msg.get("Subject", "")).split())
    state.add_message(
        Message(
            id=graph_id("AAMkImm", key),
            rest_id=state.new_rest_id(),
            mailbox=user_id,
            folder_id=folder_id,
            subject=subject,
            body_html=text_to_html(body),
            sender=Address(sender_name, sender_email),
            to=_addresses(msg.get("To", "")),
            cc=_addresses(msg.get("Cc", "")),
            received=when,
            sent=when,
            conversation_id=conversation_id(user_id, subject),
            modified=when,
            internet_message_id=str(msg.get("Message-ID", "")).strip(),
        )
    )


def _decoded(value: Any) -> str:
    """A header as Graph serves it: RFC 2047 encoded words decoded ("=?utf-8?Q?caf=C3=A9?=" is
    "café"; Exchange decodes them on delivery), in a charset Python does not know as Latin-1."""
    try:
        return str(make_header(decode_header(str(value))))
    except (LookupError, UnicodeDecodeError, HeaderParseError):
        return "".join(
            part.decode("latin-1") if isinstance(part, bytes) else part for part, _ in decode_header(str(value))
        )


def _x_name(value: str) -> str:
    name = value.split("<")[0].strip().strip('"')
    if "," in name:
        last, first = name.split(",", 1)
        name = f"{first.strip()} {last.strip()}"
    return name


_EMAIL = re.compile(r"[\w.'+-]+@[\w-]+(?:\.[\w-]+)+")


def _addresses(value: str) -> list[Address]:
    return [Address(email, email) for email in _EMAIL.findall(value)]  # Enron headers: bare addresses


def _attach_samples(state: MailState) -> None:
    """Real files on the messages that mention an attached file (Enron's `<< File: x >>`)."""
    makers = [_text_attachment, _pdf_attachment, _docx_attachment]
    mentioned = [m for m in state.messages.values() if "&lt;&lt; File:" in m.body_html]
    for n, msg in enumerate(mentioned[:6]):
        name, ctype, data = makers[n % len(makers)](msg.subject or "notes")
        msg.attachments.append(Attachment(graph_id("AAMkAtt", msg.id, n), name, ctype, data))


def _text_attachment(topic: str) -> tuple[str, str, bytes]:
    text = f"Position summary for {topic}\nregion,volume\nwest,1200\neast,800\n"
    return "positions.csv", "text/csv", text.encode()


def _pdf_attachment(topic: str) -> tuple[str, str, bytes]:
    return "memo.pdf", "application/pdf", make_pdf(f"Trading memo about {topic}", [])


def _docx_attachment(topic: str) -> tuple[str, str, bytes]:
    return (
        "report.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        make_docx(f"Quarterly report on {topic}", ["Volumes were up on the west desk; see the attached curves."]),
    )


_WORDS = (
    "gas power curve position desk trade deal west east basis storage pipeline contract "
    "volume price forecast meeting report budget hedge risk schedule transport capacity"
).split()


def seed_generated(ws: Any, *, mailboxes: int = 5, mails: int = 1000, **_: Any) -> None:
    """`mails` messages spread over `mailboxes` mailboxes (owners are the workspace's first users)."""
    state = mail_state(ws)
    rng = ws.rng
    with ws.lock:
        users = [u for u in ws.users.values() if not u.is_bot][:mailboxes]
        while len(users) < mailboxes:
            n = len(users)
            users.append(ws.add_user(f"mailbox{n:03d}@{ws.domain}", f"mailbox{n:03d}", f"Mailbox {n:03d}"))
        folders: list[tuple[str, list[str]]] = []
        for user in users:
            state.add_mailbox(user.id, user.email)
            ids = [state.folder(user.id, wk).id for wk in ("inbox", "sentitems", "deleteditems")]  # type: ignore[union-attr]
            projects = state.add_folder(user.id, "Projects")
            ids += [projects.id, state.add_folder(user.id, "Archive", projects.id).id]
            folders.append((user.id, ids))
        start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        weights = [50, 20, 5, 15, 10]
        for n in range(mails):
            user_id, ids = folders[n % len(folders)]
            folder_id = rng.choices(ids, weights)[0]
            subject = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 7))).capitalize()
            body = "\n\n".join(
                " ".join(rng.choice(_WORDS) for _ in range(rng.randint(20, 60))) + "." for _ in range(rng.randint(1, 3))
            )
            other = rng.choice(list(ws.users.values()))
            when = start + dt.timedelta(minutes=7 * n)
            state.add_message(
                Message(
                    id=graph_id("AAMkImm", "gen", n),
                    rest_id=state.new_rest_id(),
                    mailbox=user_id,
                    folder_id=folder_id,
                    subject=subject,
                    body_html=text_to_html(body),
                    sender=Address(other.real_name, other.email),
                    to=[Address(state.mailboxes[user_id].email, state.mailboxes[user_id].email)],
                    received=when,
                    sent=when,
                    conversation_id=conversation_id(user_id, subject),
                    modified=when,
                    internet_message_id=f"<gen{n}@{ws.domain}>",
                )
            )
