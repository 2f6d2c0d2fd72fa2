"""E-mail as documents: one document per message, shared by the Outlook, Gmail and mail-archive connectors.

`MailMessage` is the service-neutral message (Graph JSON and RFC 822 files both map onto it); its
subject is plain text, whatever service it came from. `message_document` turns it into a `Document`
whose text is the message's new content, at most `max_body_bytes` of it, converted from a bounded
prefix of an HTML body (what is left out is a skip by policy saying so), plus its readable
attachments; a body part that could not be read is left out and is a failed skip of the message,
never indexed as its raw encoding. `MailArchiveConnector` reads a folder of .eml / RFC 822 files,
mbox files and Maildirs, incrementally by file mtime and size (an mbox message starts at an RFC 4155
From_ line only, never at a body line a writer left unescaped, and is read as sent: the writer's
`>From ` escapes undone; its id is keyed by what it is, its Message-ID else its bytes, never by its
place in the file, which a mail client's compaction changes: `_MessageKey`, `_mbox_keys` for
messages sharing a Message-ID); a message over
`max_file_bytes` (a file, or one message of an mbox) is a skip by policy, never read into memory. A
Maildir++ mailbox's folders (`.Sent`, `.Archive.2025`: hidden folders beside the INBOX's
cur/new/tmp) are read as the Maildirs they are; other hidden folders are not. A message its headers
do not date (`rfc822_message`: Date, else Received) is dated by its From_ line in an mbox, else by
its file's mtime. Outlook's files (.msg, .pst) are skips by policy of every run, saying how to
export them. What is not a regular file (a pipe, a device) is not read, nor waited on: a pipe
without a writer once held a run for ever. What cannot be read is never taken for deleted. A file
that does not read as mail where mail is expected (its name says so: .eml, .mbox, a Maildir's; or
mail was indexed from it), a file that cannot be read and a message that cannot be parsed are failed
skips naming what the file held (an mbox's messages by the prefix of their ids), which is kept; such
a damaged file is read again by every run until it reads. An mbox that held messages and reads empty
is looked at again after a pause (a mail client truncates it before writing it again:
`FolderConnector.read_settled`): still empty and changing, its messages are kept this run (a skip
saying so); empty twice, it was emptied and they leave the index (a skip saying so too). Other files
that are not mail are left out (logged).
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import partial
from email.message import EmailMessage
from pathlib import Path
from stat import S_ISREG
from typing import Any, BinaryIO

from pydantic import Field

from inlet.errors import ItemError

from .base import ConfigPath, Connector, FolderConfig, FolderConnector, LivePrefix, open_regular
from .extract import extract_text, html_prefix, kind_of
from .mail_parts import SMIME_TYPES, calendar_text, is_calendar, signed_content, smime_type
from .mail_text import (
    SHOWN_RECIPIENTS,
    first_named,
    addresses,
    chosen_body,
    header_date,
    header_text,
    looks_like_mail,
    new_content,
    parse_rfc822,
    part_text,
    payload_bytes,
    plain_subject,
    raw_header,
    rebounded,
    unflowed,
)
from .model import ACL, Checkpoint, Deletion, Document, Item, Progress, Skipped

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_BODY_BYTES = 256 * 1024  # of a body's text: about 300 passages
DEFAULT_MAX_FILE_BYTES = 20_000_000  # of a message as stored (the files connector's cap): 10 MB attached
BODY_CAP = "a message body's text past this many bytes is left out (a skip saying so)"
HTML_PER_TEXT_BYTE = 4  # of an HTML body, characters converted per byte of max_body_bytes (the rest is left out)


@dataclass
class MailAttachment:
    name: str
    content_type: str  # with a text part's `charset` parameter: how its bytes are read (`extract_text`)
    data: bytes | None  # None when not downloaded (over the size cap)
    size: int = 0
    inline: bool = False
    name_only: bool = False  # no bytes to read: a link to a cloud file (Outlook), an item with no text, a refused one
    message: "MailMessage | None" = None  # an attached mail (`attached_message`): read as a body is


@dataclass
class MailMessage:
    """What inlet needs of an e-mail, whatever it came from. Its subject is plain text, whatever was
    given (`plain_subject`, applied here for every mail connector)."""

    native_id: str
    subject: str = ""
    html: str | None = None
    text: str | None = None
    sender: tuple[str, str] | None = None  # (name, email)
    to: list[tuple[str, str]] = field(default_factory=list)
    cc: list[tuple[str, str]] = field(default_factory=list)
    received: dt.datetime | None = None
    sent: dt.datetime | None = None
    modified: dt.datetime | None = None
    url: str = ""
    conversation_id: str = ""
    message_id: str = ""  # RFC 822 Message-ID
    folder: str = ""
    mailbox: str = ""
    attachments: list[MailAttachment] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # why parts of the body were left out (unreadable)
    withheld: list[str] = field(default_factory=list)  # why parts of the body were not read (by policy: encrypted)
    events: list[str] = field(default_factory=list)  # an invitation's events as text (`calendar_text`)
    extra: dict[str, Any] = field(default_factory=dict)  # service-specific metadata (Gmail's thread_id, labels)

    def __post_init__(self) -> None:
        self.subject = plain_subject(self.subject)


def message_document(
    connector: Connector[Any],
    msg: MailMessage,
    acl: ACL,
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> tuple[Document, list[Skipped]]:
    """The message's document, and what of it was left out (as `Skipped`): attachments that could
    not be read, body parts that could not, the body's text past `max_body_bytes`."""
    doc_id = connector.doc_id(msg.native_id)
    body, skipped = _body(doc_id, msg, max_body_bytes)
    parts = [_header_block(msg), body]
    names, texts, skips = _attachments(doc_id, msg, max_attachment_bytes, max_body_bytes)
    parts += texts
    skipped += skips
    metadata: dict[str, Any] = {
        "mailbox": msg.mailbox,
        "folder": msg.folder,
        "conversation_id": msg.conversation_id,
        "sender": msg.sender[1] if msg.sender else "",
        "recipients": [e for _, e in msg.to],
        "cc": [e for _, e in msg.cc],
        "participants": _participants(msg),
        "message_id": msg.message_id,
        "attachments": names,
        "received_at": msg.received.astimezone(dt.timezone.utc).isoformat() if msg.received else "",
        **msg.extra,
    }
    document = connector.document(
        msg.native_id,
        title=msg.subject.strip() or "(no subject)",
        text="\n\n".join(p for p in parts if p),
        url=msg.url,
        author=msg.sender[1] if msg.sender else "",
        created_at=msg.sent or msg.received,
        updated_at=msg.modified or msg.received,
        acl=acl,
        metadata={k: v for k, v in metadata.items() if v not in ("", [], None)},
    )
    return document, skipped


