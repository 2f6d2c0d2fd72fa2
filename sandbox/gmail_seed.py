"""Gmail mailboxes for the sandbox: the shipped Enron sample, or a generated set.

The sample keeps each Enron e-mail's own RFC 822 bytes (the same messages the Graph emulation
serves), turns its folder into labels (inbox -> INBOX, sent -> SENT, deleted -> TRASH, any other
folder -> a user label), threads replies by subject, and rewrites a few messages so every part of a
reader is exercised: some get an HTML body (with quoted history and a signature), some a PDF or DOCX
attachment.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import tarfile
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import compat32
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from pathlib import Path
from typing import Any

from . import gmail_state as gs
from .documents import make_docx, make_pdf
from .graph_seed import OWNERS

FOLDER_LABELS = {
    "inbox": "INBOX",
    "sent_items": "SENT",
    "sent": "SENT",
    "_sent_mail": "SENT",
    "deleted_items": "TRASH",
    "drafts": "DRAFT",
}
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_PARSER = BytesParser(policy=compat32)


def thread_key(subject: str) -> str:
    return re.sub(r"^((re|fw|fwd)\s*:\s*)+", "", " ".join(subject.split()), flags=re.I).lower()


def compose(
    sender: str,
    to: list[str],
    subject: str,
    *,
    text: str | None = None,
    html_body: str | None = None,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    when: dt.datetime | None = None,
    cc: list[str] = (),  # type: ignore[assignment]
    message_id: str | None = None,
) -> bytes:
    """An RFC 822 message as a mail client sends it: text and/or HTML body, attachments."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), subject
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Date"] = format_datetime(when or dt.datetime.now(dt.timezone.utc))
    msg["Message-ID"] = message_id or make_msgid(domain="sandbox.example.com")
    if text is not None:
        msg.set_content(text)
        if html_body is not None:
            msg.add_alternative(html_body, subtype="html")
    else:
        msg.set_content(html_body or "", subtype="html")
    for name, ctype, data in attachments:
        major, _, minor = ctype.partition("/")
        msg.add_attachment(data, maintype=major, subtype=minor, filename=name)
    return bytes(msg)


def seed_sample(ws: Any, path: Path) -> None:
    """The four Enron mailboxes of the shipped tarball."""
    with tarfile.open(path, "r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    counts: dict[str, int] = {}
    with ws.lock:
        for name in sorted(files, key=_sort_key):
            parts = name.split("/")
            if len(parts) < 4 or parts[1] not in OWNERS:
                continue
            email, real = OWNERS[parts[1]]
            ws.add_user(email, parts[1], real)
            gs.mailbox(ws, email, create=True)
            labels = _labels(ws, email, parts[2:-1])
            raw = files[name]
            msg = _PARSER.parsebytes(raw)
            body = _body(msg)
            n = counts[email] = counts.get(email, 0) + 1
            if n % 40 == 7 or ("<< File:" in body and n % 3 == 0):
                raw = _with_attachment(msg, body, n)
            elif n % 9 == 4:
                raw = _as_html(msg, body)
            subject = " ".join(str(msg.get("Subject", "")).split())
            gs.add_message(
                ws,
                email,
                raw,
                labels,
                _millis(msg.get("Date", "")),
                thread_key(subject),
                message_id=gs.new_id(ws, "/".join(parts[1:])),
            )


def _sort_key(name: str) -> tuple[str, int]:
    head, _, tail = name.rpartition("/")
    number = tail.rstrip(".")
    return head, int(number) if number.isdigit() else 0


def _labels(ws: Any, email: str, folders: list[str]) -> list[str]:
    if folders and folders[0] in FOLDER_LABELS and len(folders) == 1:
        return [FOLDER_LABELS[folders[0]]]
    name = "/".join(f.strip("_").replace("_", " ").title() for f in folders)
    return [gs.label_id(ws, email, name)]


def _millis(date: str) -> int:
    try:
        when = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        when = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp() * 1000)


def _body(msg: Any) -> str:
    payload = msg.get_payload(decode=True) if not msg.is_multipart() else b""
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload or "")


