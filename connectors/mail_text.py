"""Mail bodies as retrievable text: the new content of a message, not the thread it quotes.

Replies carry the whole chain below them ("-----Original Message-----", "On ... wrote:", `>`
lines, Lotus Notes "Forwarded by" banners); indexing that again in every reply drowns search in
duplicates. `new_content` keeps what the sender wrote, drops the signature, and keeps the quote
when it is all there is (a bare forward). Also: RFC 822 parsing for archives.
"""

from __future__ import annotations

import datetime as dt
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from .extract import decode, html_to_text

_SEPARATORS = [
    re.compile(r"^-{2,}\s*original message\s*-{2,}", re.I),
    re.compile(r"^-{2,}\s*forwarded (by|message)\b", re.I),
    re.compile(r"^-{3,}\s*begin forwarded message", re.I),
    re.compile(r"^.{0,200}\bwrote:\s*$", re.I),  # "On Mon, Bob <b@x> wrote:", "b@x wrote:"
    re.compile(r"^_{10,}\s*$"),
]
# An attribution a mail client wrapped: "On Mon, Dec 7, 2026 at 10:00 AM Alice <a@x>" / "wrote:"
_WROTE = re.compile(r"^(<?\S+@\S+>?\s+)?wrote:\s*$", re.I)
_ATTRIBUTION_START = re.compile(r"^On\b(?=.*\d).{6,200}$")
_HEADER_START = re.compile(r"^\*{0,2}from:\*{0,2}\s", re.I)
_HEADER_NEXT = re.compile(r"^\*{0,2}(sent|date|to):\*{0,2}\s", re.I)
_SIGNATURE = [
    re.compile(r"^--\s*$"),
    re.compile(r"^sent from my (iphone|ipad|blackberry|android|mobile|samsung)", re.I),
    re.compile(r"^get outlook for (ios|android)", re.I),
]


def normalise(text: str) -> str:
    """Tidy a body: no trailing spaces, at most one blank line in a row."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def new_content(text: str) -> str:
    """The part of a body its sender wrote; the whole body when nothing new precedes the quote."""
    full = normalise(text)
    lines = full.split("\n")
    cut = _first_cut(lines)
    kept = [line for line in lines[:cut] if not line.lstrip().startswith(">")]
    fresh = "\n".join(kept).strip()
    return fresh if fresh else full


def _first_cut(lines: list[str]) -> int:
    for n, raw in enumerate(lines):
        line = raw.strip()
        if any(p.match(line) for p in _SIGNATURE) and n > 0:
            return n
        if any(p.match(line) for p in _SEPARATORS):
            wrapped = n > 0 and _WROTE.match(line) and _ATTRIBUTION_START.match(lines[n - 1].strip())
            return n - 1 if wrapped else n
        if _HEADER_START.match(line) and any(_HEADER_NEXT.match(x.strip()) for x in lines[n + 1 : n + 4]):
            return n
    return len(lines)


def body_text(html: str | None, plain: str | None) -> str:
    """Clean new content from whichever body the message has (HTML preferred, as Outlook sends)."""
    if html:
        return new_content(html_to_text(html))
    return new_content(plain or "")


# --- RFC 822 --------------------------------------------------------------------------------------
_PARSER = BytesParser(policy=policy.default)


def parse_rfc822(raw: bytes) -> EmailMessage:
    return _PARSER.parsebytes(raw)  # type: ignore[return-value]


def looks_like_mail(head: bytes) -> bool:
    """Cheap sniff: a header block with at least two of the usual fields, before any blank line."""
    header = head.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    names = {m.lower() for m in re.findall(rb"^([A-Za-z-]+):", header, re.M)}
    return len(names & {b"from", b"to", b"subject", b"date", b"message-id", b"received"}) >= 2


def addresses(value: str | None) -> list[tuple[str, str]]:
    """[(name, email)] of a header, tolerant of the malformed ones archives are full of."""
    if not value:
        return []
    try:
        pairs = getaddresses([" ".join(str(value).split())])
    except Exception:  # noqa: BLE001 - email's header parser raises assorted errors on junk
        return []
    return [(name, email.lower()) for name, email in pairs if "@" in email]


def header_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def part_text(part: EmailMessage) -> str:
    """A text part's content, decoded with its charset or, failing that, our usual guesses."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(payload or "")
    charset = part.get_content_charset() or ""
    try:
        return payload.decode(charset) if charset else decode(payload)
    except (LookupError, UnicodeDecodeError):
        return decode(payload)