def _header_block(msg: MailMessage) -> str:
    """From, To, Cc and Date lines. A list of sixty addresses would fill whole passages that match
    any query naming one of them (the metadata keeps every participant, for ACL and people)."""

    def show(pairs: list[tuple[str, str]]) -> str:
        return first_named([f"{n} <{e}>" if n and n != e else e for n, e in pairs], SHOWN_RECIPIENTS)

    lines = []
    if msg.sender:
        lines.append(f"From: {show([msg.sender])}")
    if msg.to:
        lines.append(f"To: {show(msg.to)}")
    if msg.cc:
        lines.append(f"Cc: {show(msg.cc)}")
    if msg.received or msg.sent:
        lines.append(f"Date: {(msg.sent or msg.received).astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")  # type: ignore[union-attr]
    return "\n".join(lines)


def _body(doc_id: str, msg: MailMessage, cap: int) -> tuple[str, list[Skipped]]:
    """The body's new content, its first `cap` bytes (UTF-8) when longer, then its events, and
    skips saying what was left out. Of an HTML body, at most `HTML_PER_TEXT_BYTE * cap` characters
    are converted (`html_prefix`)."""
    title = msg.subject.strip() or None
    skipped = [Skipped(id=f"{doc_id}#body", reason=reason, title=title) for reason in msg.left_out]
    skipped += [Skipped(id=f"{doc_id}#body", reason=reason, failed=False, title=title) for reason in msg.withheld]
    html, cut = html_prefix(msg.html, HTML_PER_TEXT_BYTE * cap) if msg.html else (msg.html, False)
    chosen, from_html = chosen_body(html, msg.text)
    text, cut = new_content(chosen, msg.subject), cut and from_html
    size = len(text.encode())
    if size > cap or cut:
        text = text.encode()[:cap].decode(errors="ignore")
        if cut:
            whole = f"the text of the first {len(html or '')} of its {len(msg.html or '')} characters of HTML"
        else:
            whole = f"its {size} bytes of text"
        reason = f"body truncated at {min(size, cap)} bytes of {whole} (max_body_bytes)"
        skipped.append(Skipped(id=f"{doc_id}#body", reason=reason, failed=False, title=title))
    return "\n\n".join(t for t in [text, *msg.events] if t), skipped


def _participants(msg: MailMessage) -> list[str]:
    people = ([msg.sender] if msg.sender else []) + msg.to + msg.cc
    return sorted({e for _, e in people})


MAX_NESTED_MAIL = 8  # mails attached within mails read (a forward of a forward ...); deeper ones are named only


def _attachments(
    doc_id: str, msg: MailMessage, cap: int, body_cap: int, depth: int = 0, within: str = ""
) -> tuple[list[str], list[str], list[Skipped]]:
    """The names of a message's attachments (inline pictures aside), their texts as sections, and
    what of them was left out. An attached mail's own attachments are sections of its text, their
    headings naming the mails they are in (`within`: "Fwd.eml / contract.txt")."""
    names: list[str] = []
    texts: list[str] = []
    skipped: list[Skipped] = []
    for att in msg.attachments:
        if att.inline and (att.content_type or "").startswith("image/"):
            continue
        names.append(att.name)
        text, skips = _attachment_text(doc_id, att, cap, body_cap, depth, within)
        if text:
            texts.append(f"## Attachment: {within}{att.name}\n\n{text}")
        skipped.extend(skips)
    return names, texts, skipped


def _attachment_text(
    doc_id: str, att: MailAttachment, cap: int, body_cap: int, depth: int = 0, within: str = ""
) -> tuple[str, list[Skipped]]:
    """An attachment's text (a file's up to `cap` bytes, an attached mail's body as a body's, up to
    `body_cap`, with its own attachments) and what of it was left out."""
    if att.message is not None:
        inner = f"{within}{att.name} / "
        return _attached_text(f"{doc_id}#{att.name}", att.message, cap, body_cap, depth + 1, inner)
    if att.data is not None and len(att.data) <= cap and is_calendar(att.content_type, att.name):
        return _events(att.data, att.content_type), []  # an invitation: its events, not iCalendar lines
    if att.name_only or kind_of(att.name, att.content_type) is None:
        return "", []  # links, images, spreadsheets, archives: nothing inlet reads
    if att.data is None or att.size > cap or len(att.data) > cap:
        return "", [
            Skipped(id=f"{doc_id}#{att.name}", reason=f"attachment over {cap} bytes", failed=False, title=att.name)
        ]
    try:
        return extract_text(att.data, att.name, att.content_type).strip(), []
    except ItemError as exc:  # logged by the engine with the skip, as a warning only when it failed
        return "", [Skipped(id=f"{doc_id}#{att.name}", reason=str(exc), failed=exc.failed, title=att.name)]