def _headers(msg: Any) -> dict[str, Any]:
    to = [a.strip() for a in str(msg.get("To", "")).replace("\n", " ").split(",") if "@" in a]
    cc = [a.strip() for a in str(msg.get("Cc", "")).replace("\n", " ").split(",") if "@" in a]
    try:
        when = parsedate_to_datetime(str(msg.get("Date", "")))
    except (TypeError, ValueError):
        when = None
    return {
        "sender": str(msg.get("From", "unknown@enron.com")).strip(),
        "to": to or ["undisclosed@enron.com"],
        "subject": " ".join(str(msg.get("Subject", "")).split()),
        "when": when,
        "cc": cc,
        "message_id": str(msg.get("Message-ID", "")).strip() or None,
    }


def _with_attachment(msg: Any, body: str, n: int) -> bytes:
    h = _headers(msg)
    topic = h["subject"] or "notes"
    if n % 2:
        attachment = (
            "memo.pdf",
            "application/pdf",
            make_pdf(f"Trading memo about {topic}", ["Curves for the west desk are attached."]),
        )
    else:
        attachment = (
            "report.docx",
            DOCX,
            make_docx(f"Quarterly report on {topic}", ["Volumes were up on the west desk; see the curves."]),
        )
    return compose(
        h["sender"],
        h["to"],
        h["subject"],
        text=body,
        attachments=[attachment],
        when=h["when"],
        cc=h["cc"],
        message_id=h["message_id"],
    )


def _as_html(msg: Any, body: str) -> bytes:
    """The body as a mail client's HTML (paragraphs, a signature), with a text alternative."""
    h = _headers(msg)
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n\n") if p.strip())
    page = (
        f'<html><body><div dir="ltr">{paragraphs}<br><div>-- <br>'
        f"<div>{html.escape(h['sender'])}</div></div></div></body></html>"
    )
    return compose(
        h["sender"],
        h["to"],
        h["subject"],
        text=body,
        html_body=page,
        when=h["when"],
        cc=h["cc"],
        message_id=h["message_id"],
    )


_WORDS = (
    "gas power curve position desk trade deal west east basis storage pipeline contract "
    "volume price forecast meeting report budget hedge risk schedule transport capacity"
).split()


def seed_generated(ws: Any, *, mailboxes: int = 5, mails: int = 1000, **_: Any) -> None:
    """`mails` messages over `mailboxes` mailboxes (owners: the workspace's first users); one in
    twenty has a PDF attachment, one in ten an HTML body."""
    rng = ws.rng
    with ws.lock:
        users = [u for u in ws.users.values() if not u.is_bot][:mailboxes]
        while len(users) < mailboxes:
            n = len(users)
            users.append(ws.add_user(f"mailbox{n:03d}@{ws.domain}", f"mailbox{n:03d}", f"Mailbox {n:03d}"))
        start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        for user in users:
            gs.mailbox(ws, user.email, create=True)
        for n in range(mails):
            owner = users[n % len(users)]
            subject = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 7))).capitalize()
            body = "\n\n".join(
                " ".join(rng.choice(_WORDS) for _ in range(rng.randint(20, 60))) + "." for _ in range(rng.randint(1, 3))
            )
            other = rng.choice(list(ws.users.values()))
            when = start + dt.timedelta(minutes=7 * n)
            attachments = [("notes.pdf", "application/pdf", make_pdf(subject, [body]))] if n % 20 == 0 else []
            page = f"<html><body><p>{html.escape(body)}</p></body></html>" if n % 10 == 5 else None
            raw = compose(
                other.email,
                [owner.email],
                subject,
                text=None if page else body,
                html_body=page,
                attachments=attachments,
                when=when,
                message_id=f"<gen{n}@{ws.domain}>",
            )
            label = rng.choices(["INBOX", "SENT", "Projects"], [60, 25, 15])[0]
            gs.add_message(
                ws,
                owner.email,
                raw,
                [gs.label_id(ws, owner.email, label)],
                int(when.timestamp() * 1000),
                thread_key(subject),
            )