def _attached_text(
    att_id: str, message: MailMessage, cap: int, body_cap: int, depth: int, within: str
) -> tuple[str, list[Skipped]]:
    """An attached mail's From, Subject and Date, its body (bounded as a body is: `_body`) and its
    own attachments, as the message's are read (a forward's file, a mail forwarded within it), to
    `MAX_NESTED_MAIL` mails deep: past that, a skip by policy names what is not read."""
    head = [_header_block(message).split("\n")[0] if message.sender else "", f"Subject: {message.subject}"]
    if message.sent:
        head.append(f"Date: {message.sent.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    body, skipped = _body(att_id, message, body_cap)
    parts = ["\n".join(line for line in head if line) + "\n\n" + body]
    if message.attachments and depth >= MAX_NESTED_MAIL:
        reason = f"attachments of a mail attached {depth} mails deep: not read"
        skipped.append(Skipped(id=att_id, reason=reason, failed=False, title=message.subject or None))
    elif message.attachments:
        _, texts, skips = _attachments(att_id, message, cap, body_cap, depth, within)
        parts += texts
        skipped += skips
    return "\n\n".join(parts), skipped


# --- RFC 822 messages ------------------------------------------------------------------------------
def rfc822_message(native_id: str, raw: bytes, url: str = "", folder: str = "") -> MailMessage:
    """Parse a raw message (an .eml file, one mbox entry, a Maildir file). The body is every
    inline text part in order (a body split around an inline image is one body), a
    `format=flowed` one unflowed (RFC 3676), and of a multipart/alternative's plain and HTML forms
    the one `chosen_body` picks; an invitation's events follow it (`calendar_text`; the same
    events attached as an `.ics` are not read twice); a message attached to it (a forward as
    attachment, typed `message/rfc822` or a `.eml` file that reads as mail) is an attachment
    holding its text; an opaque-signed S/MIME body is read as the MIME it wraps. A part that
    cannot be read is left out and named in `left_out`; an encrypted body is named in `withheld`.
    Its date is the Date header's, else that of the newest Received header (a draft, a script's mail)."""
    email = parse_rfc822(raw)
    htmls: list[str] = []
    plains: list[str] = []
    events: list[str] = []
    attachments: list[MailAttachment] = []
    left_out: list[str] = []
    withheld: list[str] = []
    for part in _leaves(email):
        ctype = part.get_content_type()
        filename = part.get_filename()
        if ctype in SMIME_TYPES:
            withheld.append(_SMIME_UNREAD.get(smime_type(part), _SMIME_UNREAD[""]))
        elif ctype == "message/rfc822":
            attachments.append(_attached_message(part, filename))
        elif is_calendar(ctype, filename or "") and not (filename or part.get_content_disposition() == "attachment"):
            try:
                events.append(calendar_text(part_text(part)))
            except ItemError as exc:
                left_out.append(str(exc))
        elif filename or part.get_content_disposition() == "attachment":
            data = payload_bytes(part)
            data = data if isinstance(data, bytes) else b""
            charset = part.get_content_charset()  # how a text attachment is read (RFC 2046 §4.1.2)
            typed = f"{ctype}; charset={charset}" if charset and part.get_content_maintype() == "text" else ctype
            attachments.append(_file_attachment(filename or "attachment", typed, data))
        elif ctype in ("text/html", "text/plain") or part.get_content_maintype() == "multipart":
            try:  # a multipart leaf: no boundary split it (`_leaves`), its payload is the body
                text = part_text(part)
            except ItemError as exc:
                left_out.append(str(exc))
                continue
            if ctype == "text/plain" and str(part.get_param("format", "")).lower() == "flowed":
                text = unflowed(text, str(part.get_param("delsp", "")).lower() == "yes")
            (htmls if ctype == "text/html" else plains).append(text)
    senders = addresses(raw_header(email, "From"))
    when = header_date(email.get("Date")) or _received_date(email)
    plain = "\n\n".join(p for p in plains if p.strip()) or None
    events = [e for e in events if e]
    return MailMessage(
        native_id=native_id,
        subject=header_text(raw_header(email, "Subject")),
        html="\n".join(htmls) if htmls and (plain is None or _has_alternatives(email)) else None,
        text=plain,
        sender=senders[0] if senders else None,
        to=addresses(raw_header(email, "To")),
        cc=addresses(raw_header(email, "Cc")),
        received=when,
        sent=when,
        url=url,
        message_id=str(email.get("Message-ID", "")).strip(),
        folder=folder,
        attachments=[a for a in attachments if not _repeats(a, events)],
        left_out=left_out,
        withheld=withheld,
        events=events,
    )


def _has_alternatives(email: EmailMessage) -> bool:
    """Whether a message holds a multipart/alternative: its HTML may be its plain body's other form
    (`chosen_body`); else an HTML part beside a plain body (a gateway's footer) is not read."""
    return any(part.get_content_type() == "multipart/alternative" for part in email.walk())


_SMIME_UNREAD = {
    "enveloped-data": "encrypted mail (S/MIME): its body cannot be read without the recipient's key",
    "authenveloped-data": "encrypted mail (S/MIME): its body cannot be read without the recipient's key",
    "signed-data": "signed mail (S/MIME) whose signed content cannot be read: body not read",
    "compressed-data": "compressed mail (S/MIME): body not read",
    "": "S/MIME mail whose content cannot be read (encrypted?): body not read",
}


def _file_attachment(name: str, ctype: str, data: bytes) -> MailAttachment:
    """An attached file; one named `.eml` that reads as mail (saved mail attached as
    `application/octet-stream`) is an attached message, read as a `message/rfc822` part is."""
    if name.lower().endswith(".eml") and looks_like_mail(data[:HEAD_BYTES]):
        return attached_message(rfc822_message("", data), name)
    return MailAttachment(name, ctype, data, len(data))


def _repeats(att: MailAttachment, events: list[str]) -> bool:
    """Whether an attachment is an invitation whose events the body already holds (Outlook and
    Google send them twice: as the message's calendar part and as `invite.ics`)."""
    if not events or att.data is None or not is_calendar(att.content_type, att.name):
        return False
    return _events(att.data, att.content_type) in events


def _events(data: bytes, content_type: str) -> str:
    """An attached invitation's events (`calendar_text`), its bytes read as a text file in its
    part's charset (`extract_text`); "" when they are no text."""
    try:
        return calendar_text(extract_text(data, "invitation.txt", content_type))
    except ItemError:
        return ""


_RECEIVED_DATE = re.compile(r";\s*([^;]+?)\s*$")


def _received_date(email: EmailMessage) -> dt.datetime | None:
    """The date of the first (newest) Received header that has one: when the message arrived."""
    for name, value in email.raw_items():
        if name.lower() == "received" and (found := _RECEIVED_DATE.search(" ".join(str(value).split()))):
            if (when := header_date(found[1])) is not None:
                return when
    return None


MAX_REBOUNDS = 4  # multiparts of one message split again by a guessed boundary (each re-reads its bytes)


def _leaves(part: EmailMessage, rebounds: list[int] | None = None) -> Iterator[EmailMessage]:
    """The parts holding content, in order; an attached message is one part, not its insides; a
    multipart whose boundary split nothing is split by the boundary its parts use (the first
    `MAX_REBOUNDS` of a message: each costs a parse of its bytes), else one part; an opaque-signed
    S/MIME part is the parts it wraps (no key is needed to read them)."""
    rebounds = [0] if rebounds is None else rebounds  # one count for the whole message
    fixed = None
    if part.get_content_maintype() == "multipart" and not part.is_multipart() and rebounds[0] < MAX_REBOUNDS:
        rebounds[0] += 1
        fixed = rebounded(part)
    elif part.get_content_type() in SMIME_TYPES and smime_type(part) in ("signed-data", ""):
        payload = part.get_payload(decode=True)
        inner = signed_content(payload) if isinstance(payload, bytes) and rebounds[0] < MAX_REBOUNDS else None
        if inner is not None:
            rebounds[0] += 1  # a wrapped body may wrap another: bounded as a re-split is
            fixed = parse_rfc822(inner)
    if fixed is not None:
        yield from _leaves(fixed, rebounds)
    elif part.get_content_type() != "message/rfc822" and part.is_multipart():
        for sub in part.iter_parts():
            yield from _leaves(sub, rebounds)  # type: ignore[arg-type]
    else:
        yield part


def _attached_message(part: EmailMessage, filename: str | None) -> MailAttachment:
    """A `message/rfc822` part as a text attachment (`attached_message`)."""
    inner = part.get_payload(0) if part.is_multipart() else None
    if not isinstance(inner, EmailMessage):
        return MailAttachment(filename or "message.eml", "message/rfc822", None, 0)
    return attached_message(rfc822_message("", inner.as_bytes()), filename)


def attached_message(message: MailMessage, filename: str | None = None) -> MailAttachment:
    """An attached message (a forward as attachment, Outlook's item attachment) as an attachment of
    the message holding it, read as its From, Date and Subject, and its body (`_attached_text`)."""
    return MailAttachment(filename or f"{message.subject or 'message'}.eml", "message/rfc822", None, message=message)


# (native id, size, reader of its bytes, url, the date of an undated message): `_messages`
_Entry = tuple[str, int, Callable[[], bytes], str, Callable[[], dt.datetime | None]]


# --- the archive connector ------------------------------------------------------------------------
class MailArchiveConfig(FolderConfig):
    path: ConfigPath = Field(description="folder of .eml / RFC 822 files, mbox files or Maildirs")
    max_attachment_bytes: int = Field(DEFAULT_MAX_ATTACHMENT_BYTES, description="larger attachments are skipped")
    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1, description=BODY_CAP)
    max_file_bytes: int = Field(
        DEFAULT_MAX_FILE_BYTES, ge=1, description="larger message files (and mbox messages) are skipped, not read"
    )
    checkpoint_every: int = Field(20, ge=1, description="files between checkpoints")


class MailArchiveConnector(FolderConnector[MailArchiveConfig]):
    """A mail archive on disk; a file's mtime and size tell whether to read it again."""

    type = "mail_archive"
    Config = MailArchiveConfig
    deletions_from_checkpoint = True
    recent_first = True  # `since` filters by time at the service (base.Connector.recent_first)
    # an unchanged file is not read again: a changed ACL reaches its messages by a whole read
    scope_keys = MailArchiveConfig.ACL_KEYS

    def load(self, checkpoint: dict[str, Any] | None, *, since: dt.datetime | None = None) -> Iterator[Item]:
        self.check()
        seen: dict[str, list[Any]] = dict((checkpoint or {}).get("files", {}))
        current = dict(self._scan())
        for rel in sorted(set(seen) - set(current)):  # deletions first: a renamed Maildir file
            for native in _natives(rel, seen.pop(rel)):  # comes back under the same id below
                yield Deletion(id=self.doc_id(native))
        done, cap = 0, self.config.max_file_bytes
        yield Progress(total=len(current), unit="files")
        for number, (rel, stamp) in enumerate(sorted(current.items())):
            yield Progress(done=number)
            if (unread := OUTLOOK_FILES.get(Path(rel).suffix.lower())) is not None:  # mail it cannot read: said
                yield Skipped(id=self.doc_id(rel), reason=unread, failed=False, title=rel)  # each run
                continue
            old = seen.get(rel)
            if old is not None and old[:2] == stamp and not _cap_raised(old, cap) and not _keyed_before(old):
                continue  # unchanged, and what it holds over the size cap is over this one too
            count, over, unparsed, keys, holders = 0, False, False, [], dict[str, str]()
            try:
                head, read_as = self._head(rel, had=bool(_natives(rel, old)))
                if read_as is None:  # emptied where it held messages, and still changing: kept as it was
                    yield self._file_skip(rel, old, _MID_SAVE, failed=False)
                    continue
                kind = self._kind(rel, head, was_mbox=_was_mbox(old))
                if kind is None and head is not None:
                    if _named_as_mail(rel) or _natives(rel, old):  # damaged? kept; its entry stays: read again
                        yield self._file_skip(rel, old, _not_mail(head))
                        continue
                    log.info("source %r: %s does not read as mail; not indexed", self.name, rel)
                if kind == "mbox" and not head and _natives(rel, old):  # empty twice, a pause apart
                    yield self._file_skip(rel, old, _EMPTIED.format(len(_natives(rel, old))), failed=False)
                for native, size, read, url, undated in self._messages(rel, kind, old, holders):
                    count += 1
                    keys.append(native.rpartition("#")[2])
                    if size > cap:
                        over = True
                        yield from self._too_large(native, size, old is not None)
                    else:
                        unparsed |= not (yield from self._emit(native, read(), url, rel, since, undated))
            except OSError as exc:  # vanished or unreadable since the scan: named, retried next run
                yield self._file_skip(rel, old, f"cannot read {self.config.path / rel}: {exc.strerror}")
                continue
            at = [None, None] if unparsed else [read_as.st_mtime_ns, read_as.st_size]  # None: read again
            if kind == "mbox":
                seen[rel] = [*at, count, MBOX_KEYED, cap if over else None, keys, holders]
            else:
                seen[rel] = [*at, count, 0] + ([cap] if over else [])
            for native in sorted(set(_natives(rel, old)) - set(_natives(rel, seen[rel]))):
                yield Deletion(id=self.doc_id(native))
            done += 1
            if done % self.config.checkpoint_every == 0:
                yield Checkpoint(state={"files": dict(seen)})
        yield Checkpoint(state={"files": seen})

    def live_ids(self) -> Iterator[str]:
        """Every message's id. A file that does not read as mail, or reads empty (damaged, or caught
        in the middle of a save), vouches for what it may have held: its message's id and a
        `LivePrefix` of its mbox messages' (the next sync, which knows what it held, decides)."""
        self.check()  # a vanished folder is an error, not "every message was deleted"
        for rel, _ in self._scan():
            head = self._read_head(self.config.path / rel)
            kind = self._kind(rel, head)
            if kind is None or not head:
                yield self.doc_id(_message_id(rel))
                yield LivePrefix(self.doc_id(f"{rel}#"))
                continue
            if kind == "mbox":  # what load named them, either key of a message sharing its Message-ID
                with (self.config.path / rel).open("rb") as handle:
                    for key in {k for *_, found in _mbox_spans(handle) for k in found.candidates}:
                        yield self.doc_id(f"{rel}#{key}")
                continue
            for native, *_ in self._messages(rel, kind):
                yield self.doc_id(native)

    # --- reading ----------------------------------------------------------------------------------
    def _scan(self) -> Iterator[tuple[str, list[int]]]:
        """(relative path, [mtime_ns, size]) of every file under the root (Maildir tmp/ aside, and
        hidden folders but a Maildir++ mailbox's: `_maildir_plus`)."""
        root = self.config.path
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(
                d for d in dirs if d != "tmp" and (not d.startswith(".") or _maildir_plus(Path(folder, d)))
            )
            for name in sorted(files):
                if name.startswith("."):
                    continue
                full = Path(folder) / name
                stat = full.stat()
                if not S_ISREG(stat.st_mode):  # a pipe or a device: opening one may wait for ever
                    log.info("source %r: %s is not a regular file; not read", self.name, full.relative_to(root))
                    continue
                yield full.relative_to(root).as_posix(), [stat.st_mtime_ns, stat.st_size]

    def _head(self, rel: str, had: bool) -> tuple[bytes | None, os.stat_result | None]:
        """The file's first `HEAD_BYTES` once it holds still, and its stat as read
        (`FolderConnector.read_settled`): one that held messages (`had`) and reads empty is looked
        at again after a pause (a mail client truncates an mbox before writing it again); (b"",
        None) when it still reads empty and keeps changing; (None, ...) when it is no longer a
        regular file (never waited on)."""
        full = self.config.path / rel
        return self.read_settled(full, full.stat(), had, partial(self._read_head, full), HEAD_BYTES)

    def _read_head(self, path: Path) -> bytes | None:
        """A file's first `HEAD_BYTES`; None when it is not a regular file (never waited on)."""
        opened = open_regular(path)
        if opened is None:
            return None
        with opened as handle:
            return handle.read(HEAD_BYTES)

    @staticmethod
    def _kind(rel: str, head: bytes | None, was_mbox: bool = False) -> str | None:
        """'mbox', 'message' (one RFC 822 message: .eml, Enron's "1.", a Maildir file) or None (not
        mail, or not a regular file: `head` None). An empty file is an mbox with no message when it
        is named as one or `was_mbox`."""
        if head is None:
            return None
        first, _, rest = head.partition(b"\n")
        if _separates(first, rest) or (not head and (was_mbox or Path(rel).suffix.lower() in MBOX_SUFFIXES)):
            return "mbox"
        return "message" if looks_like_mail(_unwrapped(rel, head)) else None

    def _file_skip(self, rel: str, old: list[Any] | None, reason: str, failed: bool = True) -> Skipped:
        """The skip of a file as a whole, naming what was indexed from it: an mbox's messages (all
        ids starting `rel#`), else its message. A failed one keeps them."""
        if _was_mbox(old) or Path(rel).suffix.lower() in MBOX_SUFFIXES:
            return Skipped(id=self.doc_id(f"{rel}#"), reason=reason, failed=failed, title=rel, folder=True)
        return Skipped(id=self.doc_id(_message_id(rel)), reason=reason, failed=failed, title=rel)

    def _messages(
        self, rel: str, kind: str | None, before: list[Any] | None = None, holders: dict[str, str] | None = None
    ) -> Iterator[_Entry]:
        """(native id, size in bytes, what reads its bytes, url, the date of an undated message)
        of each message in the file: a message file's mtime, an mbox message's From_ line's date.
        A message's bytes are read only by calling its reader (before the next one is asked for).
        An mbox's keys are given as its checkpoint entry `before` had them (`_mbox_keys`), and the
        holders of shared Message-IDs it records are put in `holders`."""
        full = self.config.path / rel
        if kind == "message":
            read = partial(_message_bytes, rel, full)
            yield _message_id(rel), full.stat().st_size, read, full.as_uri(), partial(_mtime, full)
        elif kind == "mbox":
            with full.open("rb") as handle:
                spans = _mbox_spans(handle)
                keys, held = _mbox_keys([found for *_, found in spans], before)
                (holders if holders is not None else {}).update(held)
                for (start, end, line, _), key in zip(spans, keys, strict=True):
                    read = partial(_mbox_bytes, handle, start, end)
                    yield f"{rel}#{key}", end - start, read, f"{full.as_uri()}#{key}", partial(_from_line_date, line)

    def _too_large(self, native: str, size: int, known: bool) -> Iterator[Item]:
        """A message over `max_file_bytes`, not read: a skip by policy; what was indexed of it goes."""
        reason = f"{size} bytes, larger than max_file_bytes ({self.config.max_file_bytes}): not read"
        yield Skipped(id=self.doc_id(native), reason=reason, failed=False, title=native)
        if known:
            yield Deletion(id=self.doc_id(native))

    def _emit(
        self,
        native: str,
        raw: bytes,
        url: str,
        rel: str,
        since: dt.datetime | None,
        undated: Callable[[], dt.datetime | None],
    ) -> Generator[Item, None, bool]:
        """The message's document and what of it was left out; False when it could not be parsed (a
        failed skip: the version indexed before is kept, and the file is read again next run). A
        message neither its Date nor a Received header dates is dated by `undated()`."""
        try:
            msg = rfc822_message(native, raw, url=url, folder=_folder(rel))
            if msg.received is None:
                msg.received = msg.sent = undated()
            if since is not None and msg.received is not None and msg.received < since:
                return True
            c = self.config
            document, skipped = message_document(self, msg, c.acl(), c.max_attachment_bytes, c.max_body_bytes)
        except Exception as exc:  # noqa: BLE001 - a malformed file must not stop the archive
            yield Skipped(id=self.doc_id(native), reason=f"cannot parse message: {exc}")
            return False
        yield from skipped
        yield document
        return True


_MBOX_ESCAPE = re.compile(rb"^>(>*From )", re.M)
HEAD_BYTES = 4096  # of a file, read to tell an mbox, a message or something else
MESSAGE_SUFFIXES = {".eml", ".emlx"}  # a file named so is a message: one that does not read as mail is an error
MBOX_SUFFIXES = {".mbox", ".mbx"}  # ... an mbox (empty: no message)
_EMPTIED = "the mbox is empty now (at two reads a pause apart): its {} messages leave the index"
_MID_SAVE = (
    "read empty where it held mail, and changed while read (being rewritten?): "
    "what was indexed from it is kept as it was; read again next run"
)


OUTLOOK_FILES = {  # mail in a format not read, by suffix: a skip by policy saying what to do
    suffix: f"Outlook {suffix} files are not read: export the mail as .eml or .mbox"
    for suffix in (".msg", ".pst", ".ost", ".olm")
}


def _named_as_mail(rel: str) -> bool:
    """Whether the file's name says it holds mail: a message or mbox suffix, or a Maildir's cur/ or new/."""
    path = Path(rel)
    return path.suffix.lower() in MESSAGE_SUFFIXES | MBOX_SUFFIXES or path.parent.name in {"cur", "new"}


def _not_mail(head: bytes) -> str:
    """Why a file that should hold mail is not read as mail."""
    if not head:
        return "cannot parse message: the file is empty"
    return "cannot parse message: no mail headers at its start (damaged?)"


def _was_mbox(stamp: list[Any] | None) -> bool:
    """Whether a checkpoint entry ([mtime, size, count, is_mbox, ...]) is an mbox's."""
    return bool(stamp and len(stamp) > 3 and stamp[3])


# An mbox entry's fourth item: 1 when it was split at every "From " line after a blank line (before
# 2026-12), 2 when split at From_ lines only, both numbering its messages by position (`rel#0`,
# `rel#1`, ...); 3 when its messages were keyed by what they are but a second message with the same
# Message-ID got `-2` (by position again); `MBOX_KEYED` since (`_mbox_keys`): the entry [mtime,
# size, count, MBOX_KEYED, cap over which some were (or None), [keys], {holders}]. An entry named by
# position is read once more, unchanged or not: its documents move to their keyed ids (their
# vectors reused: the texts are the same), the old ids are deleted. An entry 3 whose keys hold no
# `-` (no shared Message-ID, no twin) is already what `MBOX_KEYED` gives: not read again.
MBOX_KEYED = 4
_KEYED_BY_ID = 3


def _keyed_before(stamp: list[Any]) -> bool:
    """Whether an mbox's checkpoint entry names some of its messages by position, as before `MBOX_KEYED`."""
    if len(stamp) > 3 and stamp[3] == _KEYED_BY_ID:
        return any("-" in key for key in stamp[5])
    return len(stamp) > 3 and stamp[3] in (1, 2)


def _cap_raised(stamp: list[Any], cap: int) -> bool:
    """Whether `max_file_bytes` is now over what it was when some message of the file was over it."""
    return len(stamp) > 4 and stamp[4] is not None and cap > stamp[4]


def _regular_bytes(path: Path) -> bytes:
    """The bytes of a message file; `OSError` when it is no longer a regular file (never waits)."""
    opened = open_regular(path)
    if opened is None:
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    with opened as handle:
        return handle.read()


def _message_bytes(rel: str, path: Path) -> bytes:
    """The message a message file holds (`_unwrapped`)."""
    return _unwrapped(rel, _regular_bytes(path))


def _unwrapped(rel: str, raw: bytes) -> bytes:
    """An Apple Mail `.emlx` file's message: the file is a line giving the message's length in
    bytes, the message, then a property list of Mail's own flags. Any other file as it is."""
    if Path(rel).suffix.lower() != ".emlx":
        return raw
    count, _, rest = raw.partition(b"\n")
    return rest[: int(count)] if count.strip().isdigit() else raw


def _mbox_bytes(handle: BinaryIO, start: int, end: int) -> bytes:
    """An mbox message's bytes as sent: a line its writer escaped because it began "From " (mboxo
    and mboxrd write ">From ", mboxrd one more ">" before a ">From " line) loses one ">", as RFC 4155
    has the reader do. (An mboxo writer leaves a line that began ">From " as it is: it loses its ">".)"""
    handle.seek(start)
    return _MBOX_ESCAPE.sub(rb"\1", handle.read(end - start))


# RFC 4155's From_ line, as mutt's `is_from` reads it: "From ", the sender (maybe none), then a
# date: [weekday] month day time [zone...] year ("From - Thu Dec 03 10:00:00 2026", Google
# Takeout's "From 1234@xxx Mon Mar 13 10:12:34 +0000 2023")
_FROM_LINE = re.compile(
    rb"^From (?:\S*|\"[^\"]*\"\S*) +(?:[A-Za-z]{3},? +)?(?P<month>[A-Za-z]{3}) +(?P<day>\d{1,2}) +"
    rb"(?P<time>\d{1,2}:\d{2}(?::\d{2})?)(?P<zones>(?: +(?:[A-Za-z]{1,5}|[+-]\d{4}))*) +(?P<year>\d{4})\b"
)
_FIELD = re.compile(rb"^[!-9;-~]+:")  # a header line's field name


def _separates(line: bytes, after: bytes) -> bool:
    """Whether an mbox line starts a message: a line starting "From " right over a header line,
    and either a From_ line with a date or over a block that reads as mail headers. A body line a
    writer did not escape ("From here on ...") is neither, and stays in its message."""
    if not (line.startswith(b"From ") and _FIELD.match(after)):
        return False
    return bool(_FROM_LINE.match(line)) or looks_like_mail(after)


def _mbox_spans(handle: BinaryIO) -> list[tuple[int, int, bytes, _Found]]:
    """Where each message of an mbox lies: the (start, end) offsets of its bytes, after its From_
    line and before the blank line that ends it (`_separates` tells which lines start one), its
    From_ line, and what keys it (`_MessageKey`), read in the same pass."""
    spans: list[tuple[int, int, bytes, _Found]] = []
    start = pos = 0
    separator = b""
    blank = 0  # the length of the line before, when it was blank
    key, seen = _MessageKey(), Counter[str]()
    for line in iter(handle.readline, b""):
        here = pos + len(line)
        if line.startswith(b"From "):
            after = handle.read(HEAD_BYTES)
            handle.seek(here)
            if pos == 0 or _separates(line, after):
                if pos:
                    spans.append((start, pos - blank, separator, key.found(seen)))
                start, separator, key = here, line, _MessageKey()
                blank = 0
                pos = here
                continue
        key.add(line)
        blank = len(line) if line in (b"\n", b"\r\n") else 0
        pos = here
    if pos:
        spans.append((start, pos, separator, key.found(seen)))
    return spans


_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(\S*)", re.I)
_MARKED = re.compile(rb"^(date|from|subject):", re.I)


@dataclass(frozen=True)
class _Found:
    """What keys an mbox message: `plain`, a digest of its Message-ID (`by_id`), else of its bytes
    (then `-2`, `-3` ... for a second, third identical one); `twin`, for a message with a
    Message-ID, that digest and one of its Date, From, Subject and body (`-2` ... again when those
    are the same), which tells apart messages sharing a Message-ID and none other of them has."""

    plain: str
    by_id: bool
    mark: str = ""
    twin: str = ""

    @property
    def candidates(self) -> tuple[str, ...]:
        """The keys `_mbox_keys` may give it."""
        return (self.plain, self.twin) if self.by_id else (self.plain,)


class _MessageKey:
    """An mbox message's key, what names it whatever its place in the file (a mail client's
    compaction moves every message after a deleted one): a digest of its Message-ID, else of its
    bytes (trailing blank lines aside); of messages sharing a Message-ID, see `_mbox_keys`."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.mark = hashlib.sha256()  # Date, From, Subject and the body: not the flags a mail client rewrites
        self.message_id = b""
        self.headers = True
        self.marked = False  # the header line before was Date, From or Subject (a folded one goes on)
        self.blanks = b""

    def add(self, line: bytes) -> None:
        if line.strip() == b"":
            self.headers, self.blanks = False, self.blanks + line
            return
        if self.headers:
            if not self.message_id and (found := _MESSAGE_ID.match(line)):
                self.message_id = found[1]
            if line[:1] not in (b" ", b"\t"):
                self.marked = bool(_MARKED.match(line))
            if self.marked:
                self.mark.update(line.rstrip(b"\r\n") + b"\n")
        else:
            self.mark.update(self.blanks + line)
        self.digest.update(self.blanks + line)
        self.blanks = b""

    def found(self, seen: Counter[str]) -> _Found:
        """What keys it; `seen` counts the keys of the file's messages before it."""
        if not self.message_id.strip(b"<>"):
            return _Found(_counted(self.digest.hexdigest()[:16], seen), by_id=False)
        plain = hashlib.sha256(b"message-id " + self.message_id).hexdigest()[:16]
        mark = self.mark.hexdigest()[:8]
        return _Found(plain, by_id=True, mark=mark, twin=_counted(f"{plain}-{mark}", seen))


def _counted(key: str, seen: Counter[str]) -> str:
    seen[key] += 1
    return key if seen[key] == 1 else f"{key}-{seen[key]}"


def _mbox_keys(found: list[_Found], before: list[Any] | None) -> tuple[list[str], dict[str, str]]:
    """The keys of an mbox's messages (`found`, in file order), given its checkpoint entry `before`,
    and the holders to record. A message whose Message-ID no other has is keyed by it. Of messages
    sharing one, one holds that key (the one that held it: its `mark` is recorded as the holder)
    and the others their `twin` key, which each keeps once it has it: deleting any of them moves no
    other onto its id. A holder deleted (or changed) leaves the Message-ID's key to no one while
    messages with it remain (its mark is kept), so a citation of the deleted one never opens
    another. With no holder recorded (the Message-ID was unique, or keyed before `MBOX_KEYED`)
    the first in the file holds it."""
    had = set(before[5]) if before and len(before) > 5 and before[3] in (_KEYED_BY_ID, MBOX_KEYED) else set()
    held_before: dict[str, str] = before[6] if before and len(before) > 6 else {}
    keys, holders, groups = [f.plain for f in found], dict[str, str](), dict[str, list[int]]()
    for n, f in enumerate(found):
        if f.by_id:
            groups.setdefault(f.plain, []).append(n)
    for plain, members in groups.items():
        rest = [n for n in members if found[n].twin not in had]
        for n in set(members) - set(rest):
            keys[n] = found[n].twin  # kept
        holder = held_before.get(plain)
        first = next((n for n in rest if holder is None or found[n].mark == holder), None)
        for n in rest:
            keys[n] = plain if n == first else found[n].twin
        if first is None:
            holders[plain] = holder or ""  # its key stays unused while the others remain
        elif len(members) > 1:
            holders[plain] = found[first].mark
    return keys, holders


def _from_line_date(line: bytes) -> dt.datetime | None:
    """The date of an mbox From_ line (UTC unless it gives a numeric zone); None when it has none."""
    found = _FROM_LINE.match(line)
    if found is None:
        return None
    zone = re.search(rb"[+-]\d{4}", found["zones"])
    stamp = b" ".join([found["day"], found["month"], found["year"], found["time"], zone[0] if zone else b"+0000"])
    return header_date(stamp.decode("ascii"))


def _mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)


def _maildir_plus(path: Path) -> bool:
    """Whether a hidden folder is a Maildir++ mailbox's folder (Dovecot's and Courier's layout:
    the INBOX's cur/new/tmp, and each other folder `.Sent`, `.Archive.2025` beside them, with its
    own cur/ or new/, or the `maildirfolder` file that marks one)."""
    return any((path / sub).is_dir() for sub in ("cur", "new")) or (path / "maildirfolder").is_file()


def _folder(rel: str) -> str:
    """The folder a message is in: a file's folder; a Maildir message's mailbox (its cur/ or new/
    aside), a Maildir++ folder by its name (`alice/.Archive.2025` is `alice/Archive/2025`)."""
    parent = Path(rel).parent
    if parent.name not in {"cur", "new"}:
        return parent.as_posix()
    box = parent.parent
    if box.name.startswith(".") and len(box.name) > 1:
        return (box.parent / box.name[1:].replace(".", "/")).as_posix()
    return box.as_posix()


def _message_id(rel: str) -> str:
    """Maildir files change name when flags change (`cur/123.host:2,S`): key on the stable part."""
    path = Path(rel)
    if path.parent.name in {"cur", "new"}:
        return f"{path.parent.parent.as_posix()}/{path.name.split(':2,')[0]}"
    return rel


def _natives(rel: str, stamp: list[Any] | None) -> list[str]:
    """Document ids a file held when it had this checkpoint entry: [mtime, size, count, 0] (a
    message file) and a fifth item, the `max_file_bytes` then, when it was over it (no document: a
    skip); an mbox's as `MBOX_KEYED` describes, or numbered (`_keyed_before`)."""
    if not stamp or len(stamp) < 4:
        return []
    if stamp[3] in (_KEYED_BY_ID, MBOX_KEYED):
        return [f"{rel}#{key}" for key in stamp[5]]
    if stamp[3]:
        return [f"{rel}#{n}" for n in range(stamp[2])]  # numbered by position (`_keyed_before`)
    return [_message_id(rel)] if stamp[2] else []
